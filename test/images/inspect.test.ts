import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { describeForInspect, inspectImages, renderInspect, ZERO_TIME } from '../../src/images/inspect.ts';
import { loadImages } from '../../src/images/catalog.ts';
import type { ImageRecord, ImageStore } from '../../src/images/store.ts';
import { tagImage } from '../../src/images/tag.ts';
import type { TestImage } from '../../src/testing/images.ts';
import { buildImage, put, tempStore } from './fixtures.ts';

const REPO_DIGEST = `sha256:${'e'.repeat(64)}`;

describe('image inspect', () => {
  let store: ImageStore;
  let close: () => Promise<void>;
  let arm: TestImage;
  let armRecord: ImageRecord;
  let plain: TestImage;

  before(async () => {
    ({ store, close } = await tempStore());
    arm = await buildImage({
      layers: [{ seed: 'i1' }, { seed: 'i2' }],
      created: '2026-01-01T01:00:00Z',
      labels: { 'org.opencontainers.image.title': '<app>' },
      platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      extra: { author: 'someone', comment: 'built by hand' },
    });
    armRecord = await put(store, arm, ['docker.io/library/app:1', 'ghcr.io/o/app:1'], [`docker.io/library/app@${REPO_DIGEST}`]);
    plain = await buildImage({ layers: [{ seed: 'i3' }], created: '2026-01-01T00:00:00Z' });
    await put(store, plain);
  });
  after(() => close());

  test('docker’s fields, in docker’s order', async () => {
    const { found, errors } = await inspectImages(store, ['app:1']);
    assert.deepEqual(errors, []);
    const [info] = found;
    assert.ok(info);
    assert.deepEqual(Object.keys(info), [
      'Id',
      'RepoTags',
      'RepoDigests',
      'Parent',
      'Comment',
      'Created',
      'DockerVersion',
      'Author',
      'Config',
      'Architecture',
      'Variant',
      'Os',
      'Size',
      'RootFS',
      'Metadata',
      'Descriptor',
    ]);
    assert.equal(info.Id, arm.config.descriptor.digest);
    assert.deepEqual(info.RepoTags, ['app:1', 'ghcr.io/o/app:1']);
    assert.deepEqual(info.RepoDigests, [`app@${REPO_DIGEST}`]);
    assert.equal(info.Created, '2026-01-01T01:00:00Z');
    assert.equal(info.Architecture, 'arm64');
    assert.equal(info.Variant, 'v8');
    assert.equal(info.Os, 'linux');
    assert.equal(info.Author, 'someone');
    assert.equal(info.Comment, 'built by hand');
    assert.deepEqual(info.Config, { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: { 'org.opencontainers.image.title': '<app>' } });
    assert.deepEqual(info.RootFS, { Type: 'layers', Layers: arm.diffIds });
    assert.equal(info.Size, armRecord.unpackedSize);
    assert.deepEqual(info.Metadata, { LastTagTime: ZERO_TIME });
    assert.deepEqual(info.Descriptor, arm.manifest.descriptor);
  });

  test('Variant is left out when the image has none; dangling images have empty RepoTags', async () => {
    const { found } = await inspectImages(store, [plain.config.descriptor.digest]);
    const [info] = found;
    assert.ok(info);
    assert.equal('Variant' in info, false);
    assert.deepEqual(info.RepoTags, []);
    assert.deepEqual(info.RepoDigests, []);
  });

  test('accepts names and IDs; unknown images are reported per argument', async () => {
    const { found, errors } = await inspectImages(store, ['nothere', arm.config.descriptor.digest.slice(7, 19), 'ghcr.io/o/app:1']);
    assert.deepEqual(
      found.map((f) => f.Id),
      [arm.config.descriptor.digest, arm.config.descriptor.digest],
    );
    assert.deepEqual(
      errors.map((e) => e.message),
      ['No such image: nothere:latest'],
    );
  });

  test('prints a JSON array indented by 4, with Go’s HTML escaping', async () => {
    const { found } = await inspectImages(store, ['app:1']);
    const out = renderInspect(found);
    assert.ok(out.startsWith('[\n    {\n        "Id": "sha256:'));
    assert.ok(out.endsWith('}\n]\n'));
    assert.ok(out.includes('"\\u003capp\\u003e"'));
    assert.deepEqual(JSON.parse(out), found);
    assert.equal(renderInspect([]), '[]\n');
  });

  test('--format runs a template per image', async () => {
    const { found } = await inspectImages(store, ['app:1', 'ghcr.io/o/app:1']);
    assert.equal(renderInspect(found, '{{.Id}}'), `${arm.config.descriptor.digest}\n${arm.config.descriptor.digest}\n`);
    assert.equal(renderInspect(found.slice(0, 1), '{{.Os}}/{{.Architecture}}/{{.Variant}} {{json .RepoTags}} {{index .Config.Labels "org.opencontainers.image.title"}}'), 'linux/arm64/v8 ["app:1","ghcr.io/o/app:1"] <app>\n');
    assert.equal(renderInspect(found.slice(0, 1), '{{range .RootFS.Layers}}{{.}} {{end}}'), `${arm.diffIds.join(' ')} \n`);
    assert.throws(() => renderInspect(found, '{{.Id'), /template parsing error/);
  });

  test('Metadata.LastTagTime is set by tag', async () => {
    const when = new Date('2026-03-04T05:06:07.000Z');
    await tagImage(store, 'app:1', 'app:2', when);
    const image = (await loadImages(store)).find((i) => i.id === arm.config.descriptor.digest);
    assert.ok(image);
    assert.equal(describeForInspect(image).Metadata.LastTagTime, when.toISOString());
    assert.deepEqual(describeForInspect(image).RepoTags, ['app:1', 'app:2', 'ghcr.io/o/app:1']);
  });
});
