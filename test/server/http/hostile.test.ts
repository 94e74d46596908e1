import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../../src/digest/digest.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { seededBytes } from '../../../src/testing/images.ts';
import { pushBlob } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, assertErrorBody, captureEscapes, expectError, expectRawError, raw, rangeEnd, sleep, startUpload, unknownDigest, withDigest } from './helpers.ts';

describe('hostile input', () => {
  let reg: TestRegistry;
  let escapes: ReturnType<typeof captureEscapes>;
  before(async () => {
    reg = await startTestRegistry();
    escapes = captureEscapes();
  });
  after(async () => {
    escapes.dispose();
    await reg.stop();
  });

  async function assertHealthy(): Promise<void> {
    await sleep(100);
    assert.deepEqual(escapes.take(), [], 'the server let an exception escape (a real skiff serve would exit)');
    const ping = await fetch(`${reg.url}/v2/`);
    assert.equal(ping.status, 200);
    await ping.arrayBuffer();
    const health = await fetch(`${reg.url}/healthz`);
    assert.equal(health.status, 200);
    await health.arrayBuffer();
  }

  describe('repository names', () => {
    const digest = unknownDigest('hostile/names');

    test('.. segments, raw or percent-encoded, are 400 NAME_INVALID (never resolved to another repository)', async () => {
      // A victim repository the traversal would land in if the path were normalized.
      await pushBlob(reg.url, 'victim', EMPTY_CONFIG);
      const paths = [
        `/v2/attacker/%2E%2E/victim/blobs/${EMPTY_CONFIG.descriptor.digest}`,
        `/v2/attacker/%2e%2e/victim/blobs/${EMPTY_CONFIG.descriptor.digest}`,
        `/v2/attacker/../victim/blobs/${EMPTY_CONFIG.descriptor.digest}`,
        '/v2/attacker/%2E%2E/victim/tags/list',
        '/v2/%2E%2E/tags/list',
        '/v2/a/%2E%2E/%2E%2E/tags/list',
        '/v2/a/.%2E/b/tags/list',
      ];
      const outcomes: string[] = [];
      for (const path of paths) {
        const res = await raw(reg.url, 'GET', path);
        let code = '';
        try {
          code = (JSON.parse(res.body.toString()) as { errors?: { code: string }[] }).errors?.[0]?.code ?? '';
        } catch {
          code = '(not JSON)';
        }
        outcomes.push(`${path} -> ${res.status} ${code}`);
      }
      assert.deepEqual(
        outcomes,
        paths.map((path) => `${path} -> 400 NAME_INVALID`),
      );
    });

    test('. segments are not silently dropped: /v2/a/./b is 400 NAME_INVALID, not repository a/b', async () => {
      const image = EMPTY_CONFIG.descriptor.digest;
      await pushBlob(reg.url, 'dot/victim', EMPTY_CONFIG);
      for (const path of [`/v2/dot/./victim/blobs/${image}`, `/v2/dot/%2E/victim/blobs/${image}`]) {
        const res = await raw(reg.url, 'GET', path);
        expectRawError(res, 400, 'NAME_INVALID');
      }
    });

    test('a name that is .. after decoding %2F is 400 NAME_INVALID', async () => {
      const res = await raw(reg.url, 'GET', '/v2/a%2F..%2Fvictim/tags/list');
      expectRawError(res, 400, 'NAME_INVALID');
    });

    test('uppercase is 400 NAME_INVALID on every endpoint', async () => {
      await expectError(await fetch(`${reg.url}/v2/Upper/case/tags/list`), 400, 'NAME_INVALID');
      await expectError(await fetch(`${reg.url}/v2/UPPER/blobs/${digest}`), 400, 'NAME_INVALID');
      await expectError(await fetch(`${reg.url}/v2/uPPer/manifests/latest`), 400, 'NAME_INVALID');
      await expectError(await fetch(`${reg.url}/v2/Upper/blobs/uploads/`, { method: 'POST' }), 400, 'NAME_INVALID');
      await expectError(
        await fetch(`${reg.url}/v2/Upper/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body: '{}' }),
        400,
        'NAME_INVALID',
      );
    });

    test('names of 256+ characters are 400 NAME_INVALID; 255 is fine', async () => {
      const long = `${'a'.repeat(127)}/${'b'.repeat(128)}`;
      assert.equal(long.length, 256);
      await expectError(await fetch(`${reg.url}/v2/${long}/tags/list`), 400, 'NAME_INVALID');
      await expectError(await fetch(`${reg.url}/v2/${long}/blobs/uploads/`, { method: 'POST' }), 400, 'NAME_INVALID');
      await expectError(await fetch(`${reg.url}/v2/${'c'.repeat(5000)}/manifests/latest`), 400, 'NAME_INVALID');
      const ok = long.slice(1);
      assert.equal(ok.length, 255);
      const res = await fetch(`${reg.url}/v2/${ok}/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202);
    });

    test('empty components and bad separators are 400 NAME_INVALID', async () => {
      for (const name of ['a//b', 'a/b/', '/a', '-a', 'a-', 'a..b', 'a___b', 'a/%00b', 'a b', 'a%20b', 'é']) {
        const res = await raw(reg.url, 'GET', `/v2/${name.replaceAll(' ', '%20').replaceAll('é', '%C3%A9')}/tags/list`);
        expectRawError(res, 400, 'NAME_INVALID');
      }
    });

    test('malformed percent-encoding is 400', async () => {
      const res = await raw(reg.url, 'GET', '/v2/a%E0%A4%A/tags/list');
      expectRawError(res, 400, 'NAME_INVALID');
    });
  });

  describe('repository names that contain route keywords', () => {
    test('blobs, uploads, manifests and tags work for names ending in blobs/uploads, manifests and tags', async () => {
      for (const repo of ['edge/blobs', 'edge/blobs/uploads', 'edge/manifests', 'edge/tags', 'edge/referrers', 'v2/v2']) {
        const data = Buffer.from(`route keywords ${repo}`);
        const url = await startUpload(reg.url, repo);
        assert.ok(url.pathname.startsWith(`/v2/${repo}/blobs/uploads/`), url.pathname);
        const status = await fetch(url);
        assert.equal(status.status, 204, repo);
        const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT', body: data });
        assert.equal(put.status, 201, repo);
        assert.equal(put.headers.get('location'), `/v2/${repo}/blobs/${digestOf(data)}`);
        const get = await fetch(`${reg.url}/v2/${repo}/blobs/${digestOf(data)}`);
        assert.equal(get.status, 200, repo);
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
        await pushBlob(reg.url, repo, EMPTY_CONFIG);
        const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] }));
        const putManifest = await fetch(`${reg.url}/v2/${repo}/manifests/list`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body: manifest });
        assert.equal(putManifest.status, 201, repo);
        const tags = await fetch(`${reg.url}/v2/${repo}/tags/list`);
        assert.equal(tags.status, 200, repo);
        assert.deepEqual(await tags.json(), { name: repo, tags: ['list'] });
        const referrers = await fetch(`${reg.url}/v2/${repo}/referrers/${digestOf(manifest)}`);
        assert.equal(referrers.status, 200, repo);
        await referrers.arrayBuffer();
      }
    });
  });

  describe('digests and references', () => {
    test('a traversal attempt in a digest is rejected with a 4xx, never served', async () => {
      for (const path of ['/v2/hostile/d/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd', '/v2/hostile/d/blobs/sha256%3A..', '/v2/hostile/d/manifests/sha256:..%2Fx']) {
        const res = await raw(reg.url, 'GET', path);
        assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
        assert.ok(JSON.parse(res.body.toString()).errors.length === 1);
      }
    });

    test('?digest= given twice on the closing PUT is 400 DIGEST_INVALID', async () => {
      const data = Buffer.from('twice');
      const url = await startUpload(reg.url, 'hostile/two-digests');
      const res = await fetch(`${url.href}?digest=${digestOf(data)}&digest=${unknownDigest('x')}`, { method: 'PUT', body: data });
      await expectError(res, 400, 'DIGEST_INVALID');
    });

    test('a garbage upload id is 404 BLOB_UPLOAD_UNKNOWN', async () => {
      for (const id of ['x', 'ffffffff-ffff-ffff-ffff-ffffffffffff', `${'a'.repeat(300)}`]) {
        await expectError(await fetch(`${reg.url}/v2/hostile/ids/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      }
    });
  });

  describe('Content-Range', () => {
    test('a malformed Content-Range is refused (400 or 416, BLOB_UPLOAD_INVALID) and the upload is unchanged', async () => {
      const url = await startUpload(reg.url, 'hostile/bad-range');
      for (const range of ['garbage', '5-2', 'bytes=abc', '-5', '0-', '0-9999999999999999999', '1e3-2e3']) {
        const res = await raw(reg.url, 'PATCH', url.pathname, { headers: { 'Content-Range': range, 'Content-Type': 'application/octet-stream' }, body: Buffer.from('0123456789') });
        assert.ok(res.status === 400 || res.status === 416, `${range}: ${res.status}`);
        assertErrorBody(res.body, 'BLOB_UPLOAD_INVALID');
      }
      const status = await fetch(url);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-0');
      const ok = await fetch(url, { method: 'PATCH', headers: { 'Content-Range': '0-9' }, body: '0123456789' });
      assert.equal(ok.status, 202);
      assert.equal(ok.headers.get('range'), '0-9');
    });

    test('a chunk longer than its Content-Range (no Content-Length) is 400 SIZE_INVALID', async () => {
      const url = await startUpload(reg.url, 'hostile/long-chunk');
      const target = new URL(reg.url);
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: target.hostname, port: target.port, method: 'PATCH', path: url.pathname, headers: { 'Content-Range': '0-9' }, agent: false }, (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end(Buffer.alloc(20, 1));
      });
      assert.equal(res.status, 400);
      assertErrorBody(res.body, 'SIZE_INVALID');
      await assertHealthy();
    });
  });

  describe('aborted uploads', () => {
    /** Sends `head` of a PATCH body, waits, then destroys the connection mid-body. */
    async function abortMidBody(path: string, head: Buffer, headers: Record<string, string | number>): Promise<void> {
      const target = new URL(reg.url);
      await new Promise<void>((resolve) => {
        const req = request({ host: target.hostname, port: target.port, method: 'PATCH', path, headers, agent: false });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.on('response', (res) => {
          res.resume();
        });
        req.write(head, () => {
          setTimeout(() => req.destroy(), 400);
        });
      });
    }

    /** Polls the upload status until it reports something past 0 (the server has noticed the abort). */
    async function settledOffset(url: URL): Promise<number> {
      let last = '';
      for (let i = 0; i < 50; i++) {
        const res = await fetch(url);
        assert.equal(res.status, 204, 'the session survives an aborted PATCH');
        const range = res.headers.get('range') ?? '';
        if (range !== '0-0' && range === last) return rangeEnd(range) + 1;
        last = range;
        await sleep(100);
      }
      assert.fail(`upload status never settled past 0-0 (last ${last})`);
    }

    test('a streamed PATCH aborted mid-body leaves the server healthy and the upload resumable', async () => {
      const data = seededBytes('hostile/abort-stream', 1024 * 1024);
      const url = await startUpload(reg.url, 'hostile/abort-stream');
      await abortMidBody(url.pathname, data.subarray(0, 256 * 1024), { 'Content-Type': 'application/octet-stream' });
      await assertHealthy();
      const offset = await settledOffset(url);
      assert.ok(offset > 0 && offset <= 256 * 1024, `offset ${offset}`);
      const resume = await fetch(url, { method: 'PATCH', headers: { 'Content-Range': `${offset}-${data.length - 1}` }, body: data.subarray(offset) });
      assert.equal(resume.status, 202);
      assert.equal(resume.headers.get('range'), `0-${data.length - 1}`);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      const get = await fetch(`${reg.url}/v2/hostile/abort-stream/blobs/${digestOf(data)}`);
      assert.equal(get.status, 200);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    });

    test('a PATCH with Content-Range and Content-Length aborted mid-body leaves the upload resumable', async () => {
      const data = seededBytes('hostile/abort-chunk', 768 * 1024);
      const url = await startUpload(reg.url, 'hostile/abort-chunk');
      const first = await fetch(url, { method: 'PATCH', headers: { 'Content-Range': `0-${256 * 1024 - 1}` }, body: data.subarray(0, 256 * 1024) });
      assert.equal(first.status, 202);
      await abortMidBody(url.pathname, data.subarray(256 * 1024, 384 * 1024), {
        'Content-Range': `${256 * 1024}-${data.length - 1}`,
        'Content-Length': data.length - 256 * 1024,
      });
      await assertHealthy();
      const offset = await settledOffset(url);
      assert.ok(offset >= 256 * 1024 && offset <= 384 * 1024, `offset ${offset}`);
      const resume = await fetch(url, { method: 'PATCH', headers: { 'Content-Range': `${offset}-${data.length - 1}` }, body: data.subarray(offset) });
      assert.equal(resume.status, 202);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      const get = await fetch(`${reg.url}/v2/hostile/abort-chunk/blobs/${digestOf(data)}`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    });

    test('a monolithic POST aborted mid-body stores nothing and the server stays healthy', async () => {
      const data = seededBytes('hostile/abort-mono', 512 * 1024);
      const target = new URL(reg.url);
      await new Promise<void>((resolve) => {
        const req = request({
          host: target.hostname,
          port: target.port,
          method: 'POST',
          path: `/v2/hostile/abort-mono/blobs/uploads/?digest=${digestOf(data)}`,
          headers: { 'Content-Length': data.length },
          agent: false,
        });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.write(data.subarray(0, 100_000), () => setTimeout(() => req.destroy(), 300));
      });
      await assertHealthy();
      await expectError(await fetch(`${reg.url}/v2/hostile/abort-mono/blobs/${digestOf(data)}`), 404, 'BLOB_UNKNOWN');
    });
  });

  describe('oversized and odd bodies', () => {
    test('a manifest body over 4 MiB sent chunked (no Content-Length) gets 413 and the server stays healthy', async () => {
      const body = Buffer.alloc(4 * 1024 * 1024 + 64 * 1024, 0x20);
      const res = await raw(reg.url, 'PUT', '/v2/hostile/huge/manifests/v1', {
        headers: { 'Content-Type': MediaTypes.ociManifest, 'Transfer-Encoding': 'chunked' },
        body,
      });
      assert.equal(res.status, 413);
      await assertHealthy();
    });

    test('a declared Content-Length over 4 MiB for a manifest is 413 without reading the body', async () => {
      const res = await raw(reg.url, 'PUT', '/v2/hostile/huge-declared/manifests/v1', {
        headers: { 'Content-Type': MediaTypes.ociManifest, 'Content-Length': 50 * 1024 * 1024 },
        body: Buffer.from('{}'),
      });
      assert.equal(res.status, 413);
      await assertHealthy();
    });

    test('a deeply nested JSON manifest is 400 MANIFEST_INVALID', async () => {
      const depth = 100_000;
      const body = `{"schemaVersion":2,"x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const res = await fetch(`${reg.url}/v2/hostile/nested/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body });
      await expectError(res, 400, 'MANIFEST_INVALID');
      await assertHealthy();
    });

    test('a non-numeric Content-Length is rejected with 400', async () => {
      // node:http refuses to send an invalid Content-Length, so write the request by hand.
      const { connect } = await import('node:net');
      const target = new URL(reg.url);
      const response = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(target.port), target.hostname, () => {
          socket.end('PATCH /v2/hostile/cl/blobs/uploads/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
        });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.match(response, /^HTTP\/1\.1 400 /);
      await assertHealthy();
    });

    test('an unknown query parameter is ignored', async () => {
      const res = await fetch(`${reg.url}/v2/?x=${'y'.repeat(2000)}`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    });
  });

  describe('concurrency', () => {
    test('two concurrent PATCHes claiming the same range: exactly one is accepted', async () => {
      const size = 4 * 1024 * 1024;
      const one = seededBytes('hostile/race-1', size);
      const two = seededBytes('hostile/race-2', size);
      const url = await startUpload(reg.url, 'hostile/race');
      const [a, b] = await Promise.all(
        [one, two].map((body) => fetch(url, { method: 'PATCH', headers: { 'Content-Range': `0-${size - 1}` }, body }).then(async (res) => {
          await res.arrayBuffer();
          return res.status;
        })),
      );
      assert.deepEqual([a, b].sort(), [202, 416], `statuses ${a}, ${b}`);
      const winner = a === 202 ? one : two;
      const put = await fetch(withDigest(url, digestOf(winner)), { method: 'PUT' });
      assert.equal(put.status, 201);
    });

    test('many concurrent pushes of the same blob all succeed', async () => {
      const data = seededBytes('hostile/same-blob', 300_000);
      const statuses = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          fetch(`${reg.url}/v2/hostile/same-blob-${i % 2}/blobs/uploads/?digest=${digestOf(data)}`, { method: 'POST', body: data }).then(async (res) => {
            await res.arrayBuffer();
            return res.status;
          }),
        ),
      );
      assert.deepEqual(statuses, Array(8).fill(201));
      for (const repo of ['hostile/same-blob-0', 'hostile/same-blob-1']) {
        const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digestOf(data)}`);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
      }
    });
  });

  test('the server is healthy after all of the above', async () => {
    await assertHealthy();
  });
});
