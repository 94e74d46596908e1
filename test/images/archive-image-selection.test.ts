import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selectImage, selectImages } from '../../src/images/image-selection.ts';
import { AmbiguousImageError, NoSuchImageError } from '../../src/images/resolve.ts';
import type { ImageStore } from '../../src/images/store.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, type ArchiveBench } from './archive-fixtures.ts';

describe('selectImages: what save and unpack arguments mean', () => {
  let bench: ArchiveBench;
  let store: ImageStore;
  let a: TestImage;
  let b: TestImage;

  before(async () => {
    bench = await archiveBench();
    store = await bench.newStore();
    a = await makeImage({ seed: 'sel-a' });
    b = await makeImage({ seed: 'sel-b' });
    await storeTestImage(store, a, 'docker.io/library/alpine:3.20');
    await store.tag('docker.io/library/alpine:latest', a.manifest.descriptor);
    await storeTestImage(store, b, 'docker.io/library/alpine:edge');
    const record = (await store.getRecord(b.manifest.descriptor.digest))!;
    await store.putRecord({ ...record, repoDigests: ['docker.io/library/alpine@sha256:' + 'e'.repeat(64)] });
  });
  after(async () => {
    await bench.cleanup();
  });

  const pick = async (input: string, allTags = false) =>
    (await selectImages(store, input, { allTags })).map((s) => ({ manifest: s.record.manifest.digest, names: s.names }));

  test('a tag, with docker.io and library/ defaults', async () => {
    assert.deepEqual(await pick('alpine:3.20'), [{ manifest: a.manifest.descriptor.digest, names: ['docker.io/library/alpine:3.20'] }]);
    assert.deepEqual(await pick('docker.io/library/alpine:edge'), [{ manifest: b.manifest.descriptor.digest, names: ['docker.io/library/alpine:edge'] }]);
  });

  test('no tag: latest, or every tag of the repository with allTags (docker save)', async () => {
    assert.deepEqual(await pick('alpine'), [{ manifest: a.manifest.descriptor.digest, names: ['docker.io/library/alpine:latest'] }]);
    assert.deepEqual(await pick('alpine', true), [
      { manifest: a.manifest.descriptor.digest, names: ['docker.io/library/alpine:3.20', 'docker.io/library/alpine:latest'] },
      { manifest: b.manifest.descriptor.digest, names: ['docker.io/library/alpine:edge'] },
    ]);
  });

  test('digests: image ID, manifest digest, name@manifest-digest, name@repo-digest', async () => {
    assert.deepEqual(await pick(a.config.descriptor.digest), [{ manifest: a.manifest.descriptor.digest, names: [] }]);
    assert.deepEqual(await pick(b.manifest.descriptor.digest), [{ manifest: b.manifest.descriptor.digest, names: [] }]);
    assert.deepEqual(await pick(`alpine@${a.manifest.descriptor.digest}`), [{ manifest: a.manifest.descriptor.digest, names: [] }]);
    assert.deepEqual(await pick(`alpine@sha256:${'e'.repeat(64)}`), [{ manifest: b.manifest.descriptor.digest, names: [] }]);
  });

  test('a short ID prefix; an ambiguous or unknown one is refused', async () => {
    const id = (image: TestImage) => image.config.descriptor.digest.slice(7);
    assert.equal((await selectImage(store, id(a).slice(0, 8))).record.manifest.digest, a.manifest.descriptor.digest);
    // Add images until one's ID starts with the same hex digit as a's (16 digits: a few tries).
    let other = b;
    for (let i = 0; id(other)[0] !== id(a)[0]; i++) {
      other = await makeImage({ seed: `sel-collide-${i}` });
      await storeTestImage(store, other);
    }
    await assert.rejects(selectImage(store, id(a)[0]!), AmbiguousImageError);
    await assert.rejects(selectImage(store, 'abcdef99'), NoSuchImageError);
    await assert.rejects(selectImage(store, 'alpine:3.21'), /No such image: alpine:3.21/);
    await assert.rejects(selectImage(store, `sha256:${'f'.repeat(64)}`), NoSuchImageError);
  });
});
