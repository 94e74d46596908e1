/**
 * Issue 14: the sync process's memory grew with the number of images (~55–87 KiB an image: every
 * image of the run started at once, and each left its result, keys and blob locations in the heap).
 * These pin the parts that keep it flat: the planner streams, a fixed number of images run at once,
 * the report keeps its per-image lines outside the heap, and the blob mover's memory is bounded.
 */
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, test } from 'node:test';
import type { RegistryClient } from '../../src/client/registry-client.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { Limiter } from '../../src/graph/limiter.ts';
import { AuthTable } from '../../src/sync/auth-table.ts';
import { BlobMover, LOCATED_MAX_BLOBS } from '../../src/sync/blob-mover.ts';
import { parseImageRules, type ImageRule } from '../../src/sync/image-rule.ts';
import { overlappingPairs, planTasks, type PlanItem } from '../../src/sync/planner.ts';
import { parsePlatformFilter } from '../../src/sync/platform-filter.ts';
import type { SyncClients } from '../../src/sync/sync-clients.ts';
import type { SyncEvent } from '../../src/sync/sync-events.ts';
import { SyncReport } from '../../src/sync/sync-report.ts';
import { SyncRunner } from '../../src/sync/sync-runner.ts';
import type { SyncTask } from '../../src/sync/sync-task.ts';
import { makeImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

/** A stand-in for SyncClients whose listTags answers from `tags` and counts the calls. */
function fakeClients(tags: Record<string, string[]>): { clients: SyncClients; listings: string[] } {
  const listings: string[] = [];
  const clients = {
    get: (registry: string) => ({
      async listTags(name: string): Promise<string[]> {
        listings.push(`${registry}/${name}`);
        return [...(tags[`${registry}/${name}`] ?? [])];
      },
    }),
  } as unknown as SyncClients;
  return { clients, listings };
}

function rules(document: Record<string, string | string[]>): ImageRule[] {
  return parseImageRules(document, 'images.json', {});
}

async function collect(items: AsyncIterable<PlanItem>): Promise<string[]> {
  const out: string[] = [];
  for await (const item of items) {
    if (item.kind === 'task') out.push(item.key);
    else if (item.kind === 'planned') out.push(`planned ${item.rule.key}: ${item.tasks}`);
    else out.push(`failed ${item.rule.key}`);
  }
  return out;
}

/** The heap in use after a full collection (gc exposed for this process). */
function liveHeap(): number {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('issue 14: the planner streams', () => {
  test('rules are expanded as tasks are taken, at most `lookahead` ahead, not all up front', async () => {
    const tags: Record<string, string[]> = {};
    const document: Record<string, string> = {};
    for (let i = 0; i < 100; i++) {
      tags[`a.io/repo-${i}`] = ['v1', 'v2'];
      document[`a.io/repo-${i}`] = `b.io/repo-${i}`;
    }
    const { clients, listings } = fakeClients(tags);
    let pulled = 0;
    function* lazily(): Generator<ImageRule> {
      for (const rule of rules(document)) {
        pulled++;
        yield rule;
      }
    }
    const plan = planTasks(lazily(), clients, { seen: new Set(), lookahead: 4 });
    const first = await plan.next();
    assert.equal(first.value?.kind, 'planned');
    const second = await plan.next();
    assert.equal(second.value?.kind === 'task' && second.value.key, 'a.io/repo-0:v1 -> b.io/repo-0:v1');
    assert.ok(pulled <= 5, `rules pulled so far: ${pulled}`);
    assert.ok(listings.length <= 5, `tag lists read so far: ${listings.length}`);
    const rest = await collect({ [Symbol.asyncIterator]: () => plan });
    assert.equal(pulled, 100);
    assert.equal(listings.length, 100, 'each repository listed once');
    assert.equal(rest.filter((line) => !line.startsWith('planned')).length, 199, 'the other 199 tasks follow, in rule order');
    assert.equal(rest.at(-1), 'a.io/repo-99:v2 -> b.io/repo-99:v2');
  });

  test('a rule that cannot be expanded is reported in its place and the others go on', async () => {
    const { clients } = fakeClients({ 'a.io/x': ['1'], 'a.io/z': ['3'] });
    const failing = { ...clients, get: (registry: string, repository: string) => (repository === 'y' ? { listTags: () => Promise.reject(new Error('401')) } : clients.get(registry, repository)) } as unknown as SyncClients;
    const out = await collect(planTasks(rules({ 'a.io/x': 'b.io/x', 'a.io/y': 'b.io/y', 'a.io/z': 'b.io/z' }), failing, { seen: new Set() }));
    assert.deepEqual(out, ['planned a.io/x: 1', 'a.io/x:1 -> b.io/x:1', 'failed a.io/y', 'planned a.io/z: 1', 'a.io/z:3 -> b.io/z:3']);
  });

  test('a copy two rules name is planned once; only overlapping pairs are remembered', async () => {
    const { clients } = fakeClients({ 'a.io/x': ['v1', 'v2'] });
    const all = rules({ 'a.io/x': 'b.io/x', 'a.io/x:v2': ['b.io/x', 'c.io/x'], 'a.io/y:v1': 'b.io/y' });
    const overlapping = overlappingPairs(all);
    assert.deepEqual([...overlapping], ['a.io/x -> b.io/x']);
    const seen = new Set<string>();
    const out = await collect(planTasks(all, clients, { seen, overlapping }));
    assert.deepEqual(out, [
      'planned a.io/x: 2',
      'a.io/x:v1 -> b.io/x:v1',
      'a.io/x:v2 -> b.io/x:v2',
      'planned a.io/x:v2: 1',
      'a.io/x:v2 -> c.io/x:v2',
      'planned a.io/y:v1: 1',
      'a.io/y:v1 -> b.io/y:v1',
    ]);
    assert.deepEqual([...seen].sort(), ['a.io/x:v1 -> b.io/x:v1', 'a.io/x:v2 -> b.io/x:v2'], 'keys of pairs no other rule names are not kept');
  });

  test('one rule naming one copy twice (a digest to `y` and to `y@digest`) plans it once', async () => {
    const digest = digestOf('pinned');
    const { clients } = fakeClients({});
    const out = await collect(planTasks(rules({ [`a.io/x@${digest}`]: ['b.io/y', `b.io/y@${digest}`] }), clients, { seen: new Set(), overlapping: new Set() }));
    assert.deepEqual(out, [`planned a.io/x@${digest}: 1`, `a.io/x@${digest} -> b.io/y@${digest}`]);
  });

  test('10,000 one-image rules overlap nowhere, and keep ~350 bytes each', () => {
    const document: Record<string, string> = {};
    for (let i = 0; i < 10_000; i++) document[`127.0.0.1:5000/bench/scale-${String(i).padStart(5, '0')}:latest`] = `127.0.0.1:6000/bench/scale-${String(i).padStart(5, '0')}`;
    const text = JSON.stringify(document);
    const before = liveHeap();
    const parsed = parseImageRules(JSON.parse(text) as Record<string, string>, 'images.json', {});
    const perRule = (liveHeap() - before) / parsed.length;
    assert.equal(overlappingPairs(parsed).size, 0);
    assert.ok(perRule < 450, `${perRule.toFixed(0)} bytes per rule (slices of the file kept ~510)`);
    assert.equal(parsed[9999]!.destinations[0]!.repository, 'bench/scale-09999');
  });
});

describe('issue 14: the report keeps per-image lines outside the heap', () => {
  const task = (i: number): SyncTask => ({ rule: `src.io/app-${i}:v1`, source: { registry: 'src.io', repository: `app-${i}`, reference: 'v1' }, destination: { registry: 'dst.io', repository: `mirror/app-${i}`, reference: 'v1' } });
  const digest = (i: number): Digest => digestOf(`manifest ${i}`);

  test('20,000 images add well under 100 bytes each to the heap, and every one is in the summary', () => {
    const report = new SyncReport();
    const before = liveHeap();
    for (let i = 0; i < 20_000; i++) {
      const t = task(i);
      report.listener({ type: 'image-start', task: t });
      report.listener({ type: 'image-done', task: t, outcome: i % 2 ? 'synced' : 'skipped', digest: digest(i), final: true, ...(i % 2 ? {} : { note: 'up to date' }) });
    }
    const perImage = (liveHeap() - before) / 20_000;
    assert.ok(perImage < 100, `${perImage.toFixed(0)} bytes of heap per image`);
    assert.equal(report.failures, 0);
    const summary = report.summary();
    assert.deepEqual(summary.images, { total: 20_000, synced: 10_000, skipped: 10_000, failed: 0 });
    assert.deepEqual(summary.results.find((r) => r.source === 'src.io/app-0:v1'), { source: 'src.io/app-0:v1', destination: 'dst.io/mirror/app-0:v1', rule: 'src.io/app-0:v1', outcome: 'skipped', attempts: 1, digest: digest(0), note: 'up to date' });
    assert.deepEqual(summary.results.find((r) => r.source === 'src.io/app-1:v1'), { source: 'src.io/app-1:v1', destination: 'dst.io/mirror/app-1:v1', rule: 'src.io/app-1:v1', outcome: 'synced', attempts: 1, digest: digest(1) });
  });

  test('retries, reasons and attempts that never finished read as before', () => {
    const report = new SyncReport();
    const events: SyncEvent[] = [
      { type: 'pass', pass: 0, jobs: 3 },
      { type: 'image-start', task: task(1) },
      { type: 'image-start', task: task(2) },
      { type: 'image-start', task: task(3) },
      { type: 'image-done', task: task(1), outcome: 'failed', reason: 'HEAD 503\nsecond line', final: false },
      { type: 'image-done', task: task(2), outcome: 'failed', reason: 'GET 500', final: false },
      { type: 'image-done', task: task(3), outcome: 'synced', digest: digest(3), note: 'index filtered', final: true },
      { type: 'pass', pass: 1, jobs: 2 },
      { type: 'image-start', task: task(1) },
      { type: 'image-start', task: task(2) },
      { type: 'image-done', task: task(1), outcome: 'synced', digest: digest(1), final: true },
      // task 2's second attempt never finishes (a stop signal): it stays failed, with its reason
    ];
    for (const event of events) report.listener(event);
    assert.equal(report.failures, 1);
    const { results, images, passes } = report.summary();
    assert.equal(passes, 2);
    assert.deepEqual(images, { total: 3, synced: 2, skipped: 0, failed: 1 });
    assert.deepEqual(results, [
      { source: 'src.io/app-1:v1', destination: 'dst.io/mirror/app-1:v1', rule: 'src.io/app-1:v1', outcome: 'synced', attempts: 2, digest: digest(1) },
      { source: 'src.io/app-2:v1', destination: 'dst.io/mirror/app-2:v1', rule: 'src.io/app-2:v1', outcome: 'failed', attempts: 2, reason: 'GET 500' },
      { source: 'src.io/app-3:v1', destination: 'dst.io/mirror/app-3:v1', rule: 'src.io/app-3:v1', outcome: 'synced', attempts: 1, digest: digest(3), note: 'index filtered' },
    ]);
  });
});

describe('issue 14: the blob mover remembers a bounded number of blobs', () => {
  test(`beyond ${LOCATED_MAX_BLOBS} blobs the least recently placed is forgotten; one placed again stays`, async () => {
    let heads = 0;
    const destination = {
      registry: 'dst.io',
      headBlob: async () => {
        heads++;
        return 1;
      },
      mountBlob: async () => true,
    } as unknown as RegistryClient;
    const source = { client: { registry: 'src.io' } as unknown as RegistryClient, repository: 'app' };
    const mover = new BlobMover({ transfers: new Limiter(4), requests: new Limiter(16), emit: () => undefined });
    const blob = (i: number) => ({ mediaType: 'application/octet-stream', digest: digestOf(`blob ${i}`), size: 1 });
    const into = (repository: string) => ({ client: destination, repository });
    assert.equal(await mover.ensure(source, into('r0'), blob(0)), 'existing');
    for (let i = 1; i < LOCATED_MAX_BLOBS; i++) await mover.ensure(source, into(`r${i}`), blob(i));
    assert.equal(await mover.ensure(source, into('r0'), blob(0)), 'existing', 'blob 0 was placed again: the most recent now');
    await mover.ensure(source, into('new'), blob(LOCATED_MAX_BLOBS)); // one more: blob 1 is forgotten
    assert.equal(mover.remembered, LOCATED_MAX_BLOBS);
    heads = 0;
    assert.equal(await mover.ensure(source, into('r0'), blob(0)), 'existing');
    assert.equal(heads, 0, 'blob 0 is still known in r0: no request');
    assert.equal(await mover.ensure(source, into('elsewhere'), blob(0)), 'mounted', 'and it is mounted from there into another repository');
    assert.equal(await mover.ensure(source, into('r1'), blob(1)), 'existing');
    assert.equal(heads, 1, 'blob 1 was forgotten: asked for again');
  });
});

describe('issue 14: a fixed number of images run at once', () => {
  let source: TestRegistry;
  let destination: TestRegistry;
  before(async () => {
    source = await startTestRegistry();
    destination = await startTestRegistry();
  });
  after(async () => {
    await source?.stop();
    await destination?.stop();
  });

  test('40 one-image rules with `images: 4`: never more than 4 in flight, all synced, then all up to date', async () => {
    const document: Record<string, string> = {};
    for (let i = 0; i < 40; i++) {
      // Every image shares its base layer with the others, and has one of its own.
      const image = await makeImage({ seed: `img-${i}`, layers: 2, layerSize: 512, layerSeeds: ['base', `own-${i}`] });
      await pushImage(source.url, `team/app-${i}`, image, 'v1');
      document[`${source.address}/team/app-${i}:v1`] = `${destination.address}/mirror/app-${i}`;
    }
    const sync = async () => {
      const report = new SyncReport();
      let inFlight = 0;
      let most = 0;
      const runner = new SyncRunner({
        auth: new AuthTable({}),
        proc: 2,
        retries: 0,
        filter: parsePlatformFilter(),
        images: 4,
        dockerConfig: false,
        onEvent: (event) => {
          report.listener(event);
          if (event.type === 'image-start') most = Math.max(most, ++inFlight);
          if (event.type === 'image-done') inFlight--;
        },
      });
      try {
        await runner.run(rules(document));
      } finally {
        await runner.close();
      }
      return { summary: report.summary(), most };
    };
    const first = await sync();
    assert.deepEqual(first.summary.images, { total: 40, synced: 40, skipped: 0, failed: 0 });
    assert.ok(first.most <= 4 && first.most >= 2, `at most 4 images in flight (saw ${first.most})`);
    assert.equal(first.summary.blobs.copied.count, 2 * 40 + 1, 'each config and own layer copied, the shared base copied once');
    assert.equal(first.summary.blobs.mounted.count, 39, 'and mounted into the 39 other repositories');
    const again = await sync();
    assert.deepEqual(again.summary.images, { total: 40, synced: 0, skipped: 40, failed: 0 });
  });
});
