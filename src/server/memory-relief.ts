/**
 * Hands memory back after a crowd of connections has left. Once a burst of clients (say 2,000
 * stalled readers) is gone, their objects are garbage, but an idle server allocates nothing, so
 * V8 never collects them and keeps their pages, and the send-buffer slabs they used stay mapped
 * until collected. When the open connections fall to a quarter of a peak of at least
 * `crowd`, one full collection is asked for (a second later, once the stragglers are closed).
 * It needs node's --expose-gc, which bin/skiff passes; without it this does nothing.
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
 * pages of its free-page pool to the system, which a regular `gc()` keeps for later.
 */
function lastResortCollection(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options?: object) => unknown }).gc;
  return gc ? () => void gc({ type: 'major', execution: 'sync', flavor: 'last-resort' }) : undefined;
}
