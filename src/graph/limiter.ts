/** Runs at most `limit` tasks at once; the rest wait in FIFO order. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  async run<T>(task: () => Promise<T>, onWait?: () => void): Promise<T> {
    const waiting = this.acquire();
    if (waiting) {
      onWait?.();
      await waiting;
    }
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  /**
   * Takes a slot for work whose end is not one promise (a connection in use until its body is
   * read): at once, or (a promise) once one is handed over; pair with release(). The check and the
   * taking are one step, so callers arriving together never overshoot the limit. An abort while
   * waiting gives up the place in the queue and rejects with the signal's reason.
   */
  acquire(signal?: AbortSignal): Promise<void> | undefined {
    signal?.throwIfAborted();
    if (this.active < this.limit) {
      this.active++;
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const at = this.queue.indexOf(wake);
        if (at >= 0) this.queue.splice(at, 1);
        reject(signal!.reason as Error);
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      this.queue.push(wake);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Gives a slot back: straight to the first waiter, or free. */
  release(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.active--;
  }
}
