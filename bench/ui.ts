/**
 * The web UI at 10,000 repositories (issue 16): "the repository list renders its first page in
 * under 300 ms (measured in the browser), and the UI adds nothing to the cost of /v2/ requests".
 *
 *   node bench/ui.ts [--rounds 7] [--repos 10000] [--load-seconds 5] [--out bench/results]
 *   (also `uiCase(ctx)`, a case for bench/run.ts: `npm run bench -- --only ui` once registered)
 *
 * Setup (untimed): a data directory of N repositories `bench/ui-00000`…, each with one tag `v1` on
 * a small image of its own (a config naming the repository, one 256-byte layer shared by all),
 * written through the library as the gc case writes its dataset (`SqliteMetadataStore` and the blob
 * store's layout; pushing 10,000 images over HTTP takes minutes). Two `skiff serve` processes of
 * the harness's private build (bin/skiff's Node and flags) serve copies of it (`cp -al`, own
 * metadata.db), one with the UI (the default) and one with `--no-ui`, both `--gc-interval 0`.
 *
 * Rows, all from the same run:
 * - `ui-first-row-cold`: Chromium (Debian's, headless, through src/testing/browser.ts) opens `/` in
 *   a fresh context (empty cache, so index.html, the JS and the CSS are fetched); the time from
 *   navigation start (performance.timeOrigin) to the first animation frame after the repositories
 *   table's first body row is in the DOM (a MutationObserver installed before any page script,
 *   then requestAnimationFrame: the frame that paints it). Target < 300 ms.
 * - `ui-first-row-warm`: the same page opened again in that context (assets from the cache,
 *   index.html revalidated).
 * - `ui-api-repositories`: `GET /api/v1/repositories?limit=50` from Node over one keep-alive
 *   connection, time to the last byte of the body, each request a sample (the first page; the
 *   JSON notes give the last page and a filtered query too).
 * - `ui-filter`: on the loaded list, a new 8-character query typed key by key (30 ms apart) into
 *   "Filter repositories"; from the last key's input event to the frame in which the table shows
 *   exactly the matching rows and the status line their count. It includes the UI's debounce
 *   (~120 ms, on purpose: one request per pause, not per key).
 * - `ui-v2-manifest-rps` (measured first, while neither server has served the UI): manifest GET by
 *   tag with wrk (1 thread, 50 connections, --load-seconds per sample after a 1 s warm-up), the
 *   server with the UI against the one with `--no-ui`, interleaved rounds whose order alternates.
 *   Target: no cost, ≥ 0.95× (the noise of this 2-core VM); the JSON notes give the median of the
 *   per-round ratios too.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { digestOf, type Digest } from '../src/digest/digest.ts';
import { childDescriptors, parseManifest } from '../src/oci/manifest.ts';
import type { ManifestRecord } from '../src/server/storage/metadata.ts';
import { registryLayout } from '../src/server/storage/layout.ts';
import { openSeedStores } from './gen/seed-stores.ts';
import type { RepositoryPage } from '../src/server/ui/api-types.ts';
import { browserSkipReason, openBrowser, problemsOf, type BrowserSession } from '../src/testing/browser.ts';
import { installSignalHandlers, onCleanup, runCleanup } from './cleanup.ts';
import type { Context } from './context.ts';
import { MANIFEST_ACCEPT, MediaTypes } from './gen/media-types.ts';
import { load } from './measure/wrk.ts';
import { series, type Row } from './model.ts';
import { run } from './proc.ts';
import { interleave } from './rounds.ts';
import type { Server } from './servers/server.ts';
import { prepareSkiff, type SkiffCli } from './servers/skiff-cli.ts';
import { startSkiff } from './servers/skiff.ts';
import { summarize } from './stats.ts';

const TARGET_FIRST_ROW_MS = 300;
const RPS_TARGET = 0.95;
const CONNECTIONS = 50;
const API_REQUESTS = 100;
const TABLE_ROWS = 'table[aria-label="Repositories"] tbody tr';

export interface UiBenchOptions {
  skiff: SkiffCli;
  runDir: string;
  log: (line: string) => void;
  rounds: number;
  repositories: number;
  loadSeconds: number;
}

export interface UiBenchResult {
  rows: Row[];
  notes: Record<string, unknown>;
}

/** The case for bench/run.ts: the run's rounds, 10,000 repositories, wrk samples as long as the manifest case's. */
export async function uiCase(ctx: Context): Promise<Row[]> {
  const { rows } = await measureUi({ skiff: ctx.skiff, runDir: ctx.runDir, log: ctx.log, rounds: Math.max(ctx.options.rounds, 5), repositories: 10_000, loadSeconds: Math.min(ctx.options.manifestSeconds, 5) });
  return rows;
}

