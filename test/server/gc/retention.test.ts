/**
 * Retention rules (issue 13): each rule's dry run lists exactly what the real run then deletes,
 * and the collector then frees exactly the blobs nothing else uses. Times are fixed: a cycle runs
 * with a given `now`, and ages are set in the metadata (a second SQLite connection backdates rows)
 * instead of sleeping.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import { renderGcReport } from '../../../src/cli/gc.ts';
import { digestOf, type Digest } from '../../../src/digest/digest.ts';
import type { Descriptor } from '../../../src/oci/descriptor.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { runGcCycle, type GcCycleReport } from '../../../src/server/gc/cycle.ts';
import { collectorFor } from '../../../src/server/gc/open-collector.ts';
import { parseRetentionRules, type RetentionRule } from '../../../src/server/gc/retention.ts';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata.ts';
import { makeImage, makeIndex, seededBytes, type Blob, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** Runs one GC cycle (grace 0) with `rules` at `now`. */
function cycle(registry: TestRegistry, retention: RetentionRule[], options: { now?: number; dryRun?: boolean } = {}): Promise<GcCycleReport> {
  const { blobs, metadata } = registry.registry;
  return runGcCycle(collectorFor(blobs, metadata), metadata, { grace: 0, retention }, { now: options.now ?? Date.now(), dryRun: options.dryRun ?? false });
}

/** Changes rows behind the server's back, through a second connection to its SQLite file. */
function backdate(registry: TestRegistry, sql: string, ...params: (string | number)[]): void {
  const db = new DatabaseSync(join(registry.dataDir, 'metadata.db'));
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    const changes = Number(db.prepare(sql).run(...params).changes);
    assert.ok(changes > 0, `backdating changed nothing: ${sql} ${params.join(' ')}`);
  } finally {
    db.close();
  }
}

const setTagTime = (registry: TestRegistry, repository: string, tag: string, at: number) => backdate(registry, 'UPDATE tags SET updated_at = ? WHERE repository = ? AND tag = ?', at, repository, tag);
const setCreated = (registry: TestRegistry, repository: string, digest: string, at: number) => backdate(registry, 'UPDATE manifests SET created_at = ? WHERE repository = ? AND digest = ?', at, repository, digest);

async function tagsOf(registry: TestRegistry, repository: string): Promise<string[]> {
  return (await registry.registry.metadata.listTags(repository, undefined, undefined)).items;
}

async function manifestStatus(registry: TestRegistry, repository: string, manifest: Blob): Promise<number> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${manifest.descriptor.digest}`, { method: 'HEAD', headers: { Accept: manifest.descriptor.mediaType } });
  return res.status;
}

/** Every blob of the image is served from the repository with its bytes. */
async function assertPulls(registry: TestRegistry, repository: string, image: TestImage): Promise<void> {
  assert.equal(await manifestStatus(registry, repository, image.manifest), 200, `${repository}@${image.manifest.descriptor.digest}`);
  for (const blob of image.blobs) {
    const res = await fetch(`${registry.url}/v2/${repository}/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 200, `${repository} blob ${blob.descriptor.digest}`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  }
}

const present = async (registry: TestRegistry, digest: string) => (await registry.registry.blobs.stat(digest as Digest)) !== undefined;
const short = (digest: string) => `${digest.slice(0, 19)}…`;
const sorted = (values: Iterable<string>) => [...values].sort();

const EMPTY_CONFIG: Blob = { descriptor: { mediaType: MediaTypes.ociEmpty, digest: digestOf(Buffer.from('{}')), size: 2 }, data: Buffer.from('{}') };

