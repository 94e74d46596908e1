import type { KeyedLock } from './keyed-lock.ts';

/**
 * Serializes async work per key inside one process. Lives in an instance, never in a
 * module global, so two stores (or two tests) never share locks by accident.
 */
export class KeyedMutex implements KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(work);
    const tail = current.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /**
   * True while work for `key` runs or waits. Checked and followed by `run` in the same tick,
   * it lets a background task skip a busy key instead of queueing behind a slow request.
   */
  isHeld(key: string): boolean {
    return this.tails.has(key);
  }

  tryRun<T>(key: string, work: () => Promise<T>): Promise<T | undefined> {
    return this.isHeld(key) ? Promise.resolve(undefined) : this.run(key, work);
  }
}