const repositoryName = (i: number) => `bench/ui-${String(i).padStart(5, '0')}`;

/** Writes `count` repositories with one tag each into `dir` through the metadata store and the blob layout. */
async function seed(dir: string, count: number): Promise<{ ms: number; manifest: string }> {
  const started = performance.now();
  const { store, metadata } = await openSeedStores(dir);
  let pending: Promise<void>[] = [];
  const write = async (data: Buffer): Promise<Digest> => {
    const digest = digestOf(data);
    pending.push(writeFile(store.blobPath(digest), data));
    if (pending.length >= 256) {
      await Promise.all(pending);
      pending = [];
    }
    return digest;
  };
  const layer = Buffer.alloc(256, 7);
  const layerDigest = await write(layer);
  let first = '';
  try {
    for (let i = 0; i < count; i++) {
      const repo = repositoryName(i);
      const configJson = {
        architecture: 'amd64',
        os: 'linux',
        created: '2026-01-01T00:00:00Z',
        config: { Env: ['PATH=/usr/bin:/bin'], Labels: { 'org.opencontainers.image.title': repo } },
        rootfs: { type: 'layers', diff_ids: [layerDigest] },
      };
      const config = Buffer.from(JSON.stringify(configJson));
      const configDigest = await write(config);
      await metadata.linkBlob(repo, configDigest, config.length);
      await metadata.linkBlob(repo, layerDigest, layer.length);
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaTypes.manifest,
          config: { mediaType: MediaTypes.config, digest: configDigest, size: config.length },
          layers: [{ mediaType: MediaTypes.layerGzip, digest: layerDigest, size: layer.length }],
        }),
      );
      const digest = await write(body);
      // As Registry.recordManifest records a pushed manifest.
      const parsed = parseManifest(body, MediaTypes.manifest);
      const record: ManifestRecord = { repository: repo, digest, mediaType: parsed.mediaType, size: body.length, createdAt: Date.now() };
      await metadata.putManifest(record, childDescriptors(parsed).map((d) => d.digest), ['v1']);
      if (i === 0) first = digest;
    }
    await Promise.all(pending);
  } finally {
    await Promise.allSettled(pending);
    await metadata.close();
  }
  return { ms: performance.now() - started, manifest: first };
}

/** A copy a server may own (and remove): blob files hard-linked, its own metadata database. */
async function copyData(base: string, dir: string): Promise<void> {
  await run('cp', ['-al', base, dir], { timeoutMs: 300_000 });
  const metadata = registryLayout(dir).metadata;
  await rm(metadata);
  await copyFile(registryLayout(base).metadata, metadata);
}

/** Installed before any page script: when the list's first row lands, and the frame that paints it; the last input event. */
const PROBE = `(() => {
  const bench = (window.__uiBench = { firstRow: 0, firstRowFrame: 0, inputAt: 0 });
  const observer = new MutationObserver(() => {
    if (bench.firstRow || !document.querySelector(${JSON.stringify(TABLE_ROWS)})) return;
    bench.firstRow = performance.now();
    observer.disconnect();
    requestAnimationFrame(() => { bench.firstRowFrame = performance.now(); });
  });
  observer.observe(document, { childList: true, subtree: true });
  document.addEventListener('input', () => { bench.inputAt = performance.now(); }, true);
})()`;

