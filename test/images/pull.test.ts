import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { Puller, type PullEvent } from '../../src/images/pull.ts';
import { ImageStore } from '../../src/images/store.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, makeIndex, type TestImage } from '../../src/testing/images.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { pushBlob, pushImage, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const fast = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 };

describe('skiff pull into the local store', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let root: string;
  let store: ImageStore;
  let clients: RegistryClient[];
  let amd64: TestImage;
  let arm64: TestImage;

  const puller = (attempts = fast.attempts) =>
    new Puller(store, (registryHost) => {
      const client = new RegistryClient({ registry: registryHost, retry: { ...fast, attempts } });
      clients.push(client);
      return client;
    });
  const blobGets = (digest: string) => proxy.count((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${digest}`));

  before(async () => {
    registry = await startTestRegistry();
    proxy = new FaultProxy(registry.url);
    host = await proxy.start();
    amd64 = await makeImage({ seed: 'pull-amd64', layers: 3, layerSize: 300_000, platform: { os: 'linux', architecture: 'amd64' } });
    arm64 = await makeImage({ seed: 'pull-arm64', layers: 2, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const index = makeIndex([amd64, arm64]);
    for (const image of [amd64, arm64]) await pushImage(registry.url, 'lib/multi', image);
    await pushManifest(registry.url, 'lib/multi', 'v1', index);
  });
  after(async () => {
    await proxy.stop();
    await registry.stop();
  });
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-pull-'));
    store = await ImageStore.open(root);
    clients = [];
    proxy.requests.length = 0;
    proxy.decide = () => undefined;
  });
  const cleanup = async () => {
    for (const client of clients) await client.close();
    await rm(root, { recursive: true, force: true });
  };

  test('a multi-arch tag pulls the host platform, tags it, and verifies every blob and DiffID', async () => {
    try {
      const events: PullEvent[] = [];
      const result = await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' }, onEvent: (e) => events.push(e) });
      assert.equal(result.updated, true);
      assert.equal(result.record.manifest.digest, amd64.manifest.descriptor.digest);
      assert.deepEqual(result.record.diffIds, amd64.diffIds);
      const refs = await store.refs();
      assert.deepEqual(refs.map((r) => [r.name, r.manifest.digest]), [[`${host}/lib/multi:v1`, amd64.manifest.descriptor.digest]]);
      for (const item of [...amd64.blobs, amd64.manifest]) {
        const bytes = await readFile(join(root, 'blobs', 'sha256', item.descriptor.digest.slice(7)));
        assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, item.descriptor.digest);
      }
      const statuses = events.filter((e) => e.type === 'layer' && e.digest === amd64.layers[0]!.descriptor.digest).map((e) => (e as { status: string }).status);
      // `Waiting` shows only when the layer queued behind the download limit, which depends on timing.
      assert.deepEqual(
        [...new Set(statuses)].filter((status) => status !== 'Waiting'),
        ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete'],
      );
      const againEvents: PullEvent[] = [];
      const again = await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' }, onEvent: (e) => againEvents.push(e) });
      assert.equal(again.updated, false, 'second pull: up to date');
      assert.equal(blobGets(amd64.layers[0]!.descriptor.digest), 1, 'layers not downloaded twice');
      // docker says only "Already exists" for a layer it has; "Pull complete" after it was wrong (issue 10).
      assert.deepEqual(
        againEvents.filter((e) => e.type === 'layer').map((e) => [e.digest, (e as { status: string }).status]),
        amd64.layers.map((l) => [l.descriptor.digest, 'Already exists']),
      );
    } finally {
      await cleanup();
    }
  });

  test('--platform picks another entry; no match is a clear error', async () => {
    try {
      const result = await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'arm64' } });
      assert.equal(result.record.manifest.digest, arm64.manifest.descriptor.digest);
      await assert.rejects(puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'windows', architecture: 'amd64' } }), /no matching manifest for windows\/amd64.*linux\/amd64, linux\/arm64\/v8/);
    } finally {
      await cleanup();
    }
  });

  test('pull by digest stores an untagged image with its repo digest', async () => {
    try {
      const result = await puller().pull(`${host}/lib/multi@${amd64.manifest.descriptor.digest}`);
      assert.deepEqual(result.record.repoDigests, [`${host}/lib/multi@${amd64.manifest.descriptor.digest}`]);
      const refs = await store.refs();
      assert.equal(refs.length, 1);
      assert.equal(refs[0]!.name, undefined);
    } finally {
      await cleanup();
    }
  });

  test('concurrent pulls needing the same layer download it once; present layers say "Already exists"', async () => {
    try {
      const shared = amd64.layers[0]!;
      const other = await makeImage({ seed: 'pull-sharing', layers: 1, layerSize: 1000 });
      const sharing = { ...other, layers: [shared, ...other.layers] };
      const manifestJson = JSON.parse(other.manifest.data.toString()) as { layers: unknown[]; config: unknown };
      manifestJson.layers = [shared.descriptor, ...manifestJson.layers];
      const configJson = JSON.parse(other.config.data.toString()) as { rootfs: { diff_ids: string[] } };
      configJson.rootfs.diff_ids = [amd64.diffIds[0]!, ...configJson.rootfs.diff_ids];
      const { digestOf } = await import('../../src/digest/digest.ts');
      const configData = Buffer.from(JSON.stringify(configJson));
      const config = { descriptor: { ...other.config.descriptor, digest: digestOf(configData), size: configData.length }, data: configData };
      manifestJson.config = config.descriptor;
      const manifestData = Buffer.from(JSON.stringify(manifestJson));
      const manifest = { descriptor: { ...other.manifest.descriptor, digest: digestOf(manifestData), size: manifestData.length }, data: manifestData };
      for (const item of [config, ...sharing.layers]) await pushBlob(registry.url, 'lib/sharing', item);
      await pushManifest(registry.url, 'lib/sharing', 'v1', manifest);
      await pushImage(registry.url, 'lib/single', amd64, 'v1');

      const one = puller();
      const events: PullEvent[] = [];
      await Promise.all([
        one.pull(`${host}/lib/single:v1`),
        one.pull(`${host}/lib/sharing:v1`, { onEvent: (e) => events.push(e) }),
      ]);
      assert.equal(blobGets(shared.descriptor.digest), 1, 'the shared layer moved once');
      const late: PullEvent[] = [];
      await puller().pull(`${host}/lib/sharing:v1`, { onEvent: (e) => late.push(e) });
      assert.ok(late.some((e) => e.type === 'layer' && e.status === 'Already exists'));
    } finally {
      await cleanup();
    }
  });

  test('a download that breaks and exhausts its retries resumes from the partial file on the next pull', async () => {
    try {
      const big = amd64.layers[1]!;
      proxy.decide = (r) => (r.url.endsWith(`/blobs/${big.descriptor.digest}`) ? { dropAfterBytes: 100_000 } : undefined);
      await assert.rejects(puller(1).pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' } }));
      const partial = await readdir(join(root, '.skiff', 'ingest'));
      assert.ok(partial.includes(big.descriptor.digest.replace(':', '-')), 'the partial download was kept');
      assert.equal((await store.refs()).length, 0, 'nothing tagged after a failed pull');
      proxy.decide = () => undefined;
      proxy.requests.length = 0;
      const events: PullEvent[] = [];
      await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' }, onEvent: (e) => events.push(e) });
      const resumed = proxy.requests.find((r) => r.url.endsWith(`/blobs/${big.descriptor.digest}`));
      assert.match(resumed?.range ?? '', /^bytes=[1-9]\d*-$/, 'the second pull asked only for the rest');
      // The first Downloading of the resumed layer says where it picked up (issue 10); the others start at 0.
      const firstDownloading = (digest: string) => events.find((e) => e.type === 'layer' && e.digest === digest && e.status === 'Downloading') as { resumedFrom?: number; current?: number } | undefined;
      const from = Number(/^bytes=(\d+)-$/.exec(resumed!.range!)![1]);
      assert.equal(firstDownloading(big.descriptor.digest)?.resumedFrom, from);
      assert.equal(firstDownloading(big.descriptor.digest)?.current, from);
      assert.equal(firstDownloading(amd64.layers[0]!.descriptor.digest)?.resumedFrom, undefined);
      assert.equal((await store.refs()).length, 1);
    } finally {
      await cleanup();
    }
  });

  test('503 and 429 with Retry-After from the registry are ridden out', async () => {
    try {
      let faults = 0;
      proxy.decide = (r) => (r.url.includes('/blobs/') && faults++ < 2 ? (faults === 1 ? { status: 503 } : { status: 429, retryAfter: '0' }) : undefined);
      const result = await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' } });
      assert.equal(result.record.manifest.digest, amd64.manifest.descriptor.digest);
    } finally {
      await cleanup();
    }
  });

  test('corrupted bytes from the registry never land in the store', async () => {
    try {
      const target = amd64.layers[2]!;
      proxy.decide = (r) => (r.url.endsWith(`/blobs/${target.descriptor.digest}`) ? { corruptAt: 1000 } : undefined);
      await assert.rejects(puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' } }), /digest mismatch/);
      const stored = await readdir(join(root, 'blobs', 'sha256'));
      assert.ok(!stored.includes(target.descriptor.digest.slice(7)), 'the corrupt layer was not committed');
      assert.equal((await store.refs()).length, 0);
    } finally {
      await cleanup();
    }
  });

  test('a config whose diff_ids do not match the layers is refused with docker\'s message', async () => {
    try {
      const image = await makeImage({ seed: 'pull-liar', layers: 2 });
      const configJson = JSON.parse(image.config.data.toString()) as { rootfs: { diff_ids: string[] } };
      configJson.rootfs.diff_ids.reverse();
      const { digestOf } = await import('../../src/digest/digest.ts');
      const configData = Buffer.from(JSON.stringify(configJson));
      const config = { descriptor: { ...image.config.descriptor, digest: digestOf(configData), size: configData.length }, data: configData };
      const manifestJson = { ...(JSON.parse(image.manifest.data.toString()) as object), config: config.descriptor };
      const manifestData = Buffer.from(JSON.stringify(manifestJson));
      for (const item of [config, ...image.layers]) await pushBlob(registry.url, 'lib/liar', item);
      await pushManifest(registry.url, 'lib/liar', 'v1', { descriptor: { ...image.manifest.descriptor, digest: digestOf(manifestData), size: manifestData.length }, data: manifestData });
      await assert.rejects(puller().pull(`${host}/lib/liar:v1`), /layers from manifest don't match image configuration/);
      assert.equal((await store.refs()).length, 0);
    } finally {
      await cleanup();
    }
  });

  test('--all-tags pulls every tag', async () => {
    try {
      const image = await makeImage({ seed: 'pull-tags', layers: 1 });
      for (const tag of ['1', '2']) await pushImage(registry.url, 'lib/tags', image, tag);
      const results = await puller().pullAllTags(`${host}/lib/tags`);
      assert.deepEqual(results.map((r) => r.reference), [`${host}/lib/tags:1`, `${host}/lib/tags:2`]);
      assert.deepEqual((await store.refs()).map((r) => r.name).sort(), [`${host}/lib/tags:1`, `${host}/lib/tags:2`]);
      // A repository whose tags are all gone (the manifest pushed by digest only) pulls nothing.
      await pushImage(registry.url, 'lib/untagged', image);
      assert.deepEqual(await puller().pullAllTags(`${host}/lib/untagged`), []);
    } finally {
      await cleanup();
    }
  });

  test('skopeo reads the store as an OCI layout', async (t) => {
    const skip = await peerSkipReason('skopeo');
    if (skip) return t.skip(skip);
    try {
      await puller().pull(`${host}/lib/multi:v1`, { platform: { os: 'linux', architecture: 'amd64' } });
      const inspect = JSON.parse(await skopeo(['inspect', `oci:${root}:${host}/lib/multi:v1`])) as { Digest: string; Layers: string[] };
      assert.equal(inspect.Digest, amd64.manifest.descriptor.digest);
      assert.deepEqual(inspect.Layers, amd64.layers.map((l) => l.descriptor.digest));
      const copy = join(root, '..', `${root.split('/').pop()}-copy`);
      await skopeo(['copy', '--preserve-digests', `oci:${root}:${host}/lib/multi:v1`, `dir:${copy}`]);
      assert.deepEqual(await readFile(join(copy, 'manifest.json')), amd64.manifest.data);
      await rm(copy, { recursive: true, force: true });
    } finally {
      await cleanup();
    }
  });
});
