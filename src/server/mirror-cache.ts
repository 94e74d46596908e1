import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { BlobPins } from '../content/blob-pins.ts';
import type { BlobStore } from '../content/store.ts';
import type { Digest } from '../digest/digest.ts';
import { noMirrorMetrics, type MirrorMetrics } from './metrics.ts';
import type { CachedBlob, CacheTouch, MetadataStore } from './storage/metadata.ts';

export interface MirrorCacheOptions {
  /** The most bytes the cache may hold (`cacheMaxSize`). Undefined: no limit; sizes are still counted for the gauge. */
  maxBytes?: number | undefined;
  /** A pass evicts down to this share of maxBytes (default 0.9), so that the next fills do not each start one. */
  lowWater?: number;
  /**
   * Content used this recently is never evicted (default 10 s): a response that handed its file to
   * an nginx in front (X-Accel-Redirect) before nginx opened it, a pull between its manifest and
   * its layers. So the cache can exceed its maximum by what was pulled in that window.
   */
  graceMs?: number;
  /** Hits are written to the metadata database at most this often (default 5 s), all in one transaction. */
  flushMs?: number;
  /** Serve the cache as it is (--read-only): no writes; the size is read once for the gauge. */
  readOnly?: boolean;
  log: Logger;
  metrics?: MirrorMetrics;
  /** The LRU's clock (tests). */
  now?: () => number;
}

/** What one eviction pass did (also its log line). */
export interface EvictionPass {
  reason: string;
  maxBytes: number | undefined;
  sizeBefore: number;
  sizeAfter: number;
  /** Cached manifests removed, with their tags. */
  manifests: number;
  /** Blob files deleted, manifest bodies included, and their bytes. */
  blobs: number;
  bytes: number;
  /** Blobs whose turn came while a client or a push was using them: kept for a later pass. */
  inUse: number;
  ms: number;
}

const TICK_MS = 1000;
/**
 * The size is counted in memory between passes; it is read again from the metadata this often,
 * for what changes it without the mirror (a local push that uses a cached blob makes it local).
 */
const RESYNC_MS = 30_000;
/** Hits kept in memory before a write is forced, whatever the flush interval. */
const MAX_PENDING_HITS = 10_000;
/** evictCache calls per pass at most (each examines up to 256 entries in one short transaction). */
const MAX_CALLS_PER_PASS = 4096;

/**
 * The mirror cache's size and its LRU eviction (docs/mirror.md "Eviction").
 *
 * Sizes and last uses live in the metadata store, so eviction is a query there plus blob deletes,
 * never a walk of the files (DESIGN.md §8). Hits are coalesced in memory, one entry per manifest
 * or blob, and written in one transaction every few seconds and before each pass; a crash loses
 * at most that much recency, never content. A pass runs when a fill commits past the maximum, on
 * a timer while the cache is over it, and at start (after finishing the deletes a crash cut short).
 * A blob is deleted only after the metadata store released it, and only while this process has no
 * pin on it (BlobPins): a client reading it, a push linking it.
 */
export class MirrorCache {
  readonly maxBytes: number | undefined;
  /** Public so tests can evict what they just pulled. */
  graceMs: number;
  private readonly lowWater: number;
  private readonly flushMs: number;
  private readonly readOnly: boolean;
  private readonly metadata: MetadataStore;
  private readonly blobs: Pick<BlobStore, 'delete'>;
  private readonly pins: BlobPins;
  private readonly log: Logger;
  private readonly now: () => number;
  private metrics: MirrorMetrics;

  private bytes = 0;
  private manifestHits = new Map<string, CacheTouch>();
  private blobHits = new Map<Digest, CacheTouch>();
  private firstPendingHit: number | undefined;
  /** Repositories marked cached in the metadata by this process (one write each). */
  private readonly adopted = new Set<string>();
  /** Records of fills and manifests not written yet (idle() waits for them). */
  private readonly recording = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again: string | undefined;
  /** After a pass that ended over the limit, none before this (what is left is in use or recent). */
  private retryAt = 0;
  private lastSync = 0;
  private closed = false;

  constructor(metadata: MetadataStore, blobs: Pick<BlobStore, 'delete'>, pins: BlobPins, options: MirrorCacheOptions) {
    this.metadata = metadata;
    this.blobs = blobs;
    this.pins = pins;
    this.maxBytes = options.maxBytes;
    this.lowWater = options.lowWater ?? 0.9;
    this.graceMs = options.graceMs ?? 10_000;
    this.flushMs = options.flushMs ?? 5_000;
    this.readOnly = options.readOnly ?? false;
    this.log = options.log;
    this.metrics = options.metrics ?? noMirrorMetrics;
    this.now = options.now ?? Date.now;
  }

  /** The bytes the cache holds, as counted (each blob once, local-only content never). */
  get size(): number {
    return this.bytes;
  }

