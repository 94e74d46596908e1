import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { load } from '../../src/images/load.ts';
import { readJsonBlob } from '../../src/images/record.ts';
import type { ImageStore } from '../../src/images/store.ts';
import { unpack } from '../../src/images/unpack.ts';
import type { ImageManifest } from '../../src/oci/descriptor.ts';
import { hostPlatform } from '../../src/oci/platform.ts';
import { makeImage, makeIndex, type Blob, type TestImage } from '../../src/testing/images.ts';
import { makeImageFromLayers } from '../../src/testing/layers.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, readTar, saveToBuffer, toTar, type ArchiveBench, type TarFile } from './archive-fixtures.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);
const blobFile = (blob: Blob): TarFile => ({ name: `blobs/sha256/${hex(blob.descriptor.digest)}`, type: 'file', data: blob.data });
const jsonFile = (name: string, value: unknown): TarFile => ({ name, type: 'file', data: Buffer.from(JSON.stringify(value)) });

/** An OCI layout tar (what `skopeo copy … oci-archive:` writes), index entries given verbatim. */
async function ociArchive(blobs: Blob[], manifests: unknown[]): Promise<Buffer> {
  return toTar([
    jsonFile('oci-layout', { imageLayoutVersion: '1.0.0' }),
    jsonFile('index.json', { schemaVersion: 2, manifests }),
    ...blobs.map(blobFile),
  ]);
}

function indexEntry(blob: Blob, annotations?: Record<string, string>) {
  const { platform: _platform, ...descriptor } = blob.descriptor;
  return { ...descriptor, ...(annotations ? { annotations } : {}) };
}

async function refsOf(store: ImageStore) {
  return (await store.refs()).map((r) => ({ name: r.name, digest: r.manifest.digest }));
}