/** An OCI artifact (a signature) whose subject is `subject`: the empty config, one layer of its own. */
function referrerOf(subject: Blob, seed: string): { layer: Blob; manifest: Blob } {
  const data = seededBytes(seed, 512);
  const layer: Blob = { descriptor: { mediaType: 'application/vnd.example.signature', digest: digestOf(data), size: data.length }, data };
  const { platform: _platform, ...subjectDescriptor } = subject.descriptor;
  const json = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType: 'application/vnd.example.signature',
    config: EMPTY_CONFIG.descriptor,
    layers: [layer.descriptor],
    subject: subjectDescriptor as Descriptor,
  };
  const body = Buffer.from(JSON.stringify(json));
  return { layer, manifest: { descriptor: { mediaType: MediaTypes.ociManifest, digest: digestOf(body), size: body.length }, data: body } };
}

async function pushReferrer(registry: TestRegistry, repository: string, referrer: { layer: Blob; manifest: Blob }): Promise<void> {
  await pushBlob(registry.url, repository, EMPTY_CONFIG);
  await pushBlob(registry.url, repository, referrer.layer);
  await pushManifest(registry.url, repository, referrer.manifest.descriptor.digest, referrer.manifest);
}

/** The digests of an image's own blobs (the manifest's too), leaving out `shared` ones. */
function ownDigests(image: TestImage, shared: string[] = []): string[] {
  return [image.manifest, ...image.blobs].map((blob) => blob.descriptor.digest).filter((digest) => !shared.includes(digest));
}

describe('retention: keepLatest, then deleteUntaggedOlderThan frees the untagged images', () => {
  let registry: TestRegistry;
  const images: TestImage[] = [];
  let other: TestImage;

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    for (let i = 1; i <= 5; i++) {
      const image = await makeImage({ seed: `ret-k-${i}`, layerSeeds: ['ret-k-base', `ret-k-${i}-own`], layerSize: 2048 });
      images.push(image);
      await pushImage(registry.url, 'ci/app', image, `t${i}`); // pushed in order: t5 is the newest
    }
    other = await makeImage({ seed: 'ret-k-other' });
    for (const tag of ['o1', 'o2', 'o3']) await pushImage(registry.url, 'other/app', other, tag);
  });
  after(async () => {
    await registry.stop();
  });

  const keepTwo: RetentionRule[] = [{ repositories: ['ci/**'], keepLatest: 2 }];

  test('dry run: lists the three oldest tags, deletes nothing', async () => {
    const report = await cycle(registry, keepTwo, { dryRun: true });
    assert.deepEqual(
      report.retention.tags.map((tag) => [tag.repository, tag.tag, tag.digest, tag.reason]),
      [3, 2, 1].map((i) => ['ci/app', `t${i}`, images[i - 1]!.manifest.descriptor.digest, 'beyond the newest 2 tags (retention[0])']),
    );
    assert.deepEqual(report.retention.manifests, []);
    assert.deepEqual(report.collect.deleted, []);
    const text = renderGcReport(report);
    assert.match(text, /^KIND\s+REPOSITORY\s+TARGET\s+SIZE\s+REASON$/m);
    for (const i of [1, 2, 3]) {
      assert.match(text, new RegExp(`^tag\\s+ci/app\\s+t${i} → ${short(images[i - 1]!.manifest.descriptor.digest)}\\s+beyond the newest 2 tags \\(retention\\[0\\]\\)$`, 'm'));
    }
    assert.match(text, /^gc \(dry run\): .*would delete 3 tags, 0 manifests, 0 blobs \(0B\)/m);
    assert.deepEqual(await tagsOf(registry, 'ci/app'), ['t1', 't2', 't3', 't4', 't5']);
  });

  test('real run: deletes those tags only; their manifests stay (pullable by digest), other repositories untouched', async () => {
    const report = await cycle(registry, keepTwo);
    assert.deepEqual(
      report.retention.tags.map((tag) => tag.tag),
      ['t3', 't2', 't1'],
    );
    assert.deepEqual(report.collect.deleted, [], 'untagged manifests still use their blobs');
    assert.deepEqual(await tagsOf(registry, 'ci/app'), ['t4', 't5']);
    assert.deepEqual(await tagsOf(registry, 'other/app'), ['o1', 'o2', 'o3']);
    for (const image of images) await assertPulls(registry, 'ci/app', image);
    const again = await cycle(registry, keepTwo);
    assert.deepEqual(again.retention.tags, [], 'a second run finds nothing more');
  });

  test('with deleteUntaggedOlderThan, the untagged manifests go and the collector frees exactly their own blobs', async () => {
    const rules: RetentionRule[] = [{ repositories: ['ci/**'], keepLatest: 2, deleteUntaggedOlderThan: HOUR }];
    const now = Date.now() + 2 * HOUR; // every manifest is two hours old by then
    const expected = images.slice(0, 3).map((image) => image.manifest.descriptor.digest);
    const dry = await cycle(registry, rules, { now, dryRun: true });
    assert.deepEqual(dry.retention.tags, []);
    assert.deepEqual(sorted(dry.retention.manifests.map((m) => m.digest)), sorted(expected));
    for (const manifest of dry.retention.manifests) assert.equal(manifest.reason, 'untagged, older than 1h (retention[0])');
    assert.match(renderGcReport(dry), /would delete 0 tags, 3 manifests, 0 blobs/);
    for (const digest of expected) assert.equal(await manifestStatus(registry, 'ci/app', { descriptor: { digest } } as Blob), 200, 'the dry run deleted nothing');

    const report = await cycle(registry, rules, { now });
    assert.deepEqual(sorted(report.retention.manifests.map((m) => m.digest)), sorted(expected));
    const base = images[0]!.layers[0]!.descriptor.digest;
    const freed = images.slice(0, 3).flatMap((image) => ownDigests(image, [base]));
    assert.deepEqual(sorted(report.collect.deleted.map((blob) => blob.digest)), sorted(freed));
    assert.match(renderGcReport(report), /^gc: .*deleted 0 tags, 3 manifests, 9 blobs/m);
    for (const digest of freed) assert.equal(await present(registry, digest), false, `${digest} freed`);
    for (const image of images.slice(0, 3)) assert.equal(await manifestStatus(registry, 'ci/app', image.manifest), 404);
    for (const image of images.slice(3)) await assertPulls(registry, 'ci/app', image);
    await assertPulls(registry, 'other/app', other);
  });
});