  setMetrics(metrics: MirrorMetrics): void {
    this.metrics = metrics;
    metrics.cacheSize(this.bytes);
  }

  /**
   * Before the server listens: finishes the deletes of blobs released before a crash (so no request
   * can race them), reads the size, and starts the timer. A cache over its maximum (lowered since
   * the last run, say) gets a pass in the background.
   */
  async start(): Promise<void> {
    if (!this.readOnly) {
      const leftovers = await this.finishReleased();
      if (leftovers.blobs > 0 || leftovers.failed) this.log.info({ reason: 'deletes cut short by a crash', ...leftovers }, 'mirror: cache eviction');
    }
    this.publish(await this.metadata.cacheSize());
    if (this.readOnly) return;
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    if (this.over()) void this.schedule('start');
  }

  // ---- what the mirror tells it ----

  /** `repository` holds cached content: marks it so in the metadata, once per process. */
  async adopt(repository: string): Promise<void> {
    if (this.readOnly || this.adopted.has(repository)) return;
    await this.metadata.markCachedRepository(repository);
    this.adopted.add(repository);
  }

  /** A cached manifest was served: refreshes its place in the LRU (in memory; written in a batch). */
  usedManifest(repository: string, digest: Digest): void {
    if (this.readOnly) return;
    this.manifestHits.set(`${repository}@${digest}`, { repository, digest, at: this.now() });
    this.pending();
  }

  /** A cached blob was served from the store. */
  usedBlob(digest: Digest): void {
    if (this.readOnly) return;
    this.blobHits.set(digest, { digest, at: this.now() });
    this.pending();
  }

  /** A fill committed a blob: it counts from now, and may start a pass. */
  storedBlob(blob: CachedBlob): Promise<void> {
    return this.record('a fill committed past the maximum size', () => this.metadata.recordCachedBlob(blob, this.now()));
  }

  /** The mirror stored a manifest fetched from upstream in a cached repository. */
  storedManifest(repository: string, blob: CachedBlob): Promise<void> {
    this.adopted.add(repository);
    return this.record('a manifest was cached past the maximum size', () => this.metadata.recordCachedManifest(repository, blob, this.now()));
  }

  private record(reason: string, write: () => Promise<number>): Promise<void> {
    if (this.readOnly) return Promise.resolve();
    const done = write().then((added) => {
      this.publish(this.bytes + added);
      if (this.over() && this.now() >= this.retryAt) void this.schedule(reason);
    });
    this.recording.add(done);
    void done.finally(() => this.recording.delete(done)).catch(() => undefined);
    return done;
  }

  // ---- passes ----

  /** Runs a pass now (after the one running, if any) and resolves what it did. */
  async evict(reason = 'asked'): Promise<EvictionPass | undefined> {
    await this.idle();
    const run = this.pass(reason);
    this.running = run.then(
      () => undefined,
      () => undefined,
    );
    void this.running.finally(() => {
      this.running = undefined;
      const again = this.again;
      this.again = undefined;
      if (again !== undefined) void this.schedule(again);
    });
    return run;
  }

  /** Waits until no record is being written and no pass is running or asked for. */
  async idle(): Promise<void> {
    for (;;) {
      if (this.recording.size > 0) await Promise.allSettled([...this.recording]);
      else if (this.running) await this.running;
      else return;
    }
  }

  /** Stops the timer, lets a running pass end, and writes the hits still in memory. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.idle();
    await this.flush();
  }

  private over(): boolean {
    return this.maxBytes !== undefined && this.bytes > this.maxBytes;
  }

  private schedule(reason: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again ??= reason;
      return this.running;
    }
    const run = async (): Promise<void> => {
      for (let next: string | undefined = reason; next !== undefined && !this.closed; ) {
        this.again = undefined;
        await this.pass(next);
        next = this.again;
      }
    };
    this.running = run()
      .catch((error: unknown) => this.log.error({ err: error }, 'mirror: cache eviction failed; the next pass tries again'))
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private tick(): void {
    if (this.firstPendingHit !== undefined && this.now() - this.firstPendingHit >= this.flushMs) void this.flush();
    if (!this.running && this.over() && this.now() >= this.retryAt) void this.schedule('the cache is over its maximum size');
    else if (!this.running && this.now() - this.lastSync >= RESYNC_MS) void this.resync();
  }

  private async resync(): Promise<void> {
    this.lastSync = this.now();
    try {
      this.publish(await this.metadata.cacheSize());
    } catch (error) {
      this.log.warn({ err: error }, 'mirror: cannot read the cache size');
    }
  }

  private pending(): void {
    this.firstPendingHit ??= this.now();
    if (this.manifestHits.size + this.blobHits.size >= MAX_PENDING_HITS) void this.flush();
  }

  /** Writes the hits gathered so far in one transaction. A failure (a full disk) loses recency only. */
  private async flush(): Promise<void> {
    if (this.firstPendingHit === undefined) return;
    const manifests = [...this.manifestHits.values()];
    const blobs = [...this.blobHits.values()];
    this.manifestHits = new Map();
    this.blobHits = new Map();
    this.firstPendingHit = undefined;
    try {
      await this.metadata.touchCache(manifests, blobs);
    } catch (error) {
      this.log.warn({ err: error, manifests: manifests.length, blobs: blobs.length }, 'mirror: cannot record cache hits; their recency is lost');
    }
  }

