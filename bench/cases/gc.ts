/**
 * Online garbage collection at scale (the GC issue): a registry of 100,100 blobs and 10,000 image
 * manifests of which 10 % have been deleted. Targets: one cycle finishes in under 10 s, and manifest
 * GET throughput measured during it drops by no more than 20 %.
 *
 * Setup (untimed, once): the data directory is written through the library, not over HTTP (110,000
 * uploads would take minutes): `SqliteMetadataStore` and `FsBlobStore` on `<dir>`, 100 repositories
 * of 100 images each. An image is a config and 10 layers: one base layer shared by the 100 images of
 * its repository and 9 of its own (random bytes, 256 B to 4 KiB), linked in the repository
 * (`linkBlob`, as a push's uploads do), and its manifest body stored as a blob and recorded with
 * `putManifest` (record and references built as Registry.recordManifest builds them) under a tag.
 * Then every tenth image of each repository is deleted (`deleteManifest`, as a manifest DELETE):
 * its manifest body, config and own layers (11,000 blobs, counted from the model, not assumed)
 * become garbage; the base layers stay. The review queue then holds whatever the store queued on
 * the way (its size is in the notes: the deleted manifests and their children, as a manifest PUT
 * takes its own blobs out of the queue), and a cycle must review all of it. The links are seconds
 * old, so cycles run with a grace of 0. Blob files are written straight to
 * `FsBlobStore.blobPath` (what `put` commits, without its two fsyncs per blob) and the metadata
 * connection runs with `synchronous = OFF`: with both, 110,000 blobs took minutes here.
 *
 * A cycle destroys its own input, so each measurement runs on a fresh copy: `cp -al` (blob files
 * hard-linked: GC never writes a blob file, it renames and unlinks), then its own metadata.db, and
 * its own copy of each garbage file, so that deleting one frees its blocks as in a real registry.
 * (`cp -a` of 110,000 files took ~35 s a round here; this takes ~5 s.)
 *
 * - `gc-cycle`: `skiff gc --data <copy> --grace 0s --no-sweep`, wall time of the process (start-up
 *   included). Its summary line must say it reviewed the whole queue and deleted exactly the
 *   garbage, and afterwards every garbage file is gone and every kept file is in place.
 * - `gc-during-rps`: `skiff serve --gc-interval 0` on a copy, wrk by tag (50 connections): a
 *   window before, the window while `skiff gc` runs beside it (the documented way against a live
 *   server: another process, SQLite between them), a window after. The GC window is exactly the gc
 *   process's life: wrk starts, then gc, and wrk is stopped (SIGINT, it prints its report) when gc
 *   exits; the after window has the same length, the before one the last cycle time measured. The
 *   peer is the mean of before and after. Kept images are then checked through the server.
 * - `gc-in-server-rps` and `gc-in-server-cycle`: `skiff serve --gc-interval 10s --gc-grace 0s` on a
 *   copy, whose scheduler runs its first cycle (no file sweep: that comes an hour after start) 10 s after
 *   it starts listening: wrk warms up for 1 s, loads a baseline window until 0.7 s before the
 *   cycle, then a window from 0.1 s before it until /metrics (scraped every 200 ms, in the
 *   baseline too) counts the cycle, or for at most IN_SERVER_CAP_S. A cycle that is not over by
 *   then is recorded as a failure of the cycle row, with how far it got (its review queue, read
 *   from the copy's metadata.db).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { copyFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { childDescriptors, parseManifest } from '../../src/oci/manifest.ts';
import type { ManifestRecord } from '../../src/server/storage/metadata.ts';
import { registryLayout } from '../../src/server/storage/layout.ts';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata.ts';
import { openSeedStores } from '../gen/seed-stores.ts';
import { onCleanup } from '../cleanup.ts';
import { skiff as skiffCommand } from '../clients.ts';
import type { Context } from '../context.ts';
import { MANIFEST_ACCEPT, MediaTypes } from '../gen/media-types.ts';
import { load, parseWrk, type Load } from '../measure/wrk.ts';
import { series, type Row } from '../model.ts';
import { run, startDaemon } from '../proc.ts';
import { interleave, type Contestant } from '../rounds.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

const REPOSITORIES = 100;
const IMAGES_PER_REPOSITORY = 100;
/** Layers of an image besides its repository's shared base layer. */
const OWN_LAYERS = 9;
/** Every GARBAGE_EVERY-th image of a repository is deleted: 10 %. */
const GARBAGE_EVERY = 10;
const CONNECTIONS = 50;
const TARGET_SECONDS = 10;
/** /metrics scrapes while waiting for the in-server cycle (and, for fairness, in its baseline window). */
const SCRAPE_MS = 200;
/** The in-server collector's first cycle starts this long after the server listens (`--gc-interval`). */
const FIRST_CYCLE_S = 10;
/** The longest load window waiting for the in-server cycle to end. */
const IN_SERVER_CAP_S = 30;
/** How long wrk gets to start and connect before the work its window measures begins. */
const WRK_CONNECT_MS = 30;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface BlobRef {
  digest: Digest;
  size: number;
}