describe('retention: keepTags and deleteTagsOlderThan (with keepLatest)', () => {
  let registry: TestRegistry;
  const now = Date.now();

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((seed) => makeImage({ seed: `ret-t-${seed}` })));
    await pushImage(registry.url, 'team/svc', a!, 'v1.0');
    await pushManifest(registry.url, 'team/svc', 'dev-1', a!.manifest);
    await pushImage(registry.url, 'team/svc', b!, 'v1.1');
    await pushManifest(registry.url, 'team/svc', 'dev-2', b!.manifest);
    await pushImage(registry.url, 'team/svc', c!, 'latest');
    await pushManifest(registry.url, 'team/svc', 'dev-3', c!.manifest);
    for (const tag of ['v1.0', 'dev-1', 'dev-2']) setTagTime(registry, 'team/svc', tag, now - 40 * DAY);
  });
  after(async () => {
    await registry.stop();
  });

  test('tags older than 30d go unless keepTags matches them; younger ones stay', async () => {
    const rules: RetentionRule[] = [{ repositories: ['team/*'], keepTags: ['latest', 'v*'], deleteTagsOlderThan: 30 * DAY }];
    const dry = await cycle(registry, rules, { now, dryRun: true });
    // Same push time: the greater tag name counts as the newer.
    assert.deepEqual(
      dry.retention.tags.map((tag) => [tag.tag, tag.reason]),
      [
        ['dev-2', 'older than 30d (retention[0])'],
        ['dev-1', 'older than 30d (retention[0])'],
      ],
    );
    assert.match(renderGcReport(dry), /^tag\s+team\/svc\s+dev-1 → sha256:\S+\s+older than 30d \(retention\[0\]\)$/m);
    assert.equal((await tagsOf(registry, 'team/svc')).length, 6);
    const report = await cycle(registry, rules, { now });
    assert.deepEqual(
      report.retention.tags.map((tag) => tag.tag),
      ['dev-2', 'dev-1'],
    );
    assert.deepEqual(report.retention.manifests, [], 'no deleteUntaggedOlderThan: manifests stay');
    assert.deepEqual(await tagsOf(registry, 'team/svc'), ['dev-3', 'latest', 'v1.0', 'v1.1']);
  });

  test('keepLatest counts the tags keepTags did not keep; with deleteTagsOlderThan, young tags beyond it stay', async () => {
    const d = await makeImage({ seed: 'ret-t-d' });
    await pushImage(registry.url, 'team/svc', d, 'dev-4');
    await pushManifest(registry.url, 'team/svc', 'dev-5', d.manifest);
    setTagTime(registry, 'team/svc', 'dev-4', now - 2 * DAY);
    setTagTime(registry, 'team/svc', 'dev-5', now - DAY);
    setTagTime(registry, 'team/svc', 'latest', now - 35 * DAY);
    setTagTime(registry, 'team/svc', 'v1.1', now - 36 * DAY);
    setTagTime(registry, 'team/svc', 'dev-3', now - 37 * DAY);
    // v1.0 stays 40 days old. Not kept by keepTags, newest first: dev-5, dev-4, v1.1, dev-3, v1.0.
    const rules: RetentionRule[] = [{ repositories: ['team/**'], keepTags: ['latest'], keepLatest: 1, deleteTagsOlderThan: 30 * DAY }];
    const dry = await cycle(registry, rules, { now, dryRun: true });
    const reason = 'older than 30d, beyond the newest 1 tags (retention[0])';
    assert.deepEqual(
      dry.retention.tags.map((tag) => [tag.tag, tag.reason]),
      [
        ['v1.1', reason],
        ['dev-3', reason],
        ['v1.0', reason],
      ],
    );
    const report = await cycle(registry, rules, { now });
    assert.deepEqual(
      report.retention.tags.map((tag) => tag.tag),
      ['v1.1', 'dev-3', 'v1.0'],
    );
    assert.deepEqual(await tagsOf(registry, 'team/svc'), ['dev-4', 'dev-5', 'latest']);
  });
});