/** What the page-side functions use of the page's globals (this project's types have no DOM). */
interface PageElement {
  textContent: string | null;
  querySelector(selector: string): PageElement | null;
}
interface PageGlobals {
  __uiBench?: { firstRow: number; firstRowFrame: number; inputAt: number };
  document: { querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement> };
}

interface Visit {
  firstRowMs: number;
  frameMs: number;
  responseEndMs: number;
  apiMs: number | undefined;
  /** [start, end] in ms from navigation start, per resource. */
  timeline: Record<string, number[] | number | undefined>;
}

async function openList(page: Page, url: string): Promise<Visit> {
  await page.goto(url, { waitUntil: 'commit' });
  // Predicates are functions: a string predicate is eval'ed in the page, which its CSP forbids.
  await page.waitForFunction(() => ((globalThis as unknown as PageGlobals).__uiBench?.firstRowFrame ?? 0) > 0, undefined, { timeout: 30_000 });
  // Where the time went, from navigation start: the document (with the app inline), the app's marks, the two API calls.
  return page.evaluate(`(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const resources = performance.getEntriesByType('resource');
    const find = (part) => resources.find((e) => e.name.includes(part));
    const span = (e) => (e ? [Math.round(e.startTime), Math.round(e.responseEnd)] : undefined);
    const api = find('/api/v1/repositories');
    return {
      firstRowMs: window.__uiBench.firstRow,
      frameMs: window.__uiBench.firstRowFrame,
      responseEndMs: nav ? nav.responseEnd : 0,
      apiMs: api ? api.responseEnd - api.startTime : undefined,
      timeline: {
        document: nav ? [Math.round(nav.requestStart), Math.round(nav.responseEnd)] : undefined,
        domInteractive: nav ? Math.round(nav.domInteractive) : undefined,
        // The app's own marks (src/ui/main.tsx): its code starts, the session is in, the first render.
        ...Object.fromEntries(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('skiff:')).map((m) => ['app.' + m.name.slice(6), Math.round(m.startTime)])),
        session: span(find('/api/v1/session')),
        repositories: span(api),
      },
    };
  })()`);
}

/** Types `query` key by key; ms from the last key's input event to the frame showing exactly `expected` rows. */
async function filterLatency(page: Page, query: string, expected: string[]): Promise<number> {
  const box = page.getByLabel('Filter repositories');
  await box.fill('');
  await page.waitForFunction((selector) => (globalThis as unknown as PageGlobals).document.querySelectorAll(selector).length === 50, TABLE_ROWS, { timeout: 10_000 });
  await box.pressSequentially(query, { delay: 30 });
  const done = await page.waitForFunction(
    ({ selector, names }) => {
      const doc = (globalThis as unknown as PageGlobals).document;
      const rows = [...doc.querySelectorAll(selector)].map((row) => row.querySelector('a')?.textContent?.trim());
      const status = [...doc.querySelectorAll('[role=status]')].map((el) => el.textContent).join(' ');
      return JSON.stringify(rows) === JSON.stringify(names) && status.includes(` of ${names.length} `) && performance.now();
    },
    { selector: TABLE_ROWS, names: expected },
    { polling: 'raf', timeout: 10_000 },
  );
  const at = (await done.jsonValue()) as number;
  const inputAt = (await page.evaluate('window.__uiBench.inputAt')) as number;
  return at - inputAt;
}

async function timeApi(base: string, path: string, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    const started = performance.now();
    const res = await fetch(`${base}${path}`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
    if (i >= 5) times.push(performance.now() - started); // five to warm up
  }
  return times;
}

