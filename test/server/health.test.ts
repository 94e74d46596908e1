import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkHealth, describeRule, formatBytes } from '../../src/server/health.ts';
import { openRegistry } from '../../src/server/open-registry.ts';
import type { Registry } from '../../src/server/registry.ts';

describe('checkHealth', () => {
  let dir: string;
  let registry: Registry;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-health-'));
    registry = await openRegistry(dir, { deleteEnabled: true, readOnly: false });
  });
  after(async () => {
    await registry.metadata.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  test('ready when the floor is met', async () => {
    assert.deepEqual(await checkHealth(registry, dir, { bytes: 0 }), { status: 'ready' });
    assert.deepEqual(await checkHealth(registry, dir, { percent: 0 }), { status: 'ready' });
  });

  test('unavailable below the floor; the reason names free space, floor and key', async () => {
    const health = await checkHealth(registry, dir, { bytes: Number.MAX_SAFE_INTEGER });
    assert.equal(health.status, 'unavailable');
    assert.ok('reason' in health);
    assert.match(health.reason, /^only [\d.]+ [KMGTP]?i?B free of [\d.]+ [KMGTP]?i?B on the data directory .*, below the floor of 8 PiB \(minFreeSpace: 8 PiB\); free space there or lower minFreeSpace$/);
    const percent = await checkHealth(registry, dir, { percent: 100 });
    assert.equal(percent.status, 'unavailable');
    assert.match((percent as { reason: string }).reason, /minFreeSpace: 100%/);
  });

  test('unavailable when the data directory is missing', async () => {
    const health = await checkHealth(registry, join(dir, 'gone'), { bytes: 0 });
    assert.equal(health.status, 'unavailable');
    assert.match((health as { reason: string }).reason, /data directory .*gone is not writable: ENOENT/);
  });

  test('unavailable when the metadata store does not answer', async () => {
    await registry.metadata.close();
    const health = await checkHealth(registry, dir, { bytes: 0 });
    assert.equal(health.status, 'unavailable');
    assert.match((health as { reason: string }).reason, /^the metadata store does not answer: /);
  });
});

describe('free-space wording', () => {
  test('formatBytes', () => {
    for (const [bytes, text] of [
      [0, '0 B'],
      [1023, '1023 B'],
      [1024, '1 KiB'],
      [209716, '204.8 KiB'],
      [20 * 1024 ** 2, '20 MiB'],
      [1024 ** 3, '1 GiB'],
    ] as const) {
      assert.equal(formatBytes(bytes), text);
    }
  });

  test('describeRule', () => {
    assert.equal(describeRule({ bytes: 1024 ** 3, orPercent: 1 }), '1 GiB or 1%, the smaller');
    assert.equal(describeRule({ percent: 5 }), '5%');
    assert.equal(describeRule({ bytes: 64 * 1024 ** 2 }), '64 MiB');
  });
});
