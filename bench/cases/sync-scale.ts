/**
 * `skiff sync` at scale (issue 14): the sync process's peak RSS and wall time against the number of
 * images, so that memory flat in the image count shows as a flat row (target: 10,000 images in
 * ≤ 200 MiB).
 *
 * Source: a `skiff serve` holding the largest count of images `bench/scale-NNNNN:latest`, each a
 * repository of its own with its own config (~400 B) and its own layer (a gzip tar of 256 random
 * bytes, ~0.3 KiB), plus one base layer (4 KiB) that every image shares, as images built FROM one base
 * do. Its data directory is filled once over HTTP (monolithic `POST ?digest=` uploads, the base
 * mounted into each repository, then the manifest PUT; 8 at a time) and cached beside the other
 * generated images (`$TMPDIR/skiff-bench-cache/…/sync-scale-<version>-<count>`); each run serves a
 * copy (`cp -al`, metadata.db copied) with `--gc-interval 0`. A smaller count syncs the first N images
 * of the same source.
 *
 * Destination: a fresh, empty `skiff serve` per round. Each round syncs the N images (images.json of
 * N keys `src/bench/scale-NNNNN:latest` → `dest/bench/scale-NNNNN`, `-p 5`), checks the destination
 * (every image up to 1,000, every 10th and the last beyond), then syncs again (a no-op: everything is
 * there). skopeo sync (`--src yaml`, one list of all N) does the same at counts up to
 * SKOPEO_MAX_IMAGES, where it is not too slow.
 *
 * Peak RSS is the process's `ru_maxrss` from GNU time (`/usr/bin/time -f %M`): the kernel's
 * high-water mark of the whole process (VmHWM at exit, the Node binary's mapped code included), so no
 * short peak between samples is missed. Times are the wall time of the command (process start-up
 * included; GNU time adds ~1 ms).
 *
 * Rows per count N: `sync-scale-N-rss` and `sync-scale-N-time` (first sync), `sync-scale-N-noop-rss`
 * and `sync-scale-N-noop-time` (the re-sync); `sync-scale-<largest>-auth-rss` and `-auth-time`: the
 * largest count into a destination with authentication on (token scheme), one round, where the
 * client holds a token per repository; then `sync-scale-rss-per-image`: the growth of the first
 * sync's median peak RSS between the two largest counts, in KiB per extra image (0 = flat).
 */
import bcrypt from 'bcryptjs';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { freePort } from '../../src/testing/peers.ts';
import type { Context } from '../context.ts';
import { cacheRoot } from '../gen/sets.ts';
import { keystream } from '../gen/keystream.ts';
import { MANIFEST_ACCEPT, MediaTypes } from '../gen/media-types.ts';
import { tarHeader, tarTrailer } from '../gen/tar.ts';
import { series, type Row, type Series } from '../model.ts';
import { summarize } from '../stats.ts';
import { run, startDaemon, type RunResult } from '../proc.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { serverFrom, type Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

/** Bump when the generated images change, or when a cached data directory no longer suits `skiff serve`. */
const SCALE_VERSION = 'v1';
/** skopeo sync takes ~0.04–0.09 s an image here (10,000 would be ~10 minutes a round): it runs up to this count. */
const SKOPEO_MAX_IMAGES = 1000;
/** Counts above this get at most LARGE_ROUNDS rounds (a 10,000-image round takes minutes). */
const LARGE_COUNT = 1000;
const LARGE_ROUNDS = 2;
const TARGET_MIB = 200;
const BASE_LAYER_BYTES = 4096;
const OWN_LAYER_BYTES = 256;
const FILL_CONCURRENCY = 8;
const TIMEOUT_MS = 900_000;
const CREATED = '2026-01-01T00:00:00Z';

interface Blob {
  digest: string;
  bytes: Buffer;
}

