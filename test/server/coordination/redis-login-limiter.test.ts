import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { RedisLoginLimiter } from '../../../src/server/coordination/redis-login-limiter.ts';
import { redisSkipReason, startRedisPair, type RedisPair } from '../../../src/testing/redis.ts';

const skip = await redisSkipReason();

describe('RedisLoginLimiter: failed logins counted once for every replica', { skip }, () => {
  let pair: RedisPair;
  // Two connections stand for two replicas.
  let a: Redis;
  let b: Redis;
  let round = 0;
  const clock = { now: 1_700_000_000_000 };

  /** Two limiters on two connections (two replicas), a fresh prefix per test, on the test's clock. */
  function replicas(limits = { perUser: 3, perAddress: 5, windowMs: 60_000 }) {
    const prefix = `t${++round}:`;
    return [new RedisLoginLimiter(a, { prefix, limits, now: () => clock.now }), new RedisLoginLimiter(b, { prefix, limits, now: () => clock.now })] as const;
  }

  before(async () => {
    pair = await startRedisPair();
    ({ a, b } = pair);
  });
  after(async () => {
    await pair?.stop();
  });

  test("failures on one replica count on the other; the bound is the deployment's, not each replica's", async () => {
    const [one, two] = replicas();
    await one.recordFailure('alice', '1.2.3.4');
    await two.recordFailure('alice', '1.2.3.4');
    assert.equal(await one.retryAfter('alice', '1.2.3.4'), undefined);
    await one.recordFailure('alice', '1.2.3.4');
    assert.equal(await two.retryAfter('alice', '1.2.3.4'), 60, 'three failures just now: a minute to wait');
    assert.equal(await one.retryAfter('bob', '1.2.3.4'), undefined, 'another user behind the same address may try');
    assert.equal(await one.retryAfter('alice', '5.6.7.8'), undefined, 'the same user from elsewhere may try');
  });

  test('the wait counts down from the oldest failure in the window, and ends with it', async () => {
    const [one, two] = replicas();
    for (let i = 0; i < 3; i++) {
      await (i % 2 ? one : two).recordFailure('carol', '::1');
      clock.now += 10_000;
    }
    // Failures at t, t+10 s, t+20 s; now t+30 s: the oldest leaves the window at t+60 s.
    assert.equal(await one.retryAfter('carol', '::1'), 30);
    clock.now += 30_000;
    assert.equal(await two.retryAfter('carol', '::1'), undefined);
  });

  test('one address guessing many users meets the per-address bound', async () => {
    const [one, two] = replicas();
    for (let i = 0; i < 5; i++) await (i % 2 ? one : two).recordFailure(`user${i}`, '9.9.9.9');
    assert.ok((await one.retryAfter('someone-new', '9.9.9.9')) !== undefined);
    assert.equal(await one.retryAfter('someone-new', '8.8.8.8'), undefined);
  });

  test('keys expire with the window: nothing stays in Redis for idle pairs', async () => {
    const [one] = replicas({ perUser: 3, perAddress: 5, windowMs: 200 });
    await one.recordFailure('dave', '1.1.1.1');
    const keys = await a.keys(`t${round}:*`);
    assert.equal(keys.length, 2);
    for (const key of keys) {
      const ttl = await a.pttl(key);
      assert.ok(ttl > 0 && ttl <= 200, `${key} expires (${ttl} ms)`);
    }
  });
});
