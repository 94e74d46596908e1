import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PassThrough } from 'node:stream';
import { pino } from 'pino';
import { digestOf } from '../../src/digest/digest.ts';
import { serveConfig } from '../../src/server/config.ts';
import { startRegistry, type RunningRegistry } from '../../src/server/serve.ts';
import { redactUrl } from '../../src/server/request-log.ts';
import { seededBytes } from '../../src/testing/images.ts';
import { pushBlob, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, blobOf, expectError, manifestOf, open, rangeEnd, requestText, sleep, startUpload, statuses } from './http/helpers.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('pipelined requests run one at a time, in order (RFC 9112 §9.3.2)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(() => reg.stop());

  test('PUT <upload>?digest=D then GET blobs/D in one TCP write: 201 then 200, 20 of 20', async () => {
    for (let i = 0; i < 20; i++) {
      const body = `pipelined blob ${i} `.repeat(50);
      const digest = digestOf(Buffer.from(body));
      const upload = await startUpload(reg.url, 'pipe/blobs');
      upload.searchParams.set('digest', digest);
      const conn = await open(
        reg.url,
        requestText('PUT', `${upload.pathname}${upload.search}`, { 'Content-Type': 'application/octet-stream' }, body) +
          requestText('GET', `/v2/pipe/blobs/blobs/${digest}`, { Connection: 'close' }),
      );
      await conn.closed;
      assert.deepEqual(statuses(conn.received()), [201, 200], conn.received().slice(0, 500));
      assert.ok(conn.received().endsWith(body), 'the GET returned the blob just committed');
    }
  });

  test('PUT latest=A then PUT latest=B in one TCP write leaves the tag at B, 10 of 10', async () => {
    await pushBlob(reg.url, 'pipe/tags', EMPTY_CONFIG);
    for (let i = 0; i < 10; i++) {
      const manifest = (label: string) =>
        manifestOf({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: EMPTY_CONFIG.descriptor,
          layers: [],
          annotations: { label: `${label}-${i}` },
        });
      const a = manifest('a');
      const b = manifest('b');
      const put = (m: typeof a, extra: Record<string, string> = {}) =>
        requestText('PUT', '/v2/pipe/tags/manifests/latest', { 'Content-Type': m.descriptor.mediaType, ...extra }, m.data.toString('latin1'));
      const conn = await open(reg.url, put(a) + put(b, { Connection: 'close' }));
      await conn.closed;
      assert.deepEqual(statuses(conn.received()), [201, 201]);
      const res = await fetch(`${reg.url}/v2/pipe/tags/manifests/latest`, { headers: { Accept: a.descriptor.mediaType } });
      assert.equal(res.headers.get('docker-content-digest'), b.descriptor.digest);
      await res.arrayBuffer();
    }
  });
});