interface ScaleImage {
  repo: string;
  tag: string;
  config: Blob;
  layer: Blob;
  manifest: Blob;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blob = (bytes: Buffer): Blob => ({ digest: sha256(bytes), bytes });

/** A gzip tar holding one file of seeded random bytes, and its DiffID. */
function layer(seed: string, size: number): { blob: Blob; diffId: string } {
  const tar = Buffer.concat([tarHeader(`data/${seed}.bin`, size), ...keystream(`sync-scale:${seed}`, size), tarTrailer(size)]);
  return { blob: blob(gzipSync(tar, { level: 1 })), diffId: sha256(tar) };
}

let baseLayer: { blob: Blob; diffId: string } | undefined;

function repoName(index: number): string {
  return `bench/scale-${String(index).padStart(5, '0')}`;
}

/** Image `index` of the source, rebuilt from its seed (the same bytes every time). */
export function scaleImage(index: number): ScaleImage {
  baseLayer ??= layer('base', BASE_LAYER_BYTES);
  const own = layer(`image-${index}`, OWN_LAYER_BYTES);
  const config = blob(
    Buffer.from(
      JSON.stringify({
        created: CREATED,
        architecture: 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: { 'bench.image': String(index) } },
        rootfs: { type: 'layers', diff_ids: [baseLayer.diffId, own.diffId] },
        history: [{ created: CREATED, created_by: 'bench base' }, { created: CREATED, created_by: `bench image ${index}` }],
      }),
    ),
  );
  const descriptor = (mediaType: string, b: Blob) => ({ mediaType, digest: b.digest, size: b.bytes.length });
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.manifest,
        config: descriptor(MediaTypes.config, config),
        layers: [descriptor(MediaTypes.layerGzip, baseLayer.blob), descriptor(MediaTypes.layerGzip, own.blob)],
      }),
    ),
  );
  return { repo: repoName(index), tag: 'latest', config, layer: own.blob, manifest };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

