import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LocalImage } from '../../src/images/catalog.ts';
import { AmbiguousImageError, NoSuchImageError, findImage, resolveImage } from '../../src/images/resolve.ts';
import type { ImageStore } from '../../src/images/store.ts';
import type { TestImage } from '../../src/testing/images.ts';
import { buildImage, put, tempStore } from './fixtures.ts';

const REPO_DIGEST = `sha256:${'c'.repeat(64)}`;

describe('resolveImage', () => {
  let store: ImageStore;
  let close: () => Promise<void>;
  let alpine: TestImage;
  let app: TestImage;
  let hexNamed: TestImage;

  before(async () => {
    ({ store, close } = await tempStore());
    alpine = await buildImage({ layers: [{ seed: 'r-alpine' }] });
    app = await buildImage({ layers: [{ seed: 'r-app' }] });
    await put(store, alpine, ['docker.io/library/alpine:latest', 'docker.io/library/alpine:3.20'], [`docker.io/library/alpine@${REPO_DIGEST}`]);
    await put(store, app, ['ghcr.io/o/app:v1']);
    // an image named like a hex prefix: names win over ID prefixes, as in docker
    hexNamed = await buildImage({ layers: [{ seed: 'r-hex' }] });
  });
  after(() => close());

  const resolvesTo = async (input: string, image: TestImage) => {
    const { image: found } = await resolveImage(store, input);
    assert.equal(found.record.manifest.digest, image.manifest.descriptor.digest, input);
  };

  test('by name: docker normalization and the latest default', async () => {
    await resolvesTo('alpine', alpine);
    await resolvesTo('alpine:3.20', alpine);
    await resolvesTo('library/alpine:latest', alpine);
    await resolvesTo('docker.io/library/alpine', alpine);
    await resolvesTo('index.docker.io/library/alpine:3.20', alpine);
    await resolvesTo('ghcr.io/o/app:v1', app);
    await assert.rejects(resolveImage(store, 'ghcr.io/o/app'), (e: unknown) => e instanceof NoSuchImageError && e.message === 'No such image: ghcr.io/o/app:latest');
  });

  test('by name@digest: a repo digest or the manifest digest', async () => {
    await resolvesTo(`alpine@${REPO_DIGEST}`, alpine);
    await resolvesTo(`ghcr.io/o/app@${app.manifest.descriptor.digest}`, app);
    await assert.rejects(resolveImage(store, `alpine@sha256:${'d'.repeat(64)}`), NoSuchImageError);
  });

  test('by ID: full config digest, with or without sha256:, any unique prefix', async () => {
    const hex = alpine.config.descriptor.digest.slice(7);
    await resolvesTo(alpine.config.descriptor.digest, alpine);
    await resolvesTo(hex, alpine);
    await resolvesTo(hex.slice(0, 12), alpine);
    await resolvesTo(`sha256:${hex.slice(0, 12)}`, alpine);
  });

  test('a manifest digest works as an ID too', async () => {
    await resolvesTo(app.manifest.descriptor.digest, app);
    await resolvesTo(app.manifest.descriptor.digest.slice(7, 19), app);
  });

  test('a prefix shared by two IDs is ambiguous; one ID under two manifests resolves to the newest', () => {
    const fake = (id: string, manifest: string, created: string): LocalImage => ({
      record: { manifest: { mediaType: 'x', digest: `sha256:${manifest}`, size: 1 }, storedAt: 0 } as LocalImage['record'],
      config: {},
      id: `sha256:${id}`,
      names: [],
      tags: [],
      repoDigests: [],
      created: new Date(created),
    });
    const list = [
      fake(`abc1${'0'.repeat(60)}`, '1'.repeat(64), '2026-01-01T00:00:00Z'),
      fake(`abc2${'0'.repeat(60)}`, '2'.repeat(64), '2026-01-01T00:00:00Z'),
      fake(`abc2${'0'.repeat(60)}`, '3'.repeat(64), '2026-01-02T00:00:00Z'),
    ];
    assert.throws(() => findImage(list, 'abc'), (e: unknown) => e instanceof AmbiguousImageError && e.message === 'multiple IDs found with provided prefix: abc');
    assert.equal(findImage(list, 'abc1').image.record.manifest.digest, `sha256:${'1'.repeat(64)}`);
    assert.equal(findImage(list, 'abc2').image.record.manifest.digest, `sha256:${'3'.repeat(64)}`);
    assert.equal(findImage(list, '2222').image.record.manifest.digest, `sha256:${'2'.repeat(64)}`, 'manifest digest prefix');
    assert.throws(() => findImage(list, 'fff'), NoSuchImageError);
    assert.throws(() => findImage(list, 'NOT-VALID!'), NoSuchImageError);
  });

  test('a name that looks like a hex prefix is first tried as a name', async () => {
    const prefix = alpine.config.descriptor.digest.slice(7, 13);
    await put(store, hexNamed, [`docker.io/library/${prefix}:latest`]);
    await resolvesTo(prefix, hexNamed);
    await resolvesTo(`sha256:${prefix}`, alpine);
  });
});
