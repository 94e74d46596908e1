import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ClientError } from '../../src/client/errors.ts';
import {
  MirrorConfigError,
  classifyFailure,
  endpointUrl,
  endpointsFor,
  loadMirrorConfig,
  parseMirrorConfig,
  shouldFallBack,
  validateMirrorSet,
  type Endpoint,
  type MirrorSet,
} from '../../src/client/mirrors.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { DigestMismatchError } from '../../src/digest/errors.ts';
import { InvalidManifestError } from '../../src/oci/manifest.ts';
import { MANIFEST_ACCEPT } from '../../src/oci/media-types.ts';
import { parseReference } from '../../src/reference/reference.ts';
import { makeImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const DIGEST = digestOf('some manifest');

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof MirrorConfigError, `expected a MirrorConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('expected the configuration to be refused');
}

describe('mirror configuration', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-mirrors-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('YAML: per-registry mirrors, defaults, shorthand, normalized URLs and hosts', async () => {
    const file = join(dir, 'mirrors.yaml');
    await writeFile(
      file,
      [
        'index.docker.io:',
        '  mirrors:',
        '    - url: https://mirror.gcr.io/',
        '      pullFromMirror: all',
        '    - url: http://10.0.0.5:5000',
        '      insecure: true',
        'GHCR.io:',
        '  mirrors:',
        '    - ghcr-cache.internal/prefix/',
        '    - localhost:5001',
        'quay.io:',
        '  mirrors: []',
        '',
      ].join('\n'),
    );
    assert.deepEqual(await loadMirrorConfig(file), {
      'docker.io': {
        mirrors: [
          { url: 'https://mirror.gcr.io', pullFromMirror: 'all', insecure: false },
          { url: 'http://10.0.0.5:5000', pullFromMirror: 'digest-only', insecure: true },
        ],
      },
      'ghcr.io': {
        mirrors: [
          { url: 'https://ghcr-cache.internal/prefix', pullFromMirror: 'digest-only', insecure: false },
          { url: 'http://localhost:5001', pullFromMirror: 'digest-only', insecure: false },
        ],
      },
      'quay.io': { mirrors: [] },
    });
  });

  test('JSON by extension', async () => {
    const file = join(dir, 'mirrors.json');
    await writeFile(file, JSON.stringify({ 'localhost:5000': { mirrors: [{ url: 'https://m.example.com', pullFromMirror: 'all' }] } }));
    assert.deepEqual(await loadMirrorConfig(file), { 'localhost:5000': { mirrors: [{ url: 'https://m.example.com', pullFromMirror: 'all', insecure: false }] } });
  });

  test('an empty file means no mirrors', async () => {
    assert.deepEqual(await parseMirrorConfig('', 'empty.yaml'), {});
    assert.deepEqual(await parseMirrorConfig('# nothing yet\n', 'empty.yml'), {});
  });

  test('every problem is reported, each naming the file and the key', () => {
    const problems = problemsOf(() =>
      validateMirrorSet(
        {
          'docker.io': {
            mirrors: [
              { url: 'https://ok.example.com', pullFromMirror: 'tags' },
              { pullFromMirror: 'all' },
              { url: 'http://plain.example.com' },
              { url: 'https://user:pw@creds.example.com' },
              { url: 'ftp://x.example.com' },
              { url: 'https://q.example.com/?a=1' },
              { url: 'https://ok.example.com', insecure: 'yes', mirror: true },
              42,
            ],
            extra: 1,
          },
          'index.docker.io': { mirrors: [] },
          'ghcr.io/org': { mirrors: [] },
          'quay.io': { mirrors: 'https://q.example.com' },
          'gcr.io': {},
          'k8s.io': [],
        },
        'mirrors.yaml',
      ),
    );
    assert.deepEqual(problems, [
      'docker.io.extra: unknown setting (known: mirrors)',
      'docker.io.mirrors[0].pullFromMirror: must be "all" (tags and digests) or "digest-only", not "tags"',
      'docker.io.mirrors[1].url: required',
      'docker.io.mirrors[2].url: "http://plain.example.com": plain HTTP to a non-loopback host needs insecure: true',
      'docker.io.mirrors[3].url: "https://user:pw@creds.example.com": must not contain credentials (use skiff login <mirror host>)',
      'docker.io.mirrors[4].url: "ftp://x.example.com": scheme must be http or https',
      'docker.io.mirrors[5].url: "https://q.example.com/?a=1": must not have a query or fragment',
      'docker.io.mirrors[6].mirror: unknown setting (known: url, pullFromMirror, insecure)',
      'docker.io.mirrors[6].insecure: must be true or false',
      'docker.io.mirrors[7]: must be a URL or a mapping with url, pullFromMirror, insecure',
      'index.docker.io: the same registry as docker.io (both mean docker.io)',
      'ghcr.io/org: not a registry host (expected e.g. docker.io, ghcr.io, localhost:5000)',
      'quay.io.mirrors: must be a list',
      'gcr.io.mirrors: required (a list of mirrors)',
      'k8s.io: must be a mapping with mirrors: [...]',
    ]);
  });

  test('the error message prefixes every problem with the file', async () => {
    await assert.rejects(parseMirrorConfig('docker.io:\n  mirrors:\n    - url: https://m.example.com\n      pullFromMirror: sometimes\n', '/etc/skiff/mirrors.yaml'), {
      name: 'MirrorConfigError',
      message: '/etc/skiff/mirrors.yaml: docker.io.mirrors[0].pullFromMirror: must be "all" (tags and digests) or "digest-only", not "sometimes"',
    });
  });

  test('bad syntax, wrong top level, unreadable file', async () => {
    await assert.rejects(parseMirrorConfig('docker.io: [unclosed', 'm.yaml'), /^MirrorConfigError: m\.yaml: not valid YAML: /);
    await assert.rejects(parseMirrorConfig('docker.io:\n  mirrors: []\ndocker.io:\n  mirrors: []\n', 'dup.yaml'), /dup\.yaml: not valid YAML: .*[Mm]ap keys must be unique/);
    await assert.rejects(parseMirrorConfig('{"docker.io": ', 'm.json'), /^MirrorConfigError: m\.json: not valid JSON: /);
    await assert.rejects(parseMirrorConfig('- a\n- b\n', 'list.yaml'), { message: 'list.yaml: expected a mapping of registry host → { mirrors: [...] }' });
    await assert.rejects(loadMirrorConfig(join(dir, 'absent.yaml')), (error: unknown) => error instanceof MirrorConfigError && error.message.startsWith(`${join(dir, 'absent.yaml')}: cannot read: ENOENT`));
  });
});

describe('endpointsFor', () => {
  const set: MirrorSet = validateMirrorSet(
    {
      'docker.io': {
        mirrors: [
          { url: 'https://digest-cache.example.com', pullFromMirror: 'digest-only' },
          { url: 'https://full.example.com/hub', pullFromMirror: 'all' },
        ],
      },
      'ghcr.io': { mirrors: [{ url: 'http://10.1.1.1:5000', insecure: true, pullFromMirror: 'all' }] },
    },
    'test',
  );

  test('a digest: every mirror in order, then the origin; mirrors carry ns=<origin>', () => {
    assert.deepEqual(endpointsFor('docker.io', parseReference(`alpine@${DIGEST}`), set), [
      { baseUrl: 'https://digest-cache.example.com', host: 'digest-cache.example.com', isMirror: true, insecure: false, ns: 'docker.io' },
      { baseUrl: 'https://full.example.com/hub', host: 'full.example.com', isMirror: true, insecure: false, ns: 'docker.io' },
      { baseUrl: 'https://registry-1.docker.io', host: 'registry-1.docker.io', isMirror: false, insecure: false },
    ]);
  });

  test('a tag: digest-only mirrors are not trusted to resolve it', () => {
    const endpoints = endpointsFor('docker.io', parseReference('alpine:3.20'), set);
    assert.deepEqual(endpoints.map((e) => e.baseUrl), ['https://full.example.com/hub', 'https://registry-1.docker.io']);
  });

  test('tag and digest together: the digest wins, as for fetching', () => {
    assert.equal(endpointsFor('docker.io', parseReference(`alpine:3.20@${DIGEST}`), set).length, 3);
  });

  test('strings: a digest string or a tag string', () => {
    assert.equal(endpointsFor('docker.io', DIGEST, set).length, 3);
    assert.equal(endpointsFor('docker.io', 'latest', set).length, 2);
  });

  test('mirrors apply to any registry, found under any spelling of it', () => {
    assert.deepEqual(endpointsFor('GHCR.IO', 'v1', set), [
      { baseUrl: 'http://10.1.1.1:5000', host: '10.1.1.1:5000', isMirror: true, insecure: true, ns: 'ghcr.io' },
      { baseUrl: 'https://ghcr.io', host: 'ghcr.io', isMirror: false, insecure: false },
    ]);
    assert.equal(endpointsFor('index.docker.io', DIGEST, set).length, 3);
  });

  test('no mirrors: only the origin; loopback origins speak plain HTTP', () => {
    assert.deepEqual(endpointsFor('quay.io', DIGEST, set), [{ baseUrl: 'https://quay.io', host: 'quay.io', isMirror: false, insecure: false }]);
    assert.deepEqual(endpointsFor('localhost:5000', 'v1'), [{ baseUrl: 'http://localhost:5000', host: 'localhost:5000', isMirror: false, insecure: false }]);
  });

  test('endpointUrl keeps the path prefix and the request query, and adds ns only on mirrors', () => {
    const [digestCache, full, origin] = endpointsFor('docker.io', DIGEST, set) as [Endpoint, Endpoint, Endpoint];
    assert.equal(endpointUrl(full, `/v2/library/alpine/manifests/${DIGEST}`), `https://full.example.com/hub/v2/library/alpine/manifests/${DIGEST}?ns=docker.io`);
    assert.equal(endpointUrl(digestCache, '/v2/library/alpine/tags/list?n=10'), 'https://digest-cache.example.com/v2/library/alpine/tags/list?n=10&ns=docker.io');
    assert.equal(endpointUrl(origin, '/v2/library/alpine/tags/list?n=10'), 'https://registry-1.docker.io/v2/library/alpine/tags/list?n=10');
  });
});

