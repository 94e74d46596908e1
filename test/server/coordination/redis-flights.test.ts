import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import type { Flight } from '../../../src/proxy/flights.ts';
import { openRedis } from '../../../src/server/coordination/redis-connection.ts';
import { RedisFlights } from '../../../src/server/coordination/redis-flights.ts';
import { redisSkipReason, startRedisPair, type RedisPair } from '../../../src/testing/redis.ts';

const skip = await redisSkipReason();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A flight that runs until the test finishes it. */
interface TestFlight extends Flight {
  readonly name: string;
  finish(): void;
}

function flight(name: string): TestFlight {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { name, done, finish };
}

/** Resolves true once `promise` settled within `ms`, else false (the promise goes on). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await sleep(ms);
  return settled;
}

describe('RedisFlights: one flight per key across replicas', { skip }, () => {
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

  test("two replicas join one key: one starts, the other waits and starts only after the first's done", async () => {
    const here = new RedisFlights<TestFlight>(a, { prefix: 'f1:' });
    const there = new RedisFlights<TestFlight>(b, { prefix: 'f1:' });
    const starts: string[] = [];
    const first = await here.join('sha256:x', () => {
      starts.push('here');
      return flight('here');
    });
    assert.equal(first.name, 'here');
    // Callers of the holding replica share its flight; no second start there either.
    const again = await here.join('sha256:x', () => flight('here-again'));
    assert.equal(again, first);

    const startThere = () => {
      starts.push('there');
      return flight('there');
    };
    // Three callers on the other replica share one wait (one lease attempt, one start).
    const waiting = [there.join('sha256:x', startThere), there.join('sha256:x', startThere), there.join('sha256:x', startThere)];
    assert.equal(await settlesWithin(Promise.race(waiting), 400), false, 'the other replica waits while the flight runs');
    assert.deepEqual(starts, ['here']);
    assert.equal(await a.exists('f1:sha256:x'), 1, 'the lease is in Redis while the flight runs');

    first.finish();
    const joined = await Promise.all(waiting);
    assert.deepEqual(starts, ['here', 'there'], 'started once on the other replica, after the first was done');
    assert.ok(joined.every((f) => f === joined[0] && f.name === 'there'));
    assert.equal(there.size, 1);
    joined[0]!.finish();
    await joined[0]!.done;
    for (let i = 0; i < 50 && (await a.exists('f1:sha256:x')) === 1; i++) await sleep(10);
    assert.equal(await a.exists('f1:sha256:x'), 0, 'released at done');
  });

  test('other keys do not wait for each other', async () => {
    const here = new RedisFlights<TestFlight>(a, { prefix: 'f2:' });
    const there = new RedisFlights<TestFlight>(b, { prefix: 'f2:' });
    const one = await here.join('k1', () => flight('one'));
    const two = await there.join('k2', () => flight('two'));
    assert.deepEqual([one.name, two.name], ['one', 'two']);
    one.finish();
    two.finish();
  });

  test("a dead holder's lease expires, and the waiting replica then starts", async () => {
    // What a replica killed mid-fill leaves: a lease nobody renews or releases.
    await a.set('f3:sha256:y', 'dead-replica', 'PX', 400);
    const there = new RedisFlights<TestFlight>(b, { prefix: 'f3:', leaseMs: 400 });
    const started = Date.now();
    const joined = await there.join('sha256:y', () => flight('survivor'));
    const waited = Date.now() - started;
    assert.equal(joined.name, 'survivor');
    assert.ok(waited >= 250 && waited < 2000, `waited ${waited} ms for the dead lease`);
    joined.finish();
  });

  test('a live holder renews its lease past leaseMs', async () => {
    const here = new RedisFlights<TestFlight>(a, { prefix: 'f4:', leaseMs: 300 });
    const there = new RedisFlights<TestFlight>(b, { prefix: 'f4:', leaseMs: 300 });
    const long = await here.join('k', () => flight('long'));
    const waiting = there.join('k', () => flight('next'));
    assert.equal(await settlesWithin(waiting, 1000), false, 'still waiting after three lease lengths');
    long.finish();
    const next = await waiting;
    assert.equal(next.name, 'next');
    next.finish();
  });

  test('a start that throws rejects its callers and frees the key at once', async () => {
    const here = new RedisFlights<TestFlight>(a, { prefix: 'f5:' });
    await assert.rejects(
      here.join('k', () => {
        throw new Error('cannot start');
      }),
      /cannot start/,
    );
    assert.equal(here.size, 0);
    for (let i = 0; i < 50 && (await a.exists('f5:k')) === 1; i++) await sleep(10);
    assert.equal(await a.exists('f5:k'), 0, 'no lease left behind');
    const next = await new RedisFlights<TestFlight>(b, { prefix: 'f5:' }).join('k', () => flight('next'));
    assert.equal(next.name, 'next');
    next.finish();
  });

  test('a Redis that cannot be reached: the flight runs here unshared, and says so', async () => {
    const lost = await openRedis({ url: pair.engine.url, prefix: 'skiff:' });
    lost.disconnect();
    const unshared: string[] = [];
    const flights = new RedisFlights<TestFlight>(lost, { prefix: 'f6:', onUnshared: (key) => unshared.push(key) });
    let starts = 0;
    const start = () => {
      starts++;
      return flight('unshared');
    };
    const [one, two] = await Promise.all([flights.join('k', start), flights.join('k', start)]);
    assert.equal(one!.name, 'unshared');
    assert.equal(two, one, "this process's callers still share one flight");
    assert.equal(starts, 1);
    assert.deepEqual(unshared, ['k']);
    one!.finish();
  });
});
