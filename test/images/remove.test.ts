import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { shortId } from '../../src/digest/digest.ts';
import { loadImages } from '../../src/images/catalog.ts';
import { listImages } from '../../src/images/list.ts';
import { ImageConflictError, formatPruneReport, formatRemoveItems, pruneImages, removeImage } from '../../src/images/remove.ts';
import { NoSuchImageError } from '../../src/images/resolve.ts';
import type { ImageStore } from '../../src/images/store.ts';
import type { TestImage } from '../../src/testing/images.ts';
import { buildImage, dockerTwin, hasBlob, put, tempStore } from './fixtures.ts';

const ALPINE_DIGEST = `sha256:${'a'.repeat(64)}`;

describe('rmi and image prune', () => {
  let store: ImageStore;
  let dir: string;
  let close: () => Promise<void>;
  /** alpine:3.20 + alpine:latest, repo digest alpine@a…; layers base + a1 */
  let alpine: TestImage;
  /** user/app:v1; layers base (shared with alpine) + b1 */
  let app: TestImage;
  /** dangling; layer d1 */
  let dangling: TestImage;

  const rows = async () => (await listImages(store)).map((r) => `${r.repository}:${r.tag}`);
  const blobFiles = async () => (await readdir(join(dir, 'blobs', 'sha256'))).sort();

  beforeEach(async () => {
    ({ store, dir, close } = await tempStore());
    alpine = await buildImage({ layers: [{ seed: 'base' }, { seed: 'a1' }], created: '2026-01-01T01:00:00Z' });
    app = await buildImage({ layers: [{ seed: 'base' }, { seed: 'b1' }], created: '2026-01-01T00:30:00Z' });
    dangling = await buildImage({ layers: [{ seed: 'd1' }], created: '2025-12-01T00:00:00Z' });
    await put(store, alpine, ['docker.io/library/alpine:3.20', 'docker.io/library/alpine:latest'], [`docker.io/library/alpine@${ALPINE_DIGEST}`]);
    await put(store, app, ['docker.io/user/app:v1']);
    await put(store, dangling);
  });
  afterEach(() => close());

  test('by name with other tags left: only untags', async () => {
    const result = await removeImage(store, 'alpine:3.20');
    assert.deepEqual(result.items, [{ untagged: 'alpine:3.20' }]);
    assert.equal(result.reclaimed, 0);
    assert.deepEqual(await rows(), ['alpine:latest', 'user/app:v1', '<none>:<none>']);
    for (const b of [...alpine.blobs, alpine.manifest]) assert.ok(await hasBlob(store, b.descriptor));
  });

  test('by name, last tag: untags, drops the repo digest, deletes the image and only its unused blobs', async () => {
    await removeImage(store, 'alpine:3.20');
    const result = await removeImage(store, 'docker.io/library/alpine');
    const [base, a1] = alpine.layers as [TestImage['layers'][0], TestImage['layers'][0]];
    assert.deepEqual(result.items, [
      { untagged: 'alpine:latest' },
      { untagged: `alpine@${ALPINE_DIGEST}` },
      { deleted: alpine.config.descriptor.digest },
      { deleted: a1.descriptor.digest },
    ]);
    assert.equal(
      formatRemoveItems(result.items),
      `Untagged: alpine:latest\nUntagged: alpine@${ALPINE_DIGEST}\nDeleted: ${alpine.config.descriptor.digest}\nDeleted: ${a1.descriptor.digest}\n`,
    );
    assert.equal(result.reclaimed, alpine.manifest.descriptor.size + alpine.config.descriptor.size + a1.descriptor.size);
    // the layer shared with user/app survives; everything else of alpine left blobs/
    assert.ok(await hasBlob(store, base.descriptor));
    assert.equal(await hasBlob(store, a1.descriptor), false);
    assert.equal(await hasBlob(store, alpine.config.descriptor), false);
    assert.equal(await hasBlob(store, alpine.manifest.descriptor), false);
    assert.equal(await store.getRecord(alpine.manifest.descriptor.digest), undefined);
    assert.deepEqual(await rows(), ['user/app:v1', '<none>:<none>']);
    const index = await store.readIndex();
    assert.ok(!index.manifests.some((m) => m.digest === alpine.manifest.descriptor.digest));
    // user/app is intact and its blobs all there
    for (const b of [...app.blobs, app.manifest]) assert.ok(await hasBlob(store, b.descriptor));
  });

  test('by ID with several tags: refused without -f, untag-all and delete with it', async () => {
    const id = shortId(alpine.config.descriptor.digest);
    await assert.rejects(
      removeImage(store, id),
      (e: unknown) => e instanceof ImageConflictError && e.message === `conflict: unable to delete ${id} (must be forced) - image is referenced in multiple repositories`,
    );
    assert.deepEqual(await rows(), ['alpine:3.20', 'alpine:latest', 'user/app:v1', '<none>:<none>']);
    const result = await removeImage(store, id, { force: true });
    assert.deepEqual(result.items.slice(0, 3), [{ untagged: 'alpine:3.20' }, { untagged: 'alpine:latest' }, { untagged: `alpine@${ALPINE_DIGEST}` }]);
    assert.deepEqual(result.items[3], { deleted: alpine.config.descriptor.digest });
    assert.deepEqual(await rows(), ['user/app:v1', '<none>:<none>']);
  });

  test('by ID with a single tag (full digest or prefix): untags and deletes', async () => {
    const result = await removeImage(store, app.config.descriptor.digest);
    assert.deepEqual(result.items[0], { untagged: 'user/app:v1' });
    assert.deepEqual(result.items[1], { deleted: app.config.descriptor.digest });
    assert.deepEqual(await rows(), ['alpine:3.20', 'alpine:latest', '<none>:<none>']);
    const gone = app.layers[1];
    assert.ok(gone);
    assert.equal(await hasBlob(store, gone.descriptor), false);
  });

  test('a dangling image by ID prefix is deleted with its blobs', async () => {
    const before = await blobFiles();
    const result = await removeImage(store, dangling.config.descriptor.digest.slice('sha256:'.length, 'sha256:'.length + 12));
    assert.deepEqual(result.items, [{ deleted: dangling.config.descriptor.digest }, { deleted: (dangling.layers[0] as TestImage['layers'][0]).descriptor.digest }]);
    const after = await blobFiles();
    assert.equal(before.length - after.length, 3);
    assert.deepEqual(await rows(), ['alpine:3.20', 'alpine:latest', 'user/app:v1']);
  });

  test('a manifest digest is accepted as an ID', async () => {
    const result = await removeImage(store, dangling.manifest.descriptor.digest);
    assert.deepEqual(result.items[0], { deleted: dangling.config.descriptor.digest });
  });

  test('an unknown image is "No such image"', async () => {
    await assert.rejects(removeImage(store, 'nothere:1'), (e: unknown) => e instanceof NoSuchImageError && e.message === 'No such image: nothere:1');
    await assert.rejects(removeImage(store, 'ffffffffffff'), NoSuchImageError);
  });

  test('untagging the last tag of a repository drops that repository’s digests; other tags keep the image', async () => {
    await store.tag('docker.io/library/myalpine:1', alpine.manifest.descriptor);
    await removeImage(store, 'alpine:3.20');
    const result = await removeImage(store, 'alpine:latest');
    assert.deepEqual(result.items, [{ untagged: 'alpine:latest' }, { untagged: `alpine@${ALPINE_DIGEST}` }]);
    const record = await store.getRecord(alpine.manifest.descriptor.digest);
    assert.deepEqual(record?.repoDigests, []);
    assert.deepEqual(await rows(), ['myalpine:1', 'user/app:v1', '<none>:<none>']);
  });

  test('rmi name@digest removes that repo digest; the tagged image stays', async () => {
    const result = await removeImage(store, `alpine@${ALPINE_DIGEST}`);
    assert.deepEqual(result.items, [{ untagged: `alpine@${ALPINE_DIGEST}` }]);
    const [image] = (await loadImages(store)).filter((i) => i.id === alpine.config.descriptor.digest);
    assert.deepEqual(image?.repoDigests, []);
    assert.deepEqual(await rows(), ['alpine:3.20', 'alpine:latest', 'user/app:v1', '<none>:<none>']);
  });

  describe('one config under two manifests (docker v2s2 and OCI, or both archive formats)', () => {
    const twinOf = dockerTwin;
    const ids = async () => (await listImages(store)).map((r) => r.image.id);

    test('rmi <ID> with the twins under two tags is refused without -f; nothing is removed', async () => {
      await put(store, twinOf(app), ['docker.io/user/app:v1-docker']);
      const id = shortId(app.config.descriptor.digest);
      await assert.rejects(
        removeImage(store, id),
        (e: unknown) => e instanceof ImageConflictError && e.message === `conflict: unable to delete ${id} (must be forced) - image is referenced in multiple repositories`,
      );
      assert.deepEqual((await rows()).sort(), ['<none>:<none>', 'alpine:3.20', 'alpine:latest', 'user/app:v1', 'user/app:v1-docker']);
    });

    test('rmi -f <ID> removes both; "Deleted: <ID>" once, and the ID is gone from the list', async () => {
      await put(store, twinOf(app), ['docker.io/user/app:v1-docker']);
      const result = await removeImage(store, app.config.descriptor.digest, { force: true });
      const b1 = app.layers[1]!.descriptor.digest;
      assert.deepEqual(result.items, [{ untagged: 'user/app:v1' }, { untagged: 'user/app:v1-docker' }, { deleted: app.config.descriptor.digest }, { deleted: b1 }]);
      assert.ok(!(await ids()).includes(app.config.descriptor.digest));
      assert.equal(await hasBlob(store, app.config.descriptor), false);
    });

    test('rmi <ID> of a tagged image whose twin is dangling (a second load retagged the name): both go', async () => {
      await put(store, twinOf(app)); // dangling twin
      const result = await removeImage(store, shortId(app.config.descriptor.digest));
      assert.deepEqual(result.items.slice(0, 2), [{ untagged: 'user/app:v1' }, { deleted: app.config.descriptor.digest }]);
      assert.equal(result.items.filter((i) => 'deleted' in i && i.deleted === app.config.descriptor.digest).length, 1);
      assert.ok(!(await ids()).includes(app.config.descriptor.digest));
    });

    test('rmi of one twin by name untags it without claiming the ID is deleted', async () => {
      await put(store, twinOf(app), ['docker.io/user/app:v1-docker']);
      const result = await removeImage(store, 'user/app:v1-docker');
      assert.deepEqual(result.items, [{ untagged: 'user/app:v1-docker' }]);
      assert.ok((await ids()).includes(app.config.descriptor.digest));
      for (const b of [...app.blobs, app.manifest]) assert.ok(await hasBlob(store, b.descriptor), b.descriptor.digest);
    });

    test('image prune -a: "deleted: <ID>" once, for the last twin', async () => {
      await put(store, twinOf(app));
      const result = await pruneImages(store, { all: true });
      assert.equal(result.items.filter((i) => 'deleted' in i && i.deleted === app.config.descriptor.digest).length, 1);
      assert.deepEqual(await rows(), []);
    });
  });

  test('image prune removes dangling images only', async () => {
    const result = await pruneImages(store);
    const layer = (dangling.layers[0] as TestImage['layers'][0]).descriptor;
    assert.deepEqual(result.items, [{ deleted: dangling.config.descriptor.digest }, { deleted: layer.digest }]);
    assert.equal(result.reclaimed, dangling.manifest.descriptor.size + dangling.config.descriptor.size + layer.size);
    assert.equal(await hasBlob(store, layer), false);
    assert.deepEqual(await rows(), ['alpine:3.20', 'alpine:latest', 'user/app:v1']);
    const report = formatPruneReport(result);
    assert.match(report, new RegExp(`^Deleted Images:\ndeleted: ${dangling.config.descriptor.digest}\ndeleted: ${layer.digest}\n\nTotal reclaimed space: \\d`));
    assert.equal(formatPruneReport(await pruneImages(store)), 'Total reclaimed space: 0B\n');
  });

  test('image prune -a removes every image and every blob', async () => {
    const result = await pruneImages(store, { all: true });
    assert.deepEqual(await rows(), []);
    assert.deepEqual(await blobFiles(), []);
    const untagged = result.items.flatMap((i) => ('untagged' in i ? [i.untagged] : []));
    assert.deepEqual(untagged.sort(), ['alpine:3.20', `alpine@${ALPINE_DIGEST}`, 'alpine:latest', 'user/app:v1'].sort());
    const deletedIds = result.items.flatMap((i) => ('deleted' in i ? [i.deleted] : []));
    for (const image of [alpine, app, dangling]) assert.ok(deletedIds.includes(image.config.descriptor.digest));
    const total = [alpine, app, dangling].flatMap((i) => [...i.blobs, i.manifest]);
    const unique = new Map(total.map((b) => [b.descriptor.digest, b.descriptor.size]));
    assert.equal(result.reclaimed, [...unique.values()].reduce((a, b) => a + b, 0));
    assert.match(formatPruneReport(result), /\nTotal reclaimed space: [\d.]+kB\n$/);
  });
});
