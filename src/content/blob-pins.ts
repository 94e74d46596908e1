import type { Digest } from '../digest/digest.ts';

/** What became of a `deleteUnpinned` call. */
export type PinnedDelete = 'deleted' | 'kept' | 'pinned';

/**
 * Which blobs this process is using right now, so that a delete (the mirror cache's eviction)
 * never takes a file from under a reader or a writer. A *pin* covers the moment from deciding to
 * use a blob (a stat, a metadata check) until the use is over: a response has sent the bytes, or
 * a push has linked the blob it found already committed. A delete runs only while nobody holds a
 * pin on its digest, and a pin asked for during a delete waits until the delete is over, then
 * finds the blob gone (a miss, filled again) instead of half-gone.
 *
 * On Linux a reader that has opened the file keeps reading after an unlink (the inode lives while
 * a descriptor is open); the pin is what protects the gap before the open, and keeps the rule
 * true for a store where that does not hold (object storage).
 *
 * In-process only, like the fills' singleflight: several processes on one data directory would
 * need this behind a shared lock (scale-out).
 */
export class BlobPins {
  private readonly counts = new Map<Digest, number>();
  private readonly deleting = new Map<Digest, Promise<unknown>>();

  /** Pins `digest` (after a delete of it running now, if any); call the result once to let go. */
  async pin(digest: Digest): Promise<() => void> {
    for (let running = this.deleting.get(digest); running; running = this.deleting.get(digest)) await running.catch(() => undefined);
    this.counts.set(digest, (this.counts.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.counts.get(digest) ?? 1) - 1;
      if (left > 0) this.counts.set(digest, left);
      else this.counts.delete(digest);
    };
  }

  /** Runs `work` with `digest` pinned. */
  async hold<T>(digest: Digest, work: () => Promise<T>): Promise<T> {
    const release = await this.pin(digest);
    try {
      return await work();
    } finally {
      release();
    }
  }

  isPinned(digest: Digest): boolean {
    return this.counts.has(digest);
  }

  /** The digests pinned now. */
  pinned(): Digest[] {
    return [...this.counts.keys()];
  }

  /**
   * Runs `remove` unless `digest` is pinned (then `pinned`, and nothing ran). The check and the
   * start of the delete happen in one turn of the event loop, so no pin slips in between; pins
   * asked for while `remove` runs wait for it. `remove` resolves whether it deleted the blob.
   */
  async deleteUnpinned(digest: Digest, remove: () => Promise<boolean>): Promise<PinnedDelete> {
    if (this.counts.has(digest) || this.deleting.has(digest)) return 'pinned';
    const running = remove();
    this.deleting.set(digest, running);
    try {
      return (await running) ? 'deleted' : 'kept';
    } finally {
      this.deleting.delete(digest);
    }
  }
}