describe('retention: deleteUntaggedOlderThan', () => {
  let registry: TestRegistry;
  let tagged: TestImage;
  let old: TestImage;
  let young: TestImage;
  const now = Date.now();

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    tagged = await makeImage({ seed: 'ret-u-tagged', layerSeeds: ['ret-u-base', 'ret-u-tagged-own'] });
    old = await makeImage({ seed: 'ret-u-old', layerSeeds: ['ret-u-base', 'ret-u-old-own'] });
    young = await makeImage({ seed: 'ret-u-young', layerSeeds: ['ret-u-base', 'ret-u-young-own'] });
    await pushImage(registry.url, 'u/app', tagged, 'a');
    await pushImage(registry.url, 'u/app', old);
    await pushImage(registry.url, 'u/app', young);
    setCreated(registry, 'u/app', tagged.manifest.descriptor.digest, now - 10 * DAY);
    setCreated(registry, 'u/app', old.manifest.descriptor.digest, now - 10 * DAY);
    setCreated(registry, 'u/app', young.manifest.descriptor.digest, now - DAY);
  });
  after(async () => {
    await registry.stop();
  });

  const rules: RetentionRule[] = [{ repositories: ['u/app'], deleteUntaggedOlderThan: 7 * DAY }];

  test('dry run lists the old untagged manifest only', async () => {
    const dry = await cycle(registry, rules, { now, dryRun: true });
    assert.deepEqual(dry.retention.tags, []);
    assert.deepEqual(dry.retention.manifests, [{ repository: 'u/app', digest: old.manifest.descriptor.digest, reason: 'untagged, older than 7d (retention[0])' }]);
    const text = renderGcReport(dry);
    assert.match(text, new RegExp(`^manifest\\s+u/app\\s+${short(old.manifest.descriptor.digest)}\\s+untagged, older than 7d \\(retention\\[0\\]\\)$`, 'm'));
    assert.match(text, /would delete 0 tags, 1 manifests, 0 blobs/);
    await assertPulls(registry, 'u/app', old);
  });

  test('real run deletes it; the collector frees its own blobs, the shared layer stays', async () => {
    const report = await cycle(registry, rules, { now });
    assert.deepEqual(
      report.retention.manifests.map((m) => m.digest),
      [old.manifest.descriptor.digest],
    );
    const freed = ownDigests(old, [old.layers[0]!.descriptor.digest]);
    assert.deepEqual(sorted(report.collect.deleted.map((blob) => blob.digest)), sorted(freed));
    assert.equal(report.collect.freedBytes, [old.manifest, old.config, old.layers[1]!].reduce((sum, blob) => sum + blob.data.length, 0));
    assert.equal(await manifestStatus(registry, 'u/app', old.manifest), 404);
    await assertPulls(registry, 'u/app', tagged);
    await assertPulls(registry, 'u/app', young);
  });

  test('the younger one goes once it is old enough', async () => {
    const report = await cycle(registry, rules, { now: now + 7 * DAY });
    assert.deepEqual(
      report.retention.manifests.map((m) => m.digest),
      [young.manifest.descriptor.digest],
    );
    assert.deepEqual(sorted(report.collect.deleted.map((blob) => blob.digest)), sorted(ownDigests(young, [young.layers[0]!.descriptor.digest])));
    await assertPulls(registry, 'u/app', tagged);
  });
});

