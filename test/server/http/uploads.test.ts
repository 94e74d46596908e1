import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../../src/digest/digest.ts';
import { seededBytes } from '../../../src/testing/images.ts';
import { pushBlob } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_SHA256, blobOf, expectError, expectRawError, raw, startUpload, unknownDigest, withDigest } from './helpers.ts';

const UUID = /^[0-9a-f-]{36}$/;

describe('blob uploads', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  async function readBlob(repo: string, digest: string): Promise<Buffer> {
    const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(res.status, 200, `GET ${repo}@${digest}`);
    return Buffer.from(await res.arrayBuffer());
  }

  async function patch(url: URL, body: Buffer, contentRange?: string): Promise<Response> {
    return fetch(url, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', ...(contentRange ? { 'Content-Range': contentRange } : {}) },
      body,
    });
  }

  async function status(url: URL): Promise<Response> {
    return fetch(url);
  }

  describe('POST /v2/<name>/blobs/uploads/ (end-4a)', () => {
    test('opens a session: 202, Location, Range 0-0, Docker-Upload-UUID', async () => {
      const res = await fetch(`${reg.url}/v2/uploads/open/blobs/uploads/`, { method: 'POST' });
      assert.equal(res.status, 202);
      const location = res.headers.get('location');
      assert.ok(location);
      const uuid = res.headers.get('docker-upload-uuid');
      assert.ok(uuid && UUID.test(uuid), `uuid ${uuid}`);
      assert.equal(res.headers.get('range'), '0-0');
      const resolved = new URL(location, reg.url);
      assert.ok(resolved.pathname.startsWith('/v2/uploads/open/blobs/uploads/'), resolved.pathname);
      assert.ok(resolved.pathname.includes(uuid));
      assert.equal((await res.arrayBuffer()).byteLength, 0);
    });

    test('each POST opens a distinct session', async () => {
      const a = await startUpload(reg.url, 'uploads/distinct');
      const b = await startUpload(reg.url, 'uploads/distinct');
      assert.notEqual(a.href, b.href);
    });

    test('POST without the trailing slash also opens a session', async () => {
      const res = await fetch(`${reg.url}/v2/uploads/noslash/blobs/uploads`, { method: 'POST' });
      assert.equal(res.status, 202);
      assert.ok(res.headers.get('location'));
    });
  });

  describe('monolithic POST ?digest= (end-4b)', () => {
    test('201 with Location /v2/<name>/blobs/<digest> and Docker-Content-Digest', async () => {
      const blob = blobOf(seededBytes('uploads/mono', 3000));
      const res = await fetch(`${reg.url}/v2/uploads/mono/blobs/uploads/?digest=${blob.descriptor.digest}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: blob.data,
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/uploads/mono/blobs/${blob.descriptor.digest}`);
      assert.equal(res.headers.get('docker-content-digest'), blob.descriptor.digest);
      assert.deepEqual(await readBlob('uploads/mono', blob.descriptor.digest), blob.data);
    });

    test('a body that does not hash to ?digest= is 400 DIGEST_INVALID and nothing is stored', async () => {
      const data = seededBytes('uploads/mono-bad', 100);
      const claimed = unknownDigest('uploads/mono-bad');
      const res = await fetch(`${reg.url}/v2/uploads/mono-bad/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: data });
      await expectError(res, 400, 'DIGEST_INVALID');
      await expectError(await fetch(`${reg.url}/v2/uploads/mono-bad/blobs/${claimed}`), 404, 'BLOB_UNKNOWN');
      await expectError(await fetch(`${reg.url}/v2/uploads/mono-bad/blobs/${digestOf(data)}`), 404, 'BLOB_UNKNOWN');
    });

    test('a malformed ?digest= is 400 DIGEST_INVALID', async () => {
      const res = await fetch(`${reg.url}/v2/uploads/mono-malformed/blobs/uploads/?digest=sha256:nothex`, { method: 'POST', body: 'abc' });
      await expectError(res, 400, 'DIGEST_INVALID');
    });

    test('a zero-byte blob (sha256 of empty) pushes fine', async () => {
      const res = await fetch(`${reg.url}/v2/uploads/zero-mono/blobs/uploads/?digest=${EMPTY_SHA256}`, { method: 'POST', body: Buffer.alloc(0) });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/uploads/zero-mono/blobs/${EMPTY_SHA256}`);
      const get = await fetch(`${reg.url}/v2/uploads/zero-mono/blobs/${EMPTY_SHA256}`);
      assert.equal(get.status, 200);
      assert.equal(get.headers.get('content-length'), '0');
      assert.equal((await get.arrayBuffer()).byteLength, 0);
    });
  });

  describe('POST then PUT (end-6)', () => {
    test('the whole blob in the closing PUT: 201 with Location and Docker-Content-Digest', async () => {
      const blob = blobOf(seededBytes('uploads/post-put', 2048));
      const url = await startUpload(reg.url, 'uploads/post-put');
      const res = await fetch(withDigest(url, blob.descriptor.digest), {
        method: 'PUT',
        headers: { 'Content-Type': 'application/octet-stream' },
        body: blob.data,
      });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/uploads/post-put/blobs/${blob.descriptor.digest}`);
      assert.equal(res.headers.get('docker-content-digest'), blob.descriptor.digest);
      assert.deepEqual(await readBlob('uploads/post-put', blob.descriptor.digest), blob.data);
      // The session is over.
      await expectError(await status(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    test('a zero-byte blob through POST + PUT with no body', async () => {
      const url = await startUpload(reg.url, 'uploads/zero-session');
      const res = await fetch(withDigest(url, EMPTY_SHA256), { method: 'PUT' });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/uploads/zero-session/blobs/${EMPTY_SHA256}`);
      assert.equal((await readBlob('uploads/zero-session', EMPTY_SHA256)).length, 0);
    });

    test('PUT without ?digest= is 400', async () => {
      const url = await startUpload(reg.url, 'uploads/no-digest');
      const res = await fetch(url, { method: 'PUT', body: 'data' });
      await expectError(res, 400, 'DIGEST_INVALID');
    });

    test('PUT with a malformed digest is 400 DIGEST_INVALID', async () => {
      const url = await startUpload(reg.url, 'uploads/malformed-digest');
      const res = await fetch(withDigest(url, 'sha256:1234'), { method: 'PUT', body: 'data' });
      await expectError(res, 400, 'DIGEST_INVALID');
    });

    test('a wrong digest at PUT is 400 DIGEST_INVALID, nothing is readable, and the session is gone', async () => {
      const data = seededBytes('uploads/wrong-digest', 500);
      const url = await startUpload(reg.url, 'uploads/wrong-digest');
      const first = await patch(url, data.subarray(0, 250), '0-249');
      assert.equal(first.status, 202);
      const claimed = unknownDigest('uploads/wrong-digest');
      const res = await fetch(withDigest(url, claimed), { method: 'PUT', body: data.subarray(250) });
      await expectError(res, 400, 'DIGEST_INVALID');
      await expectError(await fetch(`${reg.url}/v2/uploads/wrong-digest/blobs/${claimed}`), 404, 'BLOB_UNKNOWN');
      await expectError(await fetch(`${reg.url}/v2/uploads/wrong-digest/blobs/${digestOf(data)}`), 404, 'BLOB_UNKNOWN');
      await expectError(await status(url), 404, 'BLOB_UPLOAD_UNKNOWN');
      // Retrying the PUT with the right digest cannot resurrect it either.
      await expectError(await fetch(withDigest(url, digestOf(data)), { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('chunked PATCH with Content-Range (end-5)', () => {
    const data = seededBytes('uploads/chunked', 42);

    test('0-21 then 22-41 answer 202 with Range 0-21 then 0-41, and the PUT commits', async () => {
      let url = await startUpload(reg.url, 'uploads/chunked');
      const first = await patch(url, data.subarray(0, 22), '0-21');
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('range'), '0-21');
      assert.ok(first.headers.get('location'));
      assert.ok(UUID.test(first.headers.get('docker-upload-uuid') ?? ''));
      assert.equal(first.headers.get('docker-upload-uuid'), url.pathname.split('/').at(-1));
      url = new URL(first.headers.get('location')!, reg.url);

      const second = await patch(url, data.subarray(22), '22-41');
      assert.equal(second.status, 202);
      assert.equal(second.headers.get('range'), '0-41');
      url = new URL(second.headers.get('location')!, reg.url);

      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('location'), `/v2/uploads/chunked/blobs/${digestOf(data)}`);
      assert.equal(put.headers.get('docker-content-digest'), digestOf(data));
      assert.deepEqual(await readBlob('uploads/chunked', digestOf(data)), data);
    });

    test('an out-of-order first chunk (22-41 on a fresh upload) is 416 and the upload stays at 0', async () => {
      const url = await startUpload(reg.url, 'uploads/out-of-order');
      const res = await patch(url, data.subarray(22), '22-41');
      assert.equal(res.status, 416);
      await res.arrayBuffer();
      const now = await status(url);
      assert.equal(now.status, 204);
      assert.equal(now.headers.get('range'), '0-0');
      // The session is still usable from the start.
      const first = await patch(url, data.subarray(0, 22), '0-21');
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('range'), '0-21');
    });

    test('re-sending an already-accepted chunk is 416 and does not change the upload', async () => {
      const url = await startUpload(reg.url, 'uploads/resend');
      assert.equal((await patch(url, data.subarray(0, 22), '0-21')).status, 202);
      assert.equal((await patch(url, data.subarray(22), '22-41')).status, 202);
      const again = await patch(url, data.subarray(0, 22), '0-21');
      assert.equal(again.status, 416);
      await again.arrayBuffer();
      const overlap = await patch(url, data.subarray(22), '22-41');
      assert.equal(overlap.status, 416);
      await overlap.arrayBuffer();
      const now = await status(url);
      assert.equal(now.status, 204);
      assert.equal(now.headers.get('range'), '0-41');
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('uploads/resend', digestOf(data)), data);
    });

    test('a chunk that leaves a gap is 416', async () => {
      const url = await startUpload(reg.url, 'uploads/gap');
      assert.equal((await patch(url, data.subarray(0, 10), '0-9')).status, 202);
      const gap = await patch(url, data.subarray(20, 30), '20-29');
      assert.equal(gap.status, 416);
      await gap.arrayBuffer();
      assert.equal((await status(url)).headers.get('range'), '0-9');
    });

    test('a Content-Range with a total (bytes 0-9/42 form) is accepted', async () => {
      const url = await startUpload(reg.url, 'uploads/range-total');
      const res = await patch(url, data.subarray(0, 10), '0-9/42');
      assert.equal(res.status, 202);
      assert.equal(res.headers.get('range'), '0-9');
    });

    test('the closing PUT may carry the last chunk with its Content-Range', async () => {
      const url = await startUpload(reg.url, 'uploads/last-chunk-range');
      assert.equal((await patch(url, data.subarray(0, 22), '0-21')).status, 202);
      const put = await fetch(withDigest(url, digestOf(data)), {
        method: 'PUT',
        headers: { 'Content-Range': '22-41', 'Content-Type': 'application/octet-stream' },
        body: data.subarray(22),
      });
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('location'), `/v2/uploads/last-chunk-range/blobs/${digestOf(data)}`);
      assert.deepEqual(await readBlob('uploads/last-chunk-range', digestOf(data)), data);
    });

    test('the closing PUT may carry the last chunk without a Content-Range', async () => {
      const url = await startUpload(reg.url, 'uploads/last-chunk');
      assert.equal((await patch(url, data.subarray(0, 22), '0-21')).status, 202);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT', body: data.subarray(22) });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('uploads/last-chunk', digestOf(data)), data);
    });

    test('the closing PUT without a last chunk commits what the PATCHes sent', async () => {
      const url = await startUpload(reg.url, 'uploads/no-last-chunk');
      assert.equal((await patch(url, data, '0-41')).status, 202);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('uploads/no-last-chunk', digestOf(data)), data);
    });

    test('a closing PUT whose chunk is out of order is 416', async () => {
      const url = await startUpload(reg.url, 'uploads/last-chunk-bad-range');
      assert.equal((await patch(url, data.subarray(0, 22), '0-21')).status, 202);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT', headers: { 'Content-Range': '30-49' }, body: data.subarray(22) });
      assert.equal(put.status, 416);
      await put.arrayBuffer();
    });

    test('Content-Length that disagrees with Content-Range is 400 SIZE_INVALID', async () => {
      const url = await startUpload(reg.url, 'uploads/length-mismatch');
      const res = await raw(reg.url, 'PATCH', url.pathname, {
        headers: { 'Content-Range': '0-9', 'Content-Length': '5', 'Content-Type': 'application/octet-stream' },
        body: Buffer.from('abcde'),
      });
      expectRawError(res, 400, 'SIZE_INVALID');
      const now = await status(url);
      assert.equal(now.status, 204);
      assert.equal(now.headers.get('range'), '0-0');
    });

    test('a PATCH with a Content-Range but no body is 400 SIZE_INVALID', async () => {
      const url = await startUpload(reg.url, 'uploads/range-no-body');
      const res = await raw(reg.url, 'PATCH', url.pathname, { headers: { 'Content-Range': '0-9' } });
      expectRawError(res, 400, 'SIZE_INVALID');
      const ok = await patch(url, data.subarray(0, 10), '0-9');
      assert.equal(ok.status, 202);
      assert.equal(ok.headers.get('range'), '0-9');
    });
  });

  describe('streamed PATCH without Content-Range', () => {
    test('appends each body and reports the Range so far', async () => {
      const data = seededBytes('uploads/streamed', 300_000);
      let url = await startUpload(reg.url, 'uploads/streamed');
      const first = await patch(url, data.subarray(0, 100_000));
      assert.equal(first.status, 202);
      assert.equal(first.headers.get('range'), '0-99999');
      url = new URL(first.headers.get('location')!, reg.url);
      const second = await patch(url, data.subarray(100_000));
      assert.equal(second.status, 202);
      assert.equal(second.headers.get('range'), '0-299999');
      url = new URL(second.headers.get('location')!, reg.url);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('uploads/streamed', digestOf(data)), data);
    });

    test('a chunked-encoded stream (no Content-Length) is taken whole', async () => {
      const data = seededBytes('uploads/streamed-chunked', 200_000);
      const url = await startUpload(reg.url, 'uploads/streamed-chunked');
      const target = new URL(reg.url);
      const result = await new Promise<{ status: number; range: string | undefined }>((resolve, reject) => {
        const req = request({ host: target.hostname, port: target.port, method: 'PATCH', path: url.pathname, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, range: res.headers.range }));
        });
        req.on('error', reject);
        for (let offset = 0; offset < data.length; offset += 30_000) req.write(data.subarray(offset, offset + 30_000));
        req.end();
      });
      assert.equal(result.status, 202);
      assert.equal(result.range, `0-${data.length - 1}`);
      const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('uploads/streamed-chunked', digestOf(data)), data);
    });
  });

  describe('upload status GET (end-13)', () => {
    test('204 with Range, Location and Docker-Upload-UUID', async () => {
      const url = await startUpload(reg.url, 'uploads/status');
      const fresh = await status(url);
      assert.equal(fresh.status, 204);
      assert.equal(fresh.headers.get('range'), '0-0');
      assert.equal(new URL(fresh.headers.get('location') ?? '', reg.url).pathname, url.pathname);
      assert.equal(fresh.headers.get('docker-upload-uuid'), url.pathname.split('/').at(-1));
      assert.equal((await fresh.arrayBuffer()).byteLength, 0);

      assert.equal((await patch(url, seededBytes('uploads/status', 1000), '0-999')).status, 202);
      const later = await status(url);
      assert.equal(later.status, 204);
      assert.equal(later.headers.get('range'), '0-999');
      assert.ok(later.headers.get('location'));
    });

    test('an unknown upload id is 404 BLOB_UPLOAD_UNKNOWN', async () => {
      const res = await fetch(`${reg.url}/v2/uploads/status-unknown/blobs/uploads/00000000-0000-4000-8000-000000000000`);
      await expectError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
      const garbage = await fetch(`${reg.url}/v2/uploads/status-unknown/blobs/uploads/not-an-upload`);
      await expectError(garbage, 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  describe('DELETE on an upload URL', () => {
    test('204, then the session is unknown to status, PATCH and PUT', async () => {
      const url = await startUpload(reg.url, 'uploads/cancel');
      assert.equal((await patch(url, Buffer.from('hello'), '0-4')).status, 202);
      const res = await fetch(url, { method: 'DELETE' });
      assert.equal(res.status, 204);
      await expectError(await status(url), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(await patch(url, Buffer.from('world'), '5-9'), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(await fetch(withDigest(url, digestOf('hello')), { method: 'PUT' }), 404, 'BLOB_UPLOAD_UNKNOWN');
      await expectError(await fetch(url, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    });
  });

  test('a chunked upload of content already stored elsewhere commits and links it here', async () => {
    const data = seededBytes('uploads/dedupe', 5000);
    await pushBlob(reg.url, 'uploads/dedupe-a', blobOf(data));
    const url = await startUpload(reg.url, 'uploads/dedupe-b');
    assert.equal((await patch(url, data, `0-${data.length - 1}`)).status, 202);
    const put = await fetch(withDigest(url, digestOf(data)), { method: 'PUT' });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob('uploads/dedupe-b', digestOf(data)), data);
    assert.deepEqual(await readBlob('uploads/dedupe-a', digestOf(data)), data);
  });

  test('an upload id used under a different repository name is 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const url = await startUpload(reg.url, 'uploads/owner');
    const uuid = url.pathname.split('/').at(-1)!;
    const foreign = new URL(`/v2/uploads/intruder/blobs/uploads/${uuid}`, reg.url);
    await expectError(await status(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await patch(foreign, Buffer.from('abc'), '0-2'), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await fetch(withDigest(foreign, digestOf('abc')), { method: 'PUT', body: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await fetch(foreign, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    // The owner's session is untouched.
    const own = await status(url);
    assert.equal(own.status, 204);
    assert.equal(own.headers.get('range'), '0-0');
    await expectError(await fetch(`${reg.url}/v2/uploads/intruder/blobs/${digestOf('abc')}`), 404, 'BLOB_UNKNOWN');
  });

  describe('cross-repository mount (end-11)', () => {
    test('?mount=&from= with the blob in from: 201, Location in the target, then GET 200 there', async () => {
      const blob = blobOf(seededBytes('mount/source', 700));
      await pushBlob(reg.url, 'mount/source', blob);
      const res = await fetch(`${reg.url}/v2/mount/target/blobs/uploads/?mount=${blob.descriptor.digest}&from=mount/source`, { method: 'POST' });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/mount/target/blobs/${blob.descriptor.digest}`);
      assert.equal(res.headers.get('docker-content-digest'), blob.descriptor.digest);
      assert.deepEqual(await readBlob('mount/target', blob.descriptor.digest), blob.data);
    });

    test('from lacking the blob: 202 and a fresh upload session that works', async () => {
      const blob = blobOf(seededBytes('mount/lacking', 400));
      await pushBlob(reg.url, 'mount/has-it', blob);
      await pushBlob(reg.url, 'mount/lacks-it', blobOf('something else'));
      const res = await fetch(`${reg.url}/v2/mount/target2/blobs/uploads/?mount=${blob.descriptor.digest}&from=mount/lacks-it`, { method: 'POST' });
      assert.equal(res.status, 202);
      const location = res.headers.get('location');
      assert.ok(location);
      const url = new URL(location, reg.url);
      assert.ok(url.pathname.startsWith('/v2/mount/target2/blobs/uploads/'), url.pathname);
      assert.ok(UUID.test(res.headers.get('docker-upload-uuid') ?? ''));
      assert.equal(res.headers.get('range'), '0-0');
      // Not mounted.
      await expectError(await fetch(`${reg.url}/v2/mount/target2/blobs/${blob.descriptor.digest}`), 404, 'BLOB_UNKNOWN');
      const put = await fetch(withDigest(url, blob.descriptor.digest), { method: 'PUT', body: blob.data });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob('mount/target2', blob.descriptor.digest), blob.data);
    });

    test('from naming a repository that does not exist: 202', async () => {
      const blob = blobOf(seededBytes('mount/nowhere', 64));
      await pushBlob(reg.url, 'mount/elsewhere', blob);
      const res = await fetch(`${reg.url}/v2/mount/target3/blobs/uploads/?mount=${blob.descriptor.digest}&from=mount/does-not-exist`, { method: 'POST' });
      assert.equal(res.status, 202);
      assert.ok(res.headers.get('location'));
    });

    test('mount without from of a blob existing anywhere in the registry: 201 (automatic mount)', async () => {
      const blob = blobOf(seededBytes('mount/auto', 128));
      await pushBlob(reg.url, 'mount/auto-source', blob);
      const res = await fetch(`${reg.url}/v2/mount/auto-target/blobs/uploads/?mount=${blob.descriptor.digest}`, { method: 'POST' });
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('location'), `/v2/mount/auto-target/blobs/${blob.descriptor.digest}`);
      assert.deepEqual(await readBlob('mount/auto-target', blob.descriptor.digest), blob.data);
    });

    test('mount of an unknown digest without from: 202 and a new session', async () => {
      const res = await fetch(`${reg.url}/v2/mount/unknown-target/blobs/uploads/?mount=${unknownDigest('mount/unknown')}`, { method: 'POST' });
      assert.equal(res.status, 202);
      const location = res.headers.get('location');
      assert.ok(location);
      const now = await status(new URL(location, reg.url));
      assert.equal(now.status, 204);
    });

    test('mount of a malformed digest falls back to a new session (202)', async () => {
      const res = await fetch(`${reg.url}/v2/mount/bad-digest/blobs/uploads/?mount=sha256:xyz&from=mount/source`, { method: 'POST' });
      assert.equal(res.status, 202);
      assert.ok(res.headers.get('location'));
    });
  });
});
