import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { ClientError } from '../../src/client/errors.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { NodeHttpTransport, resolveStallRules, type Transport } from '../../src/client/transport.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { seededBytes } from '../../src/testing/images.ts';

/**
 * Regression tests for a hostile registry, CDN or token server (issue 10 §5): each pins one bug
 * found by an attack on the client.
 */

const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };
const servers: Server[] = [];

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

after(() => {
  for (const server of servers) server.closeAllConnections();
  for (const server of servers) server.close();
});

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Reads a stream whole, or fails with its error. */
async function drain(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function rejectsWith(pattern: RegExp): (error: unknown) => true {
  return (error: unknown) => {
    assert.ok(error instanceof ClientError, `ClientError expected, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  };
}

describe('credential leak: a redirect target challenge is never answered with the origin credentials', () => {
  test('registry → 307 to a CDN → 401 naming a third host: the third host never sees the Basic credentials', async () => {
    const data = seededBytes('leak', 1000);
    const digest = digestOf(data);
    const seenByThird: (string | undefined)[] = [];
    const third = await listen((req, res) => {
      seenByThird.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"stolen"}');
    });
    const cdnAuth: (string | undefined)[] = [];
    const cdn = await listen((req, res) => {
      cdnAuth.push(req.headers.authorization);
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${third}/token",service="cdn"` }).end();
    });
    const registry = await listen((req, res) => {
      if (req.headers.authorization !== basic('alice', 's3cret')) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end();
      res.writeHead(307, { location: `http://${cdn}/storage/blob?sig=secret-signature` }).end();
    });
    const client = new RegistryClient({ registry, retry: fast, credentials: { username: 'alice', password: 's3cret' } });
    try {
      await assert.rejects(
        drain(client.openBlob('lib/app', { mediaType: 'x/y', digest, size: data.length })),
        rejectsWith(new RegExp(`GET ${registry}/v2/lib/app/blobs/${digest}: the registry redirected to ${cdn}/storage/blob, which asks for credentials \\(401\\); skiff does not send ${registry}'s credentials to another host`)),
      );
      assert.deepEqual(seenByThird, [], 'the third host was never asked');
      assert.ok(cdnAuth.every((a) => a === undefined), 'the CDN never saw Authorization');
    } finally {
      await client.close();
    }
  });

  test('the error never shows the redirect query (a pre-signed URL holds a signature)', async () => {
    const cdn = await listen((_req, res) => void res.writeHead(401, { 'www-authenticate': 'Basic realm="cdn"' }).end());
    const registry = await listen((_req, res) => void res.writeHead(302, { location: `http://${cdn}/b?X-Signature=abcdef` }).end());
    const client = new RegistryClient({ registry, retry: fast, credentials: { username: 'u', password: 'p' } });
    try {
      await assert.rejects(client.getManifest('r', 'v1'), (error: unknown) => {
        assert.doesNotMatch((error as Error).message, /abcdef/);
        return true;
      });
    } finally {
      await client.close();
    }
  });
});

describe('unbounded token bodies: token responses are read to 64 KiB at most', () => {
  /** A registry whose Bearer challenge names `realm`. */
  const bearerRegistry = (realm: string) =>
    listen((req, res) => {
      if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="reg"` }).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });

  /** Writes 64 KiB chunks until the client goes away; counts what it sent. */
  function endless(status: number, sent: { bytes: number }) {
    return (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x41);
      const pump = () => {
        while (!res.destroyed && sent.bytes < 512 * 1024 * 1024) {
          sent.bytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => undefined);
      pump();
    };
  }

  test('an endless token response fails, naming the token server, after at most a little more than 64 KiB', async () => {
    const sent = { bytes: 0 };
    const tokens = await listen(endless(200, sent));
    const registry = await bearerRegistry(`http://${tokens}/token`);
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(
        client.ping(),
        rejectsWith(new RegExp(`token request GET ${tokens}/token \\(the token server named by ${registry}\\): the response is larger than 64 KiB, the most skiff reads`)),
      );
      assert.ok(sent.bytes < 64 * 1024 * 1024, `the server got to send only ${sent.bytes} bytes before the client hung up`);
    } finally {
      await client.close();
    }
  });

  test('an endless token error body is cut at 64 KiB: the 401 is reported, memory stays flat', async () => {
    const sent = { bytes: 0 };
    const tokens = await listen(endless(401, sent));
    const registry = await bearerRegistry(`http://${tokens}/token`);
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(client.ping(), (error: unknown) => {
        assert.ok(error instanceof ClientError);
        assert.match(error.message, new RegExp(`token request GET ${tokens}/token .* failed with 401`));
        assert.ok(error.message.length < 1000, 'the body is quoted short');
        return true;
      });
      assert.ok(sent.bytes < 64 * 1024 * 1024);
    } finally {
      await client.close();
    }
  });

  test("a token server that answers text (Unexpected token 'A') says which server and what to check", async () => {
    const tokens = await listen((_req, res) => void res.writeHead(200, { 'content-type': 'text/plain' }).end('Access denied by policy'));
    const registry = await bearerRegistry(`http://${tokens}/auth`);
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(
        client.ping(),
        rejectsWith(new RegExp(`token request GET ${tokens}/auth \\(the token server named by ${registry}\\): the response is not JSON \\(it begins "Access denied by policy"\\); is http://${tokens} a token server\\?`)),
      );
    } finally {
      await client.close();
    }
  });

  test('a token body cut short ("aborted") names the token server', async () => {
    const tokens = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"token": "abc');
      setTimeout(() => res.destroy(), 10);
    });
    const registry = await bearerRegistry(`http://${tokens}/token`);
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(client.ping(), rejectsWith(new RegExp(`token request GET ${tokens}/token .*: the connection broke after 14 bytes of the response`)));
    } finally {
      await client.close();
    }
  });
});