describe('retention: referrers go with their subject', () => {
  let registry: TestRegistry;
  let subject: TestImage;
  let kept: TestImage;
  let signature: { layer: Blob; manifest: Blob };
  let signatureOfSignature: { layer: Blob; manifest: Blob };
  let keptSignature: { layer: Blob; manifest: Blob };
  const now = Date.now();

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    subject = await makeImage({ seed: 'ret-r-subject' });
    kept = await makeImage({ seed: 'ret-r-kept' });
    signature = referrerOf(subject.manifest, 'ret-r-sig');
    signatureOfSignature = referrerOf(signature.manifest, 'ret-r-sig-sig');
    keptSignature = referrerOf(kept.manifest, 'ret-r-kept-sig');
    await pushImage(registry.url, 'sig/app', subject); // untagged
    await pushReferrer(registry, 'sig/app', signature);
    await pushReferrer(registry, 'sig/app', signatureOfSignature);
    await pushImage(registry.url, 'sig/app', kept, 'stable');
    await pushReferrer(registry, 'sig/app', keptSignature);
    // The subject and the kept image's signature are old; the other signatures are young.
    setCreated(registry, 'sig/app', subject.manifest.descriptor.digest, now - 10 * DAY);
    setCreated(registry, 'sig/app', keptSignature.manifest.descriptor.digest, now - 10 * DAY);
  });
  after(async () => {
    await registry.stop();
  });

  const rules: RetentionRule[] = [{ repositories: ['sig/**'], deleteUntaggedOlderThan: 7 * DAY }];

  test('dry run: the subject, then its referrers, recursively, whatever their age', async () => {
    const dry = await cycle(registry, rules, { now, dryRun: true });
    assert.deepEqual(
      dry.retention.manifests.map((m) => [m.digest, m.reason]),
      [
        [subject.manifest.descriptor.digest, 'untagged, older than 7d (retention[0])'],
        [signature.manifest.descriptor.digest, `referrer of deleted ${short(subject.manifest.descriptor.digest)} (retention[0])`],
        [signatureOfSignature.manifest.descriptor.digest, `referrer of deleted ${short(signature.manifest.descriptor.digest)} (retention[0])`],
      ],
    );
    assert.match(renderGcReport(dry), new RegExp(`^manifest\\s+sig/app\\s+${short(signature.manifest.descriptor.digest)}\\s+referrer of deleted ${short(subject.manifest.descriptor.digest)} \\(retention\\[0\\]\\)$`, 'm'));
    assert.equal(await manifestStatus(registry, 'sig/app', signature.manifest), 200);
  });

  test('real run: they go, the old referrer of a kept image stays, and the collector frees their blobs', async () => {
    const report = await cycle(registry, rules, { now });
    assert.deepEqual(
      report.retention.manifests.map((m) => m.digest),
      [subject.manifest.descriptor.digest, signature.manifest.descriptor.digest, signatureOfSignature.manifest.descriptor.digest],
    );
    for (const blob of [subject.manifest, signature.manifest, signatureOfSignature.manifest]) assert.equal(await manifestStatus(registry, 'sig/app', blob), 404);
    const freed = [...ownDigests(subject), signature.manifest.descriptor.digest, signature.layer.descriptor.digest, signatureOfSignature.manifest.descriptor.digest, signatureOfSignature.layer.descriptor.digest];
    assert.deepEqual(sorted(report.collect.deleted.map((blob) => blob.digest)), sorted(freed));
    assert.ok(await present(registry, EMPTY_CONFIG.descriptor.digest), 'the empty config the kept signature uses stays');
    await assertPulls(registry, 'sig/app', kept);
    const referrers = (await (await fetch(`${registry.url}/v2/sig/app/referrers/${kept.manifest.descriptor.digest}`)).json()) as { manifests: Descriptor[] };
    assert.deepEqual(
      referrers.manifests.map((m) => m.digest),
      [keptSignature.manifest.descriptor.digest],
    );
  });
});

