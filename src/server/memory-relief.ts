import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
/**
 * Hands memory back after a crowd of connections has left. Once a burst of clients (say 2,000
 * stalled readers) is gone, their objects are garbage, but an idle server allocates nothing, so
 * V8 never collects them and keeps their pages, and the send-buffer slabs they used stay mapped
 * until collected. When the open connections fall to a quarter of a peak of at least
 * `crowd`, one full collection is asked for (a second later, once the stragglers are closed).
 * The collector is taken from V8 at start (see lastResortCollection).
 */
export class MemoryRelief {
  private peak = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly crowd: number;
  private readonly collect: (() => void) | undefined;

  constructor(crowd = 256, collect: (() => void) | undefined = lastResortCollection()) {
    this.crowd = crowd;
    this.collect = collect;
  }

  /** Called with the number of open connections whenever it changes. */
  observe(open: number): void {
    if (open > this.peak) this.peak = open;
    if (this.peak < this.crowd || open > this.peak / 4 || this.timer || !this.collect) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.peak = 0;
      this.collect?.();
    }, 1000);
    this.timer.unref();
  }
}

/**
 * V8's "last resort" full collection (what it runs under memory pressure): it also returns the
 * pages of its free-page pool to the system, which a regular `gc()` keeps for later. The
 * collector is exposed here, in the server only, rather than by node's --expose-gc flag, which
 * costs every CLI command ~50 ms of start-up (node's start-up snapshot cannot be used with it).
 */
function lastResortCollection(): (() => void) | undefined {
  type Gc = (options?: object) => unknown;
  let gc = (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as Gc | undefined;
    } catch {
      gc = undefined;
    }
  }
  const collect = gc;
  return collect ? () => void collect({ type: 'major', execution: 'sync', flavor: 'last-resort' }) : undefined;
}
