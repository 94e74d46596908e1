import assert from 'node:assert/strict';
import { chmod, readdir, readlink, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { NoSuchImageError } from '../../src/images/resolve.ts';
import { save, type DockerArchiveManifest } from '../../src/images/save.ts';
import type { ImageStore } from '../../src/images/store.ts';
import type { ImageIndex } from '../../src/oci/descriptor.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, jsonOf, readTar, saveToBuffer, type ArchiveBench } from './archive-fixtures.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);

/** Files under `dir` this process holds open (Linux: /proc/self/fd). */
async function descriptorsOpenUnder(dir: string): Promise<string[]> {
  const open: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(`${dir}/`)) open.push(target);
  }
  return open;
}

describe('save: one tar that is both an OCI layout and a docker archive', () => {
  let bench: ArchiveBench;
  let store: ImageStore;
  let alpine: TestImage;
  let alpineEdge: TestImage;
  let busybox: TestImage;

  before(async () => {
    bench = await archiveBench();
    store = await bench.newStore();
    alpine = await makeImage({ seed: 'alpine', layers: 2, labels: { v: '3.20' } });
    // Same seed: the same layers as alpine, another config. The shared layers must be written once.
    alpineEdge = await makeImage({ seed: 'alpine', layers: 2, labels: { v: 'edge' } });
    busybox = await makeImage({ seed: 'busybox', layers: 1, format: 'docker' });
    await storeTestImage(store, alpine, 'docker.io/library/alpine:3.20');
    await store.tag('docker.io/library/alpine:latest', alpine.manifest.descriptor);
    await storeTestImage(store, alpineEdge, 'docker.io/library/alpine:edge');
    await storeTestImage(store, busybox, 'ghcr.io/acme/busybox:1.36');
  });
  after(async () => {
    await bench.cleanup();
  });

  test('writes oci-layout, index.json (containerd + OCI ref annotations), manifest.json (familiar names) and the blobs', async () => {
    const { tar, result } = await saveToBuffer(store, ['alpine:3.20', 'ghcr.io/acme/busybox:1.36']);
    const files = await readTar(tar);
    assert.deepEqual(
      files.filter((f) => !f.name.startsWith('blobs/sha256/') || f.type === 'directory').map((f) => f.name),
      ['blobs/', 'blobs/sha256/', 'index.json', 'manifest.json', 'oci-layout'],
    );
    assert.deepEqual(jsonOf(files, 'oci-layout'), { imageLayoutVersion: '1.0.0' });
    const index = jsonOf<ImageIndex>(files, 'index.json');
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(index.manifests, [
      {
        ...alpine.manifest.descriptor,
        platform: undefined,
        annotations: { 'io.containerd.image.name': 'docker.io/library/alpine:3.20', 'org.opencontainers.image.ref.name': '3.20' },
      },
      {
        ...busybox.manifest.descriptor,
        platform: undefined,
        annotations: { 'io.containerd.image.name': 'ghcr.io/acme/busybox:1.36', 'org.opencontainers.image.ref.name': '1.36' },
      },
    ].map(({ platform: _p, ...rest }) => rest));
    assert.deepEqual(jsonOf<DockerArchiveManifest[]>(files, 'manifest.json'), [
      { Config: `blobs/sha256/${hex(alpine.config.descriptor.digest)}`, RepoTags: ['alpine:3.20'], Layers: alpine.layers.map((l) => `blobs/sha256/${hex(l.descriptor.digest)}`) },
      { Config: `blobs/sha256/${hex(busybox.config.descriptor.digest)}`, RepoTags: ['ghcr.io/acme/busybox:1.36'], Layers: busybox.layers.map((l) => `blobs/sha256/${hex(l.descriptor.digest)}`) },
    ]);
    // Every blob file holds exactly the bytes its name promises.
    const blobs = files.filter((f) => f.type === 'file' && f.name.startsWith('blobs/sha256/'));
    for (const blob of blobs) assert.equal(hex(digestOf(blob.data)), blob.name.slice('blobs/sha256/'.length));
    const expected = [alpine, busybox].flatMap((i) => [i.manifest, i.config, ...i.layers]).map((b) => `blobs/sha256/${hex(b.descriptor.digest)}`);
    assert.deepEqual(blobs.map((b) => b.name).sort(), [...new Set(expected)].sort());
    assert.equal(result.blobs, blobs.length);
    assert.equal(result.bytes, blobs.reduce((n, b) => n + b.data.length, 0));
  });

  test('a blob shared by several images is written once', async () => {
    const { tar } = await saveToBuffer(store, ['alpine:3.20', 'alpine:edge']);
    const names = (await readTar(tar)).map((f) => f.name);
    assert.equal(new Set(names).size, names.length, 'no duplicate entries');
    for (const layer of alpine.layers) assert.equal(names.filter((n) => n.endsWith(hex(layer.descriptor.digest))).length, 1);
    // 2 manifests + 2 configs + 2 shared layers
    assert.equal(names.filter((n) => n.startsWith('blobs/sha256/') && n !== 'blobs/sha256/').length, 6);
  });

  test('a repository without a tag saves all its tags; one image with two tags is one manifest.json entry', async () => {
    const files = await readTar((await saveToBuffer(store, ['alpine'])).tar);
    const manifest = jsonOf<DockerArchiveManifest[]>(files, 'manifest.json');
    assert.deepEqual(manifest.map((m) => m.RepoTags), [['alpine:3.20', 'alpine:latest'], ['alpine:edge']]);
    const index = jsonOf<ImageIndex>(files, 'index.json');
    assert.deepEqual(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']), ['3.20', 'latest', 'edge']);
  });

  test('saving by image ID writes the image untagged', async () => {
    const files = await readTar((await saveToBuffer(store, [hex(busybox.config.descriptor.digest).slice(0, 12)])).tar);
    assert.deepEqual(jsonOf<DockerArchiveManifest[]>(files, 'manifest.json')[0]!.RepoTags, []);
    assert.deepEqual(jsonOf<ImageIndex>(files, 'index.json').manifests, [
      { mediaType: busybox.manifest.descriptor.mediaType, digest: busybox.manifest.descriptor.digest, size: busybox.manifest.descriptor.size },
    ]);
  });

  test('the same images give the same bytes (fixed mtimes and owners)', async () => {
    const first = await saveToBuffer(store, ['alpine:3.20', 'alpine:edge']);
    const second = await saveToBuffer(store, ['alpine:3.20', 'alpine:edge']);
    assert.ok(first.tar.equals(second.tar));
  });

  test('an unknown image is "No such image"', async () => {
    await assert.rejects(saveToBuffer(store, ['alpine:3.20', 'nope:1']), NoSuchImageError);
    await assert.rejects(saveToBuffer(store, []), /at least one image/);
  });

  test('an output that fails mid-way fails the save with its own error', async () => {
    let writes = 0;
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        callback(++writes > 2 ? Object.assign(new Error('disk full'), { code: 'ENOSPC' }) : null);
      },
    });
    await assert.rejects(save(store, ['alpine:3.20', 'alpine:edge'], output), { code: 'ENOSPC', message: 'disk full' });
  });

  test('a blob missing from the store, or corrupt in it, fails the save', async () => {
    const other = await bench.newStore();
    const image = await makeImage({ seed: 'broken', layers: 2 });
    await storeTestImage(other, image, 'docker.io/library/broken:1');
    const layerPath = other.blobs.blobPath(image.layers[1]!.descriptor.digest);
    await chmod(layerPath, 0o644);
    await writeFile(layerPath, Buffer.alloc(image.layers[1]!.data.length, 7));
    await assert.rejects(saveToBuffer(other, ['broken:1']), /digest mismatch/);
    await other.blobs.delete(image.layers[1]!.descriptor.digest);
    await assert.rejects(saveToBuffer(other, ['broken:1']), /blob sha256:[a-f0-9]{64} is missing from the store/);
  });

  test('an output that fails mid-way leaves no blob file open: closed explicitly, not by the garbage collector (DEP0137)', async () => {
    let writes = 0;
    const output = new Writable({
      write(_chunk, _encoding, callback) {
        // Past the directory entries, into the first blob: its file is open when the output fails.
        callback(++writes > 2 ? Object.assign(new Error('disk full'), { code: 'ENOSPC' }) : null);
      },
    });
    await assert.rejects(save(store, ['alpine:3.20'], output), { code: 'ENOSPC' });
    assert.deepEqual(await descriptorsOpenUnder(store.root), [], 'every blob file is closed when save() rejects');
  });
});
