import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_LOGIN_LIMITS, MemoryLoginLimiter, type LoginLimits } from '../../src/auth/login-limiter.ts';

/** A limiter on a clock the test moves by hand. */
function limiterAt(start = 1_700_000_000_000, limits: Partial<LoginLimits> = {}) {
  const clock = { now: start };
  const limiter = new MemoryLoginLimiter(limits, () => clock.now);
  return {
    limiter,
    clock,
    advance(ms: number) {
      clock.now += ms;
    },
    async fail(user: string, address: string, times = 1) {
      for (let i = 0; i < times; i++) await limiter.recordFailure(user, address);
    },
    /** The limiter's table of failure times: read to check that memory stays bounded. */
    entries(): number {
      return limiter['failures'].size;
    },
  };
}

describe('MemoryLoginLimiter', () => {
  test('the defaults are 10 per user and address, 1000 per address, in one minute', () => {
    assert.deepEqual(DEFAULT_LOGIN_LIMITS, { perUser: 10, perAddress: 1000, windowMs: 60_000 });
  });

  test('a fresh pair may try', async () => {
    const { limiter } = limiterAt();
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
  });

  test('9 failures of (alice, 1.2.3.4) still allow a try; the 10th refuses for > 0 and ≤ 60 s', async () => {
    const { limiter, fail } = limiterAt();
    await fail('alice', '1.2.3.4', 9);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
    await fail('alice', '1.2.3.4');
    const wait = await limiter.retryAfter('alice', '1.2.3.4');
    assert.ok(wait !== undefined && wait > 0 && wait <= 60, `retry after ${wait}`);
    assert.equal(wait, 60, 'all ten failures happened just now');
    assert.ok(Number.isInteger(wait), 'whole seconds, as Retry-After takes');
  });

  test('bob from the same address is unaffected', async () => {
    const { limiter, fail } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    assert.equal(await limiter.retryAfter('bob', '1.2.3.4'), undefined);
  });

  test('alice from another address is unaffected', async () => {
    const { limiter, fail } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    assert.equal(await limiter.retryAfter('alice', '5.6.7.8'), undefined);
    assert.equal(await limiter.retryAfter('alice', '::1'), undefined);
  });

  test('the wait counts down from the oldest failure in the window', async () => {
    const { limiter, fail, advance } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    advance(20_000);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), 40);
    advance(39_500);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), 1, 'rounds up: half a second left is 1 s');
  });

  test('the window slides: after 61 s alice may try again', async () => {
    const { limiter, fail, advance } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    advance(61_000);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
  });

  test('exactly when the oldest failure leaves the window the pair may try', async () => {
    const { limiter, fail, advance } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    advance(59_999);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), 1);
    advance(1);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
  });

  test('failures spread over time: only those within the last minute count', async () => {
    const { limiter, fail, advance } = limiterAt();
    for (let i = 0; i < 10; i++) {
      await fail('alice', '1.2.3.4');
      advance(10_000); // failures at t = 0, 10 s, …, 90 s
    }
    // Now t = 100 s: failures at 50..90 s are within the window (5 of them) → allowed.
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
    await fail('alice', '1.2.3.4', 4); // 9 in the window
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), undefined);
    await fail('alice', '1.2.3.4'); // 10 in the window, oldest at t = 50 s
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), 10);
  });

  test('a refused pair that keeps failing stays refused until a minute after the latest tenth-to-last failure', async () => {
    const { limiter, fail, advance } = limiterAt();
    await fail('alice', '1.2.3.4', 10);
    advance(30_000);
    await fail('alice', '1.2.3.4', 10); // a guesser ignoring 429s and its failures still being recorded
    advance(31_000);
    assert.equal(await limiter.retryAfter('alice', '1.2.3.4'), 29, 'the newest ten count, not the first ten');
  });

  test('per-address ceiling: 1000 failures of many users from one address refuse everyone there', async () => {
    const { limiter, fail } = limiterAt();
    for (let i = 0; i < 999; i++) await fail(`user${i}`, '9.9.9.9');
    assert.equal(await limiter.retryAfter('newcomer', '9.9.9.9'), undefined, '999 failures: still under the ceiling');
    await fail('user999', '9.9.9.9');
    const wait = await limiter.retryAfter('newcomer', '9.9.9.9');
    assert.ok(wait !== undefined && wait > 0 && wait <= 60, `retry after ${wait}`);
    assert.equal(await limiter.retryAfter('newcomer', '9.9.9.8'), undefined, 'another address is unaffected');
  });

  test('the per-address ceiling lifts after the window', async () => {
    const { limiter, fail, advance } = limiterAt(0);
    for (let i = 0; i < 1000; i++) await fail(`user${i}`, '9.9.9.9');
    assert.notEqual(await limiter.retryAfter('newcomer', '9.9.9.9'), undefined);
    advance(60_001);
    assert.equal(await limiter.retryAfter('newcomer', '9.9.9.9'), undefined);
  });

  test('custom limits are honoured', async () => {
    const { limiter, fail, advance } = limiterAt(0, { perUser: 2, perAddress: 3, windowMs: 5_000 });
    await fail('alice', 'a', 2);
    assert.equal(await limiter.retryAfter('alice', 'a'), 5);
    assert.equal(await limiter.retryAfter('bob', 'a'), undefined);
    await fail('bob', 'a');
    assert.equal(await limiter.retryAfter('carol', 'a'), 5, 'three failures at the address');
    advance(5_000);
    assert.equal(await limiter.retryAfter('alice', 'a'), undefined);
  });

  test('memory stays bounded: failures per key are capped at the bound', async () => {
    const { limiter, fail } = limiterAt();
    await fail('alice', '1.2.3.4', 500);
    const times = limiter['failures'].get('u\u0000alice\u00001.2.3.4');
    assert.equal(times?.length, 10, 'only the newest `perUser` times are kept');
  });

  test('memory stays bounded: after the window a sweep drops stale keys', async () => {
    const { limiter, fail, advance, entries } = limiterAt();
    for (let i = 0; i < 200; i++) await fail(`user${i}`, `10.0.${i >> 8}.${i & 255}`);
    assert.equal(entries(), 400, 'a pair key and an address key each');
    advance(61_000);
    await fail('late', '10.9.9.9'); // the next failure after the window sweeps
    assert.equal(entries(), 2, 'only the newest pair and address are left');
    // And behaviour agrees: everyone else starts over.
    assert.equal(await limiter.retryAfter('user1', '10.0.0.1'), undefined);
  });

  test('a sweep keeps keys that still have failures in the window', async () => {
    const { limiter, fail, advance, entries } = limiterAt();
    await fail('old', '1.1.1.1', 10);
    advance(30_000);
    await fail('recent', '2.2.2.2', 10);
    advance(31_000); // old's failures are 61 s old, recent's 31 s
    await fail('trigger', '3.3.3.3');
    assert.equal(entries(), 4, 'recent pair + address, trigger pair + address');
    assert.notEqual(await limiter.retryAfter('recent', '2.2.2.2'), undefined);
    assert.equal(await limiter.retryAfter('old', '1.1.1.1'), undefined);
  });

  test('sweeps run about once per window (a stale key may linger until the next one), not on every failure', async () => {
    const { fail, advance, entries } = limiterAt();
    await fail('a', '1.1.1.1'); // t = 0: the first failure sweeps
    advance(10_000);
    await fail('b', '2.2.2.2'); // t = 10 s
    advance(51_000);
    await fail('c', '3.3.3.3'); // t = 61 s: sweeps; a is stale, b is not
    assert.equal(entries(), 4, 'a dropped');
    advance(14_000);
    await fail('d', '4.4.4.4'); // t = 75 s: b is stale now, but the last sweep was 14 s ago
    assert.equal(entries(), 6, 'b still held until the next sweep');
    advance(47_000);
    await fail('e', '5.5.5.5'); // t = 122 s: sweeps; b (10 s) and c (61 s) are stale
    assert.equal(entries(), 4, 'd and e left');
  });

  test('with the real clock by default', async () => {
    const limiter = new MemoryLoginLimiter();
    for (let i = 0; i < 10; i++) await limiter.recordFailure('alice', '1.2.3.4');
    const wait = await limiter.retryAfter('alice', '1.2.3.4');
    assert.ok(wait !== undefined && wait > 0 && wait <= 60);
  });
});
