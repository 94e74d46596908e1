/**
 * `skiff sync --queue redis://…`: a dispatcher plans and reports, worker processes copy. A worker
 * killed with -9 in the middle of an image loses nothing: once its lease runs out another worker
 * copies that image, and the dispatcher's report is whole. Every process runs as a CLI would, with
 * its output to files, and must exit.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SyncSummary } from '../../src/sync/sync-report.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { redisSkipReason, startRedis, type RedisEngine } from '../../src/testing/redis.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushSimple, SKIFF, walkRepository, writeConfig } from './fixtures.ts';

const skip = await redisSkipReason();
const isBlobGet = (r: { method: string; url: string }) => r.method === 'GET' && r.url.includes('/blobs/');

/** `skiff sync <args>` with stdout and stderr to files, as cron runs it. */
async function spawnSync(args: string[], dir: string, name: string): Promise<{ child: ChildProcess; exit: Promise<number | null>; output: () => Promise<string> }> {
  const out = await open(join(dir, `${name}.out`), 'w');
  const err = await open(join(dir, `${name}.err`), 'w');
  const child = spawn(SKIFF, ['sync', ...args], { env: { ...process.env, DOCKER_CONFIG: '/nonexistent-skiff-test' }, stdio: ['ignore', out.fd, err.fd] });
  const exit = once(child, 'exit').then(async ([code]) => {
    await out.close();
    await err.close();
    return code as number | null;
  });
  const output = async () => `${await readFile(join(dir, `${name}.out`), 'utf8')}${await readFile(join(dir, `${name}.err`), 'utf8')}`;
  return { child, exit, output };
}

describe('skiff sync --queue: images spread over worker processes through Redis', { skip }, () => {
  let redis: RedisEngine;
  let source: TestRegistry;
  let destination: TestRegistry;
  let proxy: FaultProxy;
  let proxied: string;

  before(async () => {
    redis = await startRedis();
    source = await startTestRegistry();
    destination = await startTestRegistry();
    for (let i = 0; i < 8; i++) await pushSimple(source.url, 'team/app', `v${i}`, `queue-${i}`, 2, 512 * 1024);
    proxy = new FaultProxy(source.url);
    proxied = await proxy.start();
  });
  after(async () => {
    await proxy?.stop();
    await source?.stop();
    await destination?.stop();
    await redis?.stop();
  });

  test('a worker killed mid-image: another copies it after the lease, the report is whole, every process exits', async () => {
    const config = await writeConfig({ [`${proxied}/team/app`]: `${destination.address}/queued/app` });
    const queue = ['--queue', redis.url, '--queue-name', 'kill-test', '--queue-lease', '2s'];
    const workers: Awaited<ReturnType<typeof spawnSync>>[] = [];
    try {
      // The first worker's first blob GET hangs after 64 KiB: it holds that image when it is killed.
      let stalled!: () => void;
      const stalling = new Promise<void>((resolve) => (stalled = resolve));
      let first = true;
      proxy.decide = (req) => {
        if (!isBlobGet(req) || !first) return undefined;
        first = false;
        stalled();
        return { stallAfterBytes: 64 * 1024 };
      };
      const victim = await spawnSync([...queue, '--worker', '--auth', config.auth, '-p', '1'], config.dir, 'victim');
      const report = join(config.dir, 'report.json');
      const dispatcher = await spawnSync([...queue, '--no-work', '--auth', config.auth, '--images', config.images, '--report', report], config.dir, 'dispatcher');
      await stalling;
      victim.child.kill('SIGKILL');
      await victim.exit;
      for (let i = 0; i < 2; i++) workers.push(await spawnSync([...queue, '--worker', '--auth', config.auth], config.dir, `worker-${i}`));

      const code = await Promise.race([dispatcher.exit, new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 60_000))]);
      assert.equal(code, 0, `dispatcher: ${code}\n${await dispatcher.output()}`);
      const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
      assert.deepEqual(summary.images, { total: 8, synced: 8, skipped: 0, failed: 0 });
      // Every blob of the 8 images (2 layers + a config each) was copied by some worker and counted once per copy.
      assert.ok(summary.blobs.copied.count >= 24, `blobs copied by the workers reach the report: ${JSON.stringify(summary.blobs)}`);
      const copy = await walkRepository(destination.address, 'queued/app');
      const original = await walkRepository(source.address, 'team/app');
      assert.deepEqual(copy.tags, original.tags);
      assert.deepEqual(copy.missing, []);
      assert.match(await dispatcher.output(), /images: 8 total, 8 synced/);
      // The workers stop on SIGTERM, after the images in hand, and exit 0.
      for (const worker of workers) worker.child.kill('SIGTERM');
      for (const worker of workers) assert.equal(await worker.exit, 0, await worker.output());
      const worked = await Promise.all(workers.map((worker) => worker.output()));
      assert.ok(worked.some((text) => /synced .*team\/app/.test(text)), 'the surviving workers copied the images');
    } finally {
      proxy.decide = () => undefined;
      for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('the dispatcher also works by default: one process alone syncs through the queue', async () => {
    const config = await writeConfig({ [`${source.address}/team/app:v0`]: `${destination.address}/alone/app` });
    try {
      const run = await spawnSync(['--queue', redis.url, '--queue-name', 'alone', '--auth', config.auth, '--images', config.images], config.dir, 'alone');
      assert.equal(await run.exit, 0, await run.output());
      assert.match(await run.output(), /images: 1 total, 1 synced/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('a Redis that does not answer is a configuration error naming --queue, and the process exits', async () => {
    const config = await writeConfig({ [`${source.address}/team/app:v0`]: `${destination.address}/nowhere/app` });
    try {
      const { freePort } = await import('../../src/testing/peers.ts');
      const run = await spawnSync(['--queue', `redis://127.0.0.1:${await freePort()}`, '--auth', config.auth, '--images', config.images], config.dir, 'no-redis');
      assert.equal(await run.exit, 2);
      assert.match(await run.output(), /--queue redis:\/\/127\.0\.0\.1:\d+\/?: cannot use Redis: .*ECONNREFUSED/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});
