import type { Redis } from 'ioredis';
import { LocalFlights, type Flight, type Flights } from '../../proxy/flights.ts';
import { RedisKeyedLock } from './redis-keyed-lock.ts';

export interface RedisFlightsOptions {
  /** Key prefix, e.g. `skiff:lock:mirror:blob:`. */
  prefix: string;
  /**
   * How long a holder that stopped renewing (a replica killed mid-fill) keeps the key: the longest
   * the other replicas wait for a flight that will never finish. Renewed every third of it.
   */
  leaseMs?: number;
  /** Longest pause between two attempts to take a busy key. */
  maxPollMs?: number;
  /** Redis could not be asked, so a flight started without a lease (for a log line). */
  onUnshared?: (key: string, error: unknown) => void;
}

/**
 * Flights shared by every replica: one flight per key for the whole deployment (the mirror's one
 * upstream GET per digest). This process's callers share a LocalFlights, so a replica takes at
 * most one lease per key whatever its number of callers. Before starting a flight, the replica
 * takes a Redis lease on the key (RedisKeyedLock: SET NX PX, renewed while the flight runs,
 * released when its `done` settles). While another replica holds it, the callers here wait for it
 * to go (polled with a growing pause) and then start a flight here, which must look at the shared
 * store first: what the other replica committed is a hit, not a second upstream fetch.
 *
 * Redis only saves upstream fetches; it never makes a flight fail. When it cannot be asked, the
 * flight starts here without a lease (each replica then fetches once at most, as without Redis),
 * and `onUnshared` says so.
 */
export class RedisFlights<F extends Flight> implements Flights<F> {
  private readonly local = new LocalFlights<F>();
  private readonly lock: RedisKeyedLock;
  /** Keys whose lease this process is waiting for: later callers share the wait. */
  private readonly waiting = new Map<string, Promise<F>>();
  private readonly onUnshared: ((key: string, error: unknown) => void) | undefined;

  constructor(redis: Redis, options: RedisFlightsOptions) {
    this.lock = new RedisKeyedLock(redis, { prefix: options.prefix, leaseMs: options.leaseMs ?? 10_000, maxPollMs: options.maxPollMs ?? 100 });
    this.onUnshared = options.onUnshared;
  }

  join(key: string, start: () => F): Promise<F> {
    const running = this.local.current(key);
    if (running) return Promise.resolve(running);
    const waiting = this.waiting.get(key);
    if (waiting) return waiting;
    const leased = new Promise<F>((resolve, reject) => {
      let leaseTaken = false;
      this.lock
        .run(key, async () => {
          leaseTaken = true;
          // Under the lease: this process's flight for the key starts here and nowhere else.
          const flight = await this.local.join(key, start);
          resolve(flight);
          await flight.done; // the lease is held (and renewed) until the flight is over
        })
        .catch((error: unknown) => {
          if (leaseTaken) {
            reject(error); // `start` threw
            return;
          }
          // Taking (or waiting for) the lease failed: Redis cannot be asked. Run it unshared.
          this.onUnshared?.(key, error);
          this.local.join(key, start).then(resolve, reject);
        });
    });
    this.waiting.set(key, leased);
    // Once the flight runs, LocalFlights hands it out; a failed wait frees the key at once.
    const forget = (): void => {
      if (this.waiting.get(key) === leased) this.waiting.delete(key);
    };
    leased.then(forget, forget);
    return leased;
  }

  /** Flights running now in this process. */
  get size(): number {
    return this.local.size;
  }
}
