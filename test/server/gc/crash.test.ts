/**
 * kill -9 in the middle of a garbage collection cycle (issue 13): of `skiff gc`, and of
 * `skiff serve` while its background collector runs. Whatever the moment, every still-tagged image
 * pulls whole, the next cycle finishes what was left (and says so), and afterwards the trash is
 * empty and no blob file remains that no tagged image references.
 *
 * The data directory: 300 small images (a shared base layer, two own layers each), 250 of them
 * deleted: 1000 garbage blobs, reviewed in batches of 256. Each run works on a fresh copy.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setImmediate as yieldToIo, setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FsBlobStore } from '../../../src/content/fs-blob-store.ts';
import type { Digest } from '../../../src/digest/digest.ts';
import { makeImage, type TestImage } from '../../../src/testing/images.ts';
import { freePort, stopChild, waitForHttp } from '../../../src/testing/peers.ts';
import { pushImage } from '../../../src/testing/push.ts';
import { startTestRegistry } from '../../../src/testing/test-registry.ts';

const SKIFF = fileURLToPath(new URL('../../../bin/skiff', import.meta.url));
const REPO = 'crash/app';
const IMAGES = 300;
const KEPT_EVERY = 6; // images 0, 6, 12, … stay tagged: 50 of them

interface Fixture {
  template: string;
  images: TestImage[];
  kept: number[];
  /** Digests the still-tagged images reference (their files must all stay). */
  keptDigests: Set<Digest>;
  /** Digests only deleted images referenced. */
  garbage: Set<Digest>;
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function prepare(): Promise<Fixture> {
  const template = await mkdtemp(join(tmpdir(), 'skiff-gc-crash-template-'));
  const images = await Promise.all(
    Array.from({ length: IMAGES }, (_, i) => makeImage({ seed: `crash-${i}`, layerSeeds: ['crash-base', `crash-${i}-a`, `crash-${i}-b`], layerSize: 256 })),
  );
  const registry = await startTestRegistry({ dataDir: template, gc: { interval: 0, grace: 0 } });
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = next++; i < IMAGES; i = next++) await pushImage(registry.url, REPO, images[i]!, `t${i}`);
      }),
    );
    for (let i = 0; i < IMAGES; i++) {
      if (i % KEPT_EVERY === 0) continue;
      const res = await fetch(`${registry.url}/v2/${REPO}/manifests/${images[i]!.manifest.descriptor.digest}`, { method: 'DELETE' });
      await res.arrayBuffer();
      assert.equal(res.status, 202);
    }
  } finally {
    await registry.stop(); // the data directory was given: it stays
  }
  const kept = images.map((_, i) => i).filter((i) => i % KEPT_EVERY === 0);
  const keptDigests = new Set<Digest>();
  for (const i of kept) for (const blob of [images[i]!.manifest, ...images[i]!.blobs]) keptDigests.add(blob.descriptor.digest);
  const garbage = new Set<Digest>();
  for (const image of images) for (const blob of [image.manifest, ...image.blobs]) if (!keptDigests.has(blob.descriptor.digest)) garbage.add(blob.descriptor.digest);
  return { template, images, kept, keptDigests, garbage };
}

/** A fresh copy of the template data directory. */
async function copyOf(fixture: Fixture, label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `skiff-gc-crash-${label}-`));
  await cp(fixture.template, dir, { recursive: true });
  return dir;
}

async function blobFiles(dataDir: string): Promise<Set<Digest>> {
  const found = new Set<Digest>();
  for await (const digest of new FsBlobStore(dataDir).list()) found.add(digest);
  return found;
}

async function trashFiles(dataDir: string): Promise<Digest[]> {
  const entries = await readdir(join(dataDir, 'gc-trash')).catch(() => [] as string[]);
  return entries.map((entry) => entry.replace('-', ':') as Digest);
}

/** The trash entries the metadata database holds (decided, file maybe not moved yet). */
function trashRows(dataDir: string): Digest[] {
  const db = new DatabaseSync(join(dataDir, 'metadata.db'), { readOnly: true });
  try {
    return (db.prepare('SELECT digest FROM gc_trash').all() as { digest: Digest }[]).map((row) => row.digest);
  } finally {
    db.close();
  }
}

/** What an interrupted cycle left: files in gc-trash/ and trash entries in the database. */
async function pendingOf(dataDir: string): Promise<Set<Digest>> {
  return new Set([...(await trashFiles(dataDir)), ...trashRows(dataDir)]);
}

interface Exited {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts bin/skiff with stdout and stderr collected; `exited` resolves when it ends. */
function startSkiff(args: string[]): { child: ChildProcess; exited: Promise<Exited>; output: () => string } {
  const child = spawn(SKIFF, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr }));
  return { child, exited, output: () => stdout + stderr };
}

/** Runs `skiff gc` to completion (killed, and failing the test, after `timeoutMs`). */
async function runGc(args: string[], timeoutMs = 30_000): Promise<Exited> {
  const { child, exited } = startSkiff(['gc', ...args]);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const result = await exited;
  clearTimeout(timer);
  assert.notEqual(result.signal, 'SIGKILL', `skiff gc ${args.join(' ')} did not exit within ${timeoutMs} ms\n${result.stderr}`);
  return result;
}

