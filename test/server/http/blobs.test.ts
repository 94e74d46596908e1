import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../../src/digest/digest.ts';
import { seededBytes } from '../../../src/testing/images.ts';
import { pushBlob } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_SHA256, blobOf, captureEscapes, expectError, raw, sleep, unknownDigest } from './helpers.ts';

describe('blobs: HEAD and GET /v2/<name>/blobs/<digest>', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  test('GET returns 200 with the bytes, Docker-Content-Digest and Content-Length', async () => {
    const blob = blobOf(seededBytes('blobs/get', 5000));
    await pushBlob(reg.url, 'blobs/get', blob);
    const res = await fetch(`${reg.url}/v2/blobs/get/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), blob.descriptor.digest);
    assert.equal(res.headers.get('content-length'), '5000');
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  });

  test('HEAD returns 200 with Docker-Content-Digest and Content-Length and no body', async () => {
    const blob = blobOf(seededBytes('blobs/head', 1234));
    await pushBlob(reg.url, 'blobs/head', blob);
    const res = await raw(reg.url, 'HEAD', `/v2/blobs/head/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-content-digest'], blob.descriptor.digest);
    assert.equal(res.headers['content-length'], '1234');
    assert.equal(res.body.length, 0);
  });

  test('GET of an unknown blob is 404 BLOB_UNKNOWN with the spec error body', async () => {
    const res = await fetch(`${reg.url}/v2/blobs/unknown/blobs/${unknownDigest('blobs/unknown')}`);
    const entry = await expectError(res, 404, 'BLOB_UNKNOWN');
    assert.ok(entry.message.length > 0);
  });

  test('HEAD of an unknown blob is 404 with no body', async () => {
    const res = await raw(reg.url, 'HEAD', `/v2/blobs/unknown-head/blobs/${unknownDigest('blobs/unknown-head')}`);
    assert.equal(res.status, 404);
    assert.equal(res.body.length, 0);
  });

  test('a blob pushed to one repository is not readable through another until mounted', async () => {
    const blob = blobOf(seededBytes('blobs/isolation', 300));
    await pushBlob(reg.url, 'blobs/isolation-a', blob);
    const other = `${reg.url}/v2/blobs/isolation-b/blobs/${blob.descriptor.digest}`;
    await expectError(await fetch(other), 404, 'BLOB_UNKNOWN');
    const head = await fetch(other, { method: 'HEAD' });
    assert.equal(head.status, 404);

    const mount = await fetch(`${reg.url}/v2/blobs/isolation-b/blobs/uploads/?mount=${blob.descriptor.digest}&from=blobs/isolation-a`, { method: 'POST' });
    assert.equal(mount.status, 201);
    const res = await fetch(other);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  });

  describe('Range requests', () => {
    const data = seededBytes('blobs/range', 42);
    const blob = blobOf(data);
    const path = () => `${reg.url}/v2/blobs/range/blobs/${blob.descriptor.digest}`;
    before(async () => {
      await pushBlob(reg.url, 'blobs/range', blob);
    });

    test('bytes=0-9 gives 206 with Content-Range and the slice', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=0-9' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 0-9/42');
      assert.equal(res.headers.get('content-length'), '10');
      assert.equal(res.headers.get('docker-content-digest'), blob.descriptor.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(0, 10));
    });

    test('bytes=10-20 gives the middle slice', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=10-20' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 10-20/42');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(10, 21));
    });

    test('bytes=-3 gives the last three bytes', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=-3' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 39-41/42');
      assert.equal(res.headers.get('content-length'), '3');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(39));
    });

    test('bytes=5- gives everything from offset 5', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=5-' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 5-41/42');
      assert.equal(res.headers.get('content-length'), '37');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(5));
    });

    test('an end past the blob is clamped to its last byte', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=40-1000' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 40-41/42');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data.subarray(40));
    });

    test('a suffix longer than the blob gives the whole blob as 206', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=-100' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers.get('content-range'), 'bytes 0-41/42');
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    });

    test('a start at or past the end is 416 with Content-Range: bytes */size', async () => {
      for (const range of ['bytes=42-', 'bytes=100-200', 'bytes=-0']) {
        const res = await fetch(path(), { headers: { Range: range } });
        assert.equal(res.status, 416, range);
        assert.equal(res.headers.get('content-range'), 'bytes */42', range);
        await res.arrayBuffer();
      }
    });

    test('HEAD with a Range answers 206 with the range headers and no body', async () => {
      const res = await raw(reg.url, 'HEAD', `/v2/blobs/range/blobs/${blob.descriptor.digest}`, { headers: { Range: 'bytes=2-5' } });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 2-5/42');
      assert.equal(res.headers['content-length'], '4');
      assert.equal(res.body.length, 0);
    });

    test('a syntactically invalid range (end before start) is ignored: 200 with the whole blob', async () => {
      const res = await fetch(path(), { headers: { Range: 'bytes=5-2' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-range'), null);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    });

    test('a Range in another unit is ignored: 200 with the whole blob', async () => {
      const res = await fetch(path(), { headers: { Range: 'items=0-3' } });
      assert.equal(res.status, 200);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
    });
  });

  test('a zero-byte blob is served with Content-Length 0, and any range on it is unsatisfiable', async () => {
    const res = await fetch(`${reg.url}/v2/blobs/empty/blobs/uploads/?digest=${EMPTY_SHA256}`, { method: 'POST', body: Buffer.alloc(0) });
    assert.equal(res.status, 201);
    const get = await fetch(`${reg.url}/v2/blobs/empty/blobs/${EMPTY_SHA256}`);
    assert.equal(get.status, 200);
    assert.equal(get.headers.get('content-length'), '0');
    assert.equal(get.headers.get('docker-content-digest'), EMPTY_SHA256);
    assert.equal((await get.arrayBuffer()).byteLength, 0);
    const ranged = await fetch(`${reg.url}/v2/blobs/empty/blobs/${EMPTY_SHA256}`, { headers: { Range: 'bytes=0-' } });
    assert.equal(ranged.status, 416);
    assert.equal(ranged.headers.get('content-range'), 'bytes */0');
    await ranged.arrayBuffer();
  });

  describe('large blobs and concurrent downloads', () => {
    const size = 3 * 1024 * 1024 + 12345;
    const blobs = Array.from({ length: 6 }, (_, i) => blobOf(seededBytes(`blobs/large/${i}`, size)));
    before(async () => {
      for (const blob of blobs) await pushBlob(reg.url, 'blobs/large', blob);
    });

    test('concurrent whole and ranged downloads each get exactly their own bytes', async () => {
      const jobs = blobs.flatMap((blob) => [
        fetch(`${reg.url}/v2/blobs/large/blobs/${blob.descriptor.digest}`).then(async (res) => {
          assert.equal(res.status, 200);
          const body = Buffer.from(await res.arrayBuffer());
          assert.equal(body.length, size);
          assert.ok(body.equals(blob.data), `whole body of ${blob.descriptor.digest}`);
        }),
        fetch(`${reg.url}/v2/blobs/large/blobs/${blob.descriptor.digest}`, { headers: { Range: 'bytes=1000000-2999999' } }).then(async (res) => {
          assert.equal(res.status, 206);
          const body = Buffer.from(await res.arrayBuffer());
          assert.ok(body.equals(blob.data.subarray(1_000_000, 3_000_000)), `range of ${blob.descriptor.digest}`);
        }),
      ]);
      await Promise.all(jobs);
    });

    test('pipelined GETs on one connection are answered in order with the right bytes', async () => {
      const [a, b] = [blobs[0]!, blobs[1]!];
      const target = new URL(reg.url);
      const received = await new Promise<Buffer>((resolve, reject) => {
        const socket = connect(Number(target.port), target.hostname, () => {
          socket.write(
            `GET /v2/blobs/large/blobs/${a.descriptor.digest} HTTP/1.1\r\nHost: x\r\n\r\n` +
              `GET /v2/blobs/large/blobs/${b.descriptor.digest} HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\n\r\n` +
              `GET /v2/blobs/large/blobs/${a.descriptor.digest} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          );
        });
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => resolve(Buffer.concat(chunks)));
        socket.on('error', reject);
      });
      const bodies: { status: number; body: Buffer }[] = [];
      let rest = received;
      while (rest.length > 0) {
        const headerEnd = rest.indexOf('\r\n\r\n');
        assert.ok(headerEnd > 0);
        const head = rest.subarray(0, headerEnd).toString();
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1]);
        bodies.push({ status, body: rest.subarray(headerEnd + 4, headerEnd + 4 + length) });
        rest = rest.subarray(headerEnd + 4 + length);
      }
      assert.deepEqual(
        bodies.map((r) => r.status),
        [200, 206, 200],
      );
      assert.ok(bodies[0]!.body.equals(a.data));
      assert.ok(bodies[1]!.body.equals(b.data.subarray(10, 20)));
      assert.ok(bodies[2]!.body.equals(a.data));
    });

    test('a client that aborts a large download leaves the server healthy', async () => {
      const escapes = captureEscapes();
      const target = new URL(reg.url);
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve) => {
          const req = request({ host: target.hostname, port: target.port, path: `/v2/blobs/large/blobs/${blobs[i]!.descriptor.digest}`, agent: false }, (res) => {
            res.once('data', () => res.destroy());
            res.on('close', () => resolve());
          });
          req.on('error', () => resolve());
          req.end();
        });
      }
      await sleep(200);
      const escaped = escapes.take();
      escapes.dispose();
      assert.deepEqual(escaped, [], 'the server let an error escape (a real skiff serve would exit)');
      const ping = await fetch(`${reg.url}/v2/`);
      assert.equal(ping.status, 200);
      await ping.arrayBuffer();
      const res = await fetch(`${reg.url}/v2/blobs/large/blobs/${blobs[5]!.descriptor.digest}`);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(blobs[5]!.data));
    });
  });

  test('an invalid digest is 400 DIGEST_INVALID', async () => {
    for (const digest of ['sha256:abc', 'sha256:' + 'A'.repeat(64), 'md5:d41d8cd98f00b204e9800998ecf8427e', 'notadigest', `sha256:${'g'.repeat(64)}`]) {
      const res = await fetch(`${reg.url}/v2/blobs/invalid/blobs/${digest}`);
      await expectError(res, 400, 'DIGEST_INVALID');
    }
    const head = await raw(reg.url, 'HEAD', '/v2/blobs/invalid/blobs/sha256:abc');
    assert.equal(head.status, 400);
  });

  test('a sha512 blob can be pushed and read back', async () => {
    const data = seededBytes('blobs/sha512', 200);
    const digest = digestOf(data, 'sha512');
    const put = await fetch(`${reg.url}/v2/blobs/sha512/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
    assert.equal(put.status, 201);
    const res = await fetch(`${reg.url}/v2/blobs/sha512/blobs/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
  });
});
