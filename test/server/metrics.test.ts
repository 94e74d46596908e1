import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino, type Logger } from 'pino';
import { serveConfig } from '../../src/server/config.ts';
import { MetricsSummaryLog } from '../../src/server/metrics-log.ts';
import { ServerMetrics, recordFillEvents } from '../../src/server/metrics.ts';
import { startRegistry, type RunningRegistry } from '../../src/server/serve.ts';
import { makeImage, seededBytes } from '../../src/testing/images.ts';
import { pushBlob, pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { blobOf, open, raw, requestText, sleep, startUpload } from './http/helpers.ts';

const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prometheus text format 0.0.4: `# HELP name text`, `# TYPE name type`, or `name{l="v",…} value`. */
const HELP = /^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/;
const TYPE = /^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$/;
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
// Values are what Go's ParseFloat reads, so NaN in any case: prom-client writes `Nan` (an event-loop
// lag mean with no sample since the last scrape), which Prometheus reads.
const SAMPLE = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (-?[0-9]+(?:\\.[0-9]+)?(?:e[+-]?[0-9]+)?|[Nn][Aa][Nn]|[+-]Inf)(?: -?[0-9]+)?$`);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every line of the exposition, parsed; fails on any line that is not a comment or a sample. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue; // the format ignores empty lines; prom-client puts one between families
    if (line.startsWith('#')) {
      assert.ok(HELP.test(line) || TYPE.test(line), `comment line: ${line}`);
      continue;
    }
    const match = SAMPLE.exec(line);
    assert.ok(match, `sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: /^nan$/i.test(match[3]!) ? NaN : Number(match[3]!.replace('Inf', 'Infinity')) });
  }
  return samples;
}