describe('load: archives into the store', () => {
  let bench: ArchiveBench;
  let source: ImageStore;
  let alpine: TestImage;
  let app: TestImage;

  before(async () => {
    bench = await archiveBench();
    source = await bench.newStore();
    alpine = await makeImage({ seed: 'alpine', layers: 2 });
    app = await makeImage({ seed: 'app', layers: 3, format: 'docker' });
    await storeTestImage(source, alpine, 'docker.io/library/alpine:3.20');
    await storeTestImage(source, app, 'ghcr.io/acme/app:v1');
    await source.tag('ghcr.io/acme/app:latest', app.manifest.descriptor);
  });
  after(async () => {
    await bench.cleanup();
  });

  test('save → load into a fresh store: same names, digests, records and blob bytes', async () => {
    const { tar } = await saveToBuffer(source, ['alpine:3.20', 'ghcr.io/acme/app']);
    const target = await bench.newStore();
    const result = await load(target, Readable.from([tar]));
    assert.deepEqual(result.messages, ['Loaded image: alpine:3.20', 'Loaded image: ghcr.io/acme/app:latest', 'Loaded image: ghcr.io/acme/app:v1']);
    assert.deepEqual(await refsOf(target), await refsOf(source));
    for (const image of [alpine, app]) {
      const before = (await source.getRecord(image.manifest.descriptor.digest))!;
      const after = (await target.getRecord(image.manifest.descriptor.digest))!;
      assert.deepEqual(after.diffIds, before.diffIds);
      assert.deepEqual(after.layers, before.layers);
      assert.equal(after.unpackedSize, before.unpackedSize);
      for (const blob of [image.manifest, ...image.blobs]) assert.ok((await readFile(target.blobs.blobPath(blob.descriptor.digest))).equals(blob.data));
    }
    assert.deepEqual(result.images.map((i) => i.names), [['docker.io/library/alpine:3.20'], ['ghcr.io/acme/app:latest', 'ghcr.io/acme/app:v1']]);
  });

  test('loading the same archive again changes nothing and says the same', async () => {
    const { tar } = await saveToBuffer(source, ['alpine:3.20']);
    const target = await bench.newStore();
    const first = await load(target, Readable.from([tar]));
    const refs = await refsOf(target);
    const second = await load(target, Readable.from([tar]));
    assert.deepEqual(second.messages, first.messages);
    assert.deepEqual(await refsOf(target), refs);
  });

  test('an untagged image loads as dangling and prints its ID', async () => {
    const { tar } = await saveToBuffer(source, [alpine.config.descriptor.digest]);
    const target = await bench.newStore();
    const result = await load(target, Readable.from([tar]));
    assert.deepEqual(result.messages, [`Loaded image ID: ${alpine.config.descriptor.digest}`]);
    assert.deepEqual(await refsOf(target), [{ name: undefined, digest: alpine.manifest.descriptor.digest }]);
  });

  test('a gzip-compressed archive loads too', async () => {
    const { tar } = await saveToBuffer(source, ['alpine:3.20']);
    const target = await bench.newStore();
    assert.deepEqual((await load(target, Readable.from([gzipSync(tar)]))).messages, ['Loaded image: alpine:3.20']);
  });

  test('entries may come in any order (metadata first, blobs last, reversed)', async () => {
    const files = await readTar((await saveToBuffer(source, ['ghcr.io/acme/app:v1'])).tar);
    const target = await bench.newStore();
    const result = await load(target, Readable.from([await toTar([...files].reverse())]));
    assert.deepEqual(result.messages, ['Loaded image: ghcr.io/acme/app:v1']);
    assert.equal(result.images[0]!.manifest.digest, app.manifest.descriptor.digest);
  });

  test('OCI layout only: ref.name as a bare tag loads untagged; a full reference or the containerd name tags', async () => {
    const blobs = [alpine.manifest, ...alpine.blobs];
    const bare = await load(await bench.newStore(), Readable.from([await ociArchive(blobs, [indexEntry(alpine.manifest, { 'org.opencontainers.image.ref.name': '3.20' })])]));
    assert.deepEqual(bare.messages, [`Loaded image ID: ${alpine.config.descriptor.digest}`]);
    assert.deepEqual(bare.images[0]!.names, []);

    const full = await load(await bench.newStore(), Readable.from([await ociArchive(blobs, [indexEntry(alpine.manifest, { 'org.opencontainers.image.ref.name': 'myrepo/alpine:v2' })])]));
    assert.deepEqual(full.messages, ['Loaded image: myrepo/alpine:v2']);

    const containerd = await load(
      await bench.newStore(),
      Readable.from([
        await ociArchive(blobs, [
          indexEntry(alpine.manifest, { 'org.opencontainers.image.ref.name': '3.20', 'io.containerd.image.name': 'quay.io/org/alpine:3.20' }),
          indexEntry(alpine.manifest),
        ]),
      ]),
    );
    assert.deepEqual(containerd.messages, ['Loaded image: quay.io/org/alpine:3.20']);
    assert.equal(containerd.images.length, 1, 'two index entries for one manifest are one image');
  });

  test('an index.json entry without a name takes the RepoTags manifest.json gives the same config', async () => {
    const tar = await toTar([
      jsonFile('oci-layout', { imageLayoutVersion: '1.0.0' }),
      jsonFile('index.json', { schemaVersion: 2, manifests: [indexEntry(alpine.manifest)] }),
      jsonFile('manifest.json', [{ Config: `blobs/sha256/${hex(alpine.config.descriptor.digest)}`, RepoTags: ['old/docker:save'], Layers: [] }]),
      ...[alpine.manifest, ...alpine.blobs].map(blobFile),
    ]);
    const result = await load(await bench.newStore(), Readable.from([tar]));
    assert.deepEqual(result.messages, ['Loaded image: old/docker:save']);
    assert.equal(result.images[0]!.manifest.digest, alpine.manifest.descriptor.digest, 'the OCI manifest wins over manifest.json');
  });

  test('an index entry that is a multi-platform index loads the host platform (or the one present)', async () => {
    const host = await makeImage({ seed: 'multi-host', platform: hostPlatform() });
    const foreign = await makeImage({ seed: 'multi-foreign', platform: { os: 'linux', architecture: 's390x' } });
    const index = makeIndex([foreign, host]);
    const name = { 'io.containerd.image.name': 'docker.io/library/multi:1' };
    const both = await load(await bench.newStore(), Readable.from([await ociArchive([index, host.manifest, ...host.blobs, foreign.manifest, ...foreign.blobs], [indexEntry(index, name)])]));
    assert.equal(both.images[0]!.manifest.digest, host.manifest.descriptor.digest);
    assert.deepEqual(both.images[0]!.record.platform, hostPlatform());
    const onlyForeign = await load(await bench.newStore(), Readable.from([await ociArchive([index, foreign.manifest, ...foreign.blobs], [indexEntry(index, name)])]));
    assert.equal(onlyForeign.images[0]!.manifest.digest, foreign.manifest.descriptor.digest);
    assert.equal(onlyForeign.images[0]!.record.platform.architecture, 's390x');
  });

  test('classic docker save: <hex>.json config, <id>/layer.tar (one a symlink), legacy files; manifest.json first', async () => {
    const image = await makeImageFromLayers(
      [[{ name: 'etc/os-release', data: 'ID=classic\n' }], [{ name: 'usr/bin/app', data: 'binary', mode: 0o755 }], [{ name: 'etc/os-release', data: 'ID=classic\n' }]],
      { compress: false, seed: 'classic' },
    );
    const [l1, l2, l3] = image.layers;
    assert.equal(l1!.descriptor.digest, l3!.descriptor.digest, 'layer 3 repeats layer 1');
    const ids = ['1'.repeat(64), '2'.repeat(64), '3'.repeat(64)];
    const files: TarFile[] = [
      jsonFile('manifest.json', [
        { Config: `${hex(image.config.descriptor.digest)}.json`, RepoTags: ['myapp:1.0', 'registry.example.com:5000/team/app:v2'], Layers: ids.map((id) => `${id}/layer.tar`) },
      ]),
      jsonFile('repositories', { myapp: { '1.0': ids[2] } }),
      { name: `${ids[0]}/`, type: 'directory', data: Buffer.alloc(0) },
      { name: `${ids[0]}/VERSION`, type: 'file', data: Buffer.from('1.0') },
      { name: `${ids[0]}/json`, type: 'file', data: Buffer.from('{}') },
      { name: `${ids[0]}/layer.tar`, type: 'file', data: l1!.data },
      { name: `${ids[1]}/layer.tar`, type: 'file', data: l2!.data },
      { name: `${ids[2]}/layer.tar`, type: 'symlink', data: Buffer.alloc(0), linkname: `../${ids[0]}/layer.tar` },
      { name: `${hex(image.config.descriptor.digest)}.json`, type: 'file', data: image.config.data },
    ];
    const target = await bench.newStore();
    const result = await load(target, Readable.from([await toTar(files)]));
    assert.deepEqual(result.messages, ['Loaded image: myapp:1.0', 'Loaded image: registry.example.com:5000/team/app:v2']);
    const loaded = result.images[0]!;
    assert.equal(loaded.config.digest, image.config.descriptor.digest, 'the image ID is kept');
    const manifest = await readJsonBlob<ImageManifest>(target, loaded.manifest.digest);
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(manifest.config.mediaType, 'application/vnd.oci.image.config.v1+json');
    assert.deepEqual(
      manifest.layers.map((l) => [l.mediaType, l.digest]),
      image.diffIds.map((d) => ['application/vnd.oci.image.layer.v1.tar', d]),
      'layers stored as they are: each digest is its DiffID',
    );
    assert.deepEqual(loaded.record.diffIds, image.diffIds);
    assert.equal(loaded.manifest.digest, digestOf(await readFile(target.blobs.blobPath(loaded.manifest.digest))));
    const rootfs = await unpack(target, 'myapp:1.0', join(bench.dir, 'classic-rootfs'));
    assert.equal(await readFile(join(rootfs.root, 'usr/bin/app'), 'utf8'), 'binary');
    // Legacy per-layer files are not turned into stray blobs.
    const stored = [];
    for await (const digest of target.blobs.list()) stored.push(digest);
    assert.ok(!stored.includes(digestOf('{}')) && !stored.includes(digestOf('1.0')));
  });

  test('a tag that moves to the loaded image says so, and the old image stays as <none>', async () => {
    const target = await bench.newStore();
    const old = await makeImage({ seed: 'old-alpine' });
    await storeTestImage(target, old, 'docker.io/library/alpine:3.20');
    const result = await load(target, Readable.from([(await saveToBuffer(source, ['alpine:3.20'])).tar]));
    assert.deepEqual(result.messages, [
      `The image alpine:3.20 already exists, renaming the old one with ID ${old.config.descriptor.digest} to empty string`,
      'Loaded image: alpine:3.20',
    ]);
    assert.deepEqual(
      (await refsOf(target)).sort((a, b) => String(a.name).localeCompare(String(b.name))),
      [
        { name: 'docker.io/library/alpine:3.20', digest: alpine.manifest.descriptor.digest },
        { name: undefined, digest: old.manifest.descriptor.digest },
      ].sort((a, b) => String(a.name).localeCompare(String(b.name))),
    );
  });

  test('onMessage streams the lines as they are decided', async () => {
    const lines: string[] = [];
    await load(await bench.newStore(), Readable.from([(await saveToBuffer(source, ['alpine:3.20'])).tar]), { onMessage: (line) => lines.push(line) });
    assert.deepEqual(lines, ['Loaded image: alpine:3.20']);
  });
});