interface GcImage {
  repo: string;
  tag: string;
  manifest: BlobRef;
  config: BlobRef;
  layers: BlobRef[];
  deleted: boolean;
}

export interface Dataset {
  dir: string;
  images: GcImage[];
  /** Every blob file (layers, configs, manifest bodies) and its size. */
  blobs: Map<Digest, number>;
  /** The blobs nothing uses once the deleted manifests are gone. */
  garbage: Map<Digest, number>;
  /** Repository links to garbage blobs: a cycle prunes exactly these. */
  garbageLinks: number;
  links: number;
  /** Digests in the review queue (all due with a grace of 0). */
  queued: number;
  setupMs: number;
}

export async function gcCase(ctx: Context): Promise<Row[]> {
  const make = (id: string, title: string, unit: string, better: Row['better'], peerName: string): Row => ({ id, title, unit, better, skiff: series(), peerName, peer: series() });
  const rows = {
    cycle: {
      ...make('gc-cycle', 'skiff gc --grace 0s --no-sweep: 100k blobs, 10k manifests, 10 % garbage (process wall time)', 's', 'lower', 'no peer'),
      limit: { name: `target ${TARGET_SECONDS} s`, value: TARGET_SECONDS },
    },
    during: make('gc-during-rps', `manifest GET by tag, ${CONNECTIONS} conn, while \`skiff gc\` runs beside skiff serve (window = the gc process)`, 'req/s', 'higher', 'same server, no GC (before/after)'),
    inServer: make('gc-in-server-rps', `manifest GET by tag, ${CONNECTIONS} conn, during skiff serve's own GC cycle (to its end, at most ${IN_SERVER_CAP_S} s)`, 'req/s', 'higher', 'same server before the cycle'),
    inServerCycle: make('gc-in-server-cycle', `skiff serve's own GC cycle under that load (its first cycle)`, 's', 'lower', 'no peer'),
  };

  const base = join(ctx.runDir, 'gc-base');
  onCleanup('gc dataset', () => rm(base, { recursive: true, force: true }));
  ctx.log(`  building the dataset: ${REPOSITORIES} repositories × ${IMAGES_PER_REPOSITORY} images through SqliteMetadataStore and the blob store layout`);
  const dataset = await buildDataset(base);
  const setupNote = `setup ${(dataset.setupMs / 1000).toFixed(1)} s, untimed: ${dataset.blobs.size} blob files (${dataset.images.length} of them manifest bodies), ${dataset.links} links, ${dataset.images.length} manifests; ${dataset.images.filter((i) => i.deleted).length} deleted → ${dataset.garbage.size} garbage blobs (${dataset.garbageLinks} links), review queue ${dataset.queued}`;
  ctx.log(`  ${setupNote}`);

  let copies = 0;
  const copy = async (): Promise<{ dir: string; ms: number }> => {
    const dir = join(ctx.runDir, `gc-copy-${++copies}`);
    const started = performance.now();
    await run('cp', ['-al', base, dir], { timeoutMs: 300_000 });
    const metadata = registryLayout(dir).metadata;
    await rm(metadata);
    await copyFile(registryLayout(base).metadata, metadata);
    // The garbage files get their own inodes: unlinking one frees its blocks, as in a real registry.
    const source = new FsBlobStore(registryLayout(base).blobs);
    const target = new FsBlobStore(registryLayout(dir).blobs);
    const garbage = [...dataset.garbage.keys()];
    for (let i = 0; i < garbage.length; i += 64) {
      await Promise.all(
        garbage.slice(i, i + 64).map(async (digest) => {
          const path = target.blobPath(digest);
          await copyFile(source.blobPath(digest), `${path}.copy`);
          await rename(`${path}.copy`, path);
        }),
      );
    }
    return { dir, ms: performance.now() - started };
  };
  const copyMs: number[] = [];
  let lastCycleMs: number | undefined;
  const headers = { Accept: MANIFEST_ACCEPT };
  const target = dataset.images.find((image) => !image.deleted)!;
  const url = (server: Server) => `${server.url}/v2/${target.repo}/manifests/${target.tag}`;

  const cycleRound: Contestant = {
    name: 'skiff gc (alone)',
    series: [rows.cycle.skiff],
    async round(index) {
      const { dir, ms } = await copy();
      copyMs.push(ms);
      try {
        const result = await skiffCommand(ctx.skiff, ['gc', '--data', dir, '--grace', '0s', '--no-sweep'], ctx.runDir);
        const summary = checkSummary(result.stdout, dataset);
        await checkFiles(dir, dataset);
        lastCycleMs = result.ms;
        rows.cycle.skiff.samples.push(result.ms / 1000);
        rows.cycle.skiff.extra.push({ round: index + 1, cycleMs: summary.ms, ...summary });
        ctx.log(`    skiff gc: ${(result.ms / 1000).toFixed(2)} s wall, ${summary.ms} ms in its cycle; ${summary.blobs} blobs deleted`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };

  const perRoundDuring: string[] = [];
  const duringRound: Contestant = {
    name: 'GET during skiff gc',
    series: [rows.during.skiff, rows.during.peer],
    async round(index) {
      const { dir } = await copy();
      const server = await startSkiff(ctx.skiff, ctx.runDir, [], ['--gc-interval', '0'], { data: dir });
      try {
        await checkImage(server, target);
        await load(url(server), { connections: CONNECTIONS, seconds: 1, headers });
        const before = await loadWhile(url(server), headers, () => sleep(lastCycleMs ?? 5000));
        let gcMs = 0;
        let gcOut = '';
        const during = await loadWhile(url(server), headers, async () => {
          const result = await skiffCommand(ctx.skiff, ['gc', '--data', dir, '--grace', '0s', '--no-sweep'], ctx.runDir);
          gcMs = result.ms;
          gcOut = result.stdout;
        });
        const after = await loadWhile(url(server), headers, () => sleep(during.ms));
        const summary = checkSummary(gcOut, dataset);
        await spotCheck(server, dataset);
        const without = (before.rps + after.rps) / 2;
        rows.during.skiff.samples.push(during.rps);
        rows.during.skiff.extra.push({ round: index + 1, windowMs: during.ms, gcWallMs: gcMs, gcCycleMs: summary.ms, p50ms: during.p50ms, p99ms: during.p99ms, requests: during.requests });
        rows.during.peer.samples.push(without);
        rows.during.peer.extra.push({ round: index + 1, beforeRps: before.rps, beforeMs: before.ms, afterRps: after.rps, afterMs: after.ms, p99ms: [before.p99ms, after.p99ms] });
        perRoundDuring.push(`${(during.rps / without).toFixed(2)} (gc ${(gcMs / 1000).toFixed(1)} s; p99 ${during.p99ms.toFixed(0)} vs ${before.p99ms.toFixed(0)}/${after.p99ms.toFixed(0)} ms)`);
        ctx.log(`    GET before ${before.rps.toFixed(0)}, during gc ${during.rps.toFixed(0)} (${(during.ms / 1000).toFixed(1)} s window, gc ${(gcMs / 1000).toFixed(2)} s), after ${after.rps.toFixed(0)} req/s`);
      } finally {
        await server.stop(); // removes the copy
      }
    },
  };

  const perRoundInServer: string[] = [];
  const inServerRound: Contestant = {
    name: 'GET during the in-server cycle',
    series: [rows.inServer.skiff, rows.inServer.peer, rows.inServerCycle.skiff],
    async round(index) {
      const { dir } = await copy();
      const server = await startSkiff(ctx.skiff, ctx.runDir, [], ['--gc-interval', `${FIRST_CYCLE_S}s`, '--gc-grace', '0s'], { data: dir });
      // The scheduler's timer starts as the server starts listening, a few ms before it first answered.
      const cycleAt = performance.now() + FIRST_CYCLE_S * 1000;
      try {
        await checkImage(server, target);
        await loadWhile(url(server), headers, () => sleep(1000));
        const baseline = await loadWhile(url(server), headers, () => scrapeUntil(server, cycleAt - 700));
        if ((await gcMetrics(server)).cycles > 0) throw new Error('a GC cycle ended before the one being measured');
        await sleep(Math.max(0, cycleAt - 100 - performance.now()));
        const cap = performance.now() + IN_SERVER_CAP_S * 1000;
        let finished = false;
        const during = await loadWhile(url(server), headers, async () => {
          finished = await scrapeUntil(server, cap, (m) => {
            if (m.failed > 0) throw new Error('the in-server GC cycle failed (skiff_gc_cycles_total{outcome="failed"})');
            return m.cycles > 0;
          });
        });
        rows.inServer.skiff.samples.push(during.rps);
        rows.inServer.skiff.extra.push({ round: index + 1, windowMs: during.ms, finished, p50ms: during.p50ms, p99ms: during.p99ms, requests: during.requests });
        rows.inServer.peer.samples.push(baseline.rps);
        rows.inServer.peer.extra.push({ round: index + 1, windowMs: baseline.ms, p99ms: baseline.p99ms });
        let outcome: string;
        let short: string;
        if (finished) {
          const m = await gcMetrics(server);
          if (m.deleted !== dataset.garbage.size || m.reviewed !== dataset.queued) {
            throw new Error(`in-server cycle reviewed ${m.reviewed} and deleted ${m.deleted} blobs; expected ${dataset.queued} and ${dataset.garbage.size}`);
          }
          await spotCheck(server, dataset);
          rows.inServerCycle.skiff.samples.push(m.seconds);
          rows.inServerCycle.skiff.extra.push({ round: index + 1, seconds: m.seconds });
          outcome = `cycle ${m.seconds.toFixed(1)} s`;
          short = outcome;
        } else {
          // Not a thrown error: the throughput row still has its sample, and later rounds still run.
          const left = reviewQueue(dir);
          const reviewed = dataset.queued - left;
          const rate = reviewed / (during.ms / 1000);
          outcome = `cycle not over after ${(during.ms / 1000).toFixed(0)} s: ${reviewed} of ${dataset.queued} digests reviewed (${rate.toFixed(0)}/s)`;
          short = `not over: ${reviewed}/${dataset.queued} in ${(during.ms / 1000).toFixed(0)} s`;
          rows.inServerCycle.skiff.errors.push(`round ${index + 1}: ${outcome} under the GET load`);
          rows.inServerCycle.skiff.extra.push({ round: index + 1, finished: false, reviewed, windowMs: during.ms, digestsPerSecond: rate });
        }
        perRoundInServer.push(`${(during.rps / baseline.rps).toFixed(2)} (${short})`);
        ctx.log(`    in-server: GET before ${baseline.rps.toFixed(0)}, during ${during.rps.toFixed(0)} req/s (${(during.ms / 1000).toFixed(1)} s window); ${outcome}`);
      } finally {
        // A cycle still running holds up a graceful stop (the scheduler waits for it): SIGKILL follows after 10 s.
        await server.stop();
      }
    },
  };

  await interleave(ctx.options.rounds, [cycleRound, duringRound, inServerRound], ctx.log);

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const inCycle = rows.cycle.skiff.extra.map((e) => e.cycleMs as number);
  // Notes are cut at 400 characters in the table: the long form is in the JSON's extra entries.
  rows.cycle.note = `${setupNote}; a fresh copy per round (${((median(copyMs) ?? 0) / 1000).toFixed(1)} s); in-cycle time (summary line) median ${median(inCycle) ?? '—'} ms, the rest is start-up; checked: summary counts, garbage files gone, kept ones in place`;
  rows.during.note = `during ÷ mean(before, after) per round: ${perRoundDuring.join('; ') || '—'}; then ${SPOT_KEPT} kept images served intact, ${SPOT_DELETED} deleted ones 404`;
  rows.inServer.note = `during ÷ before per round: ${perRoundInServer.join('; ') || '—'}; window from ~0.1 s before the first cycle to the /metrics scrape (every ${SCRAPE_MS} ms, both windows) that counts it, at most ${IN_SERVER_CAP_S} s`;
  rows.inServerCycle.note = `skiff_gc_last_cycle_seconds of the server's first cycle under the GET load above; not over within ${IN_SERVER_CAP_S} s = failed, with its progress`;
  return [rows.cycle, rows.during, rows.inServer, rows.inServerCycle];
}

// ---- the dataset ----

/** mulberry32: a small seeded PRNG, so the dataset is the same every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Exported for probes (profiling a cycle by hand); the case is its only user in the bench. */
export async function buildDataset(dir: string): Promise<Dataset> {
  const started = performance.now();
  const { store, metadata } = await openSeedStores(dir);

  const random = prng(2026);
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update('skiff-bench:gc').digest(), Buffer.alloc(16));
  const randomBytes = (n: number) => cipher.update(Buffer.alloc(n));
  const blobs = new Map<Digest, number>();
  const linksTo = new Map<Digest, number>();
  let pending: Promise<void>[] = [];
  const writeBlob = async (data: Buffer, mediaType?: string): Promise<BlobRef & { mediaType: string }> => {
    const digest = digestOf(data);
    if (!blobs.has(digest)) {
      blobs.set(digest, data.length);
      pending.push(writeFile(store.blobPath(digest), data));
      if (pending.length >= 256) {
        await Promise.all(pending);
        pending = [];
      }
    }
    return { digest, size: data.length, mediaType: mediaType ?? MediaTypes.layerGzip };
  };
  const link = async (repo: string, blob: BlobRef): Promise<void> => {
    await metadata.linkBlob(repo, blob.digest, blob.size);
    linksTo.set(blob.digest, (linksTo.get(blob.digest) ?? 0) + 1);
  };
  const layerSize = () => 256 + Math.floor(random() * (4096 - 256));

  const images: GcImage[] = [];
  try {
    for (let r = 0; r < REPOSITORIES; r++) {
      const repo = `bench/gc-${String(r).padStart(3, '0')}`;
      const baseLayer = await writeBlob(randomBytes(layerSize()));
      await link(repo, baseLayer);
      for (let i = 0; i < IMAGES_PER_REPOSITORY; i++) {
        const tag = `v${String(i).padStart(3, '0')}`;
        const layers = [baseLayer];
        for (let l = 0; l < OWN_LAYERS; l++) layers.push(await writeBlob(randomBytes(layerSize())));
        const configJson = {
          architecture: 'amd64',
          os: 'linux',
          created: '2026-01-01T00:00:00Z',
          config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Labels: { 'org.opencontainers.image.ref.name': `${repo}:${tag}` } },
          rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
        };
        const config = await writeBlob(Buffer.from(JSON.stringify(configJson)), MediaTypes.config);
        for (const blob of [config, ...layers.slice(1)]) await link(repo, blob);
        const body = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: MediaTypes.manifest,
            config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
            layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size })),
          }),
        );
        const manifest = await writeBlob(body, MediaTypes.manifest);
        // As Registry.recordManifest records a pushed manifest.
        const parsed = parseManifest(body, MediaTypes.manifest);
        const record: ManifestRecord = { repository: repo, digest: manifest.digest, mediaType: parsed.mediaType, size: body.length, createdAt: Date.now() };
        if (parsed.artifactType) record.artifactType = parsed.artifactType;
        await metadata.putManifest(
          record,
          childDescriptors(parsed).map((d) => d.digest),
          [tag],
        );
        images.push({ repo, tag, manifest, config, layers, deleted: i % GARBAGE_EVERY === GARBAGE_EVERY - 1 });
      }
    }
    await Promise.all(pending);
    for (const image of images) {
      if (image.deleted && !(await metadata.deleteManifest(image.repo, image.manifest.digest))) throw new Error(`deleting ${image.repo}@${image.manifest.digest}: not there`);
    }
    const { queued, due } = await metadata.gcQueue(Date.now());
    if (queued !== due) throw new Error(`review queue: ${due} of ${queued} due`);

    // What becomes garbage, from the model: every blob no kept manifest is stored under or references.
    const used = new Set<Digest>();
    for (const image of images) if (!image.deleted) for (const blob of [image.manifest, image.config, ...image.layers]) used.add(blob.digest);
    const garbage = new Map([...blobs].filter(([digest]) => !used.has(digest)));
    let garbageLinks = 0;
    for (const digest of garbage.keys()) garbageLinks += linksTo.get(digest) ?? 0;
    let links = 0;
    for (const n of linksTo.values()) links += n;
    return { dir, images, blobs, garbage, garbageLinks, links, queued, setupMs: performance.now() - started };
  } finally {
    await Promise.allSettled(pending);
    await metadata.close(); // checkpoints the WAL into metadata.db
  }
}

