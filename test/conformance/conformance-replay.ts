/**
 * A request-by-request replay of the OCI distribution-spec conformance suite (v1.1.x, the
 * legacy Ginkgo suite under `conformance/`) against an in-process skiff.
 *
 * The Go suite cannot be fetched on this machine, so this file re-creates what it does:
 * the same generated artifacts (tab-indented JSON, descriptors with `data` and
 * `"newUnspecifiedField"`, the mediaType-less empty-layer manifest, the referrer artifacts),
 * the same four workflows in order (Pull, Push, Content Discovery, Content Management) on one
 * repository, and the same client behaviour (only path and query of a Location are kept;
 * `digest=` is appended with `&` when the Location already has a query).
 *
 * Settings replayed: OCI_AUTOMATIC_CROSSMOUNT=1 (skiff mounts without `from`),
 * OCI_DELETE_MANIFEST_BEFORE_BLOBS=1, deletion supported (so the stricter expectations the suite
 * applies to registries that delete are used: DELETE is exactly 202, GET afterwards is 404,
 * tags/list is sorted).
 *
 * Requests go through node:http so headers are exactly what the suite sends (a PUT with
 * `Content-Length: 0` and no body, a GET with a body, no Content-Range on a streamed PATCH).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { tarOf } from '../../src/testing/images.ts';

// ---------------------------------------------------------------------------------------------
// Configuration (the suite's environment variables)
// ---------------------------------------------------------------------------------------------

/** OCI_NAMESPACE */
const NAMESPACE = 'conformance/ns';
/** OCI_CROSSMOUNT_NAMESPACE */
const CROSSMOUNT_NAMESPACE = 'conformance-crossmount';
/** OCI_AUTOMATIC_CROSSMOUNT */
const AUTOMATIC_CROSSMOUNT = true;
/** OCI_DELETE_MANIFEST_BEFORE_BLOBS */
const DELETE_MANIFEST_BEFORE_BLOBS = true;

const TEST_TAG_NAME = 'tagtest0';
const EMPTY_LAYER_TEST_TAG = 'emptylayer';

const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MEDIA_TYPE_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
const MEDIA_TYPE_EMPTY_JSON = 'application/vnd.oci.empty.v1+json';
const OCTET_STREAM = 'application/octet-stream';

const ERROR_CODES = [
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'MANIFEST_UNVERIFIED',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
];

// ---------------------------------------------------------------------------------------------
// Generated test data (setup.go)
// ---------------------------------------------------------------------------------------------

interface TestBlob {
  content: Buffer;
  contentLength: string;
  digest: string;
}

function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function testBlob(content: Buffer): TestBlob {
  return { content, contentLength: String(content.length), digest: sha256(content) };
}

/** Go's json.MarshalIndent(v, "", "\t"). */
function marshalIndent(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, '\t'));
}

/** setup.go randomString: crypto-random over [0-9A-Za-z-]. */
function randomString(n: number): string {
  const letters = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-';
  let out = '';
  for (let i = 0; i < n; i++) out += letters[randomInt(letters.length)];
  return out;
}

/**
 * The suite's descriptor struct: mediaType, digest, size, then the optional fields, and always
 * `newUnspecifiedField` (a nil []byte serializes as null, "hello world" as its base64).
 */
function descriptor(
  mediaType: string,
  blob: { digest: string; content: Buffer },
  extra: { data?: Buffer; annotations?: Record<string, string>; artifactType?: string; newUnspecifiedField?: Buffer } = {},
): Record<string, unknown> {
  return {
    mediaType,
    digest: blob.digest,
    size: blob.content.length,
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
    ...(extra.data ? { data: extra.data.toString('base64') } : {}),
    ...(extra.artifactType ? { artifactType: extra.artifactType } : {}),
    newUnspecifiedField: extra.newUnspecifiedField ? extra.newUnspecifiedField.toString('base64') : null,
  };
}

const NUM_WORKFLOWS = 16; // `numWorkflows` is the next bit after the four workflow flags

// One config per workflow, each unique through a random author.
const configs: TestBlob[] = [];
for (let i = 0; i < NUM_WORKFLOWS; i++) {
  configs.push(
    testBlob(
      marshalIndent({
        author: randomString(16),
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
      }),
    ),
  );
}

// The layer: a small real gzip tarball (the suite embeds one made with `tar czvf`).
const layerBlob = testBlob(
  gzipSync(await tarOf([{ name: 'test.txt', data: Buffer.from('you bothered to find out what was in here. Congratulations!\n') }])),
);
const layerDescriptors = [descriptor(MEDIA_TYPE_LAYER, layerBlob)];

function config(i: number): TestBlob {
  const found = configs[i];
  assert.ok(found, `configs[${i}]`);
  return found;
}

// One manifest per workflow: config descriptor with `data` and a non-null unknown field.
const manifests: TestBlob[] = [];
for (let i = 0; i < NUM_WORKFLOWS; i++) {
  manifests.push(
    testBlob(
      marshalIndent({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE_MANIFEST,
        config: descriptor(MEDIA_TYPE_CONFIG, config(i), { data: config(i).content, newUnspecifiedField: Buffer.from('hello world') }),
        layers: layerDescriptors,
      }),
    ),
  );
}

function manifest(i: number): TestBlob {
  const found = manifests[i];
  assert.ok(found, `manifests[${i}]`);
  return found;
}

// The empty-layer manifest: no `mediaType` field, no layers.
const emptyLayerManifest = testBlob(
  marshalIndent({
    schemaVersion: 2,
    config: descriptor(MEDIA_TYPE_CONFIG, config(1), { data: config(1).content, newUnspecifiedField: Buffer.from('hello world') }),
    layers: [],
  }),
);

