/**
 * Online garbage collection (issue 13): exactly the unshared blobs of a deleted image go, after
 * the grace period; the others pull with identical digests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../../src/digest/digest.ts';
import { runGcCycle } from '../../../src/server/gc/cycle.ts';
import { collectorFor } from '../../../src/server/gc/open-collector.ts';
import { makeImage, type TestImage } from '../../../src/testing/images.ts';
import { pushImage } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';

describe('garbage collection: three images sharing layers, one deleted', () => {
  let registry: TestRegistry;
  const images: TestImage[] = [];

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 3_600_000 } });
    for (const name of ['a', 'b', 'c']) {
      images.push(await makeImage({ seed: `gc-${name}`, layerSeeds: ['gc-shared-base', `gc-${name}-own`], layerSize: 4096 }));
    }
    for (const [i, image] of images.entries()) await pushImage(registry.url, 'team/app', image, `v${i}`);
  });
  after(async () => {
    await registry.stop();
  });

  const cycle = (grace: number) => runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace });
  const present = async (digest: Digest) => (await registry.registry.blobs.stat(digest)) !== undefined;

  test('nothing goes while every image is tagged', async () => {
    const report = await cycle(0);
    assert.equal(report.collect.deleted.length, 0);
    for (const image of images) for (const blob of [...image.blobs, image.manifest]) assert.ok(await present(blob.descriptor.digest));
  });

  test('after a manifest delete, its unshared blobs stay for the grace period, then exactly they go', async () => {
    const doomed = images[1]!;
    const res = await fetch(`${registry.url}/v2/team/app/manifests/${doomed.manifest.descriptor.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    const early = await cycle(3_600_000);
    assert.equal(early.collect.deleted.length, 0, 'within the grace period');
    const report = await cycle(0);
    const gone = new Set(report.collect.deleted.map((blob) => blob.digest));
    const expected = new Set([doomed.manifest.descriptor.digest, doomed.config.descriptor.digest, doomed.layers[1]!.descriptor.digest]);
    assert.deepEqual([...gone].sort(), [...expected].sort());
    for (const digest of expected) assert.equal(await present(digest as Digest), false);
    assert.equal(report.collect.freedBytes, [...expected].reduce((sum, digest) => sum + [doomed.manifest, ...doomed.blobs].find((b) => b.descriptor.digest === digest)!.data.length, 0));
    for (const image of [images[0]!, images[2]!]) {
      for (const blob of [...image.blobs, image.manifest]) assert.ok(await present(blob.descriptor.digest), `${blob.descriptor.digest} kept`);
      const manifest = await fetch(`${registry.url}/v2/team/app/manifests/${image.manifest.descriptor.digest}`, { headers: { Accept: image.manifest.descriptor.mediaType } });
      assert.deepEqual(Buffer.from(await manifest.arrayBuffer()), image.manifest.data);
      for (const blob of image.blobs) {
        const got = await fetch(`${registry.url}/v2/team/app/blobs/${blob.descriptor.digest}`);
        assert.equal(got.status, 200);
        assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
      }
    }
    // The deleted image's own layer is no longer served from the repository either.
    assert.equal((await fetch(`${registry.url}/v2/team/app/blobs/${doomed.layers[1]!.descriptor.digest}`, { method: 'HEAD' })).status, 404);
  });

  test('a second cycle finds nothing more', async () => {
    const report = await cycle(0);
    assert.equal(report.collect.deleted.length, 0);
    assert.equal(report.queued, 0);
  });
});