// ---- checks ----

interface GcSummary {
  reviewed: number;
  tags: number;
  manifests: number;
  blobs: number;
  pruned: number;
  later: number;
  queued: number;
  ms: number;
}

/** Reads `skiff gc`'s summary line and throws unless it did exactly what the dataset calls for. */
function checkSummary(stdout: string, dataset: Dataset): GcSummary {
  const line = stdout.trimEnd().split('\n').at(-1) ?? '';
  const match = /^gc: reviewed (\d+) digests; deleted (\d+) tags, (\d+) manifests, (\d+) blobs \([^)]*\); (\d+) repository links pruned; (\d+) in their grace period;.* (\d+) queued; (\d+) ms$/.exec(line);
  if (!match) throw new Error(`unreadable skiff gc summary: ${JSON.stringify(line.slice(0, 300))}`);
  const [reviewed, tags, manifests, blobs, pruned, later, queued, ms] = match.slice(1).map(Number) as [number, number, number, number, number, number, number, number];
  const summary = { reviewed, tags, manifests, blobs, pruned, later, queued, ms };
  const expected = { reviewed: dataset.queued, tags: 0, manifests: 0, blobs: dataset.garbage.size, pruned: dataset.garbageLinks, later: 0, queued: 0 };
  const wrong = Object.entries(expected).filter(([key, value]) => summary[key as keyof GcSummary] !== value);
  if (wrong.length > 0) throw new Error(`skiff gc did not collect exactly the garbage: ${wrong.map(([key, value]) => `${key} ${summary[key as keyof GcSummary]} (expected ${value})`).join(', ')}; "${line}"`);
  return summary;
}