describe('no deadline for a trickling transfer: a minimum throughput', () => {
  const windowMs = 300;
  const transport = () => new NodeHttpTransport({ minBytesPerSecond: 1024, throughputWindowMs: windowMs, idleTimeoutMs: 2000 });

  test('a blob trickling one byte at a time fails as stalled, naming the host, after two windows', async () => {
    const data = seededBytes('trickle', 100_000);
    const digest = digestOf(data);
    let requests = 0;
    const registry = await listen((req, res) => {
      requests++;
      const start = req.headers.range ? Number(/bytes=(\d+)-/.exec(req.headers.range)![1]) : 0;
      res.writeHead(start ? 206 : 200, { 'content-length': data.length - start });
      let at = start;
      const timer = setInterval(() => {
        if (res.destroyed) return clearInterval(timer);
        res.write(data.subarray(at, at + 1));
        at++;
      }, 40);
    });
    const client = new RegistryClient({ registry, retry: fast, transport: transport() });
    try {
      await assert.rejects(
        drain(client.openBlob('lib/app', { mediaType: 'x/y', digest, size: data.length })),
        rejectsWith(new RegExp(`GET ${registry}/v2/lib/app/blobs/${digest}: transfer stalled: \\d+ bytes in the last 0\\.3 s, below the minimum of 1 KiB/s .*${registry} or the network to it is too slow`)),
      );
      assert.equal(requests, 2, 'a stall is retried once, not five times');
    } finally {
      await client.close();
    }
  });

  test('a server that answers headers and then nothing is stalled after the idle timeout, tried twice', async () => {
    let requests = 0;
    const registry = await listen((_req, res) => {
      requests++;
      res.writeHead(200, { 'content-length': '5000000' });
      res.flushHeaders();
    });
    const client = new RegistryClient({ registry, retry: fast, transport: new NodeHttpTransport({ idleTimeoutMs: 200, minBytesPerSecond: 0 }) });
    try {
      const data = { mediaType: 'x/y', digest: digestOf('x'), size: 5_000_000 };
      await assert.rejects(drain(client.openBlob('r', data)), rejectsWith(new RegExp(`${registry} sent nothing for 0\\.2 s \\(stalled\\)`)));
      assert.equal(requests, 2);
    } finally {
      await client.close();
    }
  });

  test('a server that never answers the request: the idle timeout, tried twice, names the host', async () => {
    let requests = 0;
    const registry = await listen(() => void requests++);
    const client = new RegistryClient({ registry, retry: fast, transport: new NodeHttpTransport({ idleTimeoutMs: 200 }) });
    try {
      await assert.rejects(client.ping(), rejectsWith(new RegExp(`GET http://${registry}/v2/: ${registry} sent nothing for 0\\.2 s \\(stalled\\)`)));
      assert.equal(requests, 2);
    } finally {
      await client.close();
    }
  });

  test('the rules come from the options, else the environment, else 1 KiB/s over 60 s and 60 s idle', () => {
    assert.deepEqual(resolveStallRules({}, {}), { idleTimeoutMs: 60_000, minBytesPerSecond: 1024, throughputWindowMs: 60_000 });
    const env = { SKIFF_MIN_TRANSFER_RATE: '0', SKIFF_TRANSFER_WINDOW_MS: '500', SKIFF_IDLE_TIMEOUT_MS: '2000' };
    assert.deepEqual(resolveStallRules({}, env), { idleTimeoutMs: 2000, minBytesPerSecond: 0, throughputWindowMs: 500 });
    assert.deepEqual(resolveStallRules({ minBytesPerSecond: 10 }, env).minBytesPerSecond, 10);
    assert.throws(() => resolveStallRules({}, { SKIFF_MIN_TRANSFER_RATE: '1k' }), /\$SKIFF_MIN_TRANSFER_RATE: expected a number ≥ 0, not "1k"/);
  });

  test('a slow reader is not a slow server: a body left unread for several windows is not stalled', async () => {
    const data = seededBytes('slow-reader', 256 * 1024);
    const digest = digestOf(data);
    const registry = await listen((_req, res) => void res.writeHead(200, { 'content-length': data.length }).end(data));
    const client = new RegistryClient({ registry, retry: { ...fast, attempts: 1 }, transport: new NodeHttpTransport({ minBytesPerSecond: 1024 * 1024 * 1024, throughputWindowMs: 120 }) });
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of client.openBlob('r', { mediaType: 'x/y', digest, size: data.length })) {
        chunks.push(chunk as Buffer);
        if (chunks.length < 6) await new Promise((resolve) => setTimeout(resolve, 150));
      }
      assert.equal(digestOf(Buffer.concat(chunks)), digest);
    } finally {
      await client.close();
    }
  });
});