describe('timeouts', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ headersTimeout: 400, idleTimeout: 600, keepAliveTimeout: 200 });
  });
  after(() => reg.stop());

  test('a connection that sends half its headers, or nothing, is closed with 408 once headersTimeout passes', async () => {
    const half = await open(reg.url, 'GET /v2/ HTTP/1.1\r\nHost: registry\r\n');
    const silent = await open(reg.url);
    for (const conn of [half, silent]) {
      const ms = await conn.closed;
      assert.ok(ms >= 350 && ms < 3000, `closed after ${ms} ms`);
      assert.match(conn.received(), /^HTTP\/1\.1 408 /);
    }
  });

  test('an idle keep-alive connection is closed after keepAliveTimeout', async () => {
    const conn = await open(reg.url, requestText('GET', '/v2/'));
    const ms = await conn.closed;
    assert.deepEqual(statuses(conn.received()), [200]);
    assert.ok(ms < 3000, `closed after ${ms} ms`);
  });

  test('a PATCH whose body stalls is cut after idleTimeout; the upload keeps what arrived, unlocked and resumable', async () => {
    const data = seededBytes('stalled patch', 1000);
    const upload = await startUpload(reg.url, 'edge/stall');
    const conn = await open(
      reg.url,
      `PATCH ${upload.pathname}${upload.search} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n`,
    );
    conn.socket.write(data.subarray(0, 300));
    const ms = await conn.closed;
    assert.ok(ms >= 500 && ms < 4000, `cut after ${ms} ms`);
    // The status answers at once (the session's lock was released) and counts the bytes that arrived.
    const status = await fetch(upload, { signal: AbortSignal.timeout(2000) });
    assert.equal(status.status, 204);
    const kept = rangeEnd(status.headers.get('range')) + 1;
    assert.equal(kept, 300);
    const rest = await fetch(upload, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${kept}-${data.length - 1}` },
      body: data.subarray(kept),
    });
    assert.equal(rest.status, 202, await rest.text());
    const close = new URL(rest.headers.get('location')!, reg.url);
    close.searchParams.set('digest', digestOf(data));
    const done = await fetch(close, { method: 'PUT' });
    assert.equal(done.status, 201, await done.text());
    const got = Buffer.from(await (await fetch(`${reg.url}/v2/edge/stall/blobs/${digestOf(data)}`)).arrayBuffer());
    assert.deepEqual(got, data);
  });

  test('a slow upload that keeps moving is never cut, however long it takes in total', async () => {
    const data = seededBytes('slow but steady', 40);
    const digest = digestOf(data);
    const conn = await open(
      reg.url,
      `POST /v2/edge/slow/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: ${data.length}\r\nConnection: close\r\n\r\n`,
    );
    for (let i = 0; i < data.length; i += 4) {
      await sleep(150); // 10 × 150 ms = 1.5 s in total, well past the 600 ms idle bound
      conn.socket.write(data.subarray(i, i + 4));
    }
    await conn.closed;
    assert.deepEqual(statuses(conn.received()), [201]);
  });

  test('a reader that stops reading a blob is cut after idleTimeout', async () => {
    const big = blobOf(seededBytes('stalled reader', 32 * 1024 * 1024));
    await pushBlob(reg.url, 'edge/reader', big);
    const conn = await open(reg.url, requestText('GET', `/v2/edge/reader/blobs/${big.descriptor.digest}`));
    conn.socket.pause(); // read nothing: the kernel buffers fill, then the server's writes stall
    await sleep(2500);
    conn.socket.resume(); // take what the kernel buffered: the connection then ends short of the blob
    await conn.closed;
    assert.ok(conn.received().length < big.data.length, `received ${conn.received().length} of ${big.data.length} bytes`);
  });
});

describe('connection cap', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ maxConnections: 5, headersTimeout: 20_000 });
  });
  after(() => reg.stop());

  test('connections beyond maxConnections get 503 UNAVAILABLE with Retry-After, not a silent close; room frees as they leave', async () => {
    const held = await Promise.all(Array.from({ length: 5 }, () => open(reg.url)));
    await sleep(50);
    const excess = await open(reg.url, requestText('GET', '/v2/'));
    await excess.closed;
    const text = excess.received();
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.match(text, /\r\nRetry-After: 1\r\n/i);
    assert.match(text, /"code":"UNAVAILABLE"/);
    for (const conn of held) conn.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    await sleep(50);
    const res = await fetch(`${reg.url}/v2/`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });
});

describe('request paths', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
    await pushBlob(reg.url, 'sec/app', EMPTY_CONFIG);
    await pushManifest(reg.url, 'sec/app', 'v1', manifestOf({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: EMPTY_CONFIG.descriptor, layers: [] }));
  });
  after(() => reg.stop());

  test('an encoded slash never reaches a repository: /v2/sec%2fapp/… is 400 NAME_INVALID', async () => {
    for (const path of ['/v2/sec%2fapp/tags/list', '/v2/sec%2Fapp/manifests/v1', `/v2/sec%2fapp/blobs/${EMPTY_CONFIG.descriptor.digest}`]) {
      await expectError(await fetch(`${reg.url}${path}`), 400, 'NAME_INVALID');
    }
  });

  test('an unknown endpoint is 404 UNSUPPORTED, not a claim that a repository is unknown', async () => {
    for (const path of ['/v2/sec/app/nothing-here', '/v3/', '/favicon.ico']) {
      await expectError(await fetch(`${reg.url}${path}`), 404, 'UNSUPPORTED');
    }
  });
});

describe('request log', () => {
  let running: RunningRegistry;
  let dataDir: string;
  const lines: Record<string, unknown>[] = [];
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'skiff-log-'));
    const sink = new PassThrough();
    let pending = '';
    sink.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      let newline;
      while ((newline = pending.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(pending.slice(0, newline)) as Record<string, unknown>);
        pending = pending.slice(newline + 1);
      }
    });
    running = await startRegistry(serveConfig({ listen: '127.0.0.1:0', data: dataDir, logLevel: 'info' }), pino({ level: 'info' }, sink));
  });
  after(async () => {
    await running.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('secret-bearing query parameters are redacted', async () => {
    const res = await fetch(`${running.url}/v2/?access_token=sekrit-1&n=2&X-Amz-Signature=sekrit-2&_state=sekrit-3&password=sekrit-4&token=sekrit-5`);
    await res.arrayBuffer();
    await sleep(50);
    const all = JSON.stringify(lines);
    assert.doesNotMatch(all, /sekrit/);
    const line = lines.find((l) => String(l.path).startsWith('/v2/?'));
    assert.equal(line?.path, '/v2/?access_token=REDACTED&n=2&X-Amz-Signature=REDACTED&_state=REDACTED&password=REDACTED&token=REDACTED');
  });

  test('redactUrl leaves other parameters and plain paths alone', () => {
    assert.equal(redactUrl('/v2/a/tags/list?n=10&last=b'), '/v2/a/tags/list?n=10&last=b');
    assert.equal(redactUrl('/v2/'), '/v2/');
    assert.equal(redactUrl('/x?X-Amz-Credential=abc%2F1&mount=sha256:1'), '/x?X-Amz-Credential=REDACTED&mount=sha256:1');
  });

  test('a client that leaves mid-blob is logged once, at warn, with complete: false, and no error', async () => {
    const big = blobOf(seededBytes('leaver', 16 * 1024 * 1024));
    await pushBlob(running.url, 'log/leave', big);
    lines.length = 0;
    const conn = await open(running.url, requestText('GET', `/v2/log/leave/blobs/${big.descriptor.digest}`));
    await new Promise<void>((resolve) => conn.socket.once('data', () => resolve()));
    conn.socket.destroy();
    await sleep(300);
    const about = lines.filter((l) => String(l.path ?? '').includes('/log/leave/blobs/'));
    assert.equal(about.length, 1, JSON.stringify(about));
    assert.equal(about[0]!.level, 40);
    assert.equal(about[0]!.complete, false);
    assert.equal(lines.filter((l) => (l.level as number) >= 50).length, 0, JSON.stringify(lines));
  });
});

describe('manifest body memory', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ manifestBodyMemory: 4 * 1024 * 1024, idleTimeout: 1500 });
    await pushBlob(reg.url, 'budget/app', EMPTY_CONFIG);
  });
  after(() => reg.stop());

  const big = (label: string) =>
    manifestOf({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: EMPTY_CONFIG.descriptor,
      layers: [],
      annotations: { label, pad: 'x'.repeat(3 * 1024 * 1024) },
    });

  test('stalled manifest bodies hold no more than manifestBodyMemory: the excess is 503 with Retry-After, small pushes go on, room comes back', async () => {
    const first = big('first');
    const head = (m: typeof first) =>
      `PUT /v2/budget/app/manifests/${m.descriptor.digest} HTTP/1.1\r\nHost: registry\r\nContent-Type: ${m.descriptor.mediaType}\r\nContent-Length: ${m.data.length}\r\n\r\n`;
    // One client sends most of a 3 MiB manifest, then stalls.
    const stalled = await open(reg.url, head(first));
    stalled.socket.write(first.data.subarray(0, first.data.length - 10));
    await sleep(300);
    // A second large body does not fit beside it.
    const second = big('second');
    const refused = await open(reg.url, head(second));
    refused.socket.write(second.data);
    await refused.closed;
    assert.match(refused.received(), /^HTTP\/1\.1 503 /);
    assert.match(refused.received(), /\r\nRetry-After: 1\r\n/i);
    assert.match(refused.received(), /"code":"UNAVAILABLE"/);
    // A small manifest still fits.
    const small = manifestOf({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: EMPTY_CONFIG.descriptor, layers: [] });
    await pushManifest(reg.url, 'budget/app', 'small', small);
    // The stalled body is cut by the idle timeout and gives its share back.
    await stalled.closed;
    await pushManifest(reg.url, 'budget/app', 'second', second);
  });
});

describe('an error answered before the body was read', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ readOnly: true });
  });
  after(() => reg.stop());

  test('a client that writes its whole 32 MiB body before reading still gets the error, not a connection reset', async () => {
    const body = seededBytes('refused early', 32 * 1024 * 1024);
    const conn = await open(
      reg.url,
      `POST /v2/early/refusal/blobs/uploads/?digest=${digestOf(body)} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    conn.socket.pause(); // like a client that reads only once it has sent everything
    await new Promise<void>((resolve) => conn.socket.write(body, () => resolve()));
    conn.socket.resume();
    const response = await conn.firstResponse();
    conn.socket.destroy();
    assert.match(response, /^HTTP\/1\.1 405 /);
    assert.match(response, /"code":"UNSUPPORTED"/);
  });
});