/** SIGKILLs the child as soon as `condition` holds (polled between I/O turns), or lets it end on its own. */
async function killWhen(child: ChildProcess, condition: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
    if (await condition()) {
      process.kill(child.pid!, 'SIGKILL');
      return true;
    }
    await yieldToIo();
  }
  if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  return false;
}

/** The summary line's numbers. */
function summaryOf(stdout: string): { reviewed: number; deletedBlobs: number; recovered: number } {
  const match = /gc: reviewed (\d+) digests; deleted (\d+) tags, (\d+) manifests, (\d+) blobs/.exec(stdout);
  assert.ok(match, `a summary line in:\n${stdout.slice(-2000)}`);
  const recovered = /; (\d+) finished from an interrupted cycle/.exec(stdout);
  return { reviewed: Number(match[1]), deletedBlobs: Number(match[4]), recovered: recovered ? Number(recovered[1]) : 0 };
}

/** The digests of the table's `blob` rows. */
function tableBlobs(stdout: string): Digest[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('blob '))
    .map((line) => /sha256:[0-9a-f]{64}/.exec(line)![0] as Digest);
}

/** Every still-tagged image pulls whole from `base`: manifest by tag (same digest), every blob (sha256 matches). */
async function assertKeptPull(fixture: Fixture, base: string): Promise<void> {
  for (const i of fixture.kept) {
    const image = fixture.images[i]!;
    const res = await fetch(`${base}/v2/${REPO}/manifests/t${i}`, { headers: { Accept: image.manifest.descriptor.mediaType } });
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, `t${i}: ${body.toString().slice(0, 300)}`);
    assert.equal(res.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
    assert.equal(sha256(body), image.manifest.descriptor.digest);
    for (const blob of image.blobs) {
      const got = await fetch(`${base}/v2/${REPO}/blobs/${blob.descriptor.digest}`);
      const bytes = Buffer.from(await got.arrayBuffer());
      assert.equal(got.status, 200, `t${i} blob ${blob.descriptor.digest}: ${bytes.toString().slice(0, 300)}`);
      assert.equal(sha256(bytes), blob.descriptor.digest, `t${i} blob ${blob.descriptor.digest} intact`);
    }
  }
}

/** Opens the data directory in-process (no collector) and pulls every still-tagged image. */
async function assertKeptPullInProcess(fixture: Fixture, dataDir: string): Promise<void> {
  const registry = await startTestRegistry({ dataDir, gc: { interval: 0, grace: 0 } });
  try {
    await assertKeptPull(fixture, registry.url);
  } finally {
    await registry.stop();
  }
}

/** Afterwards: an empty trash, and exactly the still-tagged images' blobs in the store. */
async function assertCollected(fixture: Fixture, dataDir: string): Promise<void> {
  assert.deepEqual(await trashFiles(dataDir), [], 'gc-trash is empty');
  assert.deepEqual(trashRows(dataDir), [], 'no trash entry left in the database');
  const files = await blobFiles(dataDir);
  assert.deepEqual([...fixture.keptDigests].filter((digest) => !files.has(digest)), [], 'every blob of a tagged image is stored');
  assert.deepEqual([...files].filter((digest) => !fixture.keptDigests.has(digest)), [], 'no blob file that no tagged image references');
}