describe('retention: an index keeps its children; an index that goes takes them along', () => {
  let registry: TestRegistry;
  let children: TestImage[];
  let both: Blob;
  let onlyLast: Blob;
  const rules: RetentionRule[] = [{ repositories: ['multi/app'], deleteUntaggedOlderThan: HOUR }];

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    children = await Promise.all(['amd64', 'arm64', 'riscv64'].map((architecture) => makeImage({ seed: `ret-i-${architecture}`, platform: { os: 'linux', architecture } })));
    for (const child of children) await pushImage(registry.url, 'multi/app', child); // by digest: untagged
    both = makeIndex(children);
    onlyLast = makeIndex([children[2]!]);
    await pushManifest(registry.url, 'multi/app', 'x', both);
    await pushManifest(registry.url, 'multi/app', 'y', onlyLast);
  });
  after(async () => {
    await registry.stop();
  });

  test('untagged children of a tagged index stay, however old', async () => {
    const report = await cycle(registry, rules, { now: Date.now() + DAY });
    assert.deepEqual(report.retention.manifests, []);
    assert.deepEqual(report.collect.deleted, []);
  });

  test('once the index is untagged it goes, with the children no other index keeps', async () => {
    assert.equal((await fetch(`${registry.url}/v2/multi/app/manifests/x`, { method: 'DELETE' })).status, 202);
    const now = Date.now() + DAY;
    const dry = await cycle(registry, rules, { now, dryRun: true });
    const inIndex = `untagged, older than 1h, only in deleted index ${short(both.descriptor.digest)} (retention[0])`;
    assert.deepEqual(
      dry.retention.manifests.map((m) => [m.digest, m.reason]),
      [
        [both.descriptor.digest, 'untagged, older than 1h (retention[0])'],
        [children[0]!.manifest.descriptor.digest, inIndex],
        [children[1]!.manifest.descriptor.digest, inIndex],
      ].sort((a, b) => (a[0] === both.descriptor.digest ? -1 : b[0] === both.descriptor.digest ? 1 : a[0]!.localeCompare(b[0]!))),
    );
    const report = await cycle(registry, rules, { now });
    assert.deepEqual(
      report.retention.manifests.map((m) => m.digest),
      dry.retention.manifests.map((m) => m.digest),
    );
    const freed = [both.descriptor.digest, ...ownDigests(children[0]!), ...ownDigests(children[1]!)];
    assert.deepEqual(sorted(report.collect.deleted.map((blob) => blob.digest)), sorted(freed));
    assert.equal(await manifestStatus(registry, 'multi/app', both), 404);
    await assertPulls(registry, 'multi/app', children[2]!);
    assert.equal(await manifestStatus(registry, 'multi/app', onlyLast), 200);
  });
});

