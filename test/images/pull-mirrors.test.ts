import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { MirrorSet } from '../../src/client/mirrors.ts';
import { clientFactory } from '../../src/cli/registry-clients.ts';
import { Puller } from '../../src/images/pull.ts';
import { ImageStore } from '../../src/images/store.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

describe('pull through configured mirrors, with fallback', () => {
  let origin: TestRegistry;
  let mirror: TestRegistry;
  let originProxy: FaultProxy;
  let mirrorProxy: FaultProxy;
  let originHost: string;
  let mirrorHost: string;
  let image: TestImage;
  let root: string;

  const pull = async (mirrors: MirrorSet, reference: string) => {
    const store = await ImageStore.open(root);
    const clients = clientFactory({ mirrors });
    try {
      return await new Puller(store, clients.pullSource).pull(reference);
    } finally {
      await clients.close();
    }
  };
  const mirrorAll = (): MirrorSet => ({ [originHost]: { mirrors: [{ url: `http://${mirrorHost}`, pullFromMirror: 'all', insecure: true }] } });

  before(async () => {
    origin = await startTestRegistry();
    mirror = await startTestRegistry();
    originProxy = new FaultProxy(origin.url);
    mirrorProxy = new FaultProxy(mirror.url);
    originHost = await originProxy.start();
    mirrorHost = await mirrorProxy.start();
    image = await makeImage({ seed: 'mirrors', layers: 2 });
    await pushImage(origin.url, 'lib/app', image, 'v1');
    await pushImage(mirror.url, 'lib/app', image, 'v1');
  });
  after(async () => {
    await originProxy.stop();
    await mirrorProxy.stop();
    await origin.stop();
    await mirror.stop();
  });
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-mirror-'));
    originProxy.requests.length = 0;
    mirrorProxy.requests.length = 0;
    originProxy.decide = () => undefined;
    mirrorProxy.decide = () => undefined;
  });

  test('a mirror trusted with tags serves everything, with ?ns=<origin>', async () => {
    try {
      const result = await pull(mirrorAll(), `${originHost}/lib/app:v1`);
      assert.equal(result.record.manifest.digest, image.manifest.descriptor.digest);
      assert.equal(originProxy.requests.length, 0, 'the origin was not asked');
      const apiRequests = mirrorProxy.requests.filter((r) => r.url.startsWith('/v2/lib/'));
      assert.ok(apiRequests.length >= 3);
      for (const r of apiRequests) assert.ok(r.url.includes(`ns=${encodeURIComponent(originHost)}`), `${r.url} carries ns`);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a failing mirror (503) falls back to the origin', async () => {
    mirrorProxy.decide = () => ({ status: 503 });
    try {
      const result = await pull(mirrorAll(), `${originHost}/lib/app:v1`);
      assert.equal(result.record.manifest.digest, image.manifest.descriptor.digest);
      assert.ok(originProxy.requests.length > 0);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a mirror that lacks the image (MANIFEST_UNKNOWN) falls back to the origin', async () => {
    try {
      const other = await makeImage({ seed: 'mirrors-origin-only', layers: 1 });
      await pushImage(origin.url, 'lib/only', other, 'v1');
      const result = await pull(mirrorAll(), `${originHost}/lib/only:v1`);
      assert.equal(result.record.manifest.digest, other.manifest.descriptor.digest);
      assert.ok(mirrorProxy.requests.some((r) => r.url.includes('/manifests/v1')), 'the mirror was asked first');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a digest-only mirror never resolves tags, but serves content by digest', async () => {
    try {
      const mirrors: MirrorSet = { [originHost]: { mirrors: [{ url: `http://${mirrorHost}`, pullFromMirror: 'digest-only', insecure: true }] } };
      await pull(mirrors, `${originHost}/lib/app:v1`);
      assert.ok(originProxy.requests.some((r) => r.url.startsWith('/v2/lib/app/manifests/v1')), 'the tag was resolved at the origin');
      assert.ok(!mirrorProxy.requests.some((r) => r.url.includes('/manifests/v1')), 'the mirror was not trusted with the tag');
      assert.ok(mirrorProxy.requests.some((r) => r.url.includes('/blobs/')), 'blobs came from the mirror');
      assert.ok(!originProxy.requests.some((r) => r.url.includes('/blobs/')), 'no blob from the origin');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
