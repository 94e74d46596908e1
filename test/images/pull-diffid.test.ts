import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { spareBulkBatches } from '../../src/client/bulk-get.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { Puller } from '../../src/images/pull.ts';
import { diffIdOf } from '../../src/images/record.ts';
import { ImageStore } from '../../src/images/store.ts';
import { MediaTypes } from '../../src/oci/media-types.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { seededBytes, tarOf, type Blob } from '../../src/testing/images.ts';
import { pushBlob, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

type Kind = 'gzip' | 'zstd' | 'none';

interface Layer {
  blob: Blob;
  diffId: Digest;
  tarSize: number;
}

const MEDIA: Record<Kind, string> = { gzip: MediaTypes.ociLayerGzip, zstd: MediaTypes.ociLayerZstd, none: MediaTypes.ociLayer };

async function layerOf(kind: Kind, data: Buffer): Promise<Layer> {
  const tar = await tarOf([{ name: 'data.bin', data }]);
  const bytes = kind === 'gzip' ? gzipSync(tar, { level: 1 }) : kind === 'zstd' ? zstdCompressSync(tar) : tar;
  return { blob: { descriptor: { mediaType: MEDIA[kind], digest: digestOf(bytes), size: bytes.length }, data: bytes }, diffId: digestOf(tar), tarSize: tar.length };
}

/** An image over `layers`; `diffIds` replaces what the config claims (a lying config). */
function imageOf(layers: Layer[], diffIds: Digest[] = layers.map((l) => l.diffId)) {
  const configData = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const config: Blob = { descriptor: { mediaType: MediaTypes.ociConfig, digest: digestOf(configData), size: configData.length }, data: configData };
  const manifestData = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: layers.map((l) => l.blob.descriptor) }));
  const manifest: Blob = { descriptor: { mediaType: MediaTypes.ociManifest, digest: digestOf(manifestData), size: manifestData.length }, data: manifestData };
  return { config, manifest, layers };
}