  private publish(bytes: number): void {
    this.bytes = bytes;
    this.lastSync = this.now();
    this.metrics.cacheSize(bytes);
  }

  /**
   * One pass: hits written, leftover releases deleted, then LRU entries evicted until the cache is
   * at its low-water mark or nothing else may go. Logs one line when it deleted anything or is
   * still over the maximum.
   */
  private async pass(reason: string): Promise<EvictionPass | undefined> {
    if (this.readOnly) return undefined;
    const started = performance.now();
    await this.flush();
    const sizeBefore = await this.metadata.cacheSize();
    const leftovers = await this.finishReleased();
    const result: EvictionPass = { reason, maxBytes: this.maxBytes, sizeBefore, sizeAfter: sizeBefore, manifests: 0, blobs: leftovers.blobs, bytes: leftovers.bytes, inUse: leftovers.inUse, ms: 0 };
    let size = sizeBefore;
    if (this.maxBytes !== undefined && size > this.maxBytes && !leftovers.failed) {
      const target = Math.floor(this.maxBytes * this.lowWater);
      for (let calls = 0; size > target && calls < MAX_CALLS_PER_PASS; calls++) {
        const step = await this.metadata.evictCache({ bytes: size - target, usedBefore: this.now() - this.graceMs, pinned: this.pins.pinned(), now: this.now() });
        result.manifests += step.manifests.length;
        const deleted = await this.deleteReleased(step.released);
        result.blobs += deleted.blobs;
        result.bytes += deleted.bytes;
        result.inUse += deleted.inUse;
        size -= deleted.bytes;
        if (step.exhausted || deleted.failed) break;
      }
    }
    result.sizeAfter = await this.metadata.cacheSize();
    this.publish(result.sizeAfter);
    result.ms = Math.round(performance.now() - started);
    if (result.blobs > 0) this.metrics.evicted(result.bytes, result.blobs);
    const stillOver = this.over();
    this.retryAt = stillOver ? this.now() + Math.max(TICK_MS, this.graceMs) : 0;
    if (stillOver) {
      this.log.warn(
        result,
        'mirror: cache eviction left the cache over its maximum size: what remains is in use, used within the grace period, or kept by local repositories',
      );
    } else if (result.blobs > 0 || result.manifests > 0) this.log.info(result, 'mirror: cache eviction');
    return result;
  }

  /** Deletes what a crash (or a failed delete) left released, before anything else. */
  private async finishReleased(): Promise<{ blobs: number; bytes: number; inUse: number; failed: boolean }> {
    const total = { blobs: 0, bytes: 0, inUse: 0, failed: false };
    for (;;) {
      const released = await this.metadata.releasedBlobs(256);
      if (released.length === 0) return total;
      const deleted = await this.deleteReleased(released);
      total.blobs += deleted.blobs;
      total.bytes += deleted.bytes;
      total.inUse += deleted.inUse;
      if (deleted.failed) return { ...total, failed: true };
    }
  }

  /**
   * Deletes the files of released blobs. Each: unless pinned (then back in the cache), the metadata
   * confirms nothing uses it (a push may have linked it meanwhile), the file goes, then its row.
   * A crash between the two leaves the row released: the next start deletes it again.
   */
  private async deleteReleased(released: CachedBlob[]): Promise<{ blobs: number; bytes: number; inUse: number; failed: boolean }> {
    const done = { blobs: 0, bytes: 0, inUse: 0, failed: false };
    for (const blob of released) {
      try {
        const outcome = await this.pins.deleteUnpinned(blob.digest, async () => {
          if (!(await this.metadata.confirmRelease(blob.digest))) return false;
          await this.blobs.delete(blob.digest);
          await this.metadata.forgetCachedBlob(blob.digest);
          return true;
        });
        if (outcome === 'deleted') {
          done.blobs++;
          done.bytes += blob.size;
        } else if (outcome === 'pinned') {
          await this.metadata.restoreCachedBlob(blob.digest);
          done.inUse++;
        }
      } catch (error) {
        this.log.error({ err: error, digest: blob.digest }, 'mirror: cannot delete an evicted blob; the next pass tries again');
        return { ...done, failed: true };
      }
    }
    return done;
  }
}
