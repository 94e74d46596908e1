import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { Puller } from '../../src/images/pull.ts';
import { Pusher, type PushEvent } from '../../src/images/push.ts';
import { ImageStore } from '../../src/images/store.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

describe('skiff push from the local store', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let root: string;
  let store: ImageStore;
  let image: TestImage;
  const clients: RegistryClient[] = [];
  const clientFor = (registryHost: string) => {
    const client = new RegistryClient({ registry: registryHost, retry: fast });
    clients.push(client);
    return client;
  };
  const statuses = (events: PushEvent[]) => events.filter((e) => e.type === 'layer' && e.status !== 'Preparing' && e.status !== 'Waiting' && e.status !== 'Pushing').map((e) => (e as { status: string }).status);

  before(async () => {
    registry = await startTestRegistry();
    proxy = new FaultProxy(registry.url);
    host = await proxy.start();
    root = await mkdtemp(join(tmpdir(), 'skiff-push-'));
    store = await ImageStore.open(root);
    image = await makeImage({ seed: 'push', layers: 2, layerSize: 400_000 });
  });
  after(async () => {
    for (const client of clients) await client.close();
    await proxy.stop();
    await registry.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('a new repository gets every blob, then the manifest, with identical digests', async () => {
    await storeTestImage(store, image, `${host}/team/app:v1`);
    const events: PushEvent[] = [];
    const pushed = await new Pusher(store, clientFor).push(`${host}/team/app:v1`, { onEvent: (e) => events.push(e) });
    assert.deepEqual(pushed, [{ tag: 'v1', digest: image.manifest.descriptor.digest }]);
    assert.deepEqual(statuses(events), ['Pushed', 'Pushed']);
    const check = clientFor(host);
    const got = await check.getManifest('team/app', 'v1');
    assert.deepEqual(got.body, image.manifest.data);
    for (const item of image.blobs) assert.equal(await check.headBlob('team/app', item.descriptor.digest), item.descriptor.size);
  });

  test('pushing again skips every blob ("Layer already exists")', async () => {
    const events: PushEvent[] = [];
    await new Pusher(store, clientFor).push(`${host}/team/app:v1`, { onEvent: (e) => events.push(e) });
    assert.deepEqual(statuses(events), ['Layer already exists', 'Layer already exists']);
  });

  test('events as docker shows them: every layer Preparing (top first), Waiting beyond the limit, Pushing with bytes, Pushed; no config (issue 10)', async () => {
    const big = await makeImage({ seed: 'push-events', layers: 3, layerSize: 300_000 });
    await storeTestImage(store, big, `${host}/team/events:v1`);
    const events: PushEvent[] = [];
    await new Pusher(store, clientFor).push(`${host}/team/events:v1`, { maxConcurrentUploads: 1, onEvent: (e) => events.push(e) });
    const layers = events.filter((e): e is PushEvent & { type: 'layer' } => e.type === 'layer');
    const top = [...big.layers].reverse().map((l) => l.descriptor.digest);
    assert.deepEqual(layers.slice(0, 3).map((e) => [e.status, e.digest]), top.map((d) => ['Preparing', d]));
    assert.deepEqual(layers.filter((e) => e.status === 'Waiting').map((e) => e.digest), top.slice(1), 'with one upload at a time, the other two wait');
    assert.ok(!layers.some((e) => e.digest === big.config.descriptor.digest), 'the config is not shown');
    for (const { descriptor } of big.layers) {
      const digest = descriptor.digest;
      const pushing = layers.filter((e) => e.digest === digest && e.status === 'Pushing');
      assert.deepEqual(pushing[0]?.current, 0);
      assert.ok(pushing.every((e) => e.total === descriptor.size && e.current! <= descriptor.size));
      assert.equal(layers.filter((e) => e.digest === digest).at(-1)?.status, 'Pushed');
    }
    assert.deepEqual(events.at(-1), { type: 'done', tag: 'v1', digest: big.manifest.descriptor.digest, size: big.manifest.data.length });
  });

  test('blobs the registry holds in the source repository are mounted, not uploaded', async () => {
    const other = await makeImage({ seed: 'push-mount', layers: 2 });
    await pushImage(registry.url, 'origin/base', other, 'v1');
    const local = await mkdtemp(join(tmpdir(), 'skiff-push-mount-'));
    try {
      const mountStore = await ImageStore.open(local);
      await new Puller(mountStore, clientFor).pull(`${host}/origin/base:v1`);
      await mountStore.tag(`${host}/copies/base:v1`, other.manifest.descriptor);
      proxy.requests.length = 0;
      const events: PushEvent[] = [];
      await new Pusher(mountStore, clientFor).push(`${host}/copies/base:v1`, { onEvent: (e) => events.push(e) });
      assert.deepEqual(statuses(events), ['Mounted from', 'Mounted from']);
      assert.ok(events.every((e) => e.type !== 'layer' || e.status !== 'Mounted from' || e.from === 'origin/base'), 'names the repository mounted from');
      assert.equal(proxy.count((r) => r.method === 'PATCH'), 0, 'no bytes uploaded');
    } finally {
      await rm(local, { recursive: true, force: true });
    }
  });

  test('an upload cut mid-stream resumes from the offset the registry reports', async () => {
    const big = await makeImage({ seed: 'push-resume', layers: 1, layerSize: 2_000_000 });
    await storeTestImage(store, big, `${host}/team/resume:v1`);
    const layer = big.layers[0]!;
    let cut = false;
    proxy.decide = (r) => (r.method === 'PATCH' && !cut ? ((cut = true), { cutRequestAfterBytes: 300_000 }) : undefined);
    proxy.requests.length = 0;
    try {
      await new Pusher(store, clientFor).push(`${host}/team/resume:v1`, { maxConcurrentUploads: 1 });
    } finally {
      proxy.decide = () => undefined;
    }
    const patches = proxy.requests.filter((r) => r.method === 'PATCH');
    assert.ok(patches.length >= 2, 'the upload was retried');
    assert.ok(proxy.count((r) => r.method === 'GET' && r.url.includes('/blobs/uploads/')) >= 1, 'asked the session where it stood');
    const bytes = Buffer.concat(await Array.fromAsync(clientFor(host).openBlob('team/resume', layer.descriptor) as AsyncIterable<Buffer>));
    assert.deepEqual(bytes, layer.data);
  });

  test('a 416 on the resumed chunk (the registry stands elsewhere) makes the client ask again and go on', async () => {
    const big = await makeImage({ seed: 'push-416', layers: 1, layerSize: 1_500_000 });
    await storeTestImage(store, big, `${host}/team/r416:v1`);
    const layer = big.layers[0]!;
    let patches = 0;
    proxy.decide = (r) => {
      if (r.method !== 'PATCH') return undefined;
      patches++;
      if (patches === 1) return { cutRequestAfterBytes: 200_000 };
      if (patches === 2) return { status: 416 };
      return undefined;
    };
    proxy.requests.length = 0;
    try {
      await new Pusher(store, clientFor).push(`${host}/team/r416:v1`, { maxConcurrentUploads: 1 });
    } finally {
      proxy.decide = () => undefined;
    }
    assert.ok(patches >= 3, 'resumed after the 416');
    assert.ok(proxy.count((r) => r.method === 'GET' && r.url.includes('/blobs/uploads/')) >= 2, 'asked where the session stood after each failure');
    const bytes = Buffer.concat(await Array.fromAsync(clientFor(host).openBlob('team/r416', layer.descriptor) as AsyncIterable<Buffer>));
    assert.deepEqual(bytes, layer.data);
  });

  test('a name with no local image is a clear error', async () => {
    await assert.rejects(new Pusher(store, clientFor).push(`${host}/nothing/here:v1`), /An image does not exist locally with the tag/);
  });
});
