import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BulkGetter, type BulkBody } from '../../src/client/bulk-get.ts';
import { ChunkedDecoder } from '../../src/client/chunked-decoder.ts';
import { MalformedResponseError, parseResponseHead, requestHead } from '../../src/client/http1-head.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { StalledError } from '../../src/client/stalled-error.ts';
import { NodeHttpTransport, usesEnvProxy } from '../../src/client/transport.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { seededBytes } from '../../src/testing/images.ts';
import { makeTestCertificate } from '../../src/testing/tls-cert.ts';

/**
 * The hand-written HTTP/1.1 client for blob bodies (bulk-get.ts), against raw TCP servers that
 * write exactly the bytes each test needs: framings, heads split anywhere, keep-alive, broken and
 * stalled connections, and the RegistryClient's resume over it with blobs above its 1 MiB threshold.
 */

const servers: Server[] = [];
const sockets = new Set<Socket>();

/** A raw server: `onRequest` gets each request head (as text) and the socket to answer on. */
async function rawServer(onRequest: (head: string, socket: Socket, connection: number) => void): Promise<{ origin: string; connections: () => number; requests: string[] }> {
  let connections = 0;
  const requests: string[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const connection = ++connections;
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString('latin1');
      let end;
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const head = pending.slice(0, end + 4);
        pending = pending.slice(end + 4);
        requests.push(head);
        onRequest(head, socket, connection);
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections, requests };
}

after(() => {
  for (const socket of sockets) socket.destroy();
  for (const server of servers) server.close();
});

const options = { connectTimeoutMs: 2000, idleTimeoutMs: 2000 };

async function readAll(body: BulkBody): Promise<{ bytes: Buffer; chunks: number; largest: number }> {
  const parts: Buffer[] = [];
  let largest = 0;
  for await (const chunk of body) {
    parts.push(chunk as Buffer);
    largest = Math.max(largest, (chunk as Buffer).length);
  }
  return { bytes: Buffer.concat(parts), chunks: parts.length, largest };
}

function get(getter: BulkGetter, origin: string, path = '/blob', headers: Record<string, string> = {}, signal?: AbortSignal) {
  return getter.get({ origin, path, headers, describe: `GET ${path}`, ...(signal ? { signal } : {}) });
}

function chunked(data: Buffer, sizes: number[]): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = Math.min(sizes[i % sizes.length]!, data.length - at);
    parts.push(Buffer.from(`${size.toString(16)}${i % 2 ? ';ext=1' : ''}\r\n`), data.subarray(at, at + size), Buffer.from('\r\n'));
    at += size;
  }
  parts.push(Buffer.from('0\r\nX-Trailer: yes\r\n\r\n'));
  return Buffer.concat(parts);
}