export async function measureUi(options: UiBenchOptions): Promise<UiBenchResult> {
  const { skiff, runDir, log, rounds, repositories: count } = options;
  const row = (id: string, title: string, unit: string, better: Row['better'], peerName = 'no peer'): Row => ({ id, title, unit, better, skiff: series(), peerName, peer: series() });
  const rows = {
    cold: { ...row('ui-first-row-cold', `UI: repositories list, first row painted, fresh browser context (${count.toLocaleString('en-US')} repositories)`, 'ms', 'lower'), limit: { name: `target ${TARGET_FIRST_ROW_MS} ms`, value: TARGET_FIRST_ROW_MS } },
    warm: { ...row('ui-first-row-warm', 'UI: the same, reopened (assets cached)', 'ms', 'lower'), limit: { name: `target ${TARGET_FIRST_ROW_MS} ms`, value: TARGET_FIRST_ROW_MS } },
    api: row('ui-api-repositories', `GET /api/v1/repositories?limit=50 (first page of ${count.toLocaleString('en-US')}), keep-alive, to the last byte`, 'ms', 'lower'),
    filter: row('ui-filter', 'UI: filter as you type, last key to the frame showing the matches (debounce ~120 ms included)', 'ms', 'lower'),
    rps: row('ui-v2-manifest-rps', `manifest GET by tag, ${CONNECTIONS} conn: skiff serve with the UI vs --no-ui`, 'req/s', 'higher', 'skiff serve --no-ui'),
  };
  const notes: Record<string, unknown> = {};

  const skipped = await browserSkipReason();
  if (skipped) throw new Error(skipped);

  const base = join(runDir, 'ui-base');
  onCleanup('ui dataset', () => rm(base, { recursive: true, force: true }));
  log(`  seeding ${count} repositories through SqliteMetadataStore and the blob store layout`);
  const seeded = await seed(base, count);
  notes.setupMs = Math.round(seeded.ms);
  log(`  seeded in ${(seeded.ms / 1000).toFixed(1)} s`);

  const withUiDir = join(runDir, 'ui-data-on');
  const noUiDir = join(runDir, 'ui-data-off');
  await copyData(base, withUiDir);
  await copyData(base, noUiDir);
  const servers: Server[] = [];
  let browser: BrowserSession | undefined;
  try {
    const withUi = await startSkiff(skiff, runDir, [], ['--gc-interval', '0'], { data: withUiDir });
    servers.push(withUi);
    const noUi = await startSkiff(skiff, runDir, [], ['--gc-interval', '0', '--no-ui'], { data: noUiDir });
    servers.push(noUi);
    const off = await fetch(`${noUi.url}/api/v1/session`);
    await off.arrayBuffer();
    if (off.status !== 404) throw new Error(`--no-ui: GET /api/v1/session answered ${off.status}, expected 404`);

    const first = (await (await fetch(`${withUi.url}/api/v1/repositories?limit=50`)).json()) as RepositoryPage;
    if (first.total !== count || first.repositories[0]?.name !== repositoryName(0)) {
      throw new Error(`the API lists ${first.total} repositories (first ${first.repositories[0]?.name}), expected ${count} from ${repositoryName(0)}`);
    }

    // /v2/ with and without the UI first, while both servers are in the same state (neither has
    // served the UI yet), interleaved with the order alternating (A B, B A, …).
    const manifestUrl = (server: Server) => `${server.url}/v2/${repositoryName(42)}/manifests/v1`;
    const headers = { Accept: MANIFEST_ACCEPT };
    await interleave(
      rounds,
      [withUi, noUi].map((server) => {
        const target = server === withUi ? rows.rps.skiff : rows.rps.peer;
        return {
          name: server === withUi ? 'with the UI' : '--no-ui',
          series: [target],
          async round(index: number) {
            await load(manifestUrl(server), { connections: CONNECTIONS, seconds: 1, headers });
            const result = await load(manifestUrl(server), { connections: CONNECTIONS, seconds: options.loadSeconds, headers });
            target.samples.push(result.rps);
            target.extra.push({ round: index + 1, p50ms: result.p50ms, p99ms: result.p99ms, requests: result.requests });
            log(`    ${server === withUi ? 'UI on ' : '--no-ui'}: ${result.rps.toFixed(0)} req/s (p99 ${result.p99ms.toFixed(1)} ms)`);
          },
        };
      }),
      log,
      { rotate: true },
    );
    const paired = rows.rps.skiff.samples.map((rps, i) => rps / (rows.rps.peer.samples[i] ?? NaN)).filter(Number.isFinite);
    notes.rpsPairedRatioMedian = summarize(paired)?.median;
    log(`  /v2/ with the UI ÷ --no-ui, per round: ${paired.map((r) => r.toFixed(2)).join(' ')}`);

    // The API alone, before the browser adds its own load.
    rows.api.skiff.samples.push(...(await timeApi(withUi.url, '/api/v1/repositories?limit=50', API_REQUESTS)));
    const last = summarize(await timeApi(withUi.url, `/api/v1/repositories?offset=${count - 50}&limit=50`, 30));
    const filtered = summarize(await timeApi(withUi.url, '/api/v1/repositories?filter=ui-0123&limit=50', 30));
    notes.apiLastPageMs = last;
    notes.apiFilterMs = filtered;
    log(`  API first page ${summarize(rows.api.skiff.samples)?.median.toFixed(2)} ms, last page ${last?.median.toFixed(2)} ms, filtered ${filtered?.median.toFixed(2)} ms (medians)`);

    browser = await openBrowser();
    // One warm-up visit (Chromium's own first-use costs), then the rounds.
    for (let round = -1; round < rounds; round++) {
      const page = await browser.newPage(withUi.url);
      await page.addInitScript(PROBE);
      const cold = await openList(page, '/');
      const warm = await openList(page, '/');
      // A query matching ten repositories, new every round: `ui-0123` → bench/ui-01230 … 01239.
      const stem = `ui-${String((round + 2) * 37 % Math.floor(count / 10)).padStart(4, '0')}`;
      const expected = Array.from({ length: count }, (_, i) => repositoryName(i)).filter((name) => name.includes(stem));
      const filterMs = await filterLatency(page, stem, expected);
      const problems = problemsOf(page);
      await page.context().close();
      if (problems.length > 0) throw new Error(`the page was not clean:\n${problems.join('\n')}`);
      if (round < 0) continue;
      rows.cold.skiff.samples.push(cold.frameMs);
      rows.warm.skiff.samples.push(warm.frameMs);
      rows.filter.skiff.samples.push(filterMs);
      rows.cold.skiff.extra.push({ round: round + 1, ...cold });
      rows.warm.skiff.extra.push({ round: round + 1, ...warm });
      rows.filter.skiff.extra.push({ round: round + 1, query: stem, matches: expected.length });
      log(`    round ${round + 1}: first row cold ${cold.frameMs.toFixed(0)} ms (in the DOM at ${cold.firstRowMs.toFixed(0)}; ${JSON.stringify(cold.timeline)}), warm ${warm.frameMs.toFixed(0)} ms (in the DOM at ${warm.firstRowMs.toFixed(0)}; ${JSON.stringify(warm.timeline)}), filter ${filterMs.toFixed(0)} ms`);
    }
    await browser.close();
    browser = undefined;

  } finally {
    await browser?.close();
    for (const server of servers.reverse()) await server.stop();
    await rm(base, { recursive: true, force: true });
  }
  const rps = (s: typeof rows.rps.skiff) => summarize(s.samples)?.median;
  const ratio = rps(rows.rps.skiff) !== undefined && rps(rows.rps.peer) ? rps(rows.rps.skiff)! / rps(rows.rps.peer)! : undefined;
  rows.rps.note = `target ≥ ${RPS_TARGET}× --no-ui${ratio === undefined ? '' : `: ${ratio.toFixed(2)}×`}`;
  return { rows: Object.values(rows), notes };
}