describe('retention: the first matching rule applies; cached repositories are never touched', () => {
  let registry: TestRegistry;
  const rules: RetentionRule[] = [
    { repositories: ['keep/**'] }, // no delete key: exempt from the rules below
    { repositories: ['a/**'], keepLatest: 2 },
    { repositories: ['**', 'a/b'], keepLatest: 1 },
  ];

  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    const image = await makeImage({ seed: 'ret-f' });
    for (const repository of ['keep/x', 'a/b', 'other/y', 'mirror/alpine']) {
      await pushImage(registry.url, repository, image, 't1');
      await pushManifest(registry.url, repository, 't2', image.manifest);
      await pushManifest(registry.url, repository, 't3', image.manifest);
    }
    await registry.registry.metadata.markCachedRepository('mirror/alpine');
  });
  after(async () => {
    await registry.stop();
  });

  test('dry run and real run agree', async () => {
    const dry = await cycle(registry, rules, { dryRun: true });
    const expected = [
      ['a/b', 't1', 'beyond the newest 2 tags (retention[1])'],
      ['other/y', 't2', 'beyond the newest 1 tags (retention[2])'],
      ['other/y', 't1', 'beyond the newest 1 tags (retention[2])'],
    ];
    assert.deepEqual(
      dry.retention.tags.map((tag) => [tag.repository, tag.tag, tag.reason]),
      expected,
    );
    const report = await cycle(registry, rules);
    assert.deepEqual(
      report.retention.tags.map((tag) => [tag.repository, tag.tag, tag.reason]),
      expected,
    );
    assert.deepEqual(await tagsOf(registry, 'keep/x'), ['t1', 't2', 't3']);
    assert.deepEqual(await tagsOf(registry, 'a/b'), ['t2', 't3']);
    assert.deepEqual(await tagsOf(registry, 'other/y'), ['t3']);
    assert.deepEqual(await tagsOf(registry, 'mirror/alpine'), ['t1', 't2', 't3'], 'a cached repository is the mirror LRU’s, not retention’s');
  });
});

