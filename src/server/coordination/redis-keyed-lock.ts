import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { KeyedLock } from '../../content/keyed-lock.ts';
import { KeyedMutex } from '../../content/keyed-mutex.ts';

export interface RedisKeyedLockOptions {
  /** Key prefix, e.g. `skiff:lock:upload:`. */
  prefix: string;
  /**
   * How long a holder that stopped renewing (a replica killed mid-request) keeps the key: the wait
   * of the next request for that session on a survivor. Renewed every third of it while work runs.
   */
  leaseMs?: number;
  /** Longest pause between two attempts to take a busy key. */
  maxPollMs?: number;
}

// Release and renewal act only on our own lease: the token compared and the key changed in one step.
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * A KeyedLock shared by every replica through Redis leases (SET NX PX with a random token, renewed
 * while the work runs, released by compare-and-delete). Callers in this process queue on a local
 * mutex first, so one replica holds at most one lease per key and its waiters do not poll Redis.
 * A busy key is polled with a growing pause (10 ms up to maxPollMs): waits are the length of one
 * request, and polling keeps no subscriber connection per waiter.
 */
export class RedisKeyedLock implements KeyedLock {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly leaseMs: number;
  private readonly maxPollMs: number;
  private readonly local = new KeyedMutex();

  constructor(redis: Redis, options: RedisKeyedLockOptions) {
    this.redis = redis;
    this.prefix = options.prefix;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.maxPollMs = options.maxPollMs ?? 100;
  }

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.local.run(key, async () => {
      const token = randomUUID();
      for (let pause = 10; !(await this.take(key, token)); pause = Math.min(pause * 2, this.maxPollMs)) {
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
      return this.holding(key, token, work);
    });
  }

  tryRun<T>(key: string, work: () => Promise<T>): Promise<T | undefined> {
    if (this.local.isHeld(key)) return Promise.resolve(undefined);
    return this.local.run(key, async () => {
      const token = randomUUID();
      if (!(await this.take(key, token))) return undefined;
      return this.holding(key, token, work);
    });
  }

  private async take(key: string, token: string): Promise<boolean> {
    return (await this.redis.set(this.prefix + key, token, 'PX', this.leaseMs, 'NX')) === 'OK';
  }

  private async holding<T>(key: string, token: string, work: () => Promise<T>): Promise<T> {
    const renew = setInterval(() => {
      this.redis.eval(RENEW, 1, this.prefix + key, token, this.leaseMs).catch(() => undefined);
    }, Math.max(50, Math.floor(this.leaseMs / 3)));
    renew.unref();
    try {
      return await work();
    } finally {
      clearInterval(renew);
      // Should Redis be unreachable now, the lease expires by itself.
      await this.redis.eval(RELEASE, 1, this.prefix + key, token).catch(() => undefined);
    }
  }
}