function call(agent: Agent, host: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${host}${path}`, { method, agent, headers: { ...headers, 'Content-Length': String(body?.length ?? 0) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path}: no answer in 60 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

async function expectStatus(answer: Promise<Answer>, status: number, what: string): Promise<Answer> {
  const got = await answer;
  if (got.status !== status) throw new Error(`${what}: HTTP ${got.status}, expected ${status}`);
  return got;
}

/** Pushes image `index` over HTTP: config and own layer in one POST each, the base mounted (uploaded into the first), the manifest. */
async function pushImage(agent: Agent, host: string, index: number): Promise<void> {
  const image = scaleImage(index);
  const octets = { 'Content-Type': 'application/octet-stream' };
  const upload = (b: Blob) => expectStatus(call(agent, host, 'POST', `/v2/${image.repo}/blobs/uploads/?digest=${b.digest}`, octets, b.bytes), 201, `upload ${b.digest} to ${image.repo}`);
  const base = baseLayer!.blob;
  if (index === 0) await upload(base);
  else await expectStatus(call(agent, host, 'POST', `/v2/${image.repo}/blobs/uploads/?mount=${base.digest}&from=${repoName(0)}`, {}), 201, `mount the base into ${image.repo}`);
  await Promise.all([upload(image.config), upload(image.layer)]);
  await expectStatus(call(agent, host, 'PUT', `/v2/${image.repo}/manifests/${image.tag}`, { 'Content-Type': MediaTypes.manifest }, image.manifest.bytes), 201, `manifest of ${image.repo}`);
}

/** The cached source data directory with `count` images, filled now if there is none. */
async function sourceData(ctx: Context, count: number): Promise<string> {
  // A cached source with at least `count` images will do: a smaller count syncs its first images.
  const cachedCounts = existsSync(cacheRoot()) ? (await readdir(cacheRoot())).map((name) => new RegExp(`^sync-scale-${SCALE_VERSION}-(\\d+)$`).exec(name)?.[1]).filter((n) => n !== undefined).map(Number) : [];
  for (const have of cachedCounts.sort((a, b) => a - b)) {
    const dir = join(cacheRoot(), `sync-scale-${SCALE_VERSION}-${have}`);
    if (have >= count && existsSync(join(dir, 'complete'))) return dir;
  }
  const dir = join(cacheRoot(), `sync-scale-${SCALE_VERSION}-${count}`);
  const building = `${dir}.${randomUUID().slice(0, 8)}.tmp`;
  await mkdir(building, { recursive: true });
  ctx.log(`  filling the sync-scale source: ${count} images into ${building} (once; cached)`);
  const started = performance.now();
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const daemon = startDaemon(ctx.skiff.node, [...ctx.skiff.argsPrefix, 'serve', '--listen', host, '--data', building, '--log-level', 'warn', '--gc-interval', '0'], { cwd: ctx.runDir });
  // serverFrom removes its `dir` when stopped: give it a scratch one, the data must stay.
  const scratch = join(ctx.runDir, `sync-scale-fill-${randomUUID().slice(0, 8)}`);
  await mkdir(scratch);
  const server = await serverFrom({ name: 'skiff', what: 'skiff serve (sync-scale fill)', host, daemon, dir: scratch, readyPath: '/v2/' });
  const agent = new Agent({ keepAlive: true, maxSockets: FILL_CONCURRENCY });
  try {
    await pushImage(agent, host, 0);
    let next = 1;
    const worker = async (): Promise<void> => {
      for (let index = next++; index < count; index = next++) {
        await pushImage(agent, host, index);
        if (index % 1000 === 0) ctx.log(`    ${index} images`);
      }
    };
    await Promise.all(Array.from({ length: FILL_CONCURRENCY }, worker));
  } catch (error) {
    await server.stop();
    await rm(building, { recursive: true, force: true });
    throw error;
  } finally {
    agent.destroy();
  }
  await server.stop();
  await writeFile(join(building, 'complete'), `${count} images, ${SCALE_VERSION}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(building, dir);
  ctx.log(`  filled in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

/** `skiff serve` on a private copy of the cached source (blob files hard-linked, metadata copied). */
async function startSource(ctx: Context, cached: string): Promise<Server> {
  const copy = join(ctx.runDir, `sync-scale-source-${randomUUID().slice(0, 8)}`);
  await run('cp', ['-al', cached, copy], { timeoutMs: 300_000 });
  for (const name of ['metadata.db', 'metadata.db-wal', 'metadata.db-shm']) {
    const file = join(copy, name);
    if (!existsSync(file)) continue;
    await rm(file);
    await writeFile(file, await readFile(join(cached, name)));
  }
  return startSkiff(ctx.skiff, ctx.runDir, [], ['--gc-interval', '0'], { data: copy });
}

/** Runs a command under GNU time: its wall time and its peak RSS (ru_maxrss) in MiB. */
async function measured(dir: string, command: string, args: string[]): Promise<{ result: RunResult; ms: number; peakMiB: number }> {
  const out = join(dir, `time-${randomUUID().slice(0, 8)}`);
  const result = await run('/usr/bin/time', ['-f', '%M', '-o', out, command, ...args], { timeoutMs: TIMEOUT_MS, cwd: dir });
  const kib = Number((await readFile(out, 'utf8')).trim().split('\n').pop());
  await rm(out, { force: true });
  if (!Number.isFinite(kib) || kib <= 0) throw new Error(`GNU time gave no peak RSS for ${command}`);
  return { result, ms: result.ms, peakMiB: kib / 1024 };
}

/** What the sync's summary says about the images (`images: N total, S synced, K skipped …, F failed`). */
function summaryCounts(stdout: string): { total: number; synced: number; skipped: number; failed: number } {
  const match = /images: (\d+) total, (\d+) synced, (\d+) skipped.*?, (\d+) failed/.exec(stdout);
  if (!match) throw new Error(`no summary line in skiff sync's output: ${stdout.slice(-300)}`);
  return { total: Number(match[1]), synced: Number(match[2]), skipped: Number(match[3]), failed: Number(match[4]) };
}

/** Checks the destination: every image up to 1,000, else every 10th and the last, by manifest digest. */
async function expectImages(host: string, count: number): Promise<void> {
  const indexes = count <= 1000 ? Array.from({ length: count }, (_, i) => i) : [...Array.from({ length: Math.ceil(count / 10) }, (_, i) => i * 10), count - 1];
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < indexes.length; i = next++) {
        const image = scaleImage(indexes[i]!);
        const got = await call(agent, host, 'HEAD', `/v2/${image.repo}/manifests/${image.tag}`, { Accept: MANIFEST_ACCEPT });
        const digest = got.headers['docker-content-digest'];
        if (got.status !== 200 || digest !== image.manifest.digest) throw new Error(`${host}/${image.repo}:${image.tag}: HTTP ${got.status}, digest ${String(digest)}, expected ${image.manifest.digest}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  } finally {
    agent.destroy();
  }
}

function label(count: number): string {
  return count >= 1000 && count % 1000 === 0 ? `${count / 1000}k` : String(count);
}

export async function syncScaleCase(ctx: Context): Promise<Row[]> {
  const counts = [...new Set(ctx.options.scaleImages)].sort((a, b) => a - b);
  const largest = counts[counts.length - 1]!;
  const cached = await sourceData(ctx, largest);
  const source = await startSource(ctx, cached);
  const make = (id: string, title: string, unit: string, peer: boolean): Row => ({ id, title, unit, better: 'lower', skiff: series(), peerName: peer ? 'skopeo sync' : 'no peer at this count', peer: series() });
  const rows: Row[] = [];
  const rssRows = new Map<number, Row>();
  try {
    for (const count of counts) {
      const withPeer = count <= SKOPEO_MAX_IMAGES;
      const what = `${label(count)} images (config + own 0.3 KiB layer + shared 4 KiB base each) skiff serve → fresh skiff serve`;
      const rss = { ...make(`sync-scale-${count}-rss`, `sync peak RSS, ${what}`, 'MiB', withPeer), limit: { name: `target ${TARGET_MIB} MiB`, value: TARGET_MIB } };
      const time = make(`sync-scale-${count}-time`, `sync time, ${what}`, 's', withPeer);
      const noopRss = { ...make(`sync-scale-${count}-noop-rss`, `no-op re-sync peak RSS, ${label(count)} images`, 'MiB', withPeer), limit: { name: `target ${TARGET_MIB} MiB`, value: TARGET_MIB } };
      const noopTime = make(`sync-scale-${count}-noop-time`, `no-op re-sync time, ${label(count)} images`, 's', withPeer);
      rss.note = 'peak RSS = ru_maxrss of the process (GNU time), Node binary included; `skiff sync -p 5`, `skopeo sync --src yaml`';
      rows.push(rss, time, noopRss, noopTime);
      rssRows.set(count, rss);
      const images = Array.from({ length: count }, (_, i) => ({ repo: repoName(i), tag: 'latest' }));
      let counter = 0;
      type Sync = (dir: string, dest: string) => Promise<{ result: RunResult; ms: number; peakMiB: number }>;
      const contestant = (name: string, sync: Sync, side: 'skiff' | 'peer', check: (stdout: string, first: boolean) => void): Contestant => ({
        name,
        series: [rss[side], time[side], noopRss[side], noopTime[side]],
        async round() {
          const dir = join(ctx.runDir, `sync-scale-${count}-${++counter}`);
          await mkdir(dir, { recursive: true });
          const dest = await startSkiff(ctx.skiff, ctx.runDir);
          try {
            const first = await sync(dir, dest.host);
            check(first.result.stdout, true);
            await expectImages(dest.host, count);
            record(rss[side], time[side], first);
            const again = await sync(dir, dest.host);
            check(again.result.stdout, false);
            record(noopRss[side], noopTime[side], again);
            ctx.log(`    ${name} ${count}: ${(first.ms / 1000).toFixed(2)} s ${first.peakMiB.toFixed(0)} MiB; no-op ${(again.ms / 1000).toFixed(2)} s ${again.peakMiB.toFixed(0)} MiB`);
          } finally {
            await dest.stop();
            await rm(dir, { recursive: true, force: true });
          }
        },
      });
      const skiffSync: Sync = (dir, dest) => syncWithSkiff(ctx, dir, images, source.host, dest);
      const skopeo: Sync = async (dir, dest) => {
        // The sync case's skopeoSync invocation, under GNU time.
        const yaml = [`${source.host}:`, '  tls-verify: false', '  images:', ...images.map((i) => `    ${i.repo}: ["${i.tag}"]`)].join('\n');
        const file = join(dir, 'sync.yaml');
        await writeFile(file, `${yaml}\n`);
        return measured(dir, 'skopeo', ['--insecure-policy', 'sync', '--src', 'yaml', '--dest', 'docker', '--dest-tls-verify=false', file, `${dest}/bench`]);
      };
      const checkSkiff = (stdout: string, first: boolean): void => {
        const got = summaryCounts(stdout);
        const want = { total: count, synced: first ? count : 0, skipped: first ? 0 : count, failed: 0 };
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`skiff sync ${first ? '' : 're-'}sync of ${count}: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      };
      const contestants = [contestant('skiff sync', skiffSync, 'skiff', checkSkiff)];
      if (withPeer) contestants.push(contestant('skopeo sync', skopeo, 'peer', () => undefined));
      ctx.log(`  ${count} images`);
      await interleave(count > LARGE_COUNT ? Math.min(ctx.options.rounds, LARGE_ROUNDS) : ctx.options.rounds, contestants, ctx.log);
    }
    rows.push(...(await authenticatedRound(ctx, source.host, largest)));
  } finally {
    await source.stop();
  }
  if (counts.length >= 2) {
    // The last step (the two largest counts): the smallest runs are short enough that V8 has not
    // yet grown its heap to its working size, which reads as growth per image when it is not.
    const perImage = (side: 'skiff' | 'peer', from: number, to: number): number | undefined => {
      const a = summarize(rssRows.get(from)![side].samples)?.median;
      const b = summarize(rssRows.get(to)![side].samples)?.median;
      return a === undefined || b === undefined ? undefined : ((b - a) * 1024) / (to - from);
    };
    const from = counts[counts.length - 2]!;
    const slope = make('sync-scale-rss-per-image', `sync peak RSS growth per extra image, ${label(from)} → ${label(largest)} images (median to median)`, 'KiB/image', false);
    slope.note = '0 is flat; before issue 14 skiff grew ~45–87 KiB an image';
    const skiffSlope = perImage('skiff', from, largest);
    if (skiffSlope !== undefined) slope.skiff.samples.push(skiffSlope);
    const withPeer = counts.filter((c) => c <= SKOPEO_MAX_IMAGES);
    if (withPeer.length >= 2) {
      const [peerFrom, peerTo] = withPeer.slice(-2) as [number, number];
      const peerSlope = perImage('peer', peerFrom, peerTo);
      if (peerSlope !== undefined) {
        slope.peer.samples.push(peerSlope);
        slope.peerName = `skopeo sync (${label(peerFrom)} → ${label(peerTo)})`;
      }
    }
    rows.push(slope);
  }
  return rows;
}