describe('retention: deletes lose to a push made meanwhile', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  const d = (name: string): Digest => digestOf(name);
  const record = (name: string, extra: { subject?: Digest } = {}) => ({ repository: 'r', digest: d(name), mediaType: MediaTypes.ociManifest, size: 100, createdAt: 1, ...extra });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-retention-'));
    store = new SqliteMetadataStore(join(dir, 'metadata.db'));
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('deleteTagIfUnchanged: only the tag as retention saw it', async () => {
    await store.putManifest(record('m1'), [], ['t']);
    const seen = (await store.tagsWithTimes('r'))[0]!;
    assert.equal(await store.deleteTagIfUnchanged('r', 't', seen.digest, seen.updatedAt - 1), false, 'pushed again since');
    assert.equal(await store.deleteTagIfUnchanged('r', 't', d('m2'), seen.updatedAt), false, 'moved since');
    assert.equal(await store.deleteTagIfUnchanged('r', 't', seen.digest, seen.updatedAt), true);
    assert.equal(await store.resolveTag('r', 't'), undefined);
  });

  test('deleteManifestIfUnused: not while tagged, in an index, or a referrer of a present subject', async () => {
    await store.putManifest(record('tagged'), [], ['keep']);
    await store.putManifest(record('child'), [], []);
    await store.putManifest(record('index'), [d('child')], []);
    await store.putManifest(record('referrer', { subject: d('tagged') }), [], []);
    await store.putManifest(record('dangling', { subject: d('absent') }), [], []);
    assert.equal(await store.deleteManifestIfUnused('r', d('tagged')), false);
    assert.equal(await store.deleteManifestIfUnused('r', d('child')), false);
    assert.equal(await store.deleteManifestIfUnused('r', d('referrer')), false);
    assert.equal(await store.deleteManifestIfUnused('r', d('dangling')), true);
    assert.equal(await store.deleteManifestIfUnused('r', d('index')), true);
    assert.equal(await store.deleteManifestIfUnused('r', d('child')), true, 'its index is gone');
    assert.equal(await store.deleteManifestIfUnused('r', d('child')), false, 'already gone');
    assert.deepEqual(
      (await store.untaggedManifests('r', 2)).map((m) => m.digest),
      [d('m1')],
      'm1 (untagged by the test before) is a starting point; the referrer of a present subject is not',
    );
    assert.deepEqual(await store.referrersOf('r', d('tagged')), [d('referrer')]);
  });
});

describe('retention: parsing gc.retention', () => {
  test('a full rule parses, durations in ms', () => {
    assert.deepEqual(parseRetentionRules([{ repositories: ['ci/**'], keepTags: ['latest', 'v*'], keepLatest: 10, deleteTagsOlderThan: '30d', deleteUntaggedOlderThan: '7d' }, { repositories: 'prod/*' }]), {
      value: [
        { repositories: ['ci/**'], keepTags: ['latest', 'v*'], keepLatest: 10, deleteTagsOlderThan: 30 * DAY, deleteUntaggedOlderThan: 7 * DAY },
        { repositories: ['prod/*'] },
      ],
    });
  });

  test('problems name the rule and the key, one per line', () => {
    const parsed = parseRetentionRules([{ repositories: [], keepLatest: 0, keepTags: ['v/*'], deleteTagsOlderThan: 'soon', deleteUntaggedOlderThan: '5m', keepNewest: 3 }, 'ci/**']);
    assert.ok('problem' in parsed);
    assert.deepEqual(parsed.problem.split('\n'), [
      '[0].keepNewest: unknown setting (known: repositories, keepTags, keepLatest, deleteTagsOlderThan, deleteUntaggedOlderThan)',
      '[0].repositories: expected a list of repository globs such as ci/** or team-a/*',
      '[0].keepTags: pattern "v/*" may hold only tag characters (letters, digits, _ . -), * and ?',
      '[0].keepLatest: expected a whole number of tags, at least 1 (to delete tags by age alone, give deleteTagsOlderThan without keepLatest)',
      '[0].deleteTagsOlderThan: expected a duration such as 30d or 12h',
      '[0].deleteUntaggedOlderThan: must be at least 1h (a younger untagged manifest may be part of a push still going)',
      '[1]: expected a mapping with repositories and keepTags, keepLatest, deleteTagsOlderThan or deleteUntaggedOlderThan',
    ]);
    assert.deepEqual(parseRetentionRules({ repositories: ['a'] }), { problem: ': expected a list of rules, each with repositories and keepTags, keepLatest, deleteTagsOlderThan or deleteUntaggedOlderThan' });
    const glob = parseRetentionRules([{ repositories: ['Team/*'], keepLatest: 1 }]);
    assert.ok('problem' in glob && glob.problem.startsWith('[0].repositories: pattern "Team/*"'));
  });
});
