/**
 * The mirror on S3 and across replicas (issue 15; docs/scale-out.md "Mirror across replicas"):
 * fills spool locally and land in the bucket only verified; two replicas on S3, PostgreSQL and
 * Redis make one upstream GET per blob (and per manifest) for 20 concurrent cold clients spread
 * over both, and serve the image from the bucket once the upstream is gone.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { S3BlobStore } from '../../src/content/s3-blob-store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { parseStorage } from '../../src/server/backend-config.ts';
import { fetchBytes } from '../../src/testing/fetch-bytes.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, seededBytes, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { pushBlob, pushImage } from '../../src/testing/push.ts';
import { scaleOutSkipReason, startCluster, startEngines, type Cluster, type Engines } from '../../src/testing/scale-out.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const skip = await scaleOutSkipReason();
const MiB = 1024 * 1024;
const HOST = 'upstream.test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const ACCEPT = { Accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' };

/** A client's pull through `base`: the manifest by tag, then its config and layers side by side, each checked against its digest. */
async function pull(base: string, name: string, query: string, image: TestImage): Promise<{ warning: string | undefined }> {
  const manifest = await fetchBytes(`${base}/v2/${name}/manifests/v1${query}`, { headers: ACCEPT, keep: true });
  assert.equal(manifest.status, 200, `${base} ${name}: manifest ${manifest.status} ${manifest.body?.toString()}`);
  assert.equal(manifest.digest, image.manifest.descriptor.digest);
  const { config, layers } = JSON.parse(manifest.body!.toString()) as { config: Descriptor; layers: Descriptor[] };
  await Promise.all(
    [config, ...layers].map(async (descriptor) => {
      let got = await fetchBytes(`${base}/v2/${name}/blobs/${descriptor.digest}${query}`);
      // A cached blob on S3 is a 307 to a presigned URL (storage.s3.redirect, on by default): clients follow it.
      const location = got.headers.location;
      if (got.status === 307 && typeof location === 'string') got = await fetchBytes(new URL(location, base).toString());
      assert.deepEqual([got.status, got.bytes, got.digest, got.cut], [200, descriptor.size, descriptor.digest, false], `${base} ${name}: blob ${descriptor.digest}`);
    }),
  );
  const warning = manifest.headers.warning;
  return { warning: Array.isArray(warning) ? warning.join(', ') : warning };
}