const emptyJSONBlob = testBlob(Buffer.from('{}'));
const emptyJSONDescriptor = descriptor(MEDIA_TYPE_EMPTY_JSON, emptyJSONBlob);

const nonexistentManifest = '.INVALID_MANIFEST_NAME';
const invalidManifestContent = Buffer.from('blablabla');

const testBlobA = testBlob(randomBytes(42));

// Chunked upload blob: 42 bytes split at size/2+1.
const testBlobB = testBlob(randomBytes(42));
const chunkSplit = 42 / 2 + 1;
const testBlobBChunk1 = testBlobB.content.subarray(0, chunkSplit);
const testBlobBChunk2 = testBlobB.content.subarray(chunkSplit);
const testBlobBChunk1Range = `0-${testBlobBChunk1.length - 1}`; // 0-21
const testBlobBChunk2Range = `${testBlobBChunk1.length}-${testBlobB.content.length - 1}`; // 22-41

const dummyDigest = sha256('hello world');

// Referrers artifacts.
const testAnnotationKey = 'org.opencontainers.conformance.test';
const testAnnotationValues = new Map<string, string>();

const testRefBlobA = testBlob(Buffer.from('NHL Peanut Butter on my NHL bagel'));
const testRefArtifactTypeA = 'application/vnd.nhl.peanut.butter.bagel';
const testRefBlobB = testBlob(Buffer.from('NBA Strawberry Jam on my NBA croissant'));
const testRefArtifactTypeB = 'application/vnd.nba.strawberry.jam.croissant';
const testRefArtifactTypeIndex = 'application/vnd.food.stand';

function subjectOf(i: number): Record<string, unknown> {
  return descriptor(MEDIA_TYPE_MANIFEST, manifest(i));
}

function annotated(content: Record<string, unknown>, value: string | undefined): TestBlob {
  const withAnnotations = value === undefined ? content : { ...content, annotations: { [testAnnotationKey]: value } };
  const blob = testBlob(marshalIndent(withAnnotations));
  if (value !== undefined) testAnnotationValues.set(blob.digest, value);
  return blob;
}

// A-config: artifact type carried by a custom config media type.
const refsManifestAConfigArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: descriptor(testRefArtifactTypeA, testRefBlobA),
    layers: [emptyJSONDescriptor],
    subject: subjectOf(4),
  },
  'test config a',
);

// B-config
const refsManifestBConfigArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: descriptor(testRefArtifactTypeB, testRefBlobB),
    layers: [emptyJSONDescriptor],
    subject: subjectOf(4),
  },
  'test config b',
);

// A-layer: empty config, artifactType set, one layer of that type.
const refsManifestALayerArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    artifactType: testRefArtifactTypeA,
    config: emptyJSONDescriptor,
    layers: [descriptor(testRefArtifactTypeA, testRefBlobA)],
    subject: subjectOf(4),
  },
  'test layer a',
);

// B-layer
const refsManifestBLayerArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    artifactType: testRefArtifactTypeB,
    config: emptyJSONDescriptor,
    layers: [descriptor(testRefArtifactTypeB, testRefBlobB)],
    subject: subjectOf(4),
  },
  'test layer b',
);

// C-layer: subject is manifests[3], which this workflow never pushes; no annotation.
const refsManifestCLayerArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_MANIFEST,
    artifactType: testRefArtifactTypeB,
    config: emptyJSONDescriptor,
    layers: [descriptor(testRefArtifactTypeB, testRefBlobB)],
    subject: subjectOf(3),
  },
  undefined,
);

// Index: an image index artifact over A-config and A-layer, with the same subject.
const refsIndexArtifact = annotated(
  {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_INDEX,
    artifactType: testRefArtifactTypeIndex,
    manifests: [descriptor(MEDIA_TYPE_MANIFEST, refsManifestAConfigArtifact), descriptor(MEDIA_TYPE_MANIFEST, refsManifestALayerArtifact)],
    subject: subjectOf(4),
  },
  'test index',
);

// ---------------------------------------------------------------------------------------------
// Client (reggie, as the suite configures it)
// ---------------------------------------------------------------------------------------------

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer;
}

/** What one run of the replay talks to: a registry, or a load balancer in front of replicas. */
export interface ReplayTarget {
  url: string;
  stop(): Promise<void>;
  /** OCI_USERNAME / OCI_PASSWORD: the run authenticates (Basic, or Bearer through the challenge's realm). */
  credentials?: { username: string; password: string };
  /** OCI_AUTOMATIC_CROSSMOUNT (default on). */
  automaticCrossmount?: boolean;
  /** The registry's Prometheus text: with it, the run checks that background gc cycles ran during it. */
  metrics?: () => Promise<string>;
}

let registry: ReplayTarget;
/** OCI_USERNAME / OCI_PASSWORD: set for the authenticated run. */
let credentials: { username: string; password: string } | undefined;
/** Bearer tokens fetched so far, by the challenge's scope. */
const tokens = new Map<string, string>();

/**
 * One request to the registry under test; `path` is path and query, sent byte for byte. With
 * credentials, reggie's way: a 401 with a Bearer challenge fetches a token from the realm (Basic
 * credentials, the challenge's service and scope) and the request is sent again with it; a Basic
 * challenge sends it again with Basic credentials.
 */
