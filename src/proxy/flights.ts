/**
 * Singleflight: among callers that ask for the same key at the same moment, one starts the work
 * and the others join it. DESIGN.md §2.5: it lives in an instance, never in a module global.
 */

/** Work shared by everyone who joined it. `done` settles when it is over; it never rejects. */
export interface Flight {
  readonly done: Promise<void>;
}

/**
 * Who runs the flight for a key. The in-process form is `LocalFlights`. The cross-replica form
 * (RedisFlights, src/server/coordination/) keeps a LocalFlights for the callers of its own process
 * and, before calling `start`, takes a lease on the key (SET NX PX, renewed while the flight runs,
 * released at `done`); while another replica holds it, `join` waits for that lease to go (or to
 * expire) and only then starts a flight here. A flight must therefore look first at what the
 * shared store holds: what the other replica committed is a hit, not a second upstream fetch.
 */
export interface Flights<F extends Flight> {
  /**
   * The running flight for `key`, or a new one from `start()`, which runs at most once per
   * flight. The key is free again once the flight's `done` has settled. A flight that has just
   * failed can still be handed out in the instant before that; callers that must not see one
   * wait for its `done` and join again.
   */
  join(key: string, start: () => F): Promise<F>;
  /** Flights running now (in this process). */
  readonly size: number;
}

/** Flights within one process: a map from key to the running flight. */
export class LocalFlights<F extends Flight> implements Flights<F> {
  private readonly running = new Map<string, F>();

  // Not `async`: the lookup and the insertion must happen in the same tick as the call, so two
  // callers can never both find the key free.
  join(key: string, start: () => F): Promise<F> {
    const current = this.running.get(key);
    if (current) return Promise.resolve(current);
    let flight: F;
    try {
      flight = start();
    } catch (error) {
      return Promise.reject(error);
    }
    this.running.set(key, flight);
    const forget = (): void => {
      if (this.running.get(key) === flight) this.running.delete(key);
    };
    flight.done.then(forget, forget);
    return Promise.resolve(flight);
  }

  get size(): number {
    return this.running.size;
  }

  /** The flight running now for `key`, if any. */
  current(key: string): F | undefined {
    return this.running.get(key);
  }

  /** The flights running now, e.g. to abort them at shutdown. */
  flights(): F[] {
    return [...this.running.values()];
  }
}