describe('shouldFallBack', () => {
  const clientError = (status: number, code?: 'MANIFEST_UNKNOWN' | 'UNAUTHORIZED' | 'TOOMANYREQUESTS' | 'DIGEST_INVALID' | 'UNKNOWN', cause?: unknown) =>
    new ClientError(`status ${status}`, { status, registry: 'r', ...(code ? { code } : {}), ...(cause ? { cause } : {}) });
  const errno = (code: string) => Object.assign(new Error(code), { code });

  const cases: { name: string; error: unknown; mirror: boolean; origin: boolean }[] = [
    { name: 'connection refused (status 0 from the client)', error: clientError(0, undefined, errno('ECONNREFUSED')), mirror: true, origin: true },
    { name: 'a raw reset socket', error: errno('ECONNRESET'), mirror: true, origin: true },
    { name: 'undici connect timeout (the endpoint is slow, not our deadline)', error: Object.assign(new Error('connect timeout'), { name: 'ConnectTimeoutError', code: 'UND_ERR_CONNECT_TIMEOUT' }), mirror: true, origin: true },
    { name: 'TLS certificate problem', error: errno('CERT_HAS_EXPIRED'), mirror: true, origin: true },
    { name: '503', error: clientError(503), mirror: true, origin: true },
    { name: '500 with a code', error: clientError(500, 'UNKNOWN'), mirror: true, origin: true },
    { name: 'unexpected status without a code (400)', error: clientError(400), mirror: true, origin: true },
    { name: 'unexpected status (302 where 200 was expected)', error: clientError(302), mirror: true, origin: true },
    { name: '404 MANIFEST_UNKNOWN', error: clientError(404, 'MANIFEST_UNKNOWN'), mirror: true, origin: false },
    { name: '401 without a body', error: clientError(401), mirror: true, origin: false },
    { name: '401 UNAUTHORIZED', error: clientError(401, 'UNAUTHORIZED'), mirror: true, origin: false },
    { name: '429 TOOMANYREQUESTS', error: clientError(429, 'TOOMANYREQUESTS'), mirror: true, origin: false },
    { name: 'a manifest that does not match its digest', error: clientError(200, 'DIGEST_INVALID'), mirror: true, origin: false },
    { name: 'a blob that does not match its digest', error: new DigestMismatchError('sha256:a', 'sha256:b'), mirror: true, origin: false },
    { name: 'an invalid manifest', error: new InvalidManifestError('not JSON'), mirror: true, origin: false },
    { name: 'an unsupported media type (schema 1)', error: new InvalidManifestError('schema 1', 'unsupported'), mirror: false, origin: false },
    { name: 'our abort', error: new DOMException('This operation was aborted', 'AbortError'), mirror: false, origin: false },
    { name: 'our deadline (AbortSignal.timeout)', error: new DOMException('The operation timed out.', 'TimeoutError'), mirror: false, origin: false },
    { name: 'our abort wrapped by the client', error: clientError(0, undefined, new DOMException('aborted', 'AbortError')), mirror: false, origin: false },
    { name: 'a full local disk', error: errno('ENOSPC'), mirror: false, origin: false },
    { name: 'something unrecognised', error: new Error('???'), mirror: true, origin: true },
  ];

  for (const c of cases) {
    test(`${c.name}: from a mirror ${c.mirror ? 'next' : 'stop'}, from the origin ${c.origin ? 'next' : 'stop'}`, () => {
      assert.equal(shouldFallBack(c.error, true), c.mirror);
      assert.equal(shouldFallBack(c.error, false), c.origin);
    });
  }

  test('an aborted signal stops whatever the error', () => {
    const controller = new AbortController();
    controller.abort();
    assert.equal(shouldFallBack(clientError(503), true, controller.signal), false);
    assert.equal(classifyFailure(clientError(503), controller.signal), 'cancelled');
    assert.equal(classifyFailure(clientError(503)), 'server');
  });
});

