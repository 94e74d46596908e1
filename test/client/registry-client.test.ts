import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { releaseBulkChunk, spareBulkBatches } from '../../src/client/bulk-get.ts';
import { ClientError } from '../../src/client/errors.ts';
import { RegistryClient, isLoopbackHost } from '../../src/client/registry-client.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { VerifyingStream } from '../../src/digest/verifier.ts';
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { recordBlobSources } from '../../src/testing/blob-sources.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, seededBytes } from '../../src/testing/images.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

/** A blob of `size` seeded bytes, and its descriptor. */
function seededBlob(seed: string, size: number): { data: Buffer; descriptor: Descriptor } {
  const data = seededBytes(seed, size);
  return { data, descriptor: { mediaType: 'application/octet-stream', digest: digestOf(data), size } };
}

/** A blob read whole through `openBlob` (verified on the way). */
async function readBlob(client: RegistryClient, repository: string, descriptor: Descriptor): Promise<Buffer> {
  return Buffer.concat(await Array.fromAsync(client.openBlob(repository, descriptor) as AsyncIterable<Buffer>));
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; host: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe('RegistryClient against skiff serve', () => {
  let registry: TestRegistry;
  let client: RegistryClient;
  before(async () => {
    registry = await startTestRegistry();
    client = new RegistryClient({ registry: registry.address, retry: fast });
  });
  after(async () => {
    await client.close();
    await registry.stop();
  });

  test('loopback hosts use plain HTTP', () => {
    assert.equal(client.baseUrl, `http://${registry.address}`);
    assert.ok(isLoopbackHost('localhost:5000') && isLoopbackHost('127.0.0.2') && isLoopbackHost('[::1]:80'));
    assert.equal(new RegistryClient({ registry: 'docker.io' }).baseUrl, 'https://registry-1.docker.io');
  });

  test('push blobs and a manifest, then read them back verified', async () => {
    await client.ping();
    const image = await makeImage({ seed: 'client-push', layers: 2, layerSize: 300_000 });
    for (const item of image.blobs) {
      assert.equal(await client.headBlob('c/app', item.descriptor.digest), undefined);
      await client.pushBlob('c/app', item.descriptor, (offset) => Readable.from([item.data.subarray(offset)]));
      assert.equal(await client.headBlob('c/app', item.descriptor.digest), item.descriptor.size);
    }
    const digest = await client.putManifest('c/app', 'v1', image.manifest.data, image.manifest.descriptor.mediaType);
    assert.equal(digest, image.manifest.descriptor.digest);
    const head = await client.headManifest('c/app', 'v1');
    assert.equal(head?.digest, digest);
    assert.equal(head?.mediaType, image.manifest.descriptor.mediaType);
    const got = await client.getManifest('c/app', 'v1');
    assert.deepEqual(got.body, image.manifest.data);
    const layer = image.layers[0]!;
    const bytes = await readBlob(client, 'c/app', layer.descriptor);
    assert.deepEqual(bytes, layer.data);
    assert.equal(await client.headManifest('c/app', 'missing'), undefined);
  });

  test('a blob GET streamed into an upload hands each chunk back once sent; the copy is whole', async () => {
    // 12 MiB of bulk reads: more batches than the pool keeps spare, so none would be left
    // spare if the upload kept them.
    const { data, descriptor } = seededBlob('copy-release', 12 * 1024 * 1024);
    await client.pushBlob('c/copy-src', descriptor, () => Readable.from([data]));
    let released = 0;
    const releaseChunk = (chunk: Buffer): void => {
      released += chunk.length;
      releaseBulkChunk(chunk);
    };
    await client.pushBlob('c/copy-dst', descriptor, (offset) => client.openBlobFrom('c/copy-src', descriptor, offset), undefined, { releaseChunk });
    assert.equal(released, data.length, 'every byte sent was handed back');
    assert.ok(spareBulkBatches() > 0, 'the batches went back to the pool');
    assert.equal(digestOf(await readBlob(client, 'c/copy-dst', descriptor)), descriptor.digest);
  });

  test("a copied blob whose upload is cut mid-stream resumes at the registry's offset and lands whole, its chunks handed back as sent", async () => {
    const { data, descriptor } = seededBlob('copy-cut', 6 * 1024 * 1024);
    await client.pushBlob('c/cut-src', descriptor, () => Readable.from([data]));
    const proxy = new FaultProxy(`http://${registry.address}`);
    const through = new RegistryClient({ registry: await proxy.start(), retry: fast });
    let cut = false;
    proxy.decide = (r) => (r.method === 'PATCH' && !cut ? ((cut = true), { cutRequestAfterBytes: 2_500_000 }) : undefined);
    let released = 0;
    const opened: number[] = [];
    try {
      await through.pushBlob(
        'c/cut-dst',
        descriptor,
        (offset) => {
          opened.push(offset);
          return client.openBlobFrom('c/cut-src', descriptor, offset);
        },
        undefined,
        { releaseChunk: (chunk) => ((released += chunk.length), releaseBulkChunk(chunk)) },
      );
    } finally {
      await through.close();
      await proxy.stop();
    }
    assert.equal(opened.length, 2, `the source was opened again at the registry's offset: ${opened.join(', ')}`);
    assert.ok(opened[1]! > 0 && opened[1]! < data.length, `resumed at ${opened[1]}`);
    // The second PATCH sends size - offset; the first could not have had more than what was cut plus the socket's buffers.
    assert.ok(released >= data.length - opened[1]!, `released ${released}`);
    assert.ok(released <= data.length * 2, `released ${released}`);
    assert.equal(digestOf(await readBlob(client, 'c/cut-dst', descriptor)), descriptor.digest);
  });

  test('a reader of a verified blob that stops early closes the GET under it', async () => {
    const { data, descriptor } = seededBlob('stop-early', 8 * 1024 * 1024);
    await client.pushBlob('c/early', descriptor, () => Readable.from([data]));
    const reader = new RegistryClient({ registry: registry.address, retry: fast });
    const opened = recordBlobSources(reader);
    try {
      for await (const chunk of reader.openBlob('c/early', descriptor)) {
        assert.ok((chunk as Buffer).length > 0);
        break;
      }
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(opened.length, 1);
      assert.ok(opened[0]!.destroyed, 'the GET was closed');
      assert.ok(!opened[0]!.readableEnded, 'before its end');
    } finally {
      await reader.close();
    }
  });

  test('a blob that does not match its descriptor fails the stream; mounts work', async () => {
    const data = seededBytes('liar', 1000);
    const descriptor = { mediaType: 'application/octet-stream', digest: digestOf(data), size: 1000 };
    await client.pushBlob('c/liar', descriptor, () => Readable.from([data]));
    assert.equal(await client.mountBlob('c/liar2', descriptor.digest, 'c/liar'), true, 'mounted from c/liar');
    assert.equal(await client.headBlob('c/liar2', descriptor.digest), 1000);
    // A descriptor promising fewer bytes than the registry sends: refused, never read past.
    await assert.rejects(text(client.openBlob('c/liar', { ...descriptor, size: 999 })), /longer than its 999 bytes/);
    // Right size, wrong digest: the verifier fails at EOF.
    await assert.rejects(text(client.openBlobFrom('c/liar', descriptor, 0).pipe(new VerifyingStream(digestOf('other'), 1000))), /digest mismatch/);
  });

  test('tags are listed across Link pages; catalog too', async () => {
    const image = await makeImage({ seed: 'client-tags', layers: 1 });
    for (const item of image.blobs) await client.pushBlob('c/tags', item.descriptor, () => Readable.from([item.data]));
    const tags = ['b', 'a', 'd', 'c', 'e'];
    for (const tag of tags) await client.putManifest('c/tags', tag, image.manifest.data, image.manifest.descriptor.mediaType);
    assert.deepEqual(await client.listTags('c/tags', undefined, 2), ['a', 'b', 'c', 'd', 'e']);
    assert.ok((await client.catalog(undefined, 1)).includes('c/tags'));
  });

  test('registry errors carry the OCI code and a hint', async () => {
    await assert.rejects(client.getManifest('c/none', 'v1'), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'MANIFEST_UNKNOWN');
      assert.match(error.message, /c\/none.*MANIFEST_UNKNOWN.*check the tag or digest/);
      return true;
    });
  });
});