async function call(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const first = await send(method, path, options);
  if (first.status !== 401 || !credentials) return first;
  const challenge = header(first, 'www-authenticate');
  const basic = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  if (/^basic /i.test(challenge)) return send(method, path, { ...options, headers: { ...options.headers, Authorization: basic } });
  const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  assert.ok(params.realm, `Bearer challenge with a realm: ${challenge}`);
  const scope = params.scope ?? '';
  let token = tokens.get(scope);
  if (token === undefined || params.error === 'invalid_token') {
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    for (const each of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', each);
    const answer = await fetch(url, { headers: { Authorization: basic } });
    assert.equal(answer.status, 200, `token from ${url}: ${answer.status}`);
    const body = (await answer.json()) as { token?: string; access_token?: string };
    token = body.token ?? body.access_token;
    assert.ok(token, 'token in the answer');
    tokens.set(scope, token);
  }
  return send(method, path, { ...options, headers: { ...options.headers, Authorization: `Bearer ${token}` } });
}

/**
 * One request, byte for byte. A redirect of a GET or HEAD is followed as Go's net/http client (the
 * suite's) follows it: to the Location, with the same headers but Authorization, which Go drops
 * for another host (a registry on S3 redirects blob GETs to presigned URLs).
 */
async function send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
  const base = new URL(registry.url);
  // The first request's path goes out as given (never normalized); a redirect's as its Location says.
  let target = { hostname: base.hostname, port: base.port, host: base.host, path };
  let headers: Record<string, string> = { 'User-Agent': 'distribution-spec-conformance-tests', ...options.headers };
  for (let hops = 0; ; hops++) {
    const res = await sendOnce(method, target, headers, options.body);
    const location = header(res, 'location');
    if (!REDIRECTS.has(res.status) || (method !== 'GET' && method !== 'HEAD') || location === '' || hops >= 10) return res;
    const next = new URL(location, `http://${target.host}${target.path}`);
    if (next.host !== target.host) headers = Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
    target = { hostname: next.hostname, port: next.port, host: next.host, path: `${next.pathname}${next.search}` };
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function sendOnce(method: string, target: { hostname: string; port: string; path: string }, headers: Record<string, string>, body: Buffer | undefined): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        method,
        path: target.path,
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

function header(res: Response, name: string): string {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : (value ?? '');
}

/** reggie's GetRelativeLocation: the Location with scheme and host dropped. */
function relativeLocation(res: Response): string {
  const location = header(res, 'location');
  assert.notEqual(location, '', 'Location header');
  const url = new URL(location, registry.url);
  return url.pathname + url.search;
}

/** SetQueryParam("digest", …) on a relative location that may already carry a query. */
function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`;
}

function blobPath(digest: string, name = NAMESPACE): string {
  return `/v2/${name}/blobs/${digest}`;
}

function manifestPath(reference: string, name = NAMESPACE): string {
  return `/v2/${name}/manifests/${reference}`;
}

function uploadsPath(name = NAMESPACE): string {
  return `/v2/${name}/blobs/uploads/`;
}

function describeResponse(res: Response): string {
  return `status ${res.status}, body ${res.body.toString().slice(0, 500)}`;
}

function assert2xx(res: Response, what = ''): void {
  assert.ok(res.status >= 200 && res.status < 300, `${what} expected 2xx, got ${describeResponse(res)}`);
}

function assertStatus(res: Response, expected: number | number[], what = ''): void {
  const allowed = Array.isArray(expected) ? expected : [expected];
  assert.ok(allowed.includes(res.status), `${what} expected ${allowed.join(' or ')}, got ${describeResponse(res)}`);
}

function assert2xxOr(res: Response, others: number[], what = ''): void {
  assert.ok(
    (res.status >= 200 && res.status < 300) || others.includes(res.status),
    `${what} expected 2xx or ${others.join(' or ')}, got ${describeResponse(res)}`,
  );
}

/** The suite's two-step blob push: POST for a session, then PUT the bytes with ?digest=. */
async function pushBlobInTwoSteps(blob: TestBlob): Promise<void> {
  const post = await call('POST', uploadsPath());
  const location = relativeLocation(post);
  const put = await call('PUT', withDigest(location, blob.digest), {
    headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': blob.contentLength },
    body: blob.content,
  });
  assert2xx(put, `PUT blob ${blob.digest}`);
}

async function putManifest(reference: string, content: Buffer, contentType = MEDIA_TYPE_MANIFEST): Promise<Response> {
  return call('PUT', manifestPath(reference), { headers: { 'Content-Type': contentType }, body: content });
}

function tagsOf(res: Response): string[] {
  try {
    const parsed = JSON.parse(res.body.toString()) as { tags?: unknown };
    return Array.isArray(parsed.tags) ? (parsed.tags as string[]) : [];
  } catch {
    return [];
  }
}

interface IndexDescriptor {
  mediaType?: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function referrersIndex(res: Response): { manifests: IndexDescriptor[] } {
  const parsed = JSON.parse(res.body.toString()) as { manifests?: unknown };
  assert.ok(Array.isArray(parsed.manifests), `manifests array in ${res.body.toString()}`);
  return { manifests: parsed.manifests as IndexDescriptor[] };
}

/** Go's sort.StringsAreSorted (byte order). */
function assertSorted(tags: string[]): void {
  for (let i = 1; i < tags.length; i++) {
    const previous = tags[i - 1]!;
    const current = tags[i]!;
    assert.ok(Buffer.compare(Buffer.from(previous), Buffer.from(current)) <= 0, `tags not sorted: ${JSON.stringify(tags)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------------

/**
 * Runs the four workflows against the target `start` gives (once per call: a test file per
 * deployment). With `metrics`, the target's background garbage collector runs every second or so:
 * the suite passes unchanged, and cycles ran while it did (the Push workflow waits for one between
 * its blob uploads and its manifest PUTs).
 */
export function conformanceReplay(name: string, start: () => Promise<ReplayTarget>, options: { collects?: boolean } = {}): void {
  const gcRunning = options.collects ?? false;
  describe(`OCI Distribution Conformance Tests (${name})`, () => {
    let automaticCrossmount = AUTOMATIC_CROSSMOUNT;
    before(async () => {
      tokens.clear();
      registry = await start();
      credentials = registry.credentials;
      automaticCrossmount = registry.automaticCrossmount ?? AUTOMATIC_CROSSMOUNT;
      assert.equal(registry.metrics !== undefined, gcRunning, 'a collecting target gives its metrics');
    });
    after(async () => {
      await registry?.stop();
    });

    test('the registry asks for credentials exactly when the run has them', async () => {
      const res = await send('GET', '/v2/');
      assertStatus(res, credentials ? 401 : 200);
      if (credentials) assert.match(header(res, 'www-authenticate'), /^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="skiff"$/);
    });

    test('generated test data has the shapes the suite relies on', () => {
      assert.equal(emptyJSONBlob.digest, 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
      assert.equal(dummyDigest, 'sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9');
      assert.equal(testBlobA.content.length, 42);
      assert.equal(testBlobBChunk1Range, '0-21');
      assert.equal(testBlobBChunk2Range, '22-41');
      assert.ok(config(0).content.toString().includes('\n\t"author": '));
      const m0 = JSON.parse(manifest(0).content.toString()) as { config: Record<string, unknown>; layers: Record<string, unknown>[] };
      assert.equal(m0.config.data, config(0).content.toString('base64'));
      assert.equal(m0.config.newUnspecifiedField, 'aGVsbG8gd29ybGQ=');
      assert.equal(m0.layers[0]?.newUnspecifiedField, null);
      assert.ok(!('mediaType' in (JSON.parse(emptyLayerManifest.content.toString()) as object)));
      assert.equal(testAnnotationValues.size, 5);
    });

    // -------------------------------------------------------------------------------------------
    // 01 Pull
    // -------------------------------------------------------------------------------------------
    describe('Pull', () => {
      describe('Setup', () => {
        test('Populate registry with test blob', async () => {
          await pushBlobInTwoSteps(config(0));
        });

        test('Populate registry with test layer', async () => {
          await pushBlobInTwoSteps(config(1));
          await pushBlobInTwoSteps(layerBlob);
        });

        test('Populate registry with test manifest', async () => {
          const res = await putManifest(TEST_TAG_NAME, manifest(0).content);
          assert2xx(res, `PUT manifest ${TEST_TAG_NAME}`);
          const byDigest = await putManifest(manifest(1).digest, manifest(1).content);
          assert2xx(byDigest, `PUT manifest ${manifest(1).digest}`);
        });
      });

      describe('Pull blobs', () => {
        test('HEAD request to nonexistent blob should result in 404 response', async () => {
          const res = await call('HEAD', blobPath(dummyDigest));
          assertStatus(res, 404);
        });

        test('HEAD request to existing blob should yield 200', async () => {
          const res = await call('HEAD', blobPath(config(0).digest));
          assertStatus(res, 200);
          const digest = header(res, 'docker-content-digest');
          if (digest !== '') assert.equal(digest, config(0).digest);
        });

        test('GET nonexistent blob should result in 404 response', async () => {
          const res = await call('GET', blobPath(dummyDigest));
          assertStatus(res, 404);
        });

        test('GET request to existing blob URL should yield 200', async () => {
          const res = await call('GET', blobPath(config(0).digest));
          assertStatus(res, 200);
          assert.deepEqual(res.body, config(0).content);
        });
      });

      describe('Pull manifests', () => {
        const accept = { Accept: MEDIA_TYPE_MANIFEST };

        test('HEAD request to nonexistent manifest should return 404', async () => {
          const res = await call('HEAD', manifestPath(nonexistentManifest), { headers: accept });
          assertStatus(res, 404);
        });

        test('HEAD request to manifest[0] path (digest) should yield 200 response', async () => {
          const res = await call('HEAD', manifestPath(manifest(0).digest), { headers: accept });
          assertStatus(res, 200);
          const digest = header(res, 'docker-content-digest');
          if (digest !== '') assert.equal(digest, manifest(0).digest);
        });

        test('HEAD request to manifest[1] path (digest) should yield 200 response', async () => {
          const res = await call('HEAD', manifestPath(manifest(1).digest), { headers: accept });
          assertStatus(res, 200);
          const digest = header(res, 'docker-content-digest');
          if (digest !== '') assert.equal(digest, manifest(1).digest);
        });

        test('HEAD request to manifest path (tag) should yield 200 response', async () => {
          const res = await call('HEAD', manifestPath(TEST_TAG_NAME), { headers: accept });
          assertStatus(res, 200);
          const digest = header(res, 'docker-content-digest');
          if (digest !== '') assert.equal(digest, manifest(0).digest);
        });

        test('GET nonexistent manifest should return 404', async () => {
          const res = await call('GET', manifestPath(nonexistentManifest), { headers: accept });
          assertStatus(res, 404);
        });

        test('GET request to manifest[0] path (digest) should yield 200 response', async () => {
          const res = await call('GET', manifestPath(manifest(0).digest), { headers: accept });
          assertStatus(res, 200);
          assert.deepEqual(res.body, manifest(0).content);
        });

        test('GET request to manifest[1] path (digest) should yield 200 response', async () => {
          const res = await call('GET', manifestPath(manifest(1).digest), { headers: accept });
          assertStatus(res, 200);
          assert.deepEqual(res.body, manifest(1).content);
        });

        test('GET request to manifest path (tag) should yield 200 response', async () => {
          const res = await call('GET', manifestPath(TEST_TAG_NAME), { headers: accept });
          assertStatus(res, 200);
          assert.deepEqual(res.body, manifest(0).content);
        });
      });

      describe('Error codes', () => {
        test('400 response body should contain OCI-conforming JSON message', async () => {
          const res = await call('GET', manifestPath('sha256:totallywrong'), {
            headers: { 'Content-Type': MEDIA_TYPE_MANIFEST, 'Content-Length': String(invalidManifestContent.length) },
            body: invalidManifestContent,
          });
          assertStatus(res, [400, 404]);
          if (res.status === 400) {
            const parsed = JSON.parse(res.body.toString()) as { errors?: { code?: unknown }[] };
            assert.ok(Array.isArray(parsed.errors) && parsed.errors.length > 0, `errors in ${res.body.toString()}`);
            const code = parsed.errors[0]?.code;
            assert.ok(typeof code === 'string' && ERROR_CODES.includes(code), `error code ${String(code)}`);
          }
        });
      });

      describe('Teardown', () => {
        if (DELETE_MANIFEST_BEFORE_BLOBS) {
          test('Delete manifest created in tests', async () => {
            for (const m of [manifest(0), manifest(1)]) {
              const res = await call('DELETE', manifestPath(m.digest));
              assert2xxOr(res, [405], `DELETE manifest ${m.digest}`);
            }
          });
        }

        test('Delete config blob created in tests', async () => {
          for (const c of [config(0), config(1)]) {
            const res = await call('DELETE', blobPath(c.digest));
            assert2xxOr(res, [404, 405], `DELETE blob ${c.digest}`);
          }
        });

        test('Delete layer blob created in setup', async () => {
          const res = await call('DELETE', blobPath(layerBlob.digest));
          assert2xxOr(res, [404, 405], `DELETE blob ${layerBlob.digest}`);
        });
      });
    });

    // -------------------------------------------------------------------------------------------
    // 02 Push
    // -------------------------------------------------------------------------------------------
    describe('Push', () => {
      let lastResponse: Response | undefined;
      let prevResponse: Response | undefined;

      function last(): Response {
        assert.ok(lastResponse, 'a previous spec left a response');
        return lastResponse;
      }

      describe('Blob Upload Streamed', () => {
        test('PATCH request with blob in body should yield 202 response', async () => {
          const post = await call('POST', uploadsPath());
          assert.notEqual(header(post, 'location'), '', 'Location');
          const patch = await call('PATCH', relativeLocation(post), { headers: { 'Content-Type': OCTET_STREAM }, body: testBlobA.content });
          assertStatus(patch, 202);
          lastResponse = patch;
        });

        test('PUT request to session URL with digest should yield 201 response', async () => {
          const put = await call('PUT', withDigest(relativeLocation(last()), testBlobA.digest), {
            headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': '0' },
          });
          assertStatus(put, 201);
          assert.notEqual(header(put, 'location'), '', 'Location');
        });
      });

      describe('Blob Upload Monolithic', () => {
        let monolithicPostStatus = 0;

        test('GET nonexistent blob should result in 404 response', async () => {
          const res = await call('GET', blobPath(dummyDigest));
          assertStatus(res, 404);
        });

        test('POST request with digest and blob should yield a 201 or 202', async () => {
          const res = await call('POST', `${uploadsPath()}?digest=${config(1).digest}`, {
            headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': config(1).contentLength },
            body: config(1).content,
          });
          assert.notEqual(header(res, 'location'), '', 'Location');
          assertStatus(res, [201, 202]);
          monolithicPostStatus = res.status;
        });

        test('GET request to blob URL from prior request should yield 200 or 404 based on response code', async () => {
          const res = await call('GET', blobPath(config(1).digest));
          if (monolithicPostStatus === 201) assertStatus(res, 200);
          else assert.equal(monolithicPostStatus, 202);
        });

        test('POST request should yield a session ID', async () => {
          const res = await call('POST', uploadsPath());
          assertStatus(res, 202);
          lastResponse = res;
        });

        test('PUT upload of a blob should yield a 201 Response', async () => {
          const res = await call('PUT', withDigest(relativeLocation(last()), config(1).digest), {
            headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': config(1).contentLength },
            body: config(1).content,
          });
          assert.notEqual(header(res, 'location'), '', 'Location');
          assertStatus(res, 201);
        });

        test('GET request to existing blob should yield 200 response', async () => {
          const res = await call('GET', blobPath(config(1).digest));
          assertStatus(res, 200);
        });

        test('PUT upload of a layer blob should yield a 201 Response', async () => {
          const post = await call('POST', uploadsPath());
          const res = await call('PUT', withDigest(relativeLocation(post), layerBlob.digest), {
            headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': layerBlob.contentLength },
            body: layerBlob.content,
          });
          assert.notEqual(header(res, 'location'), '', 'Location');
          assertStatus(res, 201);
        });

        test('GET request to existing layer should yield 200 response', async () => {
          const res = await call('GET', blobPath(layerBlob.digest));
          assertStatus(res, 200);
        });
      });

      describe('Blob Upload Chunked', () => {
        test('Out-of-order blob upload should return 416', async () => {
          const post = await call('POST', uploadsPath(), { headers: { 'Content-Length': '0' } });
          assert.notEqual(header(post, 'location'), '', 'Location');
          const patch = await call('PATCH', relativeLocation(post), {
            headers: {
              'Content-Type': OCTET_STREAM,
              'Content-Length': String(testBlobBChunk2.length),
              'Content-Range': testBlobBChunk2Range,
            },
            body: testBlobBChunk2,
          });
          assertStatus(patch, 416);
        });

        test('PATCH request with first chunk should return 202', async () => {
          const post = await call('POST', uploadsPath(), { headers: { 'Content-Length': '0' } });
          assert.notEqual(header(post, 'location'), '', 'Location');
          prevResponse = post;
          const patch = await call('PATCH', relativeLocation(post), {
            headers: {
              'Content-Type': OCTET_STREAM,
              'Content-Length': String(testBlobBChunk1.length),
              'Content-Range': testBlobBChunk1Range,
            },
            body: testBlobBChunk1,
          });
          assertStatus(patch, 202);
          assert.equal(header(patch, 'range'), testBlobBChunk1Range);
          lastResponse = patch;
        });

        test('Retry previous blob chunk should return 416', async () => {
          assert.ok(prevResponse);
          const patch = await call('PATCH', relativeLocation(prevResponse), {
            headers: {
              'Content-Type': OCTET_STREAM,
              'Content-Length': String(testBlobBChunk1.length),
              'Content-Range': testBlobBChunk1Range,
            },
            body: testBlobBChunk1,
          });
          assertStatus(patch, 416);
        });

        test('Get on stale blob upload should return 204 with a range and location', async () => {
          assert.ok(prevResponse);
          const res = await call('GET', relativeLocation(prevResponse));
          assertStatus(res, 204);
          assert.notEqual(header(res, 'location'), '', 'Location');
          assert.equal(header(res, 'range'), testBlobBChunk1Range);
          lastResponse = res;
        });

        test('PATCH request with second chunk should return 202', async () => {
          const patch = await call('PATCH', relativeLocation(last()), {
            headers: {
              'Content-Type': OCTET_STREAM,
              'Content-Length': String(testBlobBChunk2.length),
              'Content-Range': testBlobBChunk2Range,
            },
            body: testBlobBChunk2,
          });
          assertStatus(patch, 202);
          assert.notEqual(header(patch, 'location'), '', 'Location');
          assert.equal(header(patch, 'range'), `0-${testBlobB.content.length - 1}`);
          lastResponse = patch;
        });

        test('PUT request with digest should return 201', async () => {
          const put = await call('PUT', withDigest(relativeLocation(last()), testBlobB.digest), {
            headers: { 'Content-Type': OCTET_STREAM, 'Content-Length': '0' },
          });
          assertStatus(put, 201);
          assert.notEqual(header(put, 'location'), '', 'Location');
        });
      });

      describe('Cross-Repository Blob Mount', () => {
        test('Cross-mounting of a blob without the from argument should yield session id', async () => {
          const res = await call('POST', `${uploadsPath(CROSSMOUNT_NAMESPACE)}?mount=${dummyDigest}`);
          assertStatus(res, 202);
          assert.notEqual(header(res, 'location'), '', 'Location');
        });

        test('POST request to mount another repository\'s blob should return 201 or 202', async () => {
          const res = await call('POST', `${uploadsPath(CROSSMOUNT_NAMESPACE)}?mount=${testBlobA.digest}&from=${NAMESPACE}`);
          // skiff mounts, so the suite's 201 branch applies.
          assertStatus(res, 201);
          lastResponse = res;
        });

        test('GET request to test digest within cross-mount namespace should return 200', async () => {
          const mounted = last();
          assertStatus(mounted, 201);
          const location = relativeLocation(mounted);
          assert.equal(location, blobPath(testBlobA.digest, CROSSMOUNT_NAMESPACE));
          const res = await call('GET', location);
          assertStatus(res, 200);
          assert.deepEqual(res.body, testBlobA.content);
        });

        test('Cross-mounting without from, and automatic content discovery enabled should return a 201', async () => {
          const res = await call('POST', `${uploadsPath(CROSSMOUNT_NAMESPACE)}?mount=${testBlobA.digest}`);
          assertStatus(res, automaticCrossmount ? 201 : 202);
        });
      });

      describe('Manifest Upload', () => {
        if (gcRunning) {
          test('a gc cycle runs between the blob uploads and the manifest PUTs', async () => {
            await waitForGcCycle();
          });
        }

        test('GET nonexistent manifest should return 404', async () => {
          const res = await call('GET', manifestPath(nonexistentManifest), { headers: { Accept: MEDIA_TYPE_MANIFEST } });
          assertStatus(res, 404);
        });

        test('PUT should accept a manifest upload', async () => {
          for (let i = 0; i < 4; i++) {
            const res = await putManifest(`test${i}`, manifest(1).content);
            assert.notEqual(header(res, 'location'), '', `Location for test${i}`);
            assertStatus(res, 201, `PUT test${i}`);
          }
        });

        test('PUT with an empty layer should accept a manifest upload', async () => {
          const res = await putManifest(EMPTY_LAYER_TEST_TAG, emptyLayerManifest.content);
          assert.notEqual(header(res, 'location'), '', 'Location');
          assertStatus(res, 201);
        });

        test('GET request to manifest URL (digest) should yield 200 response', async () => {
          const res = await call('GET', manifestPath(manifest(1).digest), { headers: { Accept: MEDIA_TYPE_MANIFEST } });
          assertStatus(res, 200);
        });
      });

      describe('Teardown', () => {
        if (DELETE_MANIFEST_BEFORE_BLOBS) {
          test('Delete manifest created in tests', async () => {
            const res = await call('DELETE', manifestPath(manifest(1).digest));
            assertStatus(res, 202);
            const get = await call('GET', manifestPath(manifest(1).digest));
            assertStatus(get, 404);
          });

          test('Delete manifest with empty layer created in tests', async () => {
            const res = await call('DELETE', manifestPath(emptyLayerManifest.digest));
            assertStatus(res, 202);
            const get = await call('GET', manifestPath(emptyLayerManifest.digest));
            assertStatus(get, 404);
          });
        }

        test('Delete config blob created in tests', async () => {
          const res = await call('DELETE', blobPath(config(1).digest));
          assertStatus(res, [202, 404]);
        });

        test('Delete layer blob created in setup', async () => {
          const res = await call('DELETE', blobPath(layerBlob.digest));
          assertStatus(res, [202, 404]);
        });
      });
    });

    // -------------------------------------------------------------------------------------------
    // 03 Content Discovery
    // -------------------------------------------------------------------------------------------
    describe('Content Discovery', () => {
      let numTags = 0;
      let tagList: string[] = [];

      function expectSubject(res: Response, subject: TestBlob, what: string): void {
        assert2xx(res, what);
        assert.equal(header(res, 'oci-subject'), subject.digest, `${what}: OCI-Subject`);
      }

      describe('Setup', () => {
        test('Populate registry with test config blob', async () => {
          await pushBlobInTwoSteps(config(2));
        });

        test('Populate registry with test layer', async () => {
          await pushBlobInTwoSteps(layerBlob);
        });

        test('Populate registry with test tags', async () => {
          for (let i = 0; i < 4; i++) {
            for (const tag of [`test${i}`, `TEST${i}`]) {
              const res = await putManifest(tag, manifest(2).content);
              assert2xx(res, `PUT manifest ${tag}`);
            }
          }
        });

        test('Get tag list', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list`);
          assertStatus(res, 200);
          assert.ok(tagsOf(res).length >= 8, `tags after setup: ${res.body.toString()}`);
        });

        test('References setup', async () => {
          // Blobs the artifacts point at.
          await pushBlobInTwoSteps(emptyJSONBlob);
          await pushBlobInTwoSteps(testRefBlobA);

          // A-config, before its subject exists.
          expectSubject(await putManifest(refsManifestAConfigArtifact.digest, refsManifestAConfigArtifact.content), manifest(4), 'PUT A-config');
          // A-layer.
          expectSubject(await putManifest(refsManifestALayerArtifact.digest, refsManifestALayerArtifact.content), manifest(4), 'PUT A-layer');
          // Index.
          expectSubject(await putManifest(refsIndexArtifact.digest, refsIndexArtifact.content, MEDIA_TYPE_INDEX), manifest(4), 'PUT Index');

          // The subject itself.
          await pushBlobInTwoSteps(config(4));
          await pushBlobInTwoSteps(layerBlob);
          assert2xx(await putManifest(TEST_TAG_NAME, manifest(4).content), 'PUT manifests[4]');

          // B-config and B-layer, after the subject exists.
          await pushBlobInTwoSteps(testRefBlobB);
          expectSubject(await putManifest(refsManifestBConfigArtifact.digest, refsManifestBConfigArtifact.content), manifest(4), 'PUT B-config');
          expectSubject(await putManifest(refsManifestBLayerArtifact.digest, refsManifestBLayerArtifact.content), manifest(4), 'PUT B-layer');

          // C-layer, whose subject is never pushed.
          expectSubject(await putManifest(refsManifestCLayerArtifact.digest, refsManifestCLayerArtifact.content), manifest(3), 'PUT C-layer');
        });
      });

      describe('Test content discovery endpoints (listing tags)', () => {
        test('GET request to list tags should yield 200 response and be in sorted order', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list`);
          assertStatus(res, 200);
          tagList = tagsOf(res);
          numTags = tagList.length;
          assert.ok(numTags > 0);
          assertSorted(tagList);
        });

        test('GET number of tags should be limitable by `n` query parameter', async () => {
          const n = Math.trunc(numTags / 2);
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list?n=${n}`);
          assertStatus(res, 200);
          const tags = tagsOf(res);
          assert.equal(tags.length, n, `n=${n} gave ${JSON.stringify(tags)}`);
        });

        test('GET start of tag is set by `last` query parameter', async () => {
          const n = Math.trunc(numTags / 2);
          const lastTag = tagList[n - 1];
          assert.ok(lastTag !== undefined);
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list?n=${n}&last=${lastTag}`);
          assertStatus(res, 200);
          const tags = tagsOf(res);
          assert.ok(tags.length <= n, `at most ${n} tags, got ${JSON.stringify(tags)}`);
          assert.ok(!tags.includes(lastTag), `${lastTag} must not be repeated`);
          assert.deepEqual(tags, tagList.slice(n, 2 * n));
        });
      });

      describe('Test content discovery endpoints (listing references)', () => {
        test('GET request to nonexistent blob should result in empty 200 response', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/referrers/${dummyDigest}`);
          assertStatus(res, 200);
          assert.equal(header(res, 'content-type'), MEDIA_TYPE_INDEX);
          assert.equal(referrersIndex(res).manifests.length, 0);
        });

        test('GET request to existing blob should yield 200', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/referrers/${manifest(4).digest}`);
          assertStatus(res, 200);
          assert.equal(header(res, 'content-type'), MEDIA_TYPE_INDEX);
          const { manifests: found } = referrersIndex(res);
          assert.equal(found.length, 5, JSON.stringify(found));
          assert.deepEqual(
            found.map((d) => d.digest).sort(),
            [refsManifestAConfigArtifact, refsManifestALayerArtifact, refsIndexArtifact, refsManifestBConfigArtifact, refsManifestBLayerArtifact]
              .map((m) => m.digest)
              .sort(),
          );
          for (const d of found) {
            const annotations = d.annotations ?? {};
            assert.equal(Object.keys(annotations).length, 1, `annotations of ${d.digest}`);
            assert.equal(annotations[testAnnotationKey], testAnnotationValues.get(d.digest), `annotation of ${d.digest}`);
          }
        });

        test('GET request to existing blob with filter should yield 200', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/referrers/${manifest(4).digest}?artifactType=${testRefArtifactTypeA}`);
          assertStatus(res, 200);
          assert.equal(header(res, 'content-type'), MEDIA_TYPE_INDEX);
          assert.equal(header(res, 'oci-filters-applied'), 'artifactType');
          const { manifests: found } = referrersIndex(res);
          assert.equal(found.length, 2, JSON.stringify(found));
          assert.deepEqual(found.map((d) => d.digest).sort(), [refsManifestAConfigArtifact.digest, refsManifestALayerArtifact.digest].sort());
          for (const d of found) {
            const annotations = d.annotations ?? {};
            assert.equal(Object.keys(annotations).length, 1, `annotations of ${d.digest}`);
            assert.equal(annotations[testAnnotationKey], testAnnotationValues.get(d.digest), `annotation of ${d.digest}`);
          }
        });

        test('GET request to missing manifest should yield 200', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/referrers/${manifest(3).digest}`);
          assertStatus(res, 200);
          assert.equal(header(res, 'content-type'), MEDIA_TYPE_INDEX);
          const { manifests: found } = referrersIndex(res);
          assert.equal(found.length, 1, JSON.stringify(found));
          assert.equal(found[0]?.digest, refsManifestCLayerArtifact.digest);
        });
      });

      describe('Teardown', () => {
        if (DELETE_MANIFEST_BEFORE_BLOBS) {
          test('Delete created manifest & associated tags', async () => {
            const references = [
              refsIndexArtifact.digest,
              manifest(2).digest,
              manifest(4).digest,
              refsManifestAConfigArtifact.digest,
              refsManifestALayerArtifact.digest,
              TEST_TAG_NAME,
              refsManifestBConfigArtifact.digest,
              refsManifestBLayerArtifact.digest,
              refsManifestCLayerArtifact.digest,
            ];
            for (const reference of references) {
              const res = await call('DELETE', manifestPath(reference));
              assert2xxOr(res, [404], `DELETE manifest ${reference}`);
            }
          });
        }

        test('Delete config blob created in tests', async () => {
          const res = await call('DELETE', blobPath(config(2).digest));
          assert2xx(res, `DELETE blob ${config(2).digest}`);
        });

        test('Delete layer blob created in setup', async () => {
          const res = await call('DELETE', blobPath(layerBlob.digest));
          assert2xx(res, `DELETE blob ${layerBlob.digest}`);
        });

        test('Delete other blobs created in setup', async () => {
          for (const blob of [config(4), testRefBlobA, testRefBlobB, emptyJSONBlob]) {
            const res = await call('DELETE', blobPath(blob.digest));
            assert2xxOr(res, [404], `DELETE blob ${blob.digest}`);
          }
        });
      });
    });

    // -------------------------------------------------------------------------------------------
    // 04 Content Management
    // -------------------------------------------------------------------------------------------
    describe('Content Management', () => {
      let numTags = 0;

      describe('Setup', () => {
        test('Populate registry with test config blob', async () => {
          await pushBlobInTwoSteps(config(3));
          await pushBlobInTwoSteps(config(0));
        });

        test('Populate registry with test layer', async () => {
          await pushBlobInTwoSteps(layerBlob);
        });

        test('Populate registry with test tag', async () => {
          assert2xx(await putManifest(TEST_TAG_NAME, manifest(3).content), `PUT manifest ${TEST_TAG_NAME}`);
          assert2xx(await putManifest(manifest(0).digest, manifest(0).content), `PUT manifest ${manifest(0).digest}`);
        });

        test('Check how many tags there are before anything gets deleted', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list`);
          assertStatus(res, 200);
          numTags = tagsOf(res).length;
          assert.ok(numTags >= 1, `tags ${res.body.toString()}`);
        });
      });

      describe('Manifest delete', () => {
        test('DELETE request to manifest tag should return 202', async () => {
          const res = await call('DELETE', manifestPath(TEST_TAG_NAME));
          assertStatus(res, 202);
        });

        test('DELETE request to manifest (digest) should yield 202 response', async () => {
          const res = await call('DELETE', manifestPath(manifest(3).digest));
          assertStatus(res, 202);
        });

        test('GET request to deleted manifest URL should yield 404 response', async () => {
          const res = await call('GET', manifestPath(manifest(3).digest), { headers: { Accept: MEDIA_TYPE_MANIFEST } });
          assertStatus(res, 404);
        });

        test('GET request to tags list should reflect manifest deletion', async () => {
          const res = await call('GET', `/v2/${NAMESPACE}/tags/list`);
          assertStatus(res, 200);
          assert.equal(tagsOf(res).length, numTags - 1, `tags ${res.body.toString()}`);
        });
      });

      describe('Blob delete', () => {
        test('DELETE request to blob URL should yield 202 response', async () => {
          const res = await call('DELETE', blobPath(config(3).digest));
          assertStatus(res, 202);
          const layer = await call('DELETE', blobPath(layerBlob.digest));
          assertStatus(layer, 202);
        });

        test('GET request to deleted blob URL should yield 404 response', async () => {
          const res = await call('GET', blobPath(config(3).digest));
          assertStatus(res, 404);
        });
      });
    });

    if (gcRunning) {
      test('garbage collection cycles ran during the suite, none failed', async () => {
        await waitForGcCycle();
        const cycles = await gcCycles();
        assert.ok(cycles.ok >= 2, `cycles: ${JSON.stringify(cycles)}`);
        assert.equal(cycles.failed, 0);
      });
    }
  });
}

/** The background collector's cycles so far, from the metrics. */
async function gcCycles(): Promise<{ ok: number; failed: number }> {
  const text = await registry.metrics!();
  // Summed: a target of several replicas gives each one's metrics, one after the other.
  const count = (outcome: string) => [...text.matchAll(new RegExp(`^skiff_gc_cycles_total\\{outcome="${outcome}"\\} (\\d+)`, 'gm'))].reduce((sum, match) => sum + Number(match[1]), 0);
  return { ok: count('ok'), failed: count('failed') };
}

/** Waits (at most 10 s) until one more background gc cycle has completed. */
async function waitForGcCycle(): Promise<void> {
  const seen = (await gcCycles()).ok;
  const deadline = Date.now() + 10_000;
  while ((await gcCycles()).ok <= seen) {
    assert.ok(Date.now() < deadline, 'a gc cycle completed within 10 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
