import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
    image = await makeImage({ seed: 'mirrors', layers: 2, layerSize: 10_240 });
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

  test('mirror fallback on a cut stream: a mirror blob that ends 1,000 bytes short falls back to the origin, from the byte reached', async () => {
    // A mirror that announces each blob whole but breaks the connection 1,000 bytes before its end,
    // on every request (its own Range retries too). Before the fix the pull failed with
    // "connection ended at 9240 of 10240 bytes" and never asked the origin.
    const cut = createServer(async (req, res) => {
      const upstream = await fetch(`${mirror.url}${req.url}`, { headers: { accept: String(req.headers.accept ?? '*/*'), ...(req.headers.range ? { range: req.headers.range } : {}) } });
      const body = Buffer.from(await upstream.arrayBuffer());
      const headers = Object.fromEntries(upstream.headers);
      if (!req.url?.includes('/blobs/')) return void res.writeHead(upstream.status, headers).end(body);
      res.writeHead(upstream.status, { ...headers, 'content-length': String(body.length) });
      res.write(body.subarray(0, Math.max(0, body.length - 1000)), () => res.destroy());
    });
    await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve));
    const cutHost = `127.0.0.1:${(cut.address() as AddressInfo).port}`;
    try {
      const mirrors: MirrorSet = { [originHost]: { mirrors: [{ url: `http://${cutHost}`, pullFromMirror: 'all', insecure: true }] } };
      const result = await pull(mirrors, `${originHost}/lib/app:v1`);
      assert.equal(result.record.manifest.digest, image.manifest.descriptor.digest);
      const originBlobs = originProxy.requests.filter((r) => r.url.includes('/blobs/'));
      assert.equal(originBlobs.length, image.blobs.length, 'config and layers came from the origin at last');
      for (const layer of image.layers) {
        const asked = originBlobs.find((r) => r.url.includes(layer.descriptor.digest));
        assert.equal(asked?.range, `bytes=${layer.descriptor.size - 1000}-`, 'resumed where the mirror stopped');
      }
    } finally {
      cut.closeAllConnections();
      cut.close();
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
