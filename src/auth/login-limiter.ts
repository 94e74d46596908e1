/** Failed-login bounds: per (user, address) pair, and a far higher one per address. */
export interface LoginLimits {
  /** Failures of one user from one address within `windowMs` before it is refused (default 10). */
  perUser: number;
  /** Failures from one address, all users together, within `windowMs` (default 1000). */
  perAddress: number;
  windowMs: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perUser: 10, perAddress: 1000, windowMs: 60_000 };

/**
 * Where failed logins are counted. An interface because replicas must share the counts (Redis
 * in the scale-out work); this process's Map is the embedded default.
 */
export interface LoginLimiter {
  /** Seconds until `user` may try again from `address`, or undefined when it may try now. */
  retryAfter(user: string, address: string): Promise<number | undefined>;
  recordFailure(user: string, address: string): Promise<void>;
}

/**
 * Sliding windows of failure times. The pair's bound stops guessing one user's password; the
 * address's bound, far higher, stops one address from guessing every user's, while a wrong
 * password of one user never locks out another user behind the same NAT. A correct password
 * does not clear the pair's failures: that would let a guesser who knows one password reset
 * its own counter.
 */
export class MemoryLoginLimiter implements LoginLimiter {
  private readonly limits: LoginLimits;
  private readonly failures = new Map<string, number[]>();
  private readonly now: () => number;
  private lastSweep = 0;

  constructor(limits: Partial<LoginLimits> = {}, now: () => number = Date.now) {
    this.limits = { ...DEFAULT_LOGIN_LIMITS, ...limits };
    this.now = now;
  }

  async retryAfter(user: string, address: string): Promise<number | undefined> {
    const now = this.now();
    const wait = Math.max(this.waitFor(pairKey(user, address), this.limits.perUser, now), this.waitFor(addressKey(address), this.limits.perAddress, now));
    return wait > 0 ? Math.ceil(wait / 1000) : undefined;
  }

  async recordFailure(user: string, address: string): Promise<void> {
    const now = this.now();
    this.push(pairKey(user, address), this.limits.perUser, now);
    this.push(addressKey(address), this.limits.perAddress, now);
    if (now - this.lastSweep > this.limits.windowMs) this.sweep(now);
  }

  /** Milliseconds until the key's oldest counted failure leaves the window, once the key is at its bound. */
  private waitFor(key: string, bound: number, now: number): number {
    const times = this.failures.get(key);
    if (!times || times.length < bound) return 0;
    return times[0]! + this.limits.windowMs - now;
  }

  private push(key: string, bound: number, now: number): void {
    const times = (this.failures.get(key) ?? []).filter((at) => at > now - this.limits.windowMs);
    times.push(now);
    // Only the newest `bound` matter for the decision; older ones would only cost memory.
    if (times.length > bound) times.splice(0, times.length - bound);
    this.failures.set(key, times);
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, times] of this.failures) if (times[times.length - 1]! <= now - this.limits.windowMs) this.failures.delete(key);
  }
}

const pairKey = (user: string, address: string): string => `u\u0000${user}\u0000${address}`;
const addressKey = (address: string): string => `a\u0000${address}`;
