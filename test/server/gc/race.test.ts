/**
 * Online garbage collection racing pushes (issue 13): cycles run back to back while 8 workers push
 * images over HTTP, delete some and push some deleted ones again. Every acknowledged (201)
 * manifest must pull whole afterwards, and once the pushes stop, one more cycle must leave exactly
 * the blobs the still-tagged images reference: nothing lost, nothing left over.
 *
 * With grace 0 a manifest PUT may fail with MANIFEST_BLOB_UNKNOWN (the collector took a blob
 * between its upload and the manifest): the worker pushes that image again. With a 2 s grace no
 * PUT may fail: every blob was linked less than 2 s before its manifest.
 *
 * SKIFF_GC_RACE_SECONDS (default 20) sets how long the grace-0 pushes go on; the grace-2 s run
 * takes half as long.
 *
 * The last describe forces, one at a time, the interleavings the race hits only by chance (a cycle
 * run inside the blob store's put): a blob or manifest pushed again while the collector moves it
 * aside (the writer's touch brings it back), and a manifest PUT refused inside its transaction
 * (its body is queued for the collector).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as yieldToIo, setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import type { FsBlobStore } from '../../../src/content/fs-blob-store.ts';
import type { Digest } from '../../../src/digest/digest.ts';
import { runGcCycle } from '../../../src/server/gc/cycle.ts';
import { collectorFor } from '../../../src/server/gc/open-collector.ts';
import { makeImage, type Blob, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';

const RACE_SECONDS = Number(process.env.SKIFF_GC_RACE_SECONDS ?? 20);
const WORKERS = 8;
const ATTEMPTS = 8;

interface Pushed {
  repo: string;
  tag: string;
  image: TestImage;
}

interface RaceCounts {
  pushes: number;
  acknowledged: number;
  blobUnknown: number;
  gaveUp: number;
  retriedImages: number;
  deletedByClient: number;
  repushed: number;
  cycles: number;
  gcDeleted: number;
  gcRevived: number;
  gcRecovered: number;
}

const sha256 = (data: Buffer): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function putManifest(base: string, repo: string, tag: string, manifest: Blob): Promise<{ status: number; code?: string; text: string }> {
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'Content-Type': manifest.descriptor.mediaType }, body: manifest.data });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { errors?: { code: string }[] }).errors?.[0]?.code;
  } catch {
    // not a JSON error body
  }
  return { status: res.status, text, ...(code !== undefined ? { code } : {}) };
}

/** A problem the checks found, naming the image and what was wrong. */
interface Problem {
  text: string;
}