describe('kill -9 in the middle of a garbage collection cycle', () => {
  let fixture: Fixture;
  const dirs: string[] = [];

  before(async () => {
    // Compiles dist/ now if src/ changed, so that no later spawn spends its first seconds in tsc.
    const warm = startSkiff(['--version']);
    assert.equal((await warm.exited).code, 0);
    fixture = await prepare();
  });
  after(async () => {
    for (const dir of [fixture?.template, ...dirs]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('skiff gc killed partway: tagged images intact, the next run finishes the rest', { timeout: 90_000 }, async (t) => {
    const killPoints: { label: string; condition: (dir: string, startedAt: number) => Promise<boolean> }[] = [
      { label: 'first file in gc-trash', condition: async (dir) => (await trashFiles(dir)).length > 0 },
      { label: '150 files in gc-trash', condition: async (dir) => (await trashFiles(dir)).length >= 150 },
      {
        label: 'after the first batch was deleted',
        condition: async (dir) => (await blobFiles(dir)).size + (await trashFiles(dir)).length <= fixture.keptDigests.size + fixture.garbage.size - 200,
      },
      { label: 'random delay', condition: (() => {
        const delay = 450 + Math.floor(Math.random() * 450); // the process starts in ~300 ms, then sweeps the files; its cycle takes a few hundred
        return async (_dir: string, startedAt: number) => Date.now() - startedAt >= delay;
      })() },
    ];
    let interrupted = 0;
    for (const point of killPoints) {
      const dir = await copyOf(fixture, 'cli');
      dirs.push(dir);
      const startedAt = Date.now();
      const { child, exited } = startSkiff(['gc', '--data', dir, '--grace', '0s']);
      const killed = await killWhen(child, () => point.condition(dir, startedAt), 20_000);
      const first = await exited;
      const pending = await pendingOf(dir);
      const present = new Set([...(await blobFiles(dir)), ...(await trashFiles(dir))]);
      const garbageLeft = [...fixture.garbage].filter((digest) => present.has(digest));
      t.diagnostic(
        `${point.label}: ${killed ? `killed (${first.signal ?? `exit ${first.code}`})` : `finished first (exit ${first.code})`} after ${Date.now() - startedAt} ms; ` +
          `${pending.size} pending (${(await trashFiles(dir)).length} files in gc-trash), ${garbageLeft.length} of ${fixture.garbage.size} garbage blobs left`,
      );
      if (pending.size > 0) interrupted++;

      // Nothing a tagged image uses went, whatever the moment.
      await assertKeptPullInProcess(fixture, dir);

      const second = await runGc(['--data', dir, '--grace', '0s']);
      assert.equal(second.code, 0, `second run exits 0\n${second.stderr}`);
      const summary = summaryOf(second.stdout);
      t.diagnostic(`second run: ${second.stdout.trim().split('\n').at(-1)}`);
      if (pending.size > 0) {
        assert.match(second.stdout, /finished from an interrupted cycle/);
        assert.equal(summary.recovered, pending.size, 'every pending blob finished');
      } else {
        assert.doesNotMatch(second.stdout, /finished from an interrupted cycle/);
      }
      assert.equal(summary.deletedBlobs, garbageLeft.length, 'the second run deleted the rest of the garbage');
      assert.deepEqual(tableBlobs(second.stdout).sort(), [...garbageLeft].sort(), 'its table lists exactly them');
      await assertCollected(fixture, dir);
      await assertKeptPullInProcess(fixture, dir);
    }
    assert.ok(interrupted > 0, 'at least one kill landed in the middle of a cycle');
  });

  test('skiff serve killed while it collects: after a restart its collector finishes the rest', { timeout: 90_000 }, async (t) => {
    let interrupted = 0;
    for (const threshold of [1, 200]) { // a batch is 256: the trash never holds more
      const dir = await copyOf(fixture, 'serve');
      dirs.push(dir);
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data', dir, '--gc-interval', '1s', '--gc-grace', '0s', '--log-level', 'warn'];
      const first = startSkiff(args);
      let second: ReturnType<typeof startSkiff> | undefined;
      try {
        await waitForHttp(`${base}/v2/`);
        const startedAt = Date.now();
        const killed = await killWhen(first.child, async () => (await trashFiles(dir)).length >= threshold, 20_000);
        await first.exited;
        assert.ok(killed, `the server was collecting within 20 s (stderr: ${first.output().slice(-500)})`);
        const pending = await pendingOf(dir);
        const present = new Set([...(await blobFiles(dir)), ...(await trashFiles(dir))]);
        const garbageLeft = [...fixture.garbage].filter((digest) => present.has(digest));
        t.diagnostic(`killed at ${threshold} file(s) in gc-trash, ${Date.now() - startedAt} ms after start: ${pending.size} pending, ${garbageLeft.length} garbage blobs left`);
        if (pending.size > 0) interrupted++;

        second = startSkiff(args);
        await waitForHttp(`${base}/v2/`);
        await assertKeptPull(fixture, base); // while its first cycle (1 s after start) may be running
        // Its first cycle finishes what the killed one left, then collects the rest.
        const deadline = Date.now() + 20_000;
        let metrics = '';
        for (;;) {
          metrics = await (await fetch(`${base}/metrics`)).text();
          const ok = /^skiff_gc_cycles_total\{outcome="ok"\} (\d+)/m.exec(metrics);
          if (ok && Number(ok[1]) >= 1 && (await trashFiles(dir)).length === 0) break;
          assert.ok(Date.now() < deadline, `a cycle completed within 20 s:\n${metrics.split('\n').filter((line) => line.startsWith('skiff_gc')).join('\n')}\n${second.output().slice(-1000)}`);
          await sleep(100);
        }
        assert.doesNotMatch(metrics, /^skiff_gc_cycles_total\{outcome="failed"\} [1-9]/m, 'no failed cycle');
        const deleted = /^skiff_gc_blobs_deleted_total (\d+)/m.exec(metrics);
        assert.equal(Number(deleted?.[1]), garbageLeft.length, 'the restarted server deleted the rest of the garbage');
        if (pending.size > 0) assert.match(second.output(), /finishing what an interrupted cycle left/);
        await assertKeptPull(fixture, base);
      } finally {
        if (first.child.exitCode === null && first.child.signalCode === null) first.child.kill('SIGKILL');
        if (second) {
          await stopChild(second.child);
          const stopped = await second.exited;
          assert.equal(stopped.code, 0, `the restarted server stops cleanly on SIGTERM\n${stopped.stderr.slice(-1000)}`);
        }
      }
      await assertCollected(fixture, dir);
    }
    assert.ok(interrupted > 0, 'at least one kill landed in the middle of a cycle');
  });
});