/** Every garbage blob's file is gone, every other one in place with its size, and nothing is left in quarantine. */
async function checkFiles(dir: string, dataset: Dataset): Promise<void> {
  const store = new FsBlobStore(registryLayout(dir).blobs);
  const problems: string[] = [];
  const entries = [...dataset.blobs];
  for (let i = 0; i < entries.length; i += 512) {
    await Promise.all(
      entries.slice(i, i + 512).map(async ([digest, size]) => {
        const actual = await stat(store.blobPath(digest)).then(
          (s) => s.size,
          () => undefined,
        );
        if (dataset.garbage.has(digest) ? actual !== undefined : actual !== size) problems.push(`${digest}: ${actual ?? 'missing'}${dataset.garbage.has(digest) ? ' (garbage, should be gone)' : ` (expected ${size} bytes)`}`);
      }),
    );
  }
  const trash = await readdir(join(dir, 'gc-trash')).catch(() => [] as string[]);
  if (trash.length > 0) problems.push(`${trash.length} files left in gc-trash/`);
  if (problems.length > 0) throw new Error(`after skiff gc, ${problems.length} problems: ${problems.slice(0, 3).join('; ')}`);
}

const SPOT_KEPT = 40;
const SPOT_DELETED = 20;

/** Through the server: a sample of kept images served whole and verified, a sample of deleted ones gone. */
async function spotCheck(server: Server, dataset: Dataset): Promise<void> {
  const kept = dataset.images.filter((image) => !image.deleted);
  const deleted = dataset.images.filter((image) => image.deleted);
  for (let i = 0; i < SPOT_KEPT; i++) await checkImage(server, kept[Math.floor((i * kept.length) / SPOT_KEPT + 7) % kept.length]!);
  for (let i = 0; i < SPOT_DELETED; i++) {
    const image = deleted[Math.floor((i * deleted.length) / SPOT_DELETED + 3) % deleted.length]!;
    for (const path of [`manifests/${image.tag}`, `manifests/${image.manifest.digest}`, `blobs/${image.config.digest}`, `blobs/${image.layers[1]!.digest}`]) {
      const res = await fetch(`${server.url}/v2/${image.repo}/${path}`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      if (res.status !== 404) throw new Error(`${server.name} GET ${image.repo}/${path} of a deleted image: HTTP ${res.status}, expected 404`);
    }
  }
}

/** The image's manifest by tag and every blob it references, each with the right digest. */
async function checkImage(server: Server, image: GcImage): Promise<void> {
  const get = async (path: string, expected: BlobRef): Promise<void> => {
    const res = await fetch(`${server.url}/v2/${image.repo}/${path}`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
    const body = Buffer.from(await res.arrayBuffer());
    const actual = digestOf(body);
    if (res.status !== 200 || actual !== expected.digest || body.length !== expected.size) {
      throw new Error(`${server.name} GET ${image.repo}/${path}: HTTP ${res.status}, ${body.length} bytes, ${actual}; expected ${expected.digest}`);
    }
  };
  await get(`manifests/${image.tag}`, image.manifest);
  for (const blob of [image.config, ...image.layers]) await get(`blobs/${blob.digest}`, blob);
}

// ---- load windows ----

interface Window extends Load {
  /** From wrk's start to the signal that stopped it. */
  ms: number;
}

/**
 * wrk (1 thread, 50 connections, by tag) for as long as `work` takes: wrk starts, `work` starts
 * WRK_CONNECT_MS later, and when it ends wrk gets SIGINT, on which it stops and prints its report
 * for the time it ran (so the window is `work` plus those few ms).
 */
async function loadWhile(url: string, headers: Record<string, string>, work: () => Promise<unknown>): Promise<Window> {
  const args = ['-t1', `-c${CONNECTIONS}`, '-d600s', '--latency', '--timeout', '5s'];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  args.push(url);
  let stdout = '';
  const daemon = startDaemon('wrk', args, { onStdout: (chunk) => (stdout += chunk.toString()) });
  const closed = new Promise<void>((resolve) => daemon.child.once('close', () => resolve()));
  const exited = () => daemon.child.exitCode !== null || daemon.child.signalCode !== null;
  // wrk's stdout is a pipe, so its banner comes at exit: give it a moment to connect instead.
  const started = performance.now();
  await sleep(WRK_CONNECT_MS);
  let stopped = started;
  try {
    if (exited()) throw new Error(`wrk exited at start: ${stdout.trim().slice(0, 300)} ${daemon.stderrTail()}`);
    await work();
  } finally {
    stopped = performance.now();
    if (!exited()) daemon.child.kill('SIGINT');
    const timer = setTimeout(() => void daemon.stop(), 10_000);
    await closed;
    clearTimeout(timer);
  }
  const parsed = parseWrk(stdout);
  if (!Number.isFinite(parsed.rps) || !Number.isFinite(parsed.p99ms)) throw new Error(`unreadable wrk output:\n${stdout}`);
  if (parsed.non2xx > 0 || parsed.socketErrors > 0) throw new Error(`wrk ${url}: ${parsed.non2xx} non-2xx responses and ${parsed.socketErrors} socket errors of ${parsed.requests} requests`);
  return { ...parsed, ms: stopped - started };
}

/**
 * Scrapes /metrics every SCRAPE_MS until `done` says so (true) or `until` (a performance.now()
 * time) passes (false).
 */
async function scrapeUntil(server: Server, until: number, done: (m: GcMetrics) => boolean = () => false): Promise<boolean> {
  for (;;) {
    const left = until - performance.now();
    if (left <= 0) return false;
    await sleep(Math.min(SCRAPE_MS, left));
    if (done(await gcMetrics(server))) return true;
  }
}

/** Digests still in a data directory's review queue (read-only, beside the server). */
function reviewQueue(dir: string): number {
  const db = new DatabaseSync(registryLayout(dir).metadata, { readOnly: true });
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    return Number((db.prepare('SELECT COUNT(*) AS n FROM gc_review').get() as { n: number }).n);
  } finally {
    db.close();
  }
}

interface GcMetrics {
  cycles: number;
  failed: number;
  reviewed: number;
  deleted: number;
  seconds: number;
}

async function gcMetrics(server: Server): Promise<GcMetrics> {
  const res = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${server.name} GET /metrics: HTTP ${res.status}`);
  const value = (name: string, labels = ''): number => {
    const escaped = `${name}${labels}`.replace(/[{}"]/g, (c) => `\\${c}`);
    const match = new RegExp(`^${escaped} (\\S+)$`, 'm').exec(text);
    return match ? Number(match[1]) : 0;
  };
  return {
    cycles: value('skiff_gc_cycles_total', '{outcome="ok"}'),
    failed: value('skiff_gc_cycles_total', '{outcome="failed"}'),
    reviewed: value('skiff_gc_blobs_reviewed_total'),
    deleted: value('skiff_gc_blobs_deleted_total'),
    seconds: value('skiff_gc_last_cycle_seconds'),
  };
}