/** GET the manifest by tag (same digest, same bytes), then each blob by digest (sha256 matches); the manifest's file must be stored too. */
async function pullProblems(registry: TestRegistry, pushed: Pushed, pushedAgain: boolean): Promise<Problem[]> {
  const { repo, tag, image } = pushed;
  const problems: Problem[] = [];
  const manifestProblem = (text: string): Problem => ({ text: `${repo}:${tag}${pushedAgain ? ' (pushed again after a delete)' : ''}: ${text}` });
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${tag}`, { headers: { Accept: image.manifest.descriptor.mediaType } });
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) problems.push(manifestProblem(`GET manifest ${res.status} ${body.toString().slice(0, 300)}`));
  else if (res.headers.get('docker-content-digest') !== image.manifest.descriptor.digest || sha256(body) !== image.manifest.descriptor.digest) {
    problems.push({ text: `${repo}:${tag}: manifest ${res.headers.get('docker-content-digest')} (body ${sha256(body)}), expected ${image.manifest.descriptor.digest}` });
  }
  // The registry keeps manifest bodies in memory too: the file must be there as well.
  if ((await registry.registry.blobs.stat(image.manifest.descriptor.digest)) === undefined) problems.push(manifestProblem(`manifest file ${image.manifest.descriptor.digest} missing`));
  for (const blob of image.blobs) {
    const got = await fetch(`${registry.url}/v2/${repo}/blobs/${blob.descriptor.digest}`);
    const bytes = Buffer.from(await got.arrayBuffer());
    if (got.status !== 200) problems.push({ text: `${repo}:${tag}: GET blob ${blob.descriptor.digest} ${got.status} ${bytes.toString().slice(0, 300)}` });
    else if (sha256(bytes) !== blob.descriptor.digest) problems.push({ text: `${repo}:${tag}: blob ${blob.descriptor.digest} hashes to ${sha256(bytes)}` });
  }
  return problems;
}

/** Fails on any problem (each names the image and what was wrong). */
async function judge(_t: TestContext, problems: Problem[], what: string): Promise<void> {
  assert.deepEqual(
    problems.map((problem) => problem.text),
    [],
    what,
  );
}

async function storedDigests(registry: TestRegistry): Promise<Set<Digest>> {
  const found = new Set<Digest>();
  for await (const digest of registry.registry.blobs.list()) found.add(digest);
  return found;
}

async function trashEntries(dataDir: string): Promise<string[]> {
  return readdir(join(dataDir, 'gc-trash')).catch(() => []);
}

interface RaceOutcome {
  /** `${repo}:${tag}` → what it points at, for every tag still there. */
  live: Map<string, Pushed>;
  counts: RaceCounts;
  /** Manifest PUTs that failed (with grace > 0 any is a problem). */
  failures: Problem[];
  /** Every digest pushed → what it is, for the messages. */
  roles: Map<Digest, string>;
  /** Manifests acknowledged when pushed again after a delete. */
  pushedAgain: Set<Digest>;
  /** Manifests whose every PUT failed with MANIFEST_BLOB_UNKNOWN. */
  givenUp: Set<Digest>;
}

/** GC cycles back to back with `grace` while 8 workers push (and delete, and push deleted images again) for `seconds`. */
async function race(registry: TestRegistry, grace: number, seconds: number, label: string): Promise<RaceOutcome> {
  const { metadata } = registry.registry;
  const collector = collectorFor(registry.registry.blobs, metadata);
  const counts: RaceCounts = { pushes: 0, acknowledged: 0, blobUnknown: 0, gaveUp: 0, retriedImages: 0, deletedByClient: 0, repushed: 0, cycles: 0, gcDeleted: 0, gcRevived: 0, gcRecovered: 0 };
  const outcome: RaceOutcome = { live: new Map(), counts, failures: [], roles: new Map(), pushedAgain: new Set(), givenUp: new Set() };
  const { live, roles } = outcome;
  let pushing = true;

  const gcLoop = (async () => {
    while (pushing) {
      const report = await runGcCycle(collector, metadata, { grace });
      counts.cycles++;
      counts.gcDeleted += report.collect.deleted.length;
      counts.gcRevived += report.collect.revived;
      counts.gcRecovered += report.collect.recovered;
      // With grace 0 a cycle takes every blob whose manifest has not arrived yet, and a push (four
      // blobs and a manifest, eight workers on two cores) spans a few hundred ms: cycles 0.2–0.6 s
      // apart let about two pushes in three through, so the race has acknowledged images to check.
      if (grace === 0) await sleep(200 + Math.random() * 400);
      else await yieldToIo(); // let the requests in between cycles
    }
  })();

  const worker = async (w: number): Promise<void> => {
    const repo = `race-${label}/w${w}`;
    const deleted: TestImage[] = [];
    const mine: string[] = []; // keys of this worker's live tags
    const deadline = Date.now() + seconds * 1000;
    for (let round = 0; Date.now() < deadline; round++) {
      // Now and then an image deleted earlier comes back (its blobs and body may be in the middle of being collected).
      const again = deleted.length > 0 && Math.random() < 0.2;
      const image = again
        ? deleted.splice(Math.floor(Math.random() * deleted.length), 1)[0]!
        : await makeImage({ seed: `race-${label}-w${w}-r${round}`, layerSeeds: [`race-${label}-all`, `race-${label}-w${w}`, `race-${label}-w${w}-r${round}`], layerSize: 1024 });
      const manifestDigest = image.manifest.descriptor.digest;
      if (again) counts.repushed++;
      else {
        roles.set(manifestDigest, `manifest of ${repo} round ${round}`);
        roles.set(image.config.descriptor.digest, `config of ${repo} round ${round}`);
        for (const [i, layer] of image.layers.entries()) if (!roles.has(layer.descriptor.digest)) roles.set(layer.descriptor.digest, `layer ${i} of ${repo} round ${round}`);
      }
      const tag = `r${round}`;
      let acknowledged = false;
      for (let attempt = 0; attempt < ATTEMPTS && !acknowledged; attempt++) {
        if (attempt === 1) counts.retriedImages++;
        counts.pushes++;
        for (const blob of image.blobs) await pushBlob(registry.url, repo, blob);
        const res = await putManifest(registry.url, repo, tag, image.manifest);
        if (res.status === 201) {
          acknowledged = true;
          counts.acknowledged++;
          live.set(`${repo}:${tag}`, { repo, tag, image });
          mine.push(`${repo}:${tag}`);
          if (again) outcome.pushedAgain.add(manifestDigest);
        } else if (res.status === 400 && res.code === 'MANIFEST_BLOB_UNKNOWN') {
          counts.blobUnknown++;
          if (grace > 0) {
            const text = `PUT ${repo}:${tag} (attempt ${attempt + 1}${again ? ', pushed again after a delete' : ''}): ${res.text.slice(0, 400)}`;
            outcome.failures.push({ text });
          }
        } else {
          throw new Error(`PUT ${repo}:${tag}: ${res.status} ${res.text.slice(0, 400)}`);
        }
      }
      if (!acknowledged) {
        counts.gaveUp++;
        outcome.givenUp.add(manifestDigest);
      } else outcome.givenUp.delete(manifestDigest);
      // Now and then an earlier image is deleted: its unshared blobs become garbage.
      if (mine.length >= 2 && Math.random() < 0.3) {
        const key = mine.splice(Math.floor(Math.random() * (mine.length - 1)), 1)[0]!;
        const gone = live.get(key)!;
        const res = await fetch(`${registry.url}/v2/${repo}/manifests/${gone.image.manifest.descriptor.digest}`, { method: 'DELETE' });
        await res.arrayBuffer();
        assert.equal(res.status, 202, `DELETE ${key}`);
        live.delete(key);
        outcome.pushedAgain.delete(gone.image.manifest.descriptor.digest);
        deleted.push(gone.image);
        counts.deletedByClient++;
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  } finally {
    pushing = false;
    await gcLoop;
  }
  return outcome;
}

/** After the pushes: every still-tagged image pulls whole; one more cycle leaves exactly their blobs, and an empty trash. */
async function verifyAfterRace(t: TestContext, registry: TestRegistry, outcome: RaceOutcome): Promise<void> {
  const { live, counts, roles, pushedAgain, givenUp } = outcome;
  const pulls = async (): Promise<Problem[]> => {
    const problems: Problem[] = [];
    for (const pushed of live.values()) problems.push(...(await pullProblems(registry, pushed, pushedAgain.has(pushed.image.manifest.descriptor.digest))));
    return problems;
  };
  await judge(t, await pulls(), 'every acknowledged, still-tagged image pulls whole');

  const final = await runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace: 0 });
  counts.gcDeleted += final.collect.deleted.length;
  const expected = new Set<Digest>();
  for (const { image } of live.values()) for (const blob of [image.manifest, ...image.blobs]) expected.add(blob.descriptor.digest);
  const stored = await storedDigests(registry);
  const leftOver = [...stored].filter((digest) => !expected.has(digest));
  const missing = [...expected].filter((digest) => !stored.has(digest));
  const unknown = new Set(await registry.registry.metadata.gcUnknown(leftOver));
  t.diagnostic(`final cycle: deleted ${final.collect.deleted.length}, queued ${final.queued}; ${stored.size} blob files, ${expected.size} digests referenced by ${live.size} tagged images`);
  const fileProblems: Problem[] = [
    ...missing.map((digest) => ({ text: `missing: ${digest} (${roles.get(digest)}${pushedAgain.has(digest) ? ', pushed again after a delete' : ''})` })),
    ...leftOver.map((digest) => ({
      text: `left over: ${digest} (${roles.get(digest) ?? 'not pushed by the test'}${givenUp.has(digest) ? ', every PUT refused' : ''}${unknown.has(digest) ? ', in no metadata table' : ''})`,
    })),
  ];
  await judge(t, fileProblems, 'the blob files are exactly the digests the tagged images reference');
  assert.deepEqual(await trashEntries(registry.dataDir), [], 'gc-trash is empty');
  assert.equal(final.queued, 0, 'nothing left in the review queue');

  // And still so after the last cycle (nothing it deleted was in use).
  await judge(t, await pulls(), 'every tagged image pulls whole after the last cycle');
}

function report(t: TestContext, label: string, counts: RaceCounts, live: number): void {
  const line =
    `${label}: ${counts.pushes} image pushes, ${counts.acknowledged} acknowledged (${live} still tagged, ${counts.deletedByClient} deleted by the client, ${counts.repushed} deleted ones pushed again), ` +
    `${counts.blobUnknown} MANIFEST_BLOB_UNKNOWN, ${counts.retriedImages} images retried, ${counts.gaveUp} given up; ` +
    `${counts.cycles} gc cycles deleted ${counts.gcDeleted} blobs (${counts.gcRevived} revived, ${counts.gcRecovered} recovered)`;
  t.diagnostic(line);
  console.log(`# ${line}`);
}

