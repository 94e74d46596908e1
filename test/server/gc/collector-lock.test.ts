/**
 * One collector at a time on one data directory: `skiff serve`'s background cycles and a
 * `skiff gc --data` beside it take the same lock file (`<data>/gc.lock`), so two cycles never
 * dispose the same blob at once. The lock of a process killed with -9 is taken over.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileKeyedLock } from '../../../src/content/file-lock.ts';
import { openCollector } from '../../../src/server/gc/open-collector.ts';
import { startTestRegistry } from '../../../src/testing/test-registry.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('FileKeyedLock: tryRun skips a held key, run waits for it, other keys are free', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-gc-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const [one, two] = [new FileKeyedLock(dir), new FileKeyedLock(dir)];
  let release!: () => void;
  const holding = one.run('gc', () => new Promise<string>((resolve) => (release = () => resolve('first'))));
  await sleep(50);
  assert.equal(await two.tryRun('gc', async () => 'second'), undefined);
  assert.equal(await two.tryRun('other', async () => 'free'), 'free');
  let waited = false;
  const waiting = two.run('gc', async () => (waited = true));
  await sleep(100);
  assert.equal(waited, false, 'run waits while the key is held');
  release();
  assert.equal(await holding, 'first');
  await waiting;
  assert.equal(waited, true);
});

test("FileKeyedLock: a lock file whose process died (kill -9) is taken over", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-gc-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // A PID that has just exited names nobody.
  const child = spawn(process.execPath, ['-e', '0']);
  await once(child, 'exit');
  await writeFile(join(dir, 'gc.lock'), String(child.pid));
  assert.equal(await new FileKeyedLock(dir).tryRun('gc', async () => 'taken'), 'taken');
});

test("skiff serve's background cycle skips its turn while a skiff gc on the same data directory runs, and runs again after", async (t) => {
  const registry = await startTestRegistry({ gc: { interval: 3600_000, grace: 0 } });
  t.after(() => registry.stop());
  const opened = await openCollector({ data: registry.dataDir });
  t.after(() => opened.close());
  assert.ok(opened.lease, 'skiff gc --data takes the collector lock');
  let release!: () => void;
  const cli = opened.lease.run('gc', () => new Promise<void>((resolve) => (release = resolve)));
  await sleep(50);
  assert.equal(await registry.gc!.runNow(), undefined, "the server's cycle skipped its turn");
  release();
  await cli;
  const report = await registry.gc!.runNow();
  assert.ok(report, 'the next cycle runs');
});
