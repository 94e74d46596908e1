import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { DEFAULT_LOGIN_LIMITS, type LoginLimiter, type LoginLimits } from '../../auth/login-limiter.ts';

/**
 * Failed logins counted once for all replicas: the same sliding windows as MemoryLoginLimiter
 * (per user and address, and per address), each a Redis sorted set of failure times, trimmed to
 * the window and to its bound, and expiring with the window. Behind a load balancer a guesser's
 * attempts land on every replica; counted per replica, the bound would be multiplied by their number.
 */
export class RedisLoginLimiter implements LoginLimiter {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly limits: LoginLimits;
  private readonly now: () => number;

  constructor(redis: Redis, options: { prefix: string; limits?: Partial<LoginLimits>; now?: () => number }) {
    this.redis = redis;
    this.prefix = options.prefix;
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
  }

  async retryAfter(user: string, address: string): Promise<number | undefined> {
    const now = this.now();
    const [pair, whole] = await Promise.all([this.waitFor(this.pairKey(user, address), this.limits.perUser, now), this.waitFor(this.addressKey(address), this.limits.perAddress, now)]);
    const wait = Math.max(pair, whole);
    return wait > 0 ? Math.ceil(wait / 1000) : undefined;
  }

  async recordFailure(user: string, address: string): Promise<void> {
    const now = this.now();
    const multi = this.redis.multi();
    for (const [key, bound] of [
      [this.pairKey(user, address), this.limits.perUser],
      [this.addressKey(address), this.limits.perAddress],
    ] as const) {
      // A unique member per failure: two at the same millisecond both count.
      multi.zadd(key, now, `${now}:${randomBytes(4).toString('hex')}`);
      multi.zremrangebyscore(key, '-inf', now - this.limits.windowMs);
      // Only the newest `bound` matter for the decision; older ones would only cost memory.
      multi.zremrangebyrank(key, 0, -(bound + 1));
      multi.pexpire(key, this.limits.windowMs);
    }
    await multi.exec();
  }

  /** Milliseconds until the key's oldest counted failure leaves the window, once the key is at its bound. */
  private async waitFor(key: string, bound: number, now: number): Promise<number> {
    const [[, count], [, oldest]] = (await this.redis.multi().zcount(key, now - this.limits.windowMs + 1, '+inf').zrange(key, String(-bound), String(-bound), 'WITHSCORES').exec()) as [[unknown, number], [unknown, string[]]];
    if (count < bound || oldest.length < 2) return 0;
    return Number(oldest[1]) + this.limits.windowMs - now;
  }

  private pairKey(user: string, address: string): string {
    return `${this.prefix}login:u:${address}:${user}`;
  }

  private addressKey(address: string): string {
    return `${this.prefix}login:a:${address}`;
  }
}