describe('garbage collection racing pushes', () => {
  test(`grace 0: cycles back to back while ${WORKERS} workers push for ${RACE_SECONDS} s`, { timeout: (RACE_SECONDS + 60) * 1000 }, async (t) => {
    const registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    try {
      const outcome = await race(registry, 0, RACE_SECONDS, 'g0');
      report(t, 'grace 0', outcome.counts, outcome.live.size);
      assert.ok(outcome.counts.acknowledged > WORKERS, 'pushes went through');
      assert.ok(outcome.counts.gcDeleted > 0, 'the collector deleted something during the race');
      await verifyAfterRace(t, registry, outcome);
    } finally {
      await registry.stop();
    }
  });

  const graceSeconds = Math.max(5, RACE_SECONDS / 2);
  test(`grace 2 s: no manifest PUT fails (${graceSeconds} s of pushes)`, { timeout: (graceSeconds + 60) * 1000 }, async (t) => {
    const registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    try {
      const outcome = await race(registry, 2000, graceSeconds, 'g2');
      report(t, 'grace 2 s', outcome.counts, outcome.live.size);
      assert.ok(outcome.counts.gcDeleted > 0, 'the collector deleted what the client deleted');
      await judge(t, outcome.failures, 'no manifest PUT fails');
      assert.equal(outcome.counts.gaveUp, 0);
      await verifyAfterRace(t, registry, outcome);
    } finally {
      await registry.stop();
    }
  });
});

