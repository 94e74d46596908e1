import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { shortId } from '../../src/digest/digest.ts';
import { listImages } from '../../src/images/list.ts';
import { NoSuchImageError } from '../../src/images/resolve.ts';
import type { ImageStore } from '../../src/images/store.ts';
import { tagImage } from '../../src/images/tag.ts';
import { InvalidReferenceError } from '../../src/reference/reference.ts';
import type { TestImage } from '../../src/testing/images.ts';
import { buildImage, put, tempStore } from './fixtures.ts';

describe('tag', () => {
  let store: ImageStore;
  let close: () => Promise<void>;
  let one: TestImage;
  let two: TestImage;
  const rows = async () => (await listImages(store)).map((r) => `${r.repository}:${r.tag}:${shortId(r.image.id)}`);

  beforeEach(async () => {
    ({ store, close } = await tempStore());
    one = await buildImage({ layers: [{ seed: 'one' }], created: '2026-01-01T01:00:00Z' });
    two = await buildImage({ layers: [{ seed: 'two' }], created: '2026-01-01T00:00:00Z' });
    await put(store, one, ['docker.io/library/one:latest']);
    await put(store, two, ['docker.io/library/two:latest']);
  });
  afterEach(() => close());

  const id = (image: TestImage) => shortId(image.config.descriptor.digest);

  test('SOURCE by name, TARGET normalized (docker.io, library/, latest)', async () => {
    const result = await tagImage(store, 'one', 'myapp');
    assert.equal(result.name, 'docker.io/library/myapp:latest');
    assert.ok((await store.refs()).some((r) => r.name === 'docker.io/library/myapp:latest' && r.manifest.digest === one.manifest.descriptor.digest));
    await tagImage(store, 'one:latest', 'user/app:v1');
    await tagImage(store, 'one', 'localhost:5000/a/b:c');
    assert.deepEqual((await rows()).sort(), [`localhost:5000/a/b:c:${id(one)}`, `myapp:latest:${id(one)}`, `one:latest:${id(one)}`, `two:latest:${id(two)}`, `user/app:v1:${id(one)}`]);
  });

  test('SOURCE by ID (prefix or full digest)', async () => {
    await tagImage(store, id(two), 'byid:1');
    await tagImage(store, two.config.descriptor.digest, 'byid:2');
    assert.deepEqual((await rows()).filter((r) => r.startsWith('byid')), [`byid:1:${id(two)}`, `byid:2:${id(two)}`]);
  });

  test('the tag always moves; an image left without names becomes dangling', async () => {
    await tagImage(store, 'two', 'one:latest');
    assert.deepEqual(await rows(), [`<none>:<none>:${id(one)}`, `one:latest:${id(two)}`, `two:latest:${id(two)}`]);
  });

  test('records the tag time (docker Metadata.LastTagTime)', async () => {
    const when = new Date('2026-02-03T04:05:06.789Z');
    await tagImage(store, 'one', 'again', when);
    const record = (await store.getRecord(one.manifest.descriptor.digest))!;
    assert.equal(record.lastTagTime, when.toISOString());
  });

  test('errors: unknown source, digest or invalid target', async () => {
    await assert.rejects(tagImage(store, 'nothere', 'x'), NoSuchImageError);
    await assert.rejects(tagImage(store, 'one', `x@sha256:${'0'.repeat(64)}`), /refusing to create a tag with a digest reference/);
    await assert.rejects(tagImage(store, 'one', 'Bad/Name'), InvalidReferenceError);
    await assert.rejects(tagImage(store, 'one', 'x:'), InvalidReferenceError);
  });
});