describe('response heads and chunked bodies', () => {
  test('framing: Content-Length, chunked (which wins over a length), until close, none for 204/304', () => {
    const head = (text: string) => parseResponseHead(Buffer.from(`${text}\r\n\r\n`, 'latin1'));
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nContent-Length: 12').framing, { kind: 'length', length: 12 });
    assert.equal(head('HTTP/1.1 200 OK\r\nContent-Length: 12').reusable, true);
    const both = head('HTTP/1.1 200 OK\r\nContent-Length: 12\r\nTransfer-Encoding: chunked');
    assert.deepEqual(both.framing, { kind: 'chunked' });
    assert.equal(both.reusable, false, 'a response with both fields ends its connection');
    assert.deepEqual(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip').framing, { kind: 'close' });
    assert.deepEqual(head('HTTP/1.1 200 OK').framing, { kind: 'close' });
    assert.deepEqual(head('HTTP/1.1 204 No Content').framing, { kind: 'none' });
    assert.deepEqual(head('HTTP/1.1 304 Not Modified\r\nContent-Length: 9').framing, { kind: 'none' });
    assert.equal(head('HTTP/1.0 200 OK\r\nContent-Length: 1').reusable, false);
    assert.equal(head('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1').reusable, false);
    const many = head('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="a"\r\nwww-authenticate: Basic\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0');
    assert.equal(many.statusCode, 401);
    assert.equal(many.headers['www-authenticate'], 'Bearer realm="a", Basic');
    assert.deepEqual(many.headers['set-cookie'], ['a=1', 'b=2']);
  });

  test('a HEAD answer has no body whatever its Content-Length; repeated fields merge as node:http merges them', () => {
    const head = (text: string, method: 'GET' | 'HEAD') => parseResponseHead(Buffer.from(`${text}\r\n\r\n`, 'latin1'), method);
    const answer = head('HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nDocker-Content-Digest: sha256:ab', 'HEAD');
    assert.deepEqual(answer.framing, { kind: 'none' });
    assert.equal(answer.reusable, true);
    assert.equal(answer.headers['content-length'], '1234');
    assert.deepEqual(head('HTTP/1.1 200 OK', 'HEAD'), { statusCode: 200, headers: {}, framing: { kind: 'none' }, reusable: true }, 'no length: still no body, and the connection stays usable');
    const repeated = head('HTTP/1.1 307 Temporary Redirect\r\nLocation: /first\r\nLocation: /second\r\nContent-Type: a/b\r\nContent-Type: c/d\r\nX-Many: 1\r\nX-Many: 2\r\nContent-Length: 0', 'GET');
    assert.equal(repeated.headers.location, '/first');
    assert.equal(repeated.headers['content-type'], 'a/b');
    assert.equal(repeated.headers['x-many'], '1, 2');
  });

  test('malformed heads are refused with a reason', () => {
    const bad = (text: string, reason: RegExp) => assert.throws(() => parseResponseHead(Buffer.from(`${text}\r\n\r\n`, 'latin1')), (error: Error) => error instanceof MalformedResponseError && reason.test(error.message));
    bad('HTTP/2 200', /status line/);
    bad('ICY 200 OK', /status line/);
    bad('HTTP/1.1 200 OK\r\nBad Header: x', /header line/);
    bad('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2', /two different Content-Length/);
    bad('HTTP/1.1 200 OK\r\nContent-Length: -1', /Content-Length/);
  });

  test('a request head never carries an injected line', () => {
    assert.equal(requestHead('GET', '/v2/a/blobs/x?ns=b', '[::1]:5000', { range: 'bytes=1-' }), 'GET /v2/a/blobs/x?ns=b HTTP/1.1\r\nHost: [::1]:5000\r\nrange: bytes=1-\r\n\r\n');
    assert.throws(() => requestHead('GET', '/x', 'h', { authorization: 'Bearer a\r\nX-Evil: 1' }), /invalid character in header authorization/);
    assert.throws(() => requestHead('GET', '/x y', 'h', {}), /not an absolute path/);
    assert.throws(() => requestHead('GET', '/x', 'h', { 'bad name': 'v' }), /invalid header name/);
  });

  test('the chunked decoder takes its input split at every byte', () => {
    const data = seededBytes('chunked-split', 3000);
    const encoded = chunked(data, [1, 700, 16, 999]);
    for (const step of [1, 2, 7, 64, encoded.length]) {
      const decoder = new ChunkedDecoder();
      const out: Buffer[] = [];
      let used = 0;
      for (let at = 0; at < encoded.length; at += step) used += decoder.feed(encoded.subarray(at, at + step), (piece) => out.push(Buffer.from(piece)));
      assert.equal(decoder.done, true);
      assert.equal(used, encoded.length);
      assert.ok(Buffer.concat(out).equals(data), `step ${step}`);
    }
    const trailing = new ChunkedDecoder();
    assert.equal(trailing.feed(Buffer.from('1\r\na\r\n0\r\n\r\nEXTRA'), () => undefined), 11, 'bytes past the body are not consumed');
    assert.throws(() => new ChunkedDecoder().feed(Buffer.from('zz\r\n'), () => undefined), /chunk size/);
    assert.throws(() => new ChunkedDecoder().feed(Buffer.from('1\r\nab\r\n'), () => undefined), /longer than its size/);
  });
});

describe('BulkGetter against raw servers', () => {
  test('a 5 MiB Content-Length body arrives whole, in chunks of at most 1 MiB, and the connection is reused', async () => {
    const data = seededBytes('bulk-length', 5 * 1024 * 1024 + 17);
    const server = await rawServer((_head, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\nDocker-Content-Digest: x\r\n\r\n`);
      socket.write(data);
    });
    const getter = new BulkGetter(options);
    try {
      for (let i = 0; i < 3; i++) {
        const response = await get(getter, server.origin);
        assert.equal(response.statusCode, 200);
        assert.equal(response.headers['docker-content-digest'], 'x');
        const { bytes, largest } = await readAll(response.body);
        assert.ok(bytes.equals(data));
        assert.ok(largest <= 1024 * 1024, `largest chunk ${largest}`);
      }
      assert.equal(server.connections(), 1, 'one keep-alive connection for three GETs');
      assert.match(server.requests[0]!, /^GET \/blob HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    } finally {
      getter.close();
    }
  });

  test('a chunked body with extensions and trailers, its head split byte by byte after a 100 Continue', async () => {
    const data = seededBytes('bulk-chunked', 1_500_000);
    const server = await rawServer(async (_head, socket) => {
      const head = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (const byte of head) {
        socket.write(Buffer.of(byte));
        await new Promise((resolve) => setImmediate(resolve));
      }
      socket.write(chunked(data, [65_536, 3, 1_000_000, 77]));
    });
    const getter = new BulkGetter(options);
    try {
      for (let i = 0; i < 2; i++) {
        const response = await get(getter, server.origin);
        assert.equal(response.statusCode, 200);
        assert.ok((await readAll(response.body)).bytes.equals(data));
      }
      assert.equal(server.connections(), 1);
    } finally {
      getter.close();
    }
  });

  test('a body that ends with the connection is read to the close, which is not reused', async () => {
    const data = seededBytes('bulk-close', 2_000_000);
    const server = await rawServer((_head, socket) => {
      socket.end(Buffer.concat([Buffer.from('HTTP/1.0 200 OK\r\n\r\n'), data]));
    });
    const getter = new BulkGetter(options);
    try {
      assert.ok((await readAll((await get(getter, server.origin)).body)).bytes.equals(data));
      assert.ok((await readAll((await get(getter, server.origin)).body)).bytes.equals(data));
      assert.equal(server.connections(), 2);
    } finally {
      getter.close();
    }
  });

  test('bytes past the body end the connection instead of answering the next request', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz'));
    const getter = new BulkGetter(options);
    try {
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.toString(), 'abc');
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.toString(), 'abc');
      assert.equal(server.connections(), 2);
    } finally {
      getter.close();
    }
  });

  test('an idle connection the server closed is replaced without an error; a fresh one that fails is an error', async () => {
    const server = await rawServer((_head, socket, connection) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      if (connection === 1) setTimeout(() => socket.destroy(), 20);
    });
    const getter = new BulkGetter(options);
    try {
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.toString(), 'ok');
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.toString(), 'ok');
      assert.equal(server.connections(), 2);
      const hangup = await rawServer((_head, socket) => socket.destroy());
      await assert.rejects(get(getter, hangup.origin), { code: 'ECONNRESET', message: 'socket hang up' });
      assert.equal(hangup.connections(), 1, 'a fresh connection is not tried twice');
    } finally {
      getter.close();
    }
  });

  test('a body cut short fails with "aborted" (ECONNRESET); a malformed or oversized head rejects', async () => {
    const cut = await rawServer((_head, socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n');
      socket.write(Buffer.alloc(100_000));
      setTimeout(() => socket.destroy(), 20);
    });
    const getter = new BulkGetter(options);
    try {
      const response = await get(getter, cut.origin);
      await assert.rejects(readAll(response.body), { code: 'ECONNRESET', message: 'aborted' });
      assert.ok(response.body.received >= 100_000 && !response.body.complete);
      const malformed = await rawServer((_head, socket) => socket.write('HTTP/1.1 2000 OK\r\n\r\n'));
      await assert.rejects(get(getter, malformed.origin), MalformedResponseError);
      const huge = await rawServer((_head, socket) => socket.write(`HTTP/1.1 200 OK\r\n${'X-Filler: y\r\n'.repeat(10_000)}`));
      await assert.rejects(get(getter, huge.origin), { code: 'HPE_HEADER_OVERFLOW' });
    } finally {
      getter.close();
    }
  });

  test('a slow reader pauses the socket: the body buffers a few MiB, not the whole blob', async () => {
    const size = 64 * 1024 * 1024;
    let sent = 0;
    const server = await rawServer((_head, socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`);
      const block = Buffer.alloc(1024 * 1024, 7);
      const pump = () => {
        while (sent < size) {
          sent += block.length;
          if (!socket.write(block)) return void socket.once('drain', pump);
        }
      };
      pump();
    });
    const getter = new BulkGetter(options);
    try {
      const response = await get(getter, server.origin);
      let received = 0;
      let mostBuffered = 0;
      for await (const chunk of response.body) {
        received += (chunk as Buffer).length;
        // Read off the socket but not yet by us: what the body holds (object mode counts chunks, not bytes).
        mostBuffered = Math.max(mostBuffered, response.body.received - received);
        if (received < 8 * 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      assert.equal(received, size);
      assert.ok(mostBuffered > 0, 'the reader did fall behind');
      assert.ok(mostBuffered <= 6 * 1024 * 1024, `buffered ${mostBuffered} bytes`);
      // A reader behind at the last push of a body (all of it read slowly): the parked connection still reads the next answer.
      sent = 0;
      const again = await get(getter, server.origin);
      let total = 0;
      for await (const chunk of again.body) {
        total += (chunk as Buffer).length;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.equal(total, size);
      sent = 0;
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.length, size);
      assert.equal(server.connections(), 1);
    } finally {
      getter.close();
    }
  });

  test('an abort before the head rejects with its reason; during the body it destroys the body only', async () => {
    const silent = await rawServer(() => undefined);
    const getter = new BulkGetter(options);
    try {
      const early = new AbortController();
      const pending = get(getter, silent.origin, '/blob', {}, early.signal);
      setTimeout(() => early.abort(new Error('stop now')), 30);
      await assert.rejects(pending, /stop now/);

      const streaming = await rawServer((_head, socket) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n');
        socket.write(Buffer.alloc(50_000));
      });
      const late = new AbortController();
      const response = await get(getter, streaming.origin, '/blob', {}, late.signal);
      setTimeout(() => late.abort(new Error('cancelled mid-body')), 30);
      await assert.rejects(readAll(response.body), /cancelled mid-body/);
    } finally {
      getter.close();
    }
  });

  test('a server that sends a head and then nothing is stalled after the idle timeout', async () => {
    const server = await rawServer((_head, socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n'));
    const getter = new BulkGetter({ ...options, idleTimeoutMs: 150 });
    try {
      const response = await get(getter, server.origin);
      await assert.rejects(readAll(response.body), (error: Error) => error instanceof StalledError && /sent nothing for 0\.15 s \(stalled\)/.test(error.message));
    } finally {
      getter.close();
    }
  });

  test('over TLS, with the certificate authority given', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-bulk-tls-'));
    const { cert, key } = await makeTestCertificate(dir);
    const data = seededBytes('bulk-tls', 3 * 1024 * 1024);
    const server = createHttpsServer({ cert, key }, (_req, res) => void res.writeHead(200, { 'content-length': data.length }).end(data));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const getter = new BulkGetter({ ...options, ca: [cert] });
    try {
      const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
      assert.ok((await readAll((await get(getter, origin)).body)).bytes.equals(data));
      const untrusted = new BulkGetter(options);
      await assert.rejects(get(untrusted, origin), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
      untrusted.close();
    } finally {
      getter.close();
      server.closeAllConnections();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('BulkGetter for small answers (copyBodies, a connection limit) and HEAD', () => {
  test('a HEAD reads no body and leaves the connection for the next request', async () => {
    const server = await rawServer((head, socket) => {
      if (head.startsWith('HEAD ')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nDocker-Content-Digest: sha256:aa\r\n\r\n');
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    const getter = new BulkGetter({ ...options, copyBodies: true });
    try {
      const answer = await getter.get({ method: 'HEAD', origin: server.origin, path: '/v2/a/manifests/1', headers: {}, describe: 'HEAD /v2/a/manifests/1' });
      assert.equal(answer.headers['content-length'], '5000');
      assert.equal((await readAll(answer.body)).bytes.length, 0);
      assert.equal((await readAll((await get(getter, server.origin)).body)).bytes.toString(), 'ok');
      assert.equal(server.connections(), 1);
      assert.match(server.requests[0]!, /^HEAD \/v2\/a\/manifests\/1 HTTP\/1\.1\r\n/);
    } finally {
      getter.close();
    }
  });

  test('copied bodies stay whole while the connection reads the next answers into the same buffer', async () => {
    let n = 0;
    const server = await rawServer((_head, socket) => {
      const body = Buffer.alloc(3000 + n, 97 + (n++ % 26));
      // The head byte by byte for one answer: a head spread over reads is kept until it is whole.
      const answer = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
      if (n === 2) {
        let at = 0;
        const drip = () => {
          socket.write(answer.subarray(at, at + 1));
          if (++at < answer.length && at < 60) setTimeout(drip, 1);
          else socket.write(answer.subarray(at));
        };
        drip();
      } else socket.write(answer);
    });
    const getter = new BulkGetter({ ...options, copyBodies: true });
    try {
      const kept: Buffer[] = [];
      for (let i = 0; i < 6; i++) kept.push((await readAll((await get(getter, server.origin)).body)).bytes);
      kept.forEach((bytes, i) => assert.ok(bytes.equals(Buffer.alloc(3000 + i, 97 + i)), `answer ${i} intact after later reads`));
      assert.equal(server.connections(), 1);
    } finally {
      getter.close();
    }
  });

  test('at most maxConnectionsPerOrigin connections at once: the rest wait their turn, and an abort while waiting takes none', async () => {
    let open = 0;
    let most = 0;
    const server = await rawServer((_head, socket) => {
      open++;
      most = Math.max(most, open);
      setTimeout(() => {
        open--;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }, 30);
    });
    const getter = new BulkGetter({ ...options, copyBodies: true, maxConnectionsPerOrigin: 2, idlePerOrigin: 2 });
    try {
      const all = Array.from({ length: 6 }, (_, i) => get(getter, server.origin, `/n${i}`).then(async (r) => (await readAll(r.body)).bytes.toString()));
      const aborted = new AbortController();
      const waiting = get(getter, server.origin, '/late', {}, aborted.signal);
      await new Promise((resolve) => setTimeout(resolve, 5));
      aborted.abort(new Error('no longer wanted'));
      await assert.rejects(waiting, /no longer wanted/);
      assert.deepEqual(await Promise.all(all), Array(6).fill('ok'));
      assert.equal(most, 2);
      assert.equal(server.connections(), 2);
      assert.ok(!server.requests.some((head) => head.startsWith('GET /late ')), 'the aborted request was never sent');
    } finally {
      getter.close();
    }
  });
});

describe('RegistryClient blobs of 1 MiB and more go through the bulk client', () => {
  test('unless node:http goes through a proxy from the environment, which the bulk client does not speak', () => {
    assert.equal(usesEnvProxy({}, []), false);
    assert.equal(usesEnvProxy({ HTTPS_PROXY: 'http://proxy:3128' }, []), false, 'Node uses the variable only when told to');
    assert.equal(usesEnvProxy({ NODE_USE_ENV_PROXY: '1', HTTPS_PROXY: 'http://proxy:3128' }, []), true);
    assert.equal(usesEnvProxy({ http_proxy: 'http://proxy:3128' }, ['--use-env-proxy']), true);
    assert.equal(usesEnvProxy({ NODE_USE_ENV_PROXY: '1' }, []), false, 'no proxy named');
  });

  const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

  test('a download cut mid-stream resumes with Range and verifies; a server ignoring Range is skipped ahead', async () => {
    const data = seededBytes('bulk-resume', 3 * 1024 * 1024 + 5);
    const digest = digestOf(data);
    for (const honoursRange of [true, false]) {
      let requests = 0;
      const server = await rawServer((head, socket) => {
        requests++;
        const range = /\r\nrange: bytes=(\d+)-/i.exec(head);
        const start = honoursRange && range ? Number(range[1]) : 0;
        socket.write(`HTTP/1.1 ${start ? 206 : 200} OK\r\nContent-Length: ${data.length - start}\r\n\r\n`);
        if (requests === 1) {
          socket.write(data.subarray(0, 1_234_567));
          setTimeout(() => socket.destroy(), 30);
        } else socket.write(data.subarray(start));
      });
      const client = new RegistryClient({ registry: server.origin.slice('http://'.length), retry: fast });
      try {
        const bytes = Buffer.concat(await Array.fromAsync(client.openBlob('r', { mediaType: 'x/y', digest, size: data.length }) as AsyncIterable<Buffer>));
        assert.equal(digestOf(bytes), digest);
        assert.equal(requests, 2);
        assert.match(server.requests[1]!, /\r\nrange: bytes=\d+-\r\n/);
        assert.match(server.requests[1]!, /\r\nuser-agent: skiff\//);
      } finally {
        await client.close();
      }
    }
  });

  test('a blob trickling below the minimum rate fails as stalled, tried twice', async () => {
    const data = seededBytes('bulk-trickle', 2 * 1024 * 1024);
    let requests = 0;
    const server = await rawServer((_head, socket) => {
      requests++;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`);
      let at = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        socket.write(data.subarray(at, ++at));
      }, 40);
    });
    const registry = server.origin.slice('http://'.length);
    const client = new RegistryClient({ registry, retry: fast, transport: new NodeHttpTransport({ minBytesPerSecond: 1024, throughputWindowMs: 300, idleTimeoutMs: 2000 }) });
    try {
      await assert.rejects(Array.fromAsync(client.openBlob('lib/app', { mediaType: 'x/y', digest: digestOf(data), size: data.length }) as AsyncIterable<Buffer>), /transfer stalled: \d+ bytes in the last 0\.3 s, below the minimum of 1 KiB\/s/);
      assert.equal(requests, 2);
    } finally {
      await client.close();
    }
  });

  test('a redirect to another host is followed in bulk, without the registry\'s Authorization', async () => {
    const data = seededBytes('bulk-redirect', 1024 * 1024 + 1);
    const cdn = await rawServer((_head, socket) => socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`), data])));
    const registry = await rawServer((head, socket) =>
      socket.write(
        /\r\nauthorization: Basic /i.test(head)
          ? `HTTP/1.1 307 Temporary Redirect\r\nLocation: ${cdn.origin}/bucket/data?sig=x\r\nContent-Length: 0\r\n\r\n`
          : 'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="r"\r\nContent-Length: 0\r\n\r\n',
      ),
    );
    const client = new RegistryClient({ registry: registry.origin.slice('http://'.length), retry: fast, credentials: async () => ({ username: 'u', password: 'p' }) });
    try {
      const bytes = Buffer.concat(await Array.fromAsync(client.openBlob('r', { mediaType: 'x/y', digest: digestOf(data), size: data.length }) as AsyncIterable<Buffer>));
      assert.equal(digestOf(bytes), digestOf(data));
      assert.match(cdn.requests[0]!, /^GET \/bucket\/data\?sig=x HTTP\/1\.1\r\n/);
      assert.match(registry.requests.at(-1)!, /\r\nauthorization: Basic /i, 'the registry itself got the credentials');
      assert.doesNotMatch(cdn.requests[0]!, /authorization/i);
    } finally {
      await client.close();
    }
  });
});
