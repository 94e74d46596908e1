import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { pruneImages } from '../../src/images/remove.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { ArchiveError, load } from '../../src/images/load.ts';
import { ImageStore } from '../../src/images/store.ts';
import { makeImage, seededBytes, type TestImage } from '../../src/testing/images.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, jsonOf, readTar, saveToBuffer, toTar, type ArchiveBench, type TarFile } from './archive-fixtures.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);

async function blobsOf(store: ImageStore): Promise<string[]> {
  const out: string[] = [];
  for await (const digest of store.blobs.list()) out.push(digest);
  return out.sort();
}

/** What an image in the store legitimately holds: its manifest, config and layers. */
const blobsOfImage = (image: TestImage) => [image.manifest, ...image.blobs].map((b) => b.descriptor.digest);

/**
 * Bug: `load` stored every regular file of the archive as a blob, referenced or not: a 1 MB
 * gzipped archive with an unreferenced 1 GiB entry left a 1.1 GiB orphan blob that `image prune -a`
 * did not remove. Now only what the archive's manifests reach is committed; the rest never leaves
 * the ingest area, and the store can sweep blobs no image reaches.
 */
describe('load stores only what the manifests reach', () => {
  let bench: ArchiveBench;
  let source: ImageStore;
  let image: TestImage;
  let files: TarFile[];

  before(async () => {
    bench = await archiveBench();
    source = await bench.newStore();
    image = await makeImage({ seed: 'reach', layers: 2 });
    await storeTestImage(source, image, 'docker.io/library/reach:1');
    files = await readTar((await saveToBuffer(source, ['reach:1'])).tar);
  });
  after(async () => {
    await bench.cleanup();
  });

  const junk = seededBytes('junk', 256 * 1024);
  const zeros = Buffer.alloc(32 * 1024 * 1024); // gzips to ~32 KiB: the "1 MB archive, 1 GiB entry" in small
  const extras = (): TarFile[] => [
    { name: 'junk.bin', type: 'file', data: junk },
    { name: `blobs/sha256/${hex(digestOf(junk))}`, type: 'file', data: junk }, // well named, but no manifest lists it
    { name: 'padding/zeros', type: 'file', data: zeros },
  ];

  test('an OCI archive with unreferenced entries (metadata last, as docker save writes it): only the image is stored', async () => {
    const store = await bench.newStore();
    const archive = gzipSync(await toTar([...extras(), ...files]));
    assert.ok(archive.length < 2 * 1024 * 1024, `a ${archive.length}-byte archive`);
    await load(store, Readable.from([archive]));
    assert.deepEqual(await blobsOf(store), blobsOfImage(image).sort());
    assert.deepEqual(await readdir(join(store.root, '.skiff', 'ingest')), [], 'nothing left staged');
  });

  test('the same with the metadata first', async () => {
    const store = await bench.newStore();
    const meta = files.filter((f) => !f.name.startsWith('blobs/'));
    await load(store, Readable.from([await toTar([...meta, ...extras(), ...files.filter((f) => f.name.startsWith('blobs/'))])]));
    assert.deepEqual(await blobsOf(store), blobsOfImage(image).sort());
  });

  test('a docker-archive (manifest.json only) with a stray layer.tar: the stray one is not stored', async () => {
    const store = await bench.newStore();
    const dockerOnly = files.filter((f) => f.name !== 'index.json');
    const manifest = jsonOf<{ Config: string; Layers: string[] }[]>(files, 'manifest.json');
    assert.ok(manifest[0]!.Layers.length === 2);
    await load(store, Readable.from([await toTar([...dockerOnly, { name: 'stray/layer.tar', type: 'file', data: junk }])]));
    const stored = await blobsOf(store);
    assert.ok(!stored.includes(digestOf(junk)), 'the stray file is no blob');
    for (const digest of [image.config, ...image.layers].map((b) => b.descriptor.digest)) assert.ok(stored.includes(digest));
  });

  test('a failed load leaves nothing staged and no unreferenced blob', async () => {
    const store = await bench.newStore();
    const withoutConfig = files.filter((f) => f.name !== `blobs/sha256/${hex(image.config.descriptor.digest)}`);
    await assert.rejects(load(store, Readable.from([await toTar([...extras(), ...withoutConfig])])), ArchiveError);
    assert.deepEqual(await readdir(join(store.root, '.skiff', 'ingest')), []);
    assert.ok(!(await blobsOf(store)).includes(digestOf(junk)));
  });

  test('staging files of a load that was killed are removed when the store is next opened; a running one is kept', async () => {
    const store = await bench.newStore();
    const ingest = join(store.root, '.skiff', 'ingest');
    const dead = `load-2147483646-${randomUUID()}`; // no such PID
    const alive = `load-${process.pid}-${randomUUID()}`;
    await writeFile(join(ingest, dead), 'x');
    await writeFile(join(ingest, alive), 'y');
    await ImageStore.open(store.root);
    assert.deepEqual(await readdir(ingest), [alive]);
  });
});