describe('errors that do not say what failed', () => {
  test('"response body exceeds 4194304 bytes": a huge manifest names the request and says it is the manifest', async () => {
    const registry = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
    });
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(
        client.getManifest('lib/app', 'v1'),
        rejectsWith(new RegExp(`the manifest from GET ${registry}/v2/lib/app/manifests/v1: the response is larger than 4 MiB, the most skiff reads; a manifest is small JSON: check the reference lib/app:v1`)),
      );
    } finally {
      await client.close();
    }
  });

  test('"aborted": a blob cut short every time names the request, the byte, and the attempts', async () => {
    const data = seededBytes('cut', 50_000);
    const digest = digestOf(data);
    const registry = await listen((req, res) => {
      const start = req.headers.range ? Number(/bytes=(\d+)-/.exec(req.headers.range)![1]) : 0;
      res.writeHead(start ? 206 : 200, { 'content-length': data.length - start });
      res.write(data.subarray(start, Math.min(start + 1000, data.length - 1)));
      setTimeout(() => res.destroy(), 10);
    });
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(
        drain(client.openBlob('lib/app', { mediaType: 'x/y', digest, size: data.length })),
        rejectsWith(new RegExp(`GET ${registry}/v2/lib/app/blobs/${digest}: the connection broke after byte 4000 of 50000 \\(aborted, ECONNRESET\\); gave up after 4 attempts`)),
      );
    } finally {
      await client.close();
    }
  });

  test('a 404 from a redirect target is reported against the redirect host, not the registry blob URL', async () => {
    const cdn = await listen((_req, res) => void res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code></Error>'));
    const registry = await listen((_req, res) => void res.writeHead(307, { location: `http://${cdn}/bucket/docker/blobs/data?sig=x` }).end());
    const client = new RegistryClient({ registry, retry: fast });
    try {
      const digest = digestOf('gone');
      await assert.rejects(
        drain(client.openBlob('lib/app', { mediaType: 'x/y', digest, size: 4 })),
        rejectsWith(new RegExp(`GET ${registry}/v2/lib/app/blobs/${digest}: the registry redirected to ${cdn}/bucket/docker/blobs/data, which answered 404 \\(the registry's storage link is broken or expired`)),
      );
    } finally {
      await client.close();
    }
  });

  test('"cannot resolve docker.io": a DNS failure names the host dialled, registry-1.docker.io', async () => {
    const dialled: string[] = [];
    const offline: Transport = {
      request: async (request) => {
        dialled.push(request.origin);
        const host = new URL(request.origin).hostname;
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
      },
      close: async () => undefined,
    };
    const client = new RegistryClient({ registry: 'docker.io', retry: fast, transport: offline });
    await assert.rejects(client.getManifest('library/alpine', 'latest'), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.match(error.message, /^GET https:\/\/registry-1\.docker\.io\/v2\/library\/alpine\/manifests\/latest: cannot resolve registry-1\.docker\.io \(for docker\.io\) \(ENOTFOUND\): check the network and DNS/);
      assert.doesNotMatch(error.message, /cannot resolve docker\.io/);
      return true;
    });
    assert.ok(dialled.every((origin) => origin === 'https://registry-1.docker.io'));
  });

  test('a redirect target that refuses connections is named as the host that failed', async () => {
    const closed = await listen(() => undefined);
    const port = Number(closed.split(':')[1]);
    servers.at(-1)!.close();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const registry = await listen((_req, res) => void res.writeHead(307, { location: `http://127.0.0.1:${port}/blob` }).end());
    const client = new RegistryClient({ registry, retry: fast });
    try {
      await assert.rejects(client.getManifest('r', 'v1'), rejectsWith(new RegExp(`GET http://${registry}/v2/r/manifests/v1 \\(redirected to 127\\.0\\.0\\.1:${port}\\): cannot connect to 127\\.0\\.0\\.1:${port} \\(for ${registry}\\)`)));
    } finally {
      await client.close();
    }
  });
});