describe('pull measures DiffIDs while downloading', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let root: string;
  let store: ImageStore;
  let clients: RegistryClient[];
  /** Layer digests whose stored file was opened for reading (measured from the file, not in-stream). */
  let readBack: Set<string>;

  const puller = (attempts = 3) =>
    new Puller(store, (registryHost) => {
      const client = new RegistryClient({ registry: registryHost, retry: { attempts, baseDelayMs: 5, maxDelayMs: 20 } });
      clients.push(client);
      return client;
    });

  const push = async (repo: string, image: ReturnType<typeof imageOf>) => {
    for (const item of [image.config, ...image.layers.map((l) => l.blob)]) await pushBlob(registry.url, repo, item);
    await pushManifest(registry.url, repo, 'v1', image.manifest);
  };

  const openStore = async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-pull-diffid-'));
    store = await ImageStore.open(root);
    const reader = store.blobs.reader.bind(store.blobs);
    store.blobs.reader = async (digest, range) => {
      if (range?.end !== 3) readBack.add(digest); // a 4-byte head read only sniffs the compression
      return reader(digest, range);
    };
  };

  before(async () => {
    registry = await startTestRegistry();
    proxy = new FaultProxy(registry.url);
    host = await proxy.start();
  });
  after(async () => {
    await proxy.stop();
    await registry.stop();
  });
  beforeEach(async () => {
    clients = [];
    readBack = new Set();
    proxy.requests.length = 0;
    proxy.decide = () => undefined;
    await openStore();
  });
  const cleanup = async () => {
    for (const client of clients.splice(0)) await client.close();
    await rm(root, { recursive: true, force: true });
  };

  const expectNothingRecorded = async () => {
    assert.deepEqual(await store.records(), [], 'no image record');
    assert.deepEqual(await store.refs(), [], 'nothing tagged');
  };

  test('gzip, zstd and uncompressed layers: the in-stream DiffIDs and sizes equal the file-based ones', async () => {
    try {
      const layers = await Promise.all((['gzip', 'zstd', 'none'] as const).map((kind, i) => layerOf(kind, seededBytes(`diffid-kinds-${i}`, 400_000))));
      await push('diffid/kinds', imageOf(layers));
      let workers = 0;
      const onWorker = () => workers++;
      subscribe('worker_threads', onWorker);
      const result = await puller().pull(`${host}/diffid/kinds:v1`).finally(() => unsubscribe('worker_threads', onWorker));
      assert.equal(workers, 0, 'small layers need no decode thread');
      assert.deepEqual(result.record.diffIds, layers.map((l) => l.diffId));
      assert.deepEqual(result.record.layerSizes, layers.map((l) => l.tarSize));
      assert.deepEqual([...readBack].filter((d) => layers.some((l) => l.blob.descriptor.digest === d)), [], 'no layer was read back from the store');
      for (const [i, layer] of layers.entries()) {
        assert.deepEqual(await diffIdOf(store, layer.blob.descriptor), { diffId: layer.diffId, size: layer.tarSize }, `layer ${i} from the file`);
      }
    } finally {
      await cleanup();
    }
  });

  test('layers read in bulk (1 MiB and more) of every kind, three at once, twice: batches are reused and every stored byte is right', async () => {
    try {
      // Random bytes, so the compressed blobs stay as big: gzip decoded on the decode thread (33 MiB)
      // and in the thread pool (3 MiB: that decoder keeps chunks, which then are not handed back),
      // zstd, and an uncompressed layer whose chunks go straight back to the pool.
      const layers = await Promise.all([
        layerOf('gzip', randomBytes(33 * 1024 * 1024)),
        layerOf('gzip', randomBytes(3 * 1024 * 1024)),
        layerOf('zstd', randomBytes(2 * 1024 * 1024)),
        layerOf('none', randomBytes(5 * 1024 * 1024)),
      ]);
      await push('diffid/bulk', imageOf(layers));
      for (let round = 0; round < 2; round++) {
        if (round > 0) {
          await cleanup();
          await openStore();
        }
        const result = await puller().pull(`${host}/diffid/bulk:v1`);
        assert.deepEqual(result.record.diffIds, layers.map((l) => l.diffId), `round ${round}`);
        assert.deepEqual(result.record.layerSizes, layers.map((l) => l.tarSize));
        for (const layer of layers) {
          const bytes = await readFile(join(root, 'blobs', 'sha256', layer.blob.descriptor.digest.slice(7)));
          assert.equal(digestOf(bytes), layer.blob.descriptor.digest, 'the file holds exactly the verified bytes');
        }
        assert.ok(spareBulkBatches() > 0, 'written chunks were handed back for reuse');
      }
    } finally {
      await cleanup();
    }
  });

  test('a big layer is measured on the decode thread, and its DiffID is checked there too', async () => {
    try {
      // Random (incompressible) so the compressed blob is past the off-thread threshold (32 MiB).
      const big = await layerOf('gzip', randomBytes(33 * 1024 * 1024));
      const small = await layerOf('zstd', seededBytes('diffid-big-small', 50_000));
      await push('diffid/big', imageOf([big, small]));
      let workers = 0;
      const onWorker = () => workers++;
      subscribe('worker_threads', onWorker);
      const result = await puller().pull(`${host}/diffid/big:v1`).finally(() => unsubscribe('worker_threads', onWorker));
      assert.equal(workers, 1, 'one decode thread started');
      assert.deepEqual(result.record.diffIds, [big.diffId, small.diffId]);
      assert.deepEqual(result.record.layerSizes, [big.tarSize, small.tarSize]);
      assert.ok(!readBack.has(big.blob.descriptor.digest), 'measured in-stream');
      assert.deepEqual(await diffIdOf(store, big.blob.descriptor), { diffId: big.diffId, size: big.tarSize });

      await cleanup();
      await openStore();
      const lie = digestOf('not this layer');
      await push('diffid/big-liar', imageOf([big, small], [lie, small.diffId]));
      await assert.rejects(puller().pull(`${host}/diffid/big-liar:v1`), {
        name: 'DiffIdMismatchError',
        message: `layers from manifest don't match image configuration: layer 0 unpacks to ${big.diffId}, the config says ${lie}`,
      });
      await expectNothingRecorded();
    } finally {
      await cleanup();
    }
  });

  test('a fresh download whose DiffID differs from the config fails with docker\'s message and records nothing', async () => {
    try {
      const layers = await Promise.all([layerOf('gzip', seededBytes('diffid-liar-0', 30_000)), layerOf('gzip', seededBytes('diffid-liar-1', 30_000))]);
      const lie = digestOf('not this layer');
      await push('diffid/liar', imageOf(layers, [layers[0]!.diffId, lie]));
      await assert.rejects(puller().pull(`${host}/diffid/liar:v1`), {
        name: 'DiffIdMismatchError',
        message: `layers from manifest don't match image configuration: layer 1 unpacks to ${layers[1]!.diffId}, the config says ${lie}`,
      });
      assert.ok(!readBack.has(layers[1]!.blob.descriptor.digest), 'caught in-stream');
      await expectNothingRecorded();
      // The config lists fewer DiffIDs than the manifest has layers: refused as soon as the config is in.
      await push('diffid/short', imageOf(layers, [layers[0]!.diffId]));
      await assert.rejects(puller().pull(`${host}/diffid/short:v1`), /layers from manifest don't match image configuration: the config lists 1 layers, the manifest 2/);
      await expectNothingRecorded();
    } finally {
      await cleanup();
    }
  });

  test('a layer that matches its digest but is not valid gzip fails with the decoder\'s error and records nothing', async () => {
    try {
      const good = await layerOf('gzip', seededBytes('diffid-corrupt', 100_000));
      const bytes = Buffer.from(good.blob.data);
      bytes[bytes.length - 6] = bytes[bytes.length - 6]! ^ 0xff; // the gzip CRC: the registry's digest is of these bytes
      const corrupt: Layer = { ...good, blob: { descriptor: { ...good.blob.descriptor, digest: digestOf(bytes) }, data: bytes } };
      await push('diffid/corrupt', imageOf([corrupt]));
      await assert.rejects(puller().pull(`${host}/diffid/corrupt:v1`), /incorrect data check/);
      await expectNothingRecorded();
    } finally {
      await cleanup();
    }
  });

  test('a resumed download is measured from the file once committed, and still checked', async () => {
    try {
      const layer = await layerOf('gzip', seededBytes('diffid-resume', 400_000));
      const lie = digestOf('not this layer');
      await push('diffid/resume-liar', imageOf([layer], [lie]));
      await push('diffid/resume', imageOf([layer]));
      const digest = layer.blob.descriptor.digest;
      const breakOnce = () => {
        proxy.decide = (r) => (r.url.endsWith(`/blobs/${digest}`) ? { dropAfterBytes: 100_000 } : undefined);
      };
      const resumedWithRange = () => {
        const request = proxy.requests.find((r) => r.url.endsWith(`/blobs/${digest}`));
        assert.match(request?.range ?? '', /^bytes=[1-9]\d*-$/, 'the download resumed with Range');
      };

      breakOnce();
      await assert.rejects(puller(1).pull(`${host}/diffid/resume-liar:v1`));
      assert.ok((await readdir(join(root, '.skiff', 'ingest'))).includes(digest.replace(':', '-')), 'the partial download was kept');
      proxy.decide = () => undefined;
      proxy.requests.length = 0;
      await assert.rejects(puller().pull(`${host}/diffid/resume-liar:v1`), {
        name: 'DiffIdMismatchError',
        message: `layers from manifest don't match image configuration: layer 0 unpacks to ${layer.diffId}, the config says ${lie}`,
      });
      resumedWithRange();
      assert.ok(readBack.has(digest), 'measured from the committed file');
      await expectNothingRecorded();

      // The same, honest: the resumed layer's measurement lands in the record.
      await cleanup();
      await openStore();
      breakOnce();
      await assert.rejects(puller(1).pull(`${host}/diffid/resume:v1`));
      proxy.decide = () => undefined;
      proxy.requests.length = 0;
      const result = await puller().pull(`${host}/diffid/resume:v1`);
      resumedWithRange();
      assert.deepEqual(result.record.diffIds, [layer.diffId]);
      assert.deepEqual(result.record.layerSizes, [layer.tarSize]);
    } finally {
      await cleanup();
    }
  });

  test('a layer already stored is not measured again; its recorded DiffID is still checked against a new config', async () => {
    try {
      const layer = await layerOf('gzip', seededBytes('diffid-known', 100_000));
      await push('diffid/known', imageOf([layer]));
      await puller().pull(`${host}/diffid/known:v1`);
      readBack.clear();
      const events: string[] = [];
      const lie = digestOf('not this layer');
      await push('diffid/known-liar', imageOf([layer], [lie]));
      await assert.rejects(puller().pull(`${host}/diffid/known-liar:v1`, { onEvent: (e) => e.type === 'layer' && events.push(e.status) }), /layer 0 unpacks to .*, the config says/);
      assert.deepEqual(events, ['Already exists']);
      assert.deepEqual([...readBack].filter((d) => d === layer.blob.descriptor.digest), [], 'the recorded measurement was reused');
      assert.equal((await store.records()).length, 1, 'only the first image');
    } finally {
      await cleanup();
    }
  });
});