/** `skiff sync` of `images` from `src` into `dest` (auth.json: `credentials` for `dest`, else none), under GNU time. */
async function syncWithSkiff(ctx: Context, dir: string, images: { repo: string; tag: string }[], src: string, dest: string, credentials?: { username: string; password: string }) {
  const list = join(dir, 'images.json');
  const auth = join(dir, 'auth.json');
  await writeFile(auth, `${JSON.stringify(credentials ? { [dest]: credentials } : {})}\n`);
  if (!existsSync(list)) await writeFile(list, JSON.stringify(Object.fromEntries(images.map((i) => [`${src}/${i.repo}:${i.tag}`, `${dest}/${i.repo}`])), null, 1));
  return measured(dir, ctx.skiff.node, [...ctx.skiff.argsPrefix, 'sync', '--auth', auth, '--images', list, '-p', '5']);
}

/**
 * The largest count once more, into a destination with authentication on (`--htpasswd`, token
 * scheme, `--anonymous-pull` so the check needs no login), as Docker Hub, GHCR or Harbor would be:
 * the client then holds a Bearer token per repository scope it pushed to. One round (the row is
 * about memory, which varies by ~1 MiB from round to round); no peer.
 */
async function authenticatedRound(ctx: Context, src: string, count: number): Promise<Row[]> {
  const credentials = { username: 'sync', password: randomUUID() };
  const htpasswd = join(ctx.runDir, 'sync-scale-htpasswd');
  await writeFile(htpasswd, `${credentials.username}:${bcrypt.hashSync(credentials.password, 10)}\n`);
  const what = `${label(count)} images into a skiff serve with --htpasswd (token scheme: a token per repository)`;
  const rss: Row = { id: `sync-scale-${count}-auth-rss`, title: `sync peak RSS, ${what}`, unit: 'MiB', better: 'lower', skiff: series(), peerName: 'no peer', peer: series(), limit: { name: `target ${TARGET_MIB} MiB`, value: TARGET_MIB } };
  const time: Row = { id: `sync-scale-${count}-auth-time`, title: `sync time, ${what}`, unit: 's', better: 'lower', skiff: series(), peerName: 'no peer', peer: series() };
  const images = Array.from({ length: count }, (_, i) => ({ repo: repoName(i), tag: 'latest' }));
  ctx.log(`  ${count} images into an authenticated destination`);
  await interleave(
    1,
    [
      {
        name: 'skiff sync (authenticated destination)',
        series: [rss.skiff, time.skiff],
        async round() {
          const dir = join(ctx.runDir, `sync-scale-auth-${count}`);
          await mkdir(dir, { recursive: true });
          const dest = await startSkiff(ctx.skiff, ctx.runDir, [], ['--htpasswd', htpasswd, '--anonymous-pull', '--gc-interval', '0']);
          try {
            const first = await syncWithSkiff(ctx, dir, images, src, dest.host, credentials);
            const got = summaryCounts(first.result.stdout);
            if (got.synced !== count || got.failed !== 0) throw new Error(`authenticated sync of ${count}: ${JSON.stringify(got)}`);
            await expectImages(dest.host, count);
            record(rss.skiff, time.skiff, first);
            ctx.log(`    authenticated ${count}: ${(first.ms / 1000).toFixed(2)} s ${first.peakMiB.toFixed(0)} MiB`);
          } finally {
            await dest.stop();
            await rm(dir, { recursive: true, force: true });
          }
        },
      },
    ],
    ctx.log,
  );
  return [rss, time];
}

function record(rss: Series, time: Series, run: { ms: number; peakMiB: number }): void {
  rss.samples.push(run.peakMiB);
  time.samples.push(run.ms / 1000);
}