/**
 * The windows the race above hits only by chance, forced: a cycle runs exactly while a push sits
 * between "the file is already stored" (the blob store's put returns alreadyExisted) and the
 * metadata write that makes the blob or manifest used again.
 */
describe('garbage collection inside a push, between its file write and its metadata write', () => {
  /** Runs a grace-0 cycle inside the blob store's put of `digest`, after the file is written (or found already stored). */
  function cycleInsidePut(registry: TestRegistry, digest: Digest, when: 'alreadyStored' | 'written'): { fired: () => boolean; restore: () => void } {
    const store = registry.registry.blobs as FsBlobStore;
    const realPut = store.put;
    let fired = false;
    store.put = async function (this: FsBlobStore, ...args: Parameters<FsBlobStore['put']>) {
      const result = await realPut.apply(this, args);
      if (!fired && result.digest === digest && result.alreadyExisted === (when === 'alreadyStored')) {
        fired = true;
        await runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace: 0 });
      }
      return result;
    };
    return { fired: () => fired, restore: () => (store.put = realPut) };
  }

  test('a deleted manifest pushed again while its body is collected keeps its body', async (t) => {
    const registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    try {
      const image = await makeImage({ seed: 'window-manifest', layerSeeds: ['window-manifest-a', 'window-manifest-b'] });
      // A second manifest over the same config and layers keeps them in use: only the body of the first is garbage.
      const twinJson = { ...(JSON.parse(image.manifest.data.toString()) as object), annotations: { twin: 'yes' } };
      const twinData = Buffer.from(JSON.stringify(twinJson));
      const twin: Blob = { descriptor: { ...image.manifest.descriptor, digest: sha256(twinData), size: twinData.length }, data: twinData };
      await pushImage(registry.url, 'window/m', image, 'first');
      assert.equal((await putManifest(registry.url, 'window/m', 'twin', twin)).status, 201);
      const del = await fetch(`${registry.url}/v2/window/m/manifests/${image.manifest.descriptor.digest}`, { method: 'DELETE' });
      assert.equal(del.status, 202);

      const hook = cycleInsidePut(registry, image.manifest.descriptor.digest, 'alreadyStored');
      const again = await putManifest(registry.url, 'window/m', 'again', image.manifest);
      hook.restore();
      assert.ok(hook.fired(), 'the cycle ran inside the PUT');
      if (again.status === 201) {
        // Acknowledged: the body must be stored, or the tag points at nothing once the in-memory copy is gone.
        assert.deepEqual(
          (await pullProblems(registry, { repo: 'window/m', tag: 'again', image }, false)).map((problem) => problem.text),
          [],
        );
      } else {
        t.diagnostic(`refused: ${again.status} ${again.text}`);
        assert.equal(again.code, 'MANIFEST_BLOB_UNKNOWN', again.text);
      }
    } finally {
      await registry.stop();
    }
  });

  test('a blob pushed again while it is collected is there after its 201', async () => {
    const registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    try {
      const image = await makeImage({ seed: 'window-blob', layerSeeds: ['window-blob-a'] });
      await pushImage(registry.url, 'window/b', image, 'first');
      const del = await fetch(`${registry.url}/v2/window/b/manifests/${image.manifest.descriptor.digest}`, { method: 'DELETE' });
      assert.equal(del.status, 202);

      const layer = image.layers[0]!;
      const hook = cycleInsidePut(registry, layer.descriptor.digest, 'alreadyStored');
      await pushBlob(registry.url, 'window/b', layer); // throws unless 201
      hook.restore();
      assert.ok(hook.fired(), 'the cycle ran inside the upload');
      const head = await fetch(`${registry.url}/v2/window/b/blobs/${layer.descriptor.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200, 'a blob acknowledged with 201 is readable');
      // …and a manifest pushed right after it (well inside any grace period) is accepted.
      for (const blob of image.blobs) if (blob !== layer) await pushBlob(registry.url, 'window/b', blob);
      const put = await putManifest(registry.url, 'window/b', 'again', image.manifest);
      assert.equal(put.status, 201, put.text);
    } finally {
      await registry.stop();
    }
  });

  test('a manifest PUT refused inside its transaction leaves no body file behind once a cycle ran', async () => {
    const registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    try {
      const image = await makeImage({ seed: 'window-refused', layerSeeds: ['window-refused-a'] });
      for (const blob of image.blobs) await pushBlob(registry.url, 'window/r', blob);
      // The cycle (grace 0) condemns the blobs after the PUT checked them, before its transaction: refused.
      const hook = cycleInsidePut(registry, image.manifest.descriptor.digest, 'written');
      const put = await putManifest(registry.url, 'window/r', 'refused', image.manifest);
      hook.restore();
      assert.ok(hook.fired(), 'the cycle ran inside the PUT');
      assert.equal(put.status, 400, put.text);
      assert.equal(put.code, 'MANIFEST_BLOB_UNKNOWN');
      const report = await runGcCycle(collectorFor(registry.registry.blobs, registry.registry.metadata), registry.registry.metadata, { grace: 0 });
      assert.deepEqual([...(await storedDigests(registry))], [], `nothing stored after a cycle (it deleted ${report.collect.deleted.map((blob) => blob.digest).join(', ') || 'nothing'})`);
    } finally {
      await registry.stop();
    }
  });
});
