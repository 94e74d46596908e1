/**
 * Mirror mode, blobs (issue 11 §Behaviour): a miss is filled from the upstream once per digest
 * however many clients and repository names ask, streamed to them as it arrives, Range answered
 * on a miss, verified before it lands (a lying upstream cuts every client before its last byte and
 * leaves nothing), linked to the canonical repository after the commit, and never decided by an
 * upstream HEAD. The upstream is a real skiff registry behind a counting, fault-injecting proxy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { fetchBytes } from '../../src/testing/fetch-bytes.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { pushBlob } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const MiB = 1024 * 1024;
const HOST = 'upstream.test';

describe('mirror blobs', () => {
  let origin: TestRegistry;
  let proxy: FaultProxy;
  let mirror: TestMirror;
  let base: string;

  before(async () => {
    origin = await startTestRegistry();
    proxy = new FaultProxy(origin.url);
    const proxyHost = await proxy.start();
    mirror = await startTestMirror({
      upstreams: [upstream({ host: HOST, url: `http://${proxyHost}`, default: true, deny: ['team/**'] })],
    });
    base = mirror.url;
  });
  after(async () => {
    await mirror?.stop();
    await proxy?.stop();
    await origin?.stop();
  });
  beforeEach(() => {
    proxy.decide = () => undefined;
  });

  async function upstreamBlob(repository: string, size: number): Promise<{ data: Buffer; descriptor: Descriptor }> {
    const data = randomBytes(size);
    const descriptor: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(data), size };
    await pushBlob(origin.url, repository, { descriptor, data });
    return { data, descriptor };
  }
  const upstreamGets = (digest: Digest) => proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`));
  const upstreamHeads = (digest: Digest) => proxy.requests.filter((r) => r.method === 'HEAD' && r.url.includes(`/blobs/${digest}`));
  const ingestLeft = () => readdir(join(mirror.dataDir, 'ingest'));

  test('12 concurrent cold GETs by prefix, ?ns= and the default name, and of two repositories sharing the blob: one upstream GET', async () => {
    const { data, descriptor } = await upstreamBlob('lib/app', 6 * MiB);
    await pushBlob(origin.url, 'lib/other', { descriptor, data });
    const paths = [
      `/v2/${HOST}/lib/app/blobs/${descriptor.digest}`,
      `/v2/lib/app/blobs/${descriptor.digest}`,
      `/v2/lib/app/blobs/${descriptor.digest}?ns=${HOST}`,
      `/v2/${HOST}/lib/other/blobs/${descriptor.digest}`,
      `/v2/lib/other/blobs/${descriptor.digest}`,
      `/v2/lib/other/blobs/${descriptor.digest}?ns=${HOST}`,
    ];
    const got = await Promise.all([...paths, ...paths].map((path) => fetchBytes(`${base}${path}`)));
    for (const [i, g] of got.entries()) {
      assert.equal(g.status, 200, paths[i % paths.length]);
      assert.equal(g.headers['docker-content-digest'], descriptor.digest);
      assert.deepEqual([g.bytes, g.digest, g.cut], [data.length, descriptor.digest, false], paths[i % paths.length]);
    }
    assert.equal(upstreamGets(descriptor.digest).length, 1, JSON.stringify(upstreamGets(descriptor.digest)));
    assert.equal(upstreamHeads(descriptor.digest).length, 0, 'no HEAD decides anything');
    // Cached once, linked to both canonical repositories after the commit, nothing left in ingest/.
    for (let i = 0; i < 50 && !(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/other`, descriptor.digest)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await mirror.registry.blobs.stat(descriptor.digest), data.length);
    assert.equal(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/app`, descriptor.digest), true);
    assert.equal(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/other`, descriptor.digest), true);
    assert.deepEqual(await ingestLeft(), []);
    // Warm: served from the cache, no upstream request at all.
    const before = proxy.requests.length;
    const warm = await fetchBytes(`${base}/v2/lib/app/blobs/${descriptor.digest}`);
    assert.deepEqual([warm.status, warm.digest], [200, descriptor.digest]);
    assert.equal(proxy.requests.length, before);
  });

  test('Range on a miss: 206 with exactly the bytes asked, from the one upstream fetch', async () => {
    const { data, descriptor } = await upstreamBlob('lib/range', 3 * MiB);
    const ranges = [
      ['bytes=100-199', 100, 199],
      ['bytes=0-0', 0, 0],
      [`bytes=${3 * MiB - 10}-`, 3 * MiB - 10, 3 * MiB - 1],
      ['bytes=-5', 3 * MiB - 5, 3 * MiB - 1],
    ] as const;
    const got = await Promise.all(ranges.map(([range]) => fetchBytes(`${base}/v2/${HOST}/lib/range/blobs/${descriptor.digest}`, { headers: { range } })));
    for (const [i, [range, start, end]] of ranges.entries()) {
      assert.equal(got[i]!.status, 206, range);
      assert.equal(got[i]!.headers['content-range'], `bytes ${start}-${end}/${data.length}`, range);
      assert.deepEqual([got[i]!.bytes, got[i]!.digest], [end - start + 1, digestOf(data.subarray(start, end + 1))], range);
    }
    const beyond = await fetchBytes(`${base}/v2/${HOST}/lib/range/blobs/${descriptor.digest}`, { headers: { range: `bytes=${3 * MiB}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(upstreamGets(descriptor.digest).length, 1);
  });

  test('HEAD on a miss fetches with GET, never trusting an upstream HEAD 404 (distribution#4747)', async () => {
    const { data, descriptor } = await upstreamBlob('lib/head', 2 * MiB);
    // A pull-through upstream that has not fetched the blob yet: 404 on HEAD, the bytes on GET.
    proxy.decide = (r) => (r.method === 'HEAD' ? { status: 404 } : undefined);
    const head = await fetchBytes(`${base}/v2/lib/head/blobs/${descriptor.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(data.length));
    assert.equal(head.headers['docker-content-digest'], descriptor.digest);
    assert.equal(upstreamHeads(descriptor.digest).length, 0);
    assert.equal(upstreamGets(descriptor.digest).length, 1);
    // The fill the HEAD started goes on into the cache: its file, then its link in the cached
    // repository (a GET between the two would rightly ask the upstream whether it has the blob).
    const canonical = mirror.registry.policyName('lib/head');
    const cached = async (): Promise<boolean> => (await mirror.registry.blobs.stat(descriptor.digest)) !== undefined && (await mirror.registry.metadata.isBlobLinked(canonical, descriptor.digest));
    for (let i = 0; i < 100 && !(await cached()); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await mirror.registry.blobs.stat(descriptor.digest), data.length);
    assert.ok(await mirror.registry.metadata.isBlobLinked(canonical, descriptor.digest), `linked in ${canonical}`);
    const got = await fetchBytes(`${base}/v2/lib/head/blobs/${descriptor.digest}`);
    assert.deepEqual([got.status, got.digest], [200, descriptor.digest]);
    assert.equal(upstreamGets(descriptor.digest).length, 1);
  });

  test('a lying upstream: every client is cut before its last byte, nothing is cached; the fixed upstream then fills', async () => {
    const { data, descriptor } = await upstreamBlob('lib/liar', 3 * MiB);
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes(descriptor.digest) ? { corruptAt: 2 * MiB } : undefined);
    const url = `${base}/v2/lib/liar/blobs/${descriptor.digest}`;
    const got = await Promise.all([fetchBytes(url), fetchBytes(url, { headers: { range: `bytes=${3 * MiB - 1}-` } }), fetchBytes(url, { headers: { range: 'bytes=0-9' } })]);
    const wanted = [data.length, 1, 10];
    for (const [i, g] of got.entries()) {
      assert.ok(g.status === 200 || g.status === 206 || g.status === 0, `client ${i}: ${g.status}`);
      assert.equal(g.cut, true, `client ${i} must see a broken response`);
      assert.ok(g.bytes < wanted[i]!, `client ${i} got ${g.bytes} of ${wanted[i]}`);
    }
    for (let i = 0; i < 50 && (await ingestLeft()).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await mirror.registry.blobs.stat(descriptor.digest), undefined);
    assert.deepEqual(await ingestLeft(), []);
    assert.equal(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/liar`, descriptor.digest), false);
    assert.ok(mirror.logs.some((l) => l.msg === 'mirror: blob fill failed; nothing was cached' && l.digest === descriptor.digest));

    proxy.decide = () => undefined;
    const fixed = await fetchBytes(url);
    assert.deepEqual([fixed.status, fixed.bytes, fixed.digest, fixed.cut], [200, data.length, descriptor.digest, false]);
    assert.equal(upstreamGets(descriptor.digest).length, 2);
  });

  test('a blob the upstream does not have: 404 BLOB_UNKNOWN naming the upstream', async () => {
    const digest = digestOf('never pushed anywhere');
    const res = await fetch(`${base}/v2/lib/app/blobs/${digest}`);
    assert.equal(res.status, 404);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'BLOB_UNKNOWN');
    assert.match(body.errors[0]!.message, new RegExp(`cannot get blob ${digest} of lib/app from upstream ${HOST.replace('.', '\\.')}`));
    const head = await fetch(`${base}/v2/lib/app/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  test('a blob pushed to a local repository is not served through a cached name on its digest alone', async () => {
    const data = randomBytes(4096);
    const descriptor: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(data), size: data.length };
    await pushBlob(base, 'team/private', { descriptor, data }); // team/** is local on this mirror
    const res = await fetch(`${base}/v2/lib/app/blobs/${descriptor.digest}`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');
    // The upstream was asked (HEAD, then a one-byte GET, since a HEAD 404 is not final), and said no.
    assert.equal(upstreamHeads(descriptor.digest).length, 1);
    assert.deepEqual(upstreamGets(descriptor.digest).map((r) => r.range), ['bytes=0-0']);
  });

  test('a blob cached for one repository is served through another cached repository without an upstream request', async () => {
    const { data, descriptor } = await upstreamBlob('lib/first', 100_000);
    assert.equal((await fetchBytes(`${base}/v2/lib/first/blobs/${descriptor.digest}`)).status, 200);
    for (let i = 0; i < 50 && (await mirror.registry.blobs.stat(descriptor.digest)) === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    const before = proxy.requests.length;
    const got = await fetchBytes(`${base}/v2/${HOST}/lib/second/blobs/${descriptor.digest}`);
    assert.deepEqual([got.status, got.bytes, got.digest], [200, data.length, descriptor.digest]);
    assert.equal(proxy.requests.length, before);
    assert.equal(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/second`, descriptor.digest), true);
    // A local repository mounts it from the cache, by the name clients use for the cached one.
    const mount = await fetch(`${base}/v2/team/mine/blobs/uploads/?mount=${descriptor.digest}&from=lib/first`, { method: 'POST' });
    assert.equal(mount.status, 201);
    assert.equal((await fetchBytes(`${base}/v2/team/mine/blobs/${descriptor.digest}`)).digest, descriptor.digest);
  });

  // Last: its fill stays stalled until the mirror stops (which aborts it).
  test('bytes reach the client as they arrive from the upstream, before the upstream has sent them all', async () => {
    const { descriptor } = await upstreamBlob('lib/stream', 8 * MiB);
    // The upstream sends 3 MiB, then hangs: a client can only have bytes that were streamed.
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes(descriptor.digest) ? { stallAfterBytes: 3 * MiB } : undefined);
    const got = await fetchBytes(`${base}/v2/lib/stream/blobs/${descriptor.digest}`, { stopAfter: 2 * MiB });
    assert.equal(got.status, 200);
    assert.equal(got.headers['content-length'], String(8 * MiB));
    assert.ok(got.bytes >= 2 * MiB, `got ${got.bytes}`);
  });
});