// ---- standalone ----

function table(rows: Row[], notes: Record<string, unknown>): string {
  const fmt = (n: number, unit: string) => (unit === 'req/s' ? n.toFixed(0) : n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const cell = (s: Row['skiff'], unit: string) => {
    const sum = summarize(s.samples);
    if (!sum) return s.errors.length ? `failed: ${s.errors[0]!.slice(0, 120)}` : '—';
    return `${fmt(sum.median, unit)} ${unit} (${fmt(sum.min, unit)}–${fmt(sum.max, unit)}, n=${sum.n})`;
  };
  const target = (r: Row): string => {
    const median = summarize(r.skiff.samples)?.median;
    if (r.limit && median !== undefined) return `< ${r.limit.value} ${r.unit}: ${median < r.limit.value ? 'pass' : 'FAIL'}`;
    if (r.id === 'ui-v2-manifest-rps') {
      const peer = summarize(r.peer.samples)?.median;
      if (median !== undefined && peer) return `≥ ${RPS_TARGET}×: ${(median / peer).toFixed(2)}× ${median / peer >= RPS_TARGET ? 'pass' : 'FAIL'} (median of per-round ratios ${(notes.rpsPairedRatioMedian as number | undefined)?.toFixed(2) ?? '?'}×)`;
    }
    return 'report';
  };
  const lines = ['| row | median (min–max) | peer | target |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.title} | ${cell(r.skiff, r.unit)} | ${r.peer.samples.length ? `${r.peerName}: ${cell(r.peer, r.unit)}` : '—'} | ${target(r)} |`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '7' }, repos: { type: 'string', default: '10000' }, 'load-seconds': { type: 'string', default: '5' }, out: { type: 'string' } },
    strict: true,
  });
  const repo = fileURLToPath(new URL('..', import.meta.url));
  const outDir = values.out ?? join(repo, 'bench', 'results');
  installSignalHandlers();
  const started = performance.now();
  const log = (line: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  const runDir = await mkdtemp(join(tmpdir(), 'skiff-bench-ui-'));
  onCleanup('run dir', () => rm(runDir, { recursive: true, force: true }));
  const loadStart = loadavg();
  log('building skiff (bin/skiff) and taking a private copy of dist/');
  const skiff = await prepareSkiff(repo, runDir);
  for (const warning of skiff.warnings) log(`warning: ${warning}`);
  const { rows, notes } = await measureUi({ skiff, runDir, log, rounds: Number(values.rounds), repositories: Number(values.repos), loadSeconds: Number(values['load-seconds']) });
  const header = [
    `# skiff web UI benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- skiff ${skiff.revision}; Chromium (Debian, headless); load average ${loadStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadavg().map((l) => l.toFixed(2)).join(' ')} at end`,
    `- \`node bench/ui.ts --rounds ${values.rounds} --repos ${values.repos} --load-seconds ${values['load-seconds']}\`; setup ${((notes.setupMs as number) / 1000).toFixed(1)} s (untimed); took ${((performance.now() - started) / 60_000).toFixed(1)} min`,
    '',
  ].join('\n');
  const text = `${header}${table(rows, notes)}\n`;
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'ui-latest.md'), text);
  await writeFile(join(outDir, 'ui-latest.json'), `${JSON.stringify({ date: new Date().toISOString(), revision: skiff.revision, loadStart, loadEnd: loadavg(), notes, rows }, null, 1)}\n`);
  process.stdout.write(`\n${text}\nwritten to ${join(outDir, 'ui-latest.md')} and ui-latest.json\n`);
  return rows.some((r) => r.skiff.errors.length > 0 || r.peer.errors.length > 0) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let code = 1;
  try {
    code = await main();
  } catch (error) {
    process.stderr.write(`bench ui: ${(error as Error).stack ?? (error as Error).message}\n`);
  } finally {
    await runCleanup();
  }
  process.exit(code);
}
