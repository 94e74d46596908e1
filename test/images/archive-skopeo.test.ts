import assert from 'node:assert/strict';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { load } from '../../src/images/load.ts';
import { readJsonBlob } from '../../src/images/record.ts';
import { save } from '../../src/images/save.ts';
import type { ImageStore } from '../../src/images/store.ts';
import { unpack } from '../../src/images/unpack.ts';
import type { ImageIndex, ImageManifest } from '../../src/oci/descriptor.ts';
import { makeImage, writeOciLayout, type TestImage } from '../../src/testing/images.ts';
import { makeImageFromLayers } from '../../src/testing/layers.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, type ArchiveBench } from './archive-fixtures.ts';

const skip = await peerSkipReason('skopeo');

describe('save/load interop with skopeo (containers/image archive transports)', { skip }, () => {
  let bench: ArchiveBench;
  let store: ImageStore;
  let alpine: TestImage;
  let app: TestImage;
  let saved: string;
  let layout: string;

  before(async () => {
    bench = await archiveBench();
    store = await bench.newStore();
    alpine = await makeImage({ seed: 'skopeo-alpine', layers: 2, layerSize: 32 * 1024 });
    app = await makeImageFromLayers(
      [[{ name: 'etc/motd', data: 'hello from skopeo\n' }, { name: 'bin/', type: 'directory' }], [{ name: 'bin/app', data: '#!/bin/sh\n', mode: 0o755 }, { name: 'etc/.wh.motd' }]],
      { seed: 'skopeo-app' },
    );
    await storeTestImage(store, alpine, 'docker.io/library/alpine:3.20');
    await storeTestImage(store, app, 'ghcr.io/acme/app:v1');
    saved = join(bench.dir, 'saved.tar');
    await save(store, ['alpine:3.20', 'ghcr.io/acme/app:v1'], createWriteStream(saved));
    layout = join(bench.dir, 'layout');
    await writeOciLayout(layout, [app.manifest, ...app.blobs], { v1: app.manifest });
  });
  after(async () => {
    await bench?.cleanup();
  });

  test('skopeo inspect docker-archive: reads our manifest.json (config, layers as DiffIDs)', async () => {
    const info = JSON.parse(await skopeo(['inspect', `docker-archive:${saved}:alpine:3.20`])) as { Layers: string[]; Labels: Record<string, string>; Architecture: string };
    assert.deepEqual(info.Layers, alpine.diffIds);
    assert.equal(info.Architecture, 'amd64');
    assert.deepEqual(info.Labels, { seed: 'skopeo-alpine' });
    const config = JSON.parse(await skopeo(['inspect', '--config', `docker-archive:${saved}:ghcr.io/acme/app:v1`])) as { rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.rootfs.diff_ids, app.diffIds);
  });

  test('skopeo copy oci-archive:<saved>:<tag> reads our OCI layout with identical digests', async () => {
    const out = join(bench.dir, 'from-saved');
    await skopeo(['copy', `oci-archive:${saved}:3.20`, `oci:${out}:copied`]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
    assert.equal(index.manifests[0]!.digest, alpine.manifest.descriptor.digest);
    const blobs = (await readdir(join(out, 'blobs', 'sha256'))).sort();
    assert.deepEqual(blobs, [alpine.manifest, ...alpine.blobs].map((b) => b.descriptor.digest.slice(7)).sort());
  });

  test('skopeo copy docker-archive:<saved> (our compressed layers via manifest.json) works end to end', async () => {
    const out = join(bench.dir, 'from-saved-docker');
    await skopeo(['copy', `docker-archive:${saved}:ghcr.io/acme/app:v1`, `oci:${out}:x`]);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
    const manifest = JSON.parse(await readFile(join(out, 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as ImageManifest;
    assert.equal(manifest.layers.length, 2);
    assert.equal(manifest.config.digest, app.config.descriptor.digest, 'the same config, so the same image ID');
  });

  test('skopeo copy oci: → docker-archive:<file>:name:tag, then load: tagged, uncompressed layers as-is, unpackable', async () => {
    const archive = join(bench.dir, 'docker-archive.tar');
    await skopeo(['copy', `oci:${layout}:v1`, `docker-archive:${archive}:registry.example.com/team/app:2.0`]);
    const target = await bench.newStore();
    const result = await load(target, createReadStream(archive));
    assert.deepEqual(result.messages, ['Loaded image: registry.example.com/team/app:2.0']);
    const loaded = result.images[0]!;
    assert.equal(loaded.config.digest, app.config.descriptor.digest, 'image ID kept');
    assert.deepEqual(loaded.record.diffIds, app.diffIds);
    const manifest = await readJsonBlob<ImageManifest>(target, loaded.manifest.digest);
    assert.deepEqual(
      manifest.layers.map((l) => [l.mediaType, l.digest]),
      app.diffIds.map((d) => ['application/vnd.oci.image.layer.v1.tar', d]),
    );
    const rootfs = await unpack(target, 'registry.example.com/team/app:2.0', join(bench.dir, 'docker-archive-rootfs'));
    assert.equal(await readFile(join(rootfs.root, 'bin/app'), 'utf8'), '#!/bin/sh\n');
    assert.deepEqual((await readdir(join(rootfs.root, 'etc'))).sort(), [], 'the whiteout removed motd');
  });

  test('skopeo copy → oci-archive: then load: a bare tag loads untagged, a full name tags; digests kept', async () => {
    const bare = join(bench.dir, 'oci-bare.tar');
    await skopeo(['copy', `oci:${layout}:v1`, `oci-archive:${bare}:v1`]);
    const target = await bench.newStore();
    const untagged = await load(target, createReadStream(bare));
    assert.deepEqual(untagged.messages, [`Loaded image ID: ${app.config.descriptor.digest}`]);
    assert.equal(untagged.images[0]!.manifest.digest, app.manifest.descriptor.digest);
    assert.deepEqual((await target.refs()).map((r) => r.name), [undefined]);

    const named = join(bench.dir, 'oci-named.tar');
    await skopeo(['copy', `oci:${layout}:v1`, `oci-archive:${named}:ghcr.io/acme/app:v9`]);
    const tagged = await load(target, createReadStream(named));
    assert.deepEqual(tagged.messages, ['Loaded image: ghcr.io/acme/app:v9']);
    assert.deepEqual((await target.refs()).map((r) => r.name), ['ghcr.io/acme/app:v9'], 'the dangling entry became the tagged one');
  });

  test('save → load into a fresh store keeps every digest (the round trip skopeo sees)', async () => {
    const target = await bench.newStore();
    await load(target, createReadStream(saved));
    const names = (await target.refs()).map((r) => [r.name, r.manifest.digest]);
    assert.deepEqual(names, (await store.refs()).map((r) => [r.name, r.manifest.digest]));
    const again = join(bench.dir, 'saved-again.tar');
    await save(target, ['alpine:3.20', 'ghcr.io/acme/app:v1'], createWriteStream(again));
    assert.ok((await readFile(again)).equals(await readFile(saved)), 'save(load(save(x))) is byte-identical to save(x)');
  });
});