describe('removeUnreferencedBlobs: what prune calls to reclaim blobs no image reaches', () => {
  let bench: ArchiveBench;
  before(async () => {
    bench = await archiveBench();
  });
  after(async () => {
    await bench.cleanup();
  });

  test('an orphan blob older than the grace period goes; the images and a fresh orphan stay', async () => {
    const store = await bench.newStore();
    const image = await makeImage({ seed: 'kept', layers: 2 });
    await storeTestImage(store, image, 'docker.io/library/kept:1');
    const old = seededBytes('old orphan', 100_000);
    const fresh = seededBytes('fresh orphan', 1000);
    await store.blobs.put(Readable.from([old]), digestOf(old), old.length);
    await store.blobs.put(Readable.from([fresh]), digestOf(fresh), fresh.length);
    const dayAgo = new Date(Date.now() - 24 * 3600 * 1000);
    await utimes(store.blobs.blobPath(digestOf(old)), dayAgo, dayAgo);
    for (const digest of blobsOfImage(image)) await utimes(store.blobs.blobPath(digest), dayAgo, dayAgo);

    const swept = await store.removeUnreferencedBlobs();
    assert.deepEqual(swept, { deleted: [digestOf(old)], reclaimed: old.length });
    assert.deepEqual(await blobsOf(store), [...blobsOfImage(image), digestOf(fresh)].sort());
    assert.deepEqual((await store.removeUnreferencedBlobs({ graceMs: 0 })).deleted, [digestOf(fresh)]);
    assert.deepEqual(await blobsOf(store), blobsOfImage(image).sort());
  });

  test('image prune (without -a) removes an old orphan blob and reports it, keeping every image', async () => {
    const store = await bench.newStore();
    const image = await makeImage({ seed: 'pruned around', layers: 1 });
    await storeTestImage(store, image, 'docker.io/library/kept:2');
    const orphan = seededBytes('orphan for prune', 50_000);
    await store.blobs.put(Readable.from([orphan]), digestOf(orphan), orphan.length);
    const dayAgo = new Date(Date.now() - 24 * 3600 * 1000);
    await utimes(store.blobs.blobPath(digestOf(orphan)), dayAgo, dayAgo);
    const result = await pruneImages(store);
    assert.deepEqual(result, { items: [{ deleted: digestOf(orphan) }], reclaimed: orphan.length });
    assert.deepEqual(await blobsOf(store), blobsOfImage(image).sort());
  });

  test('an image another tool wrote into the layout (an index entry, no skiff record) keeps its blobs', async () => {
    const store = await bench.newStore();
    const image = await makeImage({ seed: 'foreign', layers: 1 });
    for (const blob of [image.manifest, ...image.blobs]) await store.blobs.put(Readable.from([blob.data]), blob.descriptor.digest, blob.data.length);
    await store.tag('docker.io/library/foreign:1', image.manifest.descriptor);
    assert.deepEqual((await store.removeUnreferencedBlobs({ graceMs: 0 })).deleted, []);
    assert.deepEqual(await blobsOf(store), blobsOfImage(image).sort());
  });
});