describe('RegistryClient resilience and auth (in-process fakes)', () => {
  test('a download cut mid-stream resumes with Range and verifies', async () => {
    const data = seededBytes('resume', 512 * 1024);
    const digest = digestOf(data);
    const ranges: (string | undefined)[] = [];
    const { server, host } = await listen((req, res) => {
      ranges.push(req.headers.range);
      const start = req.headers.range ? Number(/bytes=(\d+)-/.exec(req.headers.range)![1]) : 0;
      res.writeHead(start ? 206 : 200, { 'content-length': data.length - start });
      if (ranges.length === 1) {
        res.write(data.subarray(0, 100_000));
        setTimeout(() => res.destroy(), 20); // connection drops mid-blob
      } else res.end(data.subarray(start));
    });
    const client = new RegistryClient({ registry: host, retry: fast });
    try {
      const bytes = await readBlob(client, 'r', { mediaType: 'x/y', digest, size: data.length });
      assert.equal(digestOf(bytes), digest);
      assert.equal(ranges[0], undefined);
      assert.match(ranges[1] ?? '', /^bytes=\d+-$/);
    } finally {
      await client.close();
      server.close();
    }
  });

  test('a resumed download from a server that ignores Range skips the bytes it already has', async () => {
    const data = seededBytes('ignores-range', 300 * 1024);
    const digest = digestOf(data);
    let requests = 0;
    const { server, host } = await listen((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-length': data.length }); // Range or not: the whole blob
      if (requests === 1) {
        res.write(data.subarray(0, 123_457));
        setTimeout(() => res.destroy(), 20);
      } else res.end(data);
    });
    const client = new RegistryClient({ registry: host, retry: fast });
    try {
      const bytes = await readBlob(client, 'r', { mediaType: 'x/y', digest, size: data.length });
      assert.equal(bytes.length, data.length);
      assert.equal(digestOf(bytes), digest);
      assert.equal(requests, 2);
    } finally {
      await client.close();
      server.close();
    }
  });

  test('a download that keeps breaking gives up after its attempts, naming where it broke', async () => {
    const data = seededBytes('keeps-breaking', 200 * 1024);
    let requests = 0;
    const { server, host } = await listen((req, res) => {
      requests++;
      const start = req.headers.range ? Number(/bytes=(\d+)-/.exec(req.headers.range)![1]) : 0;
      res.writeHead(start ? 206 : 200, { 'content-length': data.length - start });
      res.write(data.subarray(start, start + 1000));
      setTimeout(() => res.destroy(), 10);
    });
    const client = new RegistryClient({ registry: host, retry: fast });
    try {
      const download = client.openBlobFrom('r', { mediaType: 'x/y', digest: digestOf(data), size: data.length }, 0);
      await assert.rejects(Array.fromAsync(download as AsyncIterable<Buffer>), (error: Error) => {
        assert.match(error.message, /the connection broke after byte \d+ of 204800/);
        assert.match(error.message, new RegExp(`gave up after ${fast.attempts} attempts`));
        return true;
      });
      assert.equal(requests, fast.attempts);
    } finally {
      await client.close();
      server.close();
    }
  });

  test('503 and 429 with Retry-After are retried; 404 is not', async () => {
    let calls = 0;
    const { server, host } = await listen((req, res) => {
      calls++;
      if (req.url === '/v2/' && calls === 1) return void res.writeHead(503).end();
      if (req.url === '/v2/' && calls === 2) return void res.writeHead(429, { 'retry-after': '0' }).end();
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}');
    });
    const client = new RegistryClient({ registry: host, retry: fast });
    try {
      await client.ping();
      assert.equal(calls, 3);
      calls = 0;
      await assert.rejects(client.listTags('x'), /NAME_UNKNOWN/);
      assert.equal(calls, 1, '404 not retried');
    } finally {
      await client.close();
      server.close();
    }
  });

  test('a registry that keeps rate-limiting gives up with the remaining quota it reported', async () => {
    let calls = 0;
    const { server, host } = await listen((_req, res) => {
      calls++;
      res.writeHead(429, { 'content-type': 'application/json', 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600' });
      res.end('{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit"}]}');
    });
    const client = new RegistryClient({ registry: host, retry: fast });
    try {
      await assert.rejects(client.getManifest('library/alpine', 'latest'), (error: unknown) => {
        assert.ok(error instanceof ClientError);
        assert.equal(error.status, 429);
        assert.equal(error.code, 'TOOMANYREQUESTS');
        assert.match(error.message, /rate-limited by the registry \(ratelimit-remaining: 0;w=21600\)/);
        return true;
      });
      assert.equal(calls, 3, 'a 429 without Retry-After is retried only a little');
    } finally {
      await client.close();
      server.close();
    }
  });

  test('Bearer flow: challenge, token GET with scope and Basic credentials, token cached', async () => {
    let tokenRequests = 0;
    let seenScope = '';
    let seenAuth = '';
    const { server, host } = await listen((req, res) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/token') {
        tokenRequests++;
        seenScope = url.searchParams.getAll('scope').join(' ');
        seenAuth = req.headers.authorization ?? '';
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-1', expires_in: 300 }));
      }
      if (req.headers.authorization !== 'Bearer tok-1') {
        return void res
          .writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="fake",scope="repository:team/app:pull"` })
          .end('{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}');
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'team/app', tags: ['1'] }));
    });
    const client = new RegistryClient({ registry: host, retry: fast, credentials: { username: 'alice', password: 's3cret' } });
    try {
      assert.deepEqual(await client.listTags('team/app'), ['1']);
      assert.deepEqual(await client.listTags('team/app'), ['1']);
      assert.equal(tokenRequests, 1, 'token reused for the same scope');
      assert.equal(seenScope, 'repository:team/app:pull');
      assert.equal(seenAuth, `Basic ${Buffer.from('alice:s3cret').toString('base64')}`);
    } finally {
      await client.close();
      server.close();
    }
  });

  test('a blob redirected to another host is followed without the registry\'s Authorization', async () => {
    const data = seededBytes('redirected', 50_000);
    const digest = digestOf(data);
    let storageAuth: string | undefined = 'unset';
    const storage = await listen((req, res) => {
      storageAuth = req.headers.authorization;
      res.writeHead(200, { 'content-length': data.length }).end(data);
    });
    const { server, host } = await listen((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from('bob:pw').toString('base64')}`) {
        return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      }
      res.writeHead(307, { location: `http://${storage.host}/bucket/blob?signature=abc` }).end();
    });
    const client = new RegistryClient({ registry: host, retry: fast, credentials: { username: 'bob', password: 'pw' } });
    try {
      const bytes = await readBlob(client, 'r', { mediaType: 'x/y', digest, size: data.length });
      assert.equal(digestOf(bytes), digest);
      assert.equal(storageAuth, undefined, 'no Authorization sent to the storage host');
    } finally {
      await client.close();
      server.close();
      storage.server.close();
    }
  });

  test('an identity token uses the OAuth2 POST, and falls back to GET when the realm refuses POST', async () => {
    const seen: { method: string; body: string }[] = [];
    let allowPost = true;
    const { server, host } = await listen((req, res) => {
      if (req.url!.startsWith('/token')) {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          seen.push({ method: req.method!, body });
          if (req.method === 'POST' && !allowPost) return void res.writeHead(405).end();
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'oauth-tok', expires_in: 5 }));
        });
        return;
      }
      if (req.headers.authorization !== 'Bearer oauth-tok') {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="svc"` }).end();
      }
      res.writeHead(200).end('{}');
    });
    try {
      const client = new RegistryClient({ registry: host, retry: fast, credentials: { identityToken: 'refresh-123' } });
      await client.ping();
      await client.close();
      const post = new URLSearchParams(seen[0]!.body);
      assert.equal(seen[0]!.method, 'POST');
      assert.equal(post.get('grant_type'), 'refresh_token');
      assert.equal(post.get('refresh_token'), 'refresh-123');
      assert.equal(post.get('service'), 'svc');
      allowPost = false;
      seen.length = 0;
      const fallback = new RegistryClient({ registry: host, retry: fast, credentials: { identityToken: 'refresh-123' } });
      await fallback.ping();
      await fallback.close();
      assert.deepEqual(seen.map((s) => s.method), ['POST', 'GET']);
    } finally {
      server.close();
    }
  });

  test('wrong credentials give an error naming the realm', async () => {
    const { server, host } = await listen((req, res) => {
      if (req.url!.startsWith('/token')) return void res.writeHead(401).end('bad creds');
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${host}/token",service="fake"` }).end();
    });
    const client = new RegistryClient({ registry: host, retry: fast, credentials: { username: 'alice', password: 'nope' } });
    try {
      await assert.rejects(client.ping(), /token request GET 127\.0\.0\.1:\d+\/token \(the token server named by 127\.0\.0\.1:\d+\) failed with 401 \(wrong username or password\?/);
    } finally {
      await client.close();
      server.close();
    }
  });
});
