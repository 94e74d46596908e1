/**
 * Repository quotas (issue 13): pushes under the limit go through; a push that would go over is
 * 403 DENIED naming the rule, the limit and the usage, at upload start, upload finish, monolithic
 * upload, mount and manifest PUT. A blob linked already counts once; a delete plus a GC cycle
 * gives the space back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../src/digest/digest.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { resolveServeConfig } from '../../src/server/config.ts';
import { runGcCycle } from '../../src/server/gc/cycle.ts';
import { collectorFor } from '../../src/server/gc/open-collector.ts';
import { formatBytes } from '../../src/server/health.ts';
import { parseQuotas } from '../../src/server/quota.ts';
import { makeImage, type Blob, type TestImage } from '../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const sum = (blobs: Blob[]) => blobs.reduce((total, blob) => total + blob.data.length, 0);
const totalOf = (image: TestImage) => sum([...image.blobs, image.manifest]);

interface ErrorBody {
  errors: { code: string; message: string; detail?: Record<string, unknown> }[];
}

async function denied(res: Response): Promise<string> {
  assert.equal(res.status, 403);
  const body = (await res.json()) as ErrorBody;
  assert.equal(body.errors[0]!.code, 'DENIED');
  return body.errors[0]!.message;
}

const post = (registry: TestRegistry, repository: string, blob: Blob) =>
  fetch(`${registry.url}/v2/${repository}/blobs/uploads/?digest=${blob.descriptor.digest}`, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: blob.data });
const putManifest = (registry: TestRegistry, repository: string, reference: string, manifest: Blob) =>
  fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { 'Content-Type': manifest.descriptor.mediaType }, body: manifest.data });
const mount = (registry: TestRegistry, repository: string, blob: Blob, from: string) => fetch(`${registry.url}/v2/${repository}/blobs/uploads/?mount=${blob.descriptor.digest}&from=${from}`, { method: 'POST' });
const hasBlob = async (registry: TestRegistry, repository: string, blob: Blob) =>
  (await fetch(`${registry.url}/v2/${repository}/blobs/${blob.descriptor.digest}`, { method: 'HEAD' })).status === 200;

describe('quotas over HTTP', () => {
  let registry: TestRegistry;
  let a: TestImage;
  let a2: TestImage;
  let b: TestImage;
  const usage = (repository: string) => registry.registry.metadata.repositoryUsage(repository);

  before(async () => {
    // a and a2 share their base layer; b shares nothing with them.
    a = await makeImage({ seed: 'quota-a', layerSeeds: ['quota-base', 'quota-a-own'], layerSize: 2048 });
    a2 = await makeImage({ seed: 'quota-a2', layerSeeds: ['quota-base', 'quota-a2-own'], layerSize: 2048 });
    b = await makeImage({ seed: 'quota-b', layerSeeds: ['quota-b-0', 'quota-b-1'], layerSize: 2048 });
    registry = await startTestRegistry({
      gc: { interval: 0, grace: 0 },
      quotas: [
        { repositories: ['q/exact'], maxSize: totalOf(a) },
        { repositories: ['q/manifest'], maxSize: totalOf(a) - 1 },
        { repositories: ['q/finish', 'q/stream'], maxSize: totalOf(a) + 100 },
        { repositories: ['q/mount'], maxSize: a.config.data.length + a.layers[0]!.data.length },
        { repositories: ['q/exact', 'q/**'], maxSize: 1024 * 1024 },
      ],
    });
  });
  after(async () => {
    await registry.stop();
  });

  test('a push under the quota goes through; usage is its blobs and its manifest', async () => {
    await pushImage(registry.url, 'q/exact', a, 'v1');
    assert.equal(await usage('q/exact'), totalOf(a));
    assert.equal(await usage('q/nothing-here'), 0);
  });

  test('at the quota: a new upload is refused at its start, naming the rule, the limit and the usage', async () => {
    const limit = formatBytes(totalOf(a));
    const message = await denied(await fetch(`${registry.url}/v2/q/exact/blobs/uploads/`, { method: 'POST' }));
    assert.equal(message, `repository q/exact is over its quota: ${limit} (q/exact), ${limit} used; deleted images give their space back once garbage-collected`);
  });

  test('a monolithic upload of a new blob is refused with what it adds; the first matching rule applies', async () => {
    const layer = b.layers[0]!;
    const message = await denied(await post(registry, 'q/exact', layer));
    assert.equal(message, `repository q/exact is over its quota: ${formatBytes(totalOf(a))} (q/exact), ${formatBytes(totalOf(a))} used, this blob adds ${formatBytes(layer.data.length)}; deleted images give their space back once garbage-collected`);
    assert.equal(await hasBlob(registry, 'q/exact', layer), false);
    assert.equal(await usage('q/exact'), totalOf(a));
  });

  test('a blob linked already counts once: pushing it again, or tagging the manifest again, goes through', async () => {
    assert.equal((await post(registry, 'q/exact', a.layers[1]!)).status, 201);
    assert.equal((await putManifest(registry, 'q/exact', 'again', a.manifest)).status, 201);
    assert.equal(await usage('q/exact'), totalOf(a));
  });

  test('images sharing a layer count it once', async () => {
    await pushImage(registry.url, 'q/shared', a, 'a');
    await pushImage(registry.url, 'q/shared', a2, 'a2');
    assert.equal(await usage('q/shared'), totalOf(a) + totalOf(a2) - a.layers[0]!.data.length);
  });

  test('a manifest PUT counts its body', async () => {
    for (const blob of a.blobs) await pushBlob(registry.url, 'q/manifest', blob);
    const used = sum(a.blobs);
    assert.equal(await usage('q/manifest'), used);
    const message = await denied(await putManifest(registry, 'q/manifest', 'v1', a.manifest));
    assert.match(message, new RegExp(`^repository q/manifest is over its quota: ${formatBytes(totalOf(a) - 1)} \\(q/manifest\\), ${formatBytes(used)} used, this manifest adds ${formatBytes(a.manifest.data.length)};`));
    assert.equal((await fetch(`${registry.url}/v2/q/manifest/manifests/v1`, { method: 'HEAD' })).status, 404);
    assert.equal(await usage('q/manifest'), used);
  });

  test('an upload that finishes over the quota is refused at its closing PUT, and nothing is kept', async () => {
    await pushImage(registry.url, 'q/finish', a, 'v1'); // 100 bytes of room left
    const layer = b.layers[1]!;
    const start = await fetch(`${registry.url}/v2/q/finish/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202, 'room left: the upload may start');
    const location = new URL(start.headers.get('location')!, registry.url);
    const patch = await fetch(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' }, body: layer.data });
    assert.equal(patch.status, 202);
    const closing = new URL(patch.headers.get('location')!, registry.url);
    closing.searchParams.set('digest', layer.descriptor.digest);
    const message = await denied(await fetch(closing, { method: 'PUT' }));
    assert.match(message, new RegExp(`\\(q/finish, q/stream\\), ${formatBytes(totalOf(a))} used, this blob adds ${formatBytes(layer.data.length)};`));
    assert.equal((await fetch(location, { method: 'GET' })).status, 404, 'the session ended');
    assert.equal(await hasBlob(registry, 'q/finish', layer), false);
    assert.equal(await registry.registry.blobs.stat(layer.descriptor.digest), undefined, 'nothing was committed');
  });

  test('an upload with no Content-Length is checked once stored; the refused blob is left to the collector', async () => {
    await pushImage(registry.url, 'q/stream', a, 'v1');
    const layer = b.layers[0]!;
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new Uint8Array(layer.data));
        controller.close();
      },
    });
    const res = await fetch(`${registry.url}/v2/q/stream/blobs/uploads/?digest=${layer.descriptor.digest}`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    assert.match(await denied(res), /this blob adds/);
    assert.equal(await hasBlob(registry, 'q/stream', layer), false);
    assert.ok((await registry.registry.blobs.stat(layer.descriptor.digest)) !== undefined, 'stored before the size was known');
    const report = await runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace: 0 });
    assert.ok(report.collect.deleted.some((blob) => blob.digest === layer.descriptor.digest), 'collected: nothing links it');
  });

  test('a mount counts the mounted blob, unless it is linked there already', async () => {
    await pushImage(registry.url, 'q/src', a, 'v1');
    assert.equal((await mount(registry, 'q/mount', a.config, 'q/src')).status, 201);
    assert.equal((await mount(registry, 'q/mount', a.layers[0]!, 'q/src')).status, 201);
    assert.equal(await usage('q/mount'), a.config.data.length + a.layers[0]!.data.length);
    const message = await denied(await mount(registry, 'q/mount', a.layers[1]!, 'q/src'));
    assert.match(message, new RegExp(`\\(q/mount\\), ${formatBytes(a.config.data.length + a.layers[0]!.data.length)} used, this blob adds ${formatBytes(a.layers[1]!.data.length)};`));
    assert.equal(await hasBlob(registry, 'q/mount', a.layers[1]!), false);
    assert.equal((await mount(registry, 'q/mount', a.config, 'q/src')).status, 201, 'linked already: adds nothing');
  });

  test('a repository no rule matches has no limit', async () => {
    await pushImage(registry.url, 'free/app', b, 'v1');
    assert.equal(await usage('free/app'), totalOf(b));
  });

  test('after a delete and a GC cycle the usage goes down, and pushes fit again', async () => {
    assert.equal((await fetch(`${registry.url}/v2/q/exact/manifests/${a.manifest.descriptor.digest}`, { method: 'DELETE' })).status, 202);
    assert.equal(await usage('q/exact'), sum(a.blobs), 'the manifest no longer counts');
    await runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace: 0 });
    assert.equal(await usage('q/exact'), 0, 'the links went with the collector');
    for (const blob of a.blobs) assert.ok((await registry.registry.blobs.stat(blob.descriptor.digest as Digest)) !== undefined, 'other repositories still use the blobs');
    await pushImage(registry.url, 'q/exact', a, 'v2');
    assert.equal(await usage('q/exact'), totalOf(a));
  });
});

describe('quotas: parsing', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-quota-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('rules parse with sizes in bytes', () => {
    assert.deepEqual(parseQuotas([{ repositories: ['team-a/**'], maxSize: '10GiB' }, { repositories: '**', maxSize: 1000 }]), {
      value: [
        { repositories: ['team-a/**'], maxSize: 10 * 1024 ** 3 },
        { repositories: ['**'], maxSize: 1000 },
      ],
    });
  });

  test('problems name the rule and the key', () => {
    const parsed = parseQuotas([{ repositories: [], maxSize: '10 parsecs', limit: 1 }, { repositories: ['Team/*'] }, 'x']);
    assert.ok('problem' in parsed);
    assert.deepEqual(parsed.problem.split('\n'), [
      '[0].limit: unknown setting (known: repositories, maxSize)',
      '[0].repositories: expected a list of repository globs such as team-a/** or library/*',
      '[0].maxSize: expected a size such as 10GiB or 500MiB (a bare number is bytes)',
      '[1].repositories: pattern "Team/*" may hold only lowercase repository characters, "/", "*", "**" and "?"',
      '[1].maxSize: missing; expected a size such as 10GiB or 500MiB',
      '[2]: expected a mapping with repositories and maxSize',
    ]);
    assert.deepEqual(parseQuotas({ repositories: ['a'] }), { problem: 'expected a list of rules, each with repositories and maxSize' });
  });

  test('in a serve config: quotas and gc.retention, with their problems named by file and key', async () => {
    const good = join(dir, 'good.yaml');
    await writeFile(good, 'data: /tmp/x\nquotas:\n  - repositories: [team-a/**]\n    maxSize: 10GiB\ngc:\n  retention:\n    - repositories: [ci/**]\n      keepLatest: 5\n      deleteUntaggedOlderThan: 7d\n');
    const config = await resolveServeConfig({}, good);
    assert.deepEqual(config.quotas, [{ repositories: ['team-a/**'], maxSize: 10 * 1024 ** 3 }]);
    assert.deepEqual(config.gc.retention, [{ repositories: ['ci/**'], keepLatest: 5, deleteUntaggedOlderThan: 7 * 86_400_000 }]);
    assert.equal(config.gc.interval, 3_600_000, 'gc defaults stay');

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'quotas:\n  - repositories: [x]\n    maxSize: lots\ngc:\n  retention:\n    - repositories: [ci/**]\n      keepLatest: -1\n');
    await assert.rejects(resolveServeConfig({}, bad), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.message.split('\n'), [
        `${bad}: quotas[0].maxSize: expected a size such as 10GiB or 500MiB (a bare number is bytes)`,
        `${bad}: gc.retention[0].keepLatest: expected a whole number of tags, at least 1 (to delete tags by age alone, give deleteTagsOlderThan without keepLatest)`,
      ]);
      return true;
    });
  });
});
