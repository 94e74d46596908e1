import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { openRedis } from '../../../src/server/coordination/redis-connection.ts';
import { RedisKeyedLock } from '../../../src/server/coordination/redis-keyed-lock.ts';
import { ConfigError } from '../../../src/errors/config-error.ts';
import { freePort } from '../../../src/testing/peers.ts';
import { redisSkipReason, startRedisPair, type RedisPair } from '../../../src/testing/redis.ts';

const skip = await redisSkipReason();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('RedisKeyedLock: one holder per key across replicas', { skip }, () => {
  let pair: RedisPair;
  // Two connections stand for two replicas.
  let a: Redis;
  let b: Redis;

  before(async () => {
    pair = await startRedisPair();
    ({ a, b } = pair);
  });
  after(async () => {
    await pair?.stop();
  });

  test('work on one key never overlaps, whichever replica runs it', async () => {
    const locks = [new RedisKeyedLock(a, { prefix: 't1:' }), new RedisKeyedLock(b, { prefix: 't1:' })];
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        locks[i % 2]!.run('session', async () => {
          inside++;
          most = Math.max(most, inside);
          await sleep(5);
          order.push(i);
          inside--;
        }),
      ),
    );
    assert.equal(most, 1);
    assert.equal(order.length, 12);
    // Other keys do not wait.
    const started = Date.now();
    await Promise.all([locks[0]!.run('x', () => sleep(200)), locks[1]!.run('y', () => sleep(200))]);
    assert.ok(Date.now() - started < 390, 'two keys run side by side');
  });

  test('tryRun skips a key another replica holds, and takes a free one', async () => {
    const mine = new RedisKeyedLock(a, { prefix: 't2:' });
    const theirs = new RedisKeyedLock(b, { prefix: 't2:' });
    let release!: () => void;
    const holding = theirs.run('s', () => new Promise<void>((resolve) => (release = resolve)));
    await sleep(30);
    assert.equal(await mine.tryRun('s', async () => 'ran'), undefined);
    release();
    await holding;
    assert.equal(await mine.tryRun('s', async () => 'ran'), 'ran');
  });

  test('a holder that died (no renewal) lets go when its lease runs out', async () => {
    // What a replica killed mid-PATCH leaves: a lease nobody renews or releases.
    await a.set('t3:s', 'dead-replica', 'PX', 400);
    const lock = new RedisKeyedLock(b, { prefix: 't3:', leaseMs: 400 });
    const started = Date.now();
    assert.equal(await lock.run('s', async () => 'after'), 'after');
    const waited = Date.now() - started;
    assert.ok(waited >= 250 && waited < 2000, `waited ${waited} ms for the dead lease`);
  });

  test('a live holder renews its lease past leaseMs, and releases only its own', async () => {
    const mine = new RedisKeyedLock(a, { prefix: 't4:', leaseMs: 300 });
    const theirs = new RedisKeyedLock(b, { prefix: 't4:', leaseMs: 300 });
    let theirsRan = false;
    const long = mine.run('s', async () => {
      await sleep(1000);
      assert.equal(theirsRan, false, 'the other replica waited for the renewed lease');
    });
    await sleep(50);
    const waiter = theirs.run('s', async () => {
      theirsRan = true;
    });
    await long;
    await waiter;
    assert.equal(theirsRan, true);
    assert.equal(await a.exists('t4:s'), 0, 'released');
  });

  test('a Redis that does not answer is a clear configuration error', async () => {
    const port = await freePort();
    await assert.rejects(openRedis({ url: `redis://:secret@127.0.0.1:${port}`, prefix: 'skiff:' }, { connectTimeoutMs: 500 }), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^redis\.url redis:\/\/127\.0\.0\.1:\d+: cannot use Redis: .*ECONNREFUSED/);
      assert.doesNotMatch(error.message, /secret/);
      return true;
    });
  });
});