describe('the mirror on S3 and across replicas', { skip }, () => {
  let engines: Engines;
  let origin: TestRegistry;

  before(async () => {
    engines = await startEngines();
    origin = await startTestRegistry();
  });
  after(async () => {
    await origin?.stop();
    await engines?.stop();
  });

  describe('one replica on S3 (in process)', () => {
    let proxy: FaultProxy;
    let mirror: TestMirror;
    let spool: string;

    before(async () => {
      proxy = new FaultProxy(origin.url);
      const proxyHost = await proxy.start();
      const settings = await engines.deployment('mirror-one');
      // redirect: false: these tests follow the bytes through the replica (a cached blob would otherwise be a 307 to the bucket).
      const storage = parseStorage({ s3: { ...(settings.storage as { s3: Record<string, unknown> }).s3, redirect: false } });
      if ('problem' in storage) throw new Error(storage.problem);
      mirror = await startTestMirror({ storage: storage.value, upstreams: [upstream({ host: HOST, url: `http://${proxyHost}`, default: true })] });
      spool = join(mirror.dataDir, 'mirror-spool');
    });
    after(async () => {
      await mirror?.stop();
      await proxy?.stop();
    });

    const upstreamGets = (digest: Digest) => proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`)).length;
    /** Files in the spool: ingests, and committed blobs not yet removed (their fan-out folders may stay). */
    const spoolLeft = async () => [
      ...(await readdir(join(spool, 'ingest'))),
      ...(await readdir(join(spool, 'blobs'), { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => entry.name),
    ];
    const s3 = () => mirror.registry.blobs as S3BlobStore;
    async function upstreamBlob(repository: string, seed: string, size: number): Promise<{ data: Buffer; descriptor: Descriptor }> {
      const data = seededBytes(seed, size);
      const descriptor: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(data), size };
      await pushBlob(origin.url, repository, { descriptor, data });
      return { data, descriptor };
    }
    async function settled(): Promise<void> {
      for (let i = 0; i < 200 && (await spoolLeft()).length > 0; i++) await sleep(20);
    }

    test('a lying upstream: every client is cut, nothing lands in the bucket under that digest; the fixed upstream then fills it', async () => {
      const { data, descriptor } = await upstreamBlob('lib/liar', 'scale-out-liar', 10 * MiB);
      proxy.decide = (r) => (r.method === 'GET' && r.url.includes(descriptor.digest) ? { corruptAt: 9 * MiB } : undefined);
      const url = `${mirror.url}/v2/lib/liar/blobs/${descriptor.digest}`;
      const got = await Promise.all([fetchBytes(url), fetchBytes(url, { headers: { range: `bytes=${10 * MiB - 1}-` } }), fetchBytes(url)]);
      for (const [i, g] of got.entries()) {
        assert.equal(g.cut, true, `client ${i} must see a broken response (${g.status}, ${g.bytes} bytes)`);
        assert.ok(g.bytes < (i === 1 ? 1 : data.length), `client ${i} got ${g.bytes} bytes`);
      }
      await settled();
      assert.deepEqual(await spoolLeft(), [], 'the spool is empty');
      assert.equal(await s3().stat(descriptor.digest), undefined, 'no object under the digest');
      const ingests: string[] = [];
      for await (const ref of s3().ingestRefs()) ingests.push(ref);
      assert.deepEqual(ingests, [], 'no upload was started in the bucket either');
      assert.equal(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/liar`, descriptor.digest), false);
      assert.ok(mirror.logs.some((l) => l.msg === 'mirror: blob fill failed; nothing was cached' && l.digest === descriptor.digest));

      proxy.decide = () => undefined;
      const fixed = await Promise.all([fetchBytes(url), fetchBytes(url, { headers: { range: `bytes=${8 * MiB - 5}-${8 * MiB + 4}` } })]);
      assert.deepEqual([fixed[0]!.status, fixed[0]!.bytes, fixed[0]!.digest, fixed[0]!.cut], [200, data.length, descriptor.digest, false]);
      assert.deepEqual([fixed[1]!.status, fixed[1]!.digest], [206, digestOf(data.subarray(8 * MiB - 5, 8 * MiB + 5))]);
      assert.equal(upstreamGets(descriptor.digest), 2);
      await settled();
      assert.equal(await s3().stat(descriptor.digest), data.length, 'in the bucket, verified');
      assert.deepEqual(await spoolLeft(), [], 'the spool copy is gone once the blob is in the bucket');
      for (let i = 0; i < 50 && !(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/liar`, descriptor.digest)); i++) await sleep(20);
      assert.ok(await mirror.registry.metadata.isBlobLinked(`${HOST}/lib/liar`, descriptor.digest));
      // Warm: from the bucket, no upstream request.
      const before = proxy.requests.length;
      const warm = await fetchBytes(url);
      assert.deepEqual([warm.status, warm.digest], [200, descriptor.digest]);
      assert.equal(proxy.requests.length, before);
    });

    // Last: its fill stays stalled until the mirror stops (which aborts it).
    test('bytes reach the client from the spool as they arrive, before the upstream has sent them all', async () => {
      const { descriptor } = await upstreamBlob('lib/stream', 'scale-out-stream', 12 * MiB);
      proxy.decide = (r) => (r.method === 'GET' && r.url.includes(descriptor.digest) ? { stallAfterBytes: 3 * MiB } : undefined);
      const got = await fetchBytes(`${mirror.url}/v2/lib/stream/blobs/${descriptor.digest}`, { stopAfter: 2 * MiB });
      assert.equal(got.status, 200);
      assert.equal(got.headers['content-length'], String(12 * MiB));
      assert.ok(got.bytes >= 2 * MiB, `got ${got.bytes}`);
      assert.equal(await s3().stat(descriptor.digest), undefined, 'nothing in the bucket before the whole blob is verified');
    });
  });

  describe('two replicas on S3, PostgreSQL and Redis', () => {
    let proxy: FaultProxy;
    let cluster: Cluster;
    let image: TestImage;

    before(async () => {
      proxy = new FaultProxy(origin.url);
      const proxyHost = await proxy.start();
      // Both layers above the multipart part size (8 MiB): the spool's upload to S3 takes several parts.
      image = await makeImage({ seed: 'scale-out-mirror', layers: 2, layerSize: 10 * MiB });
      await pushImage(origin.url, 'lib/app', image, 'v1');
      cluster = await startCluster(engines, 'mirror', { settings: { upstreams: [{ host: HOST, url: `http://${proxyHost}`, default: true, tagTTL: '2s' }] } });
    });
    after(async () => {
      await cluster?.stop();
      await proxy?.stop();
    });

    test('20 concurrent cold clients over both replicas: one upstream GET per blob and per manifest for the cluster; then the upstream stops and both still serve the image', async () => {
      const [a, b] = cluster.replicas as [(typeof cluster.replicas)[0], (typeof cluster.replicas)[0]];
      // Half on each replica, under the three names a mirror answers to; all share one cache entry.
      const names: [string, string][] = [
        ['lib/app', ''],
        [`${HOST}/lib/app`, ''],
        ['lib/app', `?ns=${HOST}`],
      ];
      const started = Date.now();
      await Promise.all(Array.from({ length: 20 }, (_, i) => pull((i % 2 === 0 ? a : b).url, names[i % 3]![0], names[i % 3]![1], image)));
      const coldMs = Date.now() - started;

      const gets = (part: string) => proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(part));
      for (const blob of image.blobs) assert.equal(gets(`/blobs/${blob.descriptor.digest}`).length, 1, `one upstream GET of ${blob.descriptor.digest} for the cluster: ${JSON.stringify(gets(`/blobs/${blob.descriptor.digest}`))}`);
      assert.equal(gets('/manifests/').length, 1, `one upstream GET of the manifest: ${JSON.stringify(gets('/manifests/'))}`);
      process.stdout.write(`# 20 cold pulls over 2 replicas: ${coldMs} ms; upstream requests: ${proxy.requests.map((r) => `${r.method} ${r.url}`).join(', ')}\n`);

      // The upstream goes away; past the tag TTL, the replicas serve the tag stale and everything else from the bucket.
      await proxy.stop();
      await sleep(2100);
      for (const replica of [a, b]) {
        const { warning } = await pull(replica.url, 'lib/app', '', image);
        assert.match(warning ?? '', /^110 - "Response is Stale"/, `${replica.host} serves the cached tag stale`);
        const byDigest = await fetchBytes(`${replica.url}/v2/lib/app/manifests/${image.manifest.descriptor.digest}`, { headers: ACCEPT });
        assert.deepEqual([byDigest.status, byDigest.digest], [200, image.manifest.descriptor.digest]);
        const uncached = await fetchBytes(`${replica.url}/v2/lib/app/manifests/never-pulled`, { headers: ACCEPT, keep: true });
        assert.equal(uncached.status, 503, `an uncached tag fails clearly: ${uncached.body?.toString()}`);
      }
      await pull(cluster.balancer.url, `${HOST}/lib/app`, '', image);
    });
  });
});