/** The value of the one sample with exactly these labels, or undefined. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  const found = samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === wanted);
  assert.ok(found.length <= 1, `one sample of ${name} ${wanted}`);
  return found[0]?.value;
}

async function scrape(url: string): Promise<{ text: string; samples: Sample[]; contentType: string | null }> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  return { text, samples: parse(text), contentType: res.headers.get('content-type') };
}

describe('GET /metrics after a push and pulls', () => {
  let reg: TestRegistry;
  let pushedBytes = 0;
  let pulledBytes = 0;
  const repo = 'team-secret/app';
  before(async () => {
    reg = await startTestRegistry();
    const image = await makeImage({ seed: 'metrics', layers: 2, layerSize: 4096 });
    await pushImage(reg.url, repo, image, 'v1');
    pushedBytes = image.blobs.reduce((n, b) => n + b.data.length, 0) + image.manifest.data.length;
    for (let pull = 0; pull < 2; pull++) {
      const manifest = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { Accept: image.manifest.descriptor.mediaType } });
      assert.equal(manifest.status, 200);
      pulledBytes += (await manifest.arrayBuffer()).byteLength;
      for (const blob of image.blobs) {
        const res = await fetch(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`);
        assert.equal(res.status, 200);
        pulledBytes += (await res.arrayBuffer()).byteLength;
      }
    }
    assert.equal((await fetch(`${reg.url}/v2/${repo}/blobs/${image.config.descriptor.digest}`, { method: 'HEAD' })).status, 200);
    const missing = await fetch(`${reg.url}/v2/${repo}/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
    for (const path of ['/nope', `/v2/${repo}/no/such/endpoint`]) assert.equal((await raw(reg.url, 'GET', path)).status, 404);
    // Methods are a closed set in labels: clients cannot mint new series with made-up methods.
    assert.equal((await raw(reg.url, 'PROPFIND', '/v2/')).status, 405);
    assert.equal((await raw(reg.url, 'GET', '/healthz')).status, 200);
  });
  after(() => reg.stop());

  test('bytes received and sent cover the blobs pushed and pulled, headers included (first: no scrape counted yet)', async () => {
    const { samples } = await scrape(reg.url);
    const received = value(samples, 'skiff_http_received_bytes_total')!;
    const sent = value(samples, 'skiff_http_sent_bytes_total')!;
    assert.ok(received >= pushedBytes && received < pushedBytes + 20_000, `received ${received}, pushed ${pushedBytes}`);
    assert.ok(sent >= pulledBytes && sent < pulledBytes + 20_000, `sent ${sent}, pulled ${pulledBytes}`);
  });

  test('answers in the Prometheus text format, every line a comment or a sample', async () => {
    const { contentType, samples } = await scrape(reg.url);
    assert.equal(contentType, CONTENT_TYPE);
    assert.ok(samples.length > 50);
    const head = await raw(reg.url, 'HEAD', '/metrics');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], CONTENT_TYPE);
    assert.equal(head.body.length, 0);
    const post = await raw(reg.url, 'POST', '/metrics');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  test('counts requests by method, route and status: the push, the two pulls, the misses', async () => {
    const { samples, text } = await scrape(reg.url);
    const requests = (method: string, route: string, status: number) => value(samples, 'skiff_http_requests_total', { method, route, status: String(status) });
    assert.equal(requests('POST', 'upload', 201), 3, 'config and two layers, each one monolithic POST');
    assert.equal(requests('PUT', 'manifest', 201), 1);
    assert.equal(requests('GET', 'manifest', 200), 2);
    assert.equal(requests('GET', 'blob', 200), 6);
    assert.equal(requests('HEAD', 'blob', 200), 1);
    assert.equal(requests('GET', 'blob', 404), 1);
    assert.equal(requests('GET', 'unknown', 404), 2);
    assert.equal(requests('other', 'base', 405), 1);
    assert.equal(requests('GET', 'healthz', 200), 1);
    // Never the raw path: the repository name appears in no label.
    assert.doesNotMatch(text, /team-secret|PROPFIND|no\/such/);
    const routes = new Set(samples.filter((s) => s.name === 'skiff_http_requests_total').map((s) => s.labels.route));
    for (const route of routes) assert.match(route!, /^(base|catalog|tags|manifest|upload|blob|referrers|healthz|metrics|ui|api|unknown)$/);
  });

  test('a latency histogram per method and route, which leaves /metrics out', async () => {
    await scrape(reg.url);
    const { samples } = await scrape(reg.url);
    assert.equal(value(samples, 'skiff_http_request_duration_seconds_count', { method: 'GET', route: 'blob' }), 7);
    assert.equal(value(samples, 'skiff_http_request_duration_seconds_bucket', { method: 'GET', route: 'blob', le: '+Inf' }), 7);
    assert.ok(value(samples, 'skiff_http_request_duration_seconds_sum', { method: 'GET', route: 'blob' })! > 0);
    assert.ok(value(samples, 'skiff_http_requests_total', { method: 'GET', route: 'metrics', status: '200' })! >= 2, 'scrapes are counted as requests');
    assert.ok(!samples.some((s) => s.name.startsWith('skiff_http_request_duration_seconds') && s.labels.route === 'metrics'), 'but not timed');
  });

  test('gauges: the scrape is the one request in flight, no upload running; process metrics carry the skiff_ prefix', async () => {
    const { samples } = await scrape(reg.url);
    assert.equal(value(samples, 'skiff_http_requests_in_flight'), 1);
    assert.equal(value(samples, 'skiff_uploads_in_progress'), 0);
    assert.ok(value(samples, 'skiff_http_connections_open')! >= 1);
    assert.equal(value(samples, 'skiff_http_connections_refused_total'), 0);
    assert.ok(value(samples, 'skiff_process_resident_memory_bytes')! > 10_000_000);
    assert.ok(value(samples, 'skiff_nodejs_heap_size_used_bytes')! > 0);
    assert.deepEqual(samples.filter((s) => !s.name.startsWith('skiff_')).map((s) => s.name), []);
  });
});

describe('connections and uploads', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ maxConnections: 3, headersTimeout: 20_000 });
  });
  after(() => reg.stop());

  test('connections refused at maxConnections are counted', async () => {
    const held = await Promise.all(Array.from({ length: 3 }, () => open(reg.url)));
    await sleep(50);
    for (let i = 0; i < 2; i++) {
      const excess = await open(reg.url, requestText('GET', '/v2/'));
      await excess.closed;
      assert.match(excess.received(), /^HTTP\/1\.1 503 /);
    }
    held[0]!.socket.destroy();
    await held[0]!.closed;
    await sleep(50);
    const res = await raw(reg.url, 'GET', '/metrics');
    const samples = parse(res.body.toString());
    assert.equal(value(samples, 'skiff_http_connections_refused_total'), 2);
    assert.equal(value(samples, 'skiff_http_connections_open'), 3, 'two held and the scrape');
    for (const conn of held) conn.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
  });

  test('an upload counts as in progress while its PATCH runs', async () => {
    const upload = await startUpload(reg.url, 'metrics/upload');
    const body = seededBytes('patch', 2000);
    const head = [`PATCH ${upload.pathname}${upload.search} HTTP/1.1`, 'Host: registry', 'Content-Type: application/octet-stream', `Content-Length: ${body.length}`];
    const conn = await open(reg.url, `${head.join('\r\n')}\r\n\r\n`);
    conn.socket.write(body.subarray(0, 1000));
    await sleep(100);
    let samples = (await scrape(reg.url)).samples;
    assert.equal(value(samples, 'skiff_uploads_in_progress'), 1);
    conn.socket.write(body.subarray(1000));
    assert.match(await conn.firstResponse(), /^HTTP\/1\.1 202 /);
    conn.socket.destroy();
    await conn.closed;
    samples = (await scrape(reg.url)).samples;
    assert.equal(value(samples, 'skiff_uploads_in_progress'), 0);
    assert.equal(value(samples, 'skiff_http_requests_total', { method: 'PATCH', route: 'upload', status: '202' }), 1);
  });

  test('a response the client abandons counts as incomplete, and not in the latency histogram', async () => {
    const big = blobOf(seededBytes('big', 16 * 1024 * 1024));
    await pushBlob(reg.url, 'metrics/big', big);
    const conn = await open(reg.url, requestText('GET', `/v2/metrics/big/blobs/${big.descriptor.digest}`));
    while (conn.received().length < 100_000) await sleep(10);
    conn.socket.destroy();
    await conn.closed;
    await sleep(100);
    const { samples } = await scrape(reg.url);
    assert.equal(value(samples, 'skiff_http_requests_incomplete_total', { method: 'GET', route: 'blob' }), 1);
    assert.equal(value(samples, 'skiff_http_requests_total', { method: 'GET', route: 'blob', status: '200' }), 1);
    assert.equal(value(samples, 'skiff_http_request_duration_seconds_count', { method: 'GET', route: 'blob' }), undefined);
  });
});

describe('each server counts into its own registry', () => {
  test('two servers in one process do not share counts', async () => {
    const a = await startTestRegistry();
    const b = await startTestRegistry();
    try {
      for (let i = 0; i < 3; i++) await (await fetch(`${a.url}/v2/`)).arrayBuffer();
      const fromA = (await scrape(a.url)).samples;
      const fromB = (await scrape(b.url)).samples;
      assert.equal(value(fromA, 'skiff_http_requests_total', { method: 'GET', route: 'base', status: '200' }), 3);
      assert.equal(value(fromB, 'skiff_http_requests_total', { method: 'GET', route: 'base', status: '200' }), undefined);
      assert.ok(value(fromB, 'skiff_process_cpu_seconds_total')! > 0, 'the process metrics are in both');
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe('mirror counters', () => {
  test('MirrorMetrics calls, and fill events mapped onto them, appear with their labels', async () => {
    const metrics = new ServerMetrics({ processMetrics: false });
    const m = metrics.mirror;
    m.hit('manifest');
    m.hit('blob');
    m.hit('blob');
    m.miss('blob');
    m.upstreamRequest('docker.io', 'manifest', 'HEAD');
    m.staleServe('manifest');
    m.evicted(1000);
    m.evicted(500, 2);
    m.cacheSize(123456);
    const onEvent = recordFillEvents(m, 'docker.io');
    onEvent({ type: 'open' });
    onEvent({ type: 'retry' });
    onEvent({ type: 'open' });
    onEvent({ type: 'commit', received: 4096 });
    onEvent({ type: 'stored' });
    onEvent({ type: 'open' });
    onEvent({ type: 'fail', received: 10 });
    const samples = parse(await metrics.render());
    assert.equal(value(samples, 'skiff_mirror_cache_hits_total', { kind: 'blob' }), 2);
    assert.equal(value(samples, 'skiff_mirror_cache_hits_total', { kind: 'manifest' }), 1);
    assert.equal(value(samples, 'skiff_mirror_cache_misses_total', { kind: 'blob' }), 1);
    assert.equal(value(samples, 'skiff_mirror_upstream_requests_total', { upstream: 'docker.io', kind: 'manifest', method: 'HEAD' }), 1);
    assert.equal(value(samples, 'skiff_mirror_upstream_requests_total', { upstream: 'docker.io', kind: 'blob', method: 'GET' }), 3);
    assert.equal(value(samples, 'skiff_mirror_upstream_bytes_total', { upstream: 'docker.io' }), 4106);
    assert.equal(value(samples, 'skiff_mirror_upstream_failures_total', { upstream: 'docker.io', kind: 'blob' }), 2);
    assert.equal(value(samples, 'skiff_mirror_stale_serves_total', { kind: 'manifest' }), 1);
    assert.equal(value(samples, 'skiff_mirror_cache_evictions_total'), 3);
    assert.equal(value(samples, 'skiff_mirror_cache_evicted_bytes_total'), 1500);
    assert.equal(value(samples, 'skiff_mirror_cache_size_bytes'), 123456);
  });
});

describe('the log', () => {
  function capture(): { lines: Record<string, unknown>[]; log: Logger } {
    const lines: Record<string, unknown>[] = [];
    return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
  }

  test('a successful scrape is logged at debug, not info; a summary is logged at shutdown', async () => {
    const { lines, log } = capture();
    const dataDir = await mkdtemp(join(tmpdir(), 'skiff-metrics-'));
    let running: RunningRegistry | undefined;
    try {
      running = await startRegistry(serveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'debug' }), log);
      await (await fetch(`${running.url}/v2/`)).arrayBuffer();
      await scrape(running.url);
      await (await fetch(`${running.url}/metrics`, { method: 'DELETE' })).arrayBuffer();
      await running.close();
      running = undefined;
      const requests = lines.filter((l) => l.msg === 'request');
      const level = (path: string, status: number) => requests.find((l) => l.path === path && l.status === status)?.level;
      assert.equal(level('/v2/', 200), 30, 'info');
      assert.equal(level('/metrics', 200), 20, 'debug');
      assert.equal(level('/metrics', 405), 30, 'a failed scrape stays at info');
      const summary = lines.find((l) => l.msg === 'metrics summary at shutdown');
      assert.ok(summary, JSON.stringify(lines.map((l) => l.msg)));
      assert.equal(summary.level, 30);
      assert.equal(summary.requests, 3);
      assert.deepEqual(summary.statuses, { '2xx': 2, '4xx': 1 });
      assert.equal(summary.mirror, undefined, 'a registry that is not a mirror says nothing of a cache');
    } finally {
      await running?.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('the periodic summary gives the change over its window', async () => {
    const { lines, log } = capture();
    const metrics = new ServerMetrics({ processMetrics: false });
    const summary = new MetricsSummaryLog(metrics, log, 40).start();
    metrics.mirror.hit('blob');
    await sleep(70);
    metrics.mirror.hit('blob');
    metrics.mirror.hit('blob');
    await sleep(40);
    await summary.stop();
    const windows = lines.filter((l) => String(l.msg).startsWith('metrics summary'));
    assert.ok(windows.length >= 2);
    const hits = windows.map((l) => (l.mirror as { hits: number }).hits);
    assert.equal(hits.reduce((a, b) => a + b, 0), 3, `hits per window ${hits}`);
    assert.equal(windows.at(-1)!.msg, 'metrics summary at shutdown');
  });
});