/** A tiny registry stand-in that records each request and answers with `reply`. */
interface FakeEndpoint {
  server: Server;
  host: string;
  seen: string[];
}

async function fakeEndpoint(reply: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeEndpoint> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.url ?? '');
    reply(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const ociError = (res: ServerResponse, status: number, code: string) => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message: code.toLowerCase() }] }));
};

describe('fallback across real endpoints (the loop mirrors.ts documents)', () => {
  const fast = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };
  let origin: TestRegistry;
  let digest: string;
  let tag: string;
  const fakes: FakeEndpoint[] = [];
  let unavailable: FakeEndpoint;
  let empty: FakeEndpoint;
  let locked: FakeEndpoint;
  let broken: FakeEndpoint;
  let hanging: FakeEndpoint;
  let deadPort: string;

  before(async () => {
    origin = await startTestRegistry();
    const image = await makeImage({ seed: 'mirror-fallback', layers: 1 });
    await pushImage(origin.url, 'team/app', image, 'v1');
    digest = image.manifest.descriptor.digest;
    tag = 'v1';
    unavailable = await fakeEndpoint((_req, res) => ociError(res, 503, 'UNAVAILABLE'));
    empty = await fakeEndpoint((_req, res) => ociError(res, 404, 'MANIFEST_UNKNOWN'));
    locked = await fakeEndpoint((_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="mirror"' }).end());
    broken = await fakeEndpoint((_req, res) => res.writeHead(500).end('boom'));
    hanging = await fakeEndpoint(() => undefined);
    fakes.push(unavailable, empty, locked, broken, hanging);
    const dead = await fakeEndpoint(() => undefined);
    deadPort = dead.host;
    await new Promise<void>((resolve) => dead.server.close(() => resolve()));
  });
  after(async () => {
    for (const fake of fakes) fake.server.closeAllConnections();
    await Promise.all(fakes.map((fake) => new Promise<void>((resolve) => fake.server.close(() => resolve()))));
    await origin.stop();
  });

  /** Fetch a manifest, endpoint by endpoint, as the pull code will. */
  async function fetchManifest(endpoints: Endpoint[], repository: string, target: string, signal?: AbortSignal): Promise<{ body: Buffer; from: Endpoint; failures: string[] }> {
    const failures: string[] = [];
    for (const [i, endpoint] of endpoints.entries()) {
      const client = new RegistryClient({ registry: endpoint.host, retry: fast });
      try {
        const url = new URL(endpointUrl(endpoint, `/v2/${repository}/manifests/${target}`));
        const res = await client.send('GET', `${url.pathname}${url.search}`, { repository, expect: [200], headers: { accept: MANIFEST_ACCEPT }, ...(signal ? { signal } : {}) });
        return { body: Buffer.concat(await Array.fromAsync(res.body as AsyncIterable<Buffer>)), from: endpoint, failures };
      } catch (error) {
        failures.push(`${endpoint.host}: ${classifyFailure(error, signal)}`);
        if (i === endpoints.length - 1 || !shouldFallBack(error, endpoint.isMirror, signal)) throw error;
      } finally {
        await client.close();
      }
    }
    throw new Error('no endpoints');
  }

  const mirrorsOf = (registry: string, urls: { host: string; pull?: 'all' | 'digest-only' }[]): MirrorSet =>
    validateMirrorSet({ [registry]: { mirrors: urls.map((u) => ({ url: `http://${u.host}`, pullFromMirror: u.pull ?? 'digest-only' })) } }, 'test');

  test('dead, failing, empty and locked mirrors fall through to the origin, each asked with ns=<origin>', async () => {
    const set = mirrorsOf(origin.address, [{ host: deadPort }, { host: unavailable.host }, { host: empty.host }, { host: locked.host }]);
    const before = [unavailable, empty, locked].map((f) => f.seen.length);
    const got = await fetchManifest(endpointsFor(origin.address, digest, set), 'team/app', digest);
    assert.equal(got.from.isMirror, false);
    assert.equal(digestOf(got.body), digest);
    assert.deepEqual(got.failures, [`${deadPort}: network`, `${unavailable.host}: server`, `${empty.host}: registry`, `${locked.host}: registry`]);
    for (const [i, fake] of [unavailable, empty, locked].entries()) {
      const requests = fake.seen.slice(before[i]);
      assert.ok(requests.length > 0);
      for (const url of requests) assert.equal(url, `/v2/team/app/manifests/${digest}?ns=${encodeURIComponent(origin.address)}`);
    }
  });

  test('a tag skips digest-only mirrors entirely', async () => {
    const set = mirrorsOf(origin.address, [{ host: unavailable.host }]);
    const before = unavailable.seen.length;
    const got = await fetchManifest(endpointsFor(origin.address, tag, set), 'team/app', tag);
    assert.equal(digestOf(got.body), digest);
    assert.deepEqual(got.failures, []);
    assert.equal(unavailable.seen.length, before, 'the digest-only mirror was never asked for a tag');
  });

  test('a mirror that has it serves it, and the origin is never contacted', async () => {
    // The skiff test registry plays the mirror; the "origin" only ever fails, and counts.
    const set = mirrorsOf(broken.host, [{ host: origin.address, pull: 'all' }]);
    const before = broken.seen.length;
    const got = await fetchManifest(endpointsFor(broken.host, tag, set), 'team/app', tag);
    assert.equal(got.from.isMirror, true);
    assert.equal(digestOf(got.body), digest);
    assert.equal(broken.seen.length, before);
  });

  test("the origin's registry error is final", async () => {
    const set = mirrorsOf(empty.host, [{ host: unavailable.host }]);
    await assert.rejects(fetchManifest(endpointsFor(empty.host, digest, set), 'team/app', digest), (error: unknown) => {
      assert.ok(error instanceof ClientError);
      assert.equal(error.status, 404);
      assert.equal(error.code, 'MANIFEST_UNKNOWN');
      assert.equal(shouldFallBack(error, false), false);
      return true;
    });
  });

  test('cancelling stops at the endpoint in flight; later endpoints are not tried', async () => {
    const set = mirrorsOf(broken.host, [{ host: hanging.host }, { host: unavailable.host }]);
    const before = { hanging: hanging.seen.length, unavailable: unavailable.seen.length, origin: broken.seen.length };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(fetchManifest(endpointsFor(broken.host, digest, set), 'team/app', digest, controller.signal));
    assert.equal(hanging.seen.length, before.hanging + 1, 'the hanging mirror was asked');
    assert.equal(unavailable.seen.length, before.unavailable, 'the next mirror was not');
    assert.equal(broken.seen.length, before.origin, 'nor the origin');
  });

  test('an operation deadline (AbortSignal.timeout) also stops', async () => {
    const set = mirrorsOf(broken.host, [{ host: hanging.host }]);
    const before = broken.seen.length;
    const signal = AbortSignal.timeout(100);
    await assert.rejects(fetchManifest(endpointsFor(broken.host, digest, set), 'team/app', digest, signal), (error: unknown) => {
      assert.equal(classifyFailure(error), 'cancelled', `classified from the error alone: ${String(error)}`);
      return true;
    });
    assert.equal(broken.seen.length, before);
  });
});
