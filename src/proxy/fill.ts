import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { releaseBulkChunk } from '../client/bulk-get.ts';
import type { FsBlobStore } from '../content/fs-blob-store.ts';
import type { CommitResult, Ingest } from '../content/store.ts';
import { StorageError } from '../content/storage-errors.ts';
import type { Digest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import type { Flight } from './flights.ts';

/** An upstream response: the body, and the blob's total size when the upstream said it. */
export interface UpstreamBody {
  body: Readable;
  /** The whole blob's size (a 200's Content-Length, the total of a 206's Content-Range). */
  size?: number;
}

/**
 * Opens the upstream blob at `offset`: the stream must yield the blob's bytes from there on (a
 * server that ignored Range is the opener's to handle). Called again, at the byte reached, when
 * a stream breaks.
 */
export type UpstreamOpener = (offset: number, signal: AbortSignal) => Promise<Readable | UpstreamBody>;

/** What a fill needs from the blob store: its verifying writer, and the ingest file to follow. */
export type FillStore = Pick<FsBlobStore, 'stat' | 'ingest' | 'ingestPath'> & {
  /**
   * Present when the ingests are a local spool in front of the store that keeps the blobs (object
   * storage has no file for readers to follow, fill-spool.ts): puts the blob, verified and
   * committed in the spool, into that store, which checks it again. The fill is committed only
   * once it resolves; `stat` answers for that store.
   */
  publish?(digest: Digest, size: number, signal: AbortSignal): Promise<CommitResult>;
};

export type FillEvent =
  /** The flight found the blob committed already (by another writer): no upstream call. */
  | { type: 'stored'; digest: Digest; size: number }
  | { type: 'open'; digest: Digest; offset: number; attempt: number }
  | { type: 'retry'; digest: Digest; offset: number; attempt: number; error: unknown }
  | { type: 'commit'; digest: Digest; size: number; received: number; alreadyExisted: boolean }
  | { type: 'fail'; digest: Digest; received: number; error: unknown };

export interface FillSettings {
  /** Upstream opens per fill, the first included. */
  attempts: number;
  /** Wait before the next open after a failed one (1-based attempt that failed). */
  backoffMs: (attempt: number) => number;
  /** The most a fill stores when no size is known (neither asked with one nor announced). */
  maxUnknownSize: number;
  /** Whether a failed open or a broken stream is worth another open at the byte reached. */
  retryable: (error: unknown) => boolean;
  onEvent?: ((event: FillEvent) => void) | undefined;
}

/** The upstream's stream ended cleanly before the blob's size: resumed like a broken one. */
export class UpstreamEndedEarlyError extends Error {
  readonly code = 'UPSTREAM_ENDED_EARLY';
  constructor(digest: Digest, received: number, size: number) {
    super(`the upstream's stream of ${digest} ended at byte ${received} of ${size}`);
    this.name = 'UpstreamEndedEarlyError';
  }
}

/**
 * Failures that another open cannot cure: wrong bytes, a wrong size, the local disk, and the
 * upstream's own 4xx verdicts (but 408 and 429, which ask to come back).
 */
export function isRetryableUpstreamFailure(error: unknown): boolean {
  if (error instanceof DigestMismatchError || error instanceof SizeMismatchError || error instanceof StorageError) return false;
  if (typeof error !== 'object' || error === null) return true;
  const { status, code } = error as { status?: unknown; code?: unknown };
  if (code === 'SIZE_INVALID' || code === 'DIGEST_INVALID' || code === 'ABORT_ERR') return false;
  return !(typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429);
}

/** A view of a fill from one position to `end` (exclusive), for one reader. */
export interface FillCursor {
  readonly position: number;
  readonly end: number;
  /**
   * Waits until bytes at the cursor may be read, and resolves how many (0 at `end`, which comes
   * only once the blob is verified). Lets a reader size its buffer to what is there.
   */
  ready(signal?: AbortSignal): Promise<number>;
  /**
   * Reads at the cursor into `buffer`, waiting until there is something to read: only bytes
   * that reached the ingest file, and the cursor's last byte only once the whole blob is in the
   * file and its digest checked (not waiting for it to be durable and committed). Resolves 0 at
   * `end`; rejects with the fill's failure before that, or when `signal` aborts.
   */
  read(buffer: Buffer, signal?: AbortSignal): Promise<number>;
  /** Gives back the cursor's hold on the ingest file. Idempotent. */
  close(): void;
}

type State = 'running' | 'committed' | 'failed';


/**
 * One upstream download of one blob into the store, followed by any number of readers.
 *
 * The writer side is the store's verifying writer: the upstream stream is appended to an ingest
 * (resuming with another open at the byte reached when it breaks) and committed under the digest
 * at EOF. Readers never share the writer's memory: each reads the ingest file through one file
 * handle the fill keeps open (pread at its own position), up to the bytes appended so far, and
 * sleeps until the next chunk is appended. So memory is one chunk per reader whatever the blob
 * size, a slow reader never holds the download back, and a reader that leaves changes nothing
 * for the download. The last byte of every reader is held back until the digest of the whole file
 * is checked: when the upstream lied, every reader fails before its last byte. It is not held for
 * the fsyncs, the rename and the cache's records that follow (a small blob's cold GET waited
 * about as long for those as for the upstream); should they fail, what was read was right all
 * the same, and the next request fetches again.
 */
export class Fill implements Flight {
  readonly digest: Digest;
  /** Settles when the fill committed or failed, the ingest gone either way. Never rejects. */
  readonly done: Promise<void>;

  private readonly store: FillStore;
  private readonly upstream: UpstreamOpener;
  private readonly settings: FillSettings;
  private readonly ref: string;
  private state: State = 'running';
  /**
   * The bytes appended passed the digest check: readers may take their last byte once the file
   * holds all of them, even should the commit or the publish to the shared store then fail (what
   * they read was right).
   */
  private verified = false;
  private failure: unknown;
  private expectedSize: number | undefined;
  /** Bytes appended to the ingest so far: an upper bound of what the file holds. */
  private published = 0;
  /** Bytes received from upstream over all opens (for the events). */
  private received = 0;
  /** The ingest file, opened for reading; shared by every cursor, closed when the last lets go. */
  private handle: FileHandle | undefined;
  private holds = 0;
  private readonly waiters = new Set<() => void>();
  /** Resolves once readers may follow the fill (its file is open) or it is over. */
  private readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(store: FillStore, request: { digest: Digest; size?: number | undefined; open: UpstreamOpener }, settings: FillSettings, ref: string, signal: AbortSignal) {
    this.store = store;
    this.digest = request.digest;
    this.expectedSize = request.size;
    this.upstream = request.open;
    this.settings = settings;
    this.ref = ref;
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    this.done = this.run(signal);
  }

  get status(): State {
    return this.state;
  }

  /** Every byte is in the ingest file and the digest checked: only the commit is left (or it failed). */
  get complete(): boolean {
    return this.verified && this.expectedSize !== undefined && this.published >= this.expectedSize;
  }

  /** The blob's size, once known (asked with, announced by the upstream, or once every byte is in and checked). */
  async size(signal?: AbortSignal): Promise<number> {
    for (;;) {
      if (this.state === 'failed') throw this.failure;
      if (this.expectedSize !== undefined) return this.expectedSize;
      await this.changed(signal);
      signal?.throwIfAborted();
    }
  }

  /**
   * A cursor over [start, end) of the blob, or undefined when the blob is committed (then read it
   * from the store). Rejects with the fill's failure.
   */
  async cursor(start: number, end: number): Promise<FillCursor | undefined> {
    await this.ready;
    if (this.state === 'failed') throw this.failure;
    const handle = this.handle;
    if (this.state === 'committed' || !handle) return undefined;
    this.holds++;
    let position = start;
    let closed = false;
    return {
      get position() {
        return position;
      },
      end,
      ready: async (signal) => {
        if (closed) throw new Error('the fill cursor is closed');
        return this.visibleFrom(position, end, signal);
      },
      read: async (buffer, signal) => {
        if (closed) throw new Error('the fill cursor is closed');
        const count = await this.readAt(handle, buffer, position, end, signal);
        position += count;
        return count;
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.release();
      },
    };
  }

  private async visibleFrom(position: number, end: number, signal?: AbortSignal): Promise<number> {
    for (;;) {
      signal?.throwIfAborted();
      // `published` trails the verdict until the last writes land (and never gets there when one
      // of them fails).
      const complete = this.complete;
      if (this.state === 'failed' && !complete) throw this.failure;
      const whole = complete || this.state === 'committed';
      if (whole && position >= end) return 0;
      const visible = whole ? end : Math.min(end - 1, this.published);
      if (position < visible) return visible - position;
      await this.changed(signal);
    }
  }

  private async readAt(handle: FileHandle, buffer: Buffer, position: number, end: number, signal?: AbortSignal): Promise<number> {
    // `published` moves only once a chunk is in the file (the ingest's onWritten), so what is
    // visible can always be read.
    const visible = await this.visibleFrom(position, end, signal);
    if (visible === 0) return 0;
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, visible), position);
    if (bytesRead === 0) throw new Error(`ingest ${this.ref} of ${this.digest} ended at byte ${position}, before the ${position + visible} written`);
    return bytesRead;
  }

  private async run(signal: AbortSignal): Promise<void> {
    let ingest: Ingest | undefined;
    let holding = false;
    try {
      const stored = await this.store.stat(this.digest);
      if (stored !== undefined) {
        // Committed since the caller looked (or, across replicas, by the flight another one ran).
        this.expectedSize = stored;
        this.settle('committed');
        this.emit({ type: 'stored', digest: this.digest, size: stored });
        return;
      }
      ingest = await this.store.ingest(this.ref);
      this.handle = await open(this.store.ingestPath(this.ref), 'r');
      this.holds = 1;
      holding = true;
      this.markReady();
      const size = await this.download(ingest, signal);
      let result = await ingest.commit(this.digest, size);
      ingest = undefined; // the commit took the ingest file (or removed it)
      this.expectedSize = result.size;
      if (this.store.publish) {
        // Verified: readers finish from the spool file (still open here) while the blob goes
        // into the shared store; their last byte does not wait for that upload.
        this.verified = true;
        this.notify();
        result = await this.store.publish(this.digest, result.size, signal);
      }
      this.settle('committed');
      this.emit({ type: 'commit', digest: this.digest, size: result.size, received: this.received, alreadyExisted: result.alreadyExisted });
    } catch (error) {
      this.failure = signal.aborted ? signal.reason : error;
      this.settle('failed');
      this.emit({ type: 'fail', digest: this.digest, received: this.received, error: this.failure });
      // A failed commit removed the file already; anything else leaves it to remove here.
      if (ingest) await ingest.abort().catch(() => undefined);
    } finally {
      this.markReady();
      if (holding) this.release();
    }
  }

  /** Appends the upstream's bytes, resuming at the byte reached; resolves to the blob's size. */
  private async download(ingest: Ingest, signal: AbortSignal): Promise<number> {
    let offset = 0;
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      const base = offset;
      let appended = 0;
      try {
        this.emit({ type: 'open', digest: this.digest, offset, attempt });
        const opened = await this.upstream(offset, signal);
        const { body, size } = isUpstreamBody(opened) ? opened : { body: opened, size: undefined };
        if (size !== undefined) this.learnSize(size, body);
        const limit = this.expectedSize ?? this.settings.maxUnknownSize;
        const progress = {
          offset,
          maxBytes: Math.max(0, limit - offset),
          signal,
          onProgress: (bytes: number) => {
            this.received += bytes - appended;
            appended = bytes;
          },
          // Readers may read up to what is in the file, not merely received.
          onWritten: (size: number) => this.advance(size),
          // Readers read the file, never the chunks: once written, a bulk read's batch can take
          // the next reads (fresh 1 MiB buffers cost the mirror a third of its CPU in page faults
          // and garbage collection). Chunks of other streams are not bulk-get's and stay as they are.
          release: releaseBulkChunk,
          // The whole blob was hashed on the way in: readers need not wait for the commit.
          onHashed: (digest: Digest, total: number) => {
            if (digest !== this.digest || (this.expectedSize !== undefined && total !== this.expectedSize)) return;
            this.expectedSize = total;
            this.verified = true;
            this.notify();
          },
        };
        offset = await ingest.append(body, progress).catch((error: unknown) => {
          // The ingest counts what this append may take; the blob's own numbers say more.
          if (error instanceof SizeMismatchError && error.digest === 'upload') throw new SizeMismatchError(this.digest, limit, base + error.actual);
          throw error;
        });
        if (this.expectedSize === undefined || offset === this.expectedSize) return offset;
        throw new UpstreamEndedEarlyError(this.digest, offset, this.expectedSize);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (!this.settings.retryable(error) || attempt >= this.settings.attempts) throw error;
        // The ingest keeps every byte that was received (the file is ended, not destroyed, when
        // the source breaks): the next open starts after them. Nothing is ever cut from under a
        // reader, who may have read any of them.
        const kept = await ingest.size();
        if (kept < this.published) throw new Error(`ingest ${this.ref} of ${this.digest} holds ${kept} bytes, fewer than the ${this.published} appended`);
        offset = kept;
        this.advance(kept);
        this.emit({ type: 'retry', digest: this.digest, offset, attempt, error });
        await sleep(this.settings.backoffMs(attempt), undefined, { signal });
      }
    }
  }

  /** Tells the listener (logs, metrics); a listener that throws must not change the fill's outcome. */
  private emit(event: FillEvent): void {
    try {
      this.settings.onEvent?.(event);
    } catch {
      // ignored: see above
    }
  }

  private learnSize(size: number, body: Readable): void {
    if (this.expectedSize === undefined) {
      this.expectedSize = size;
      this.notify();
    } else if (size !== this.expectedSize) {
      body.destroy();
      throw new SizeMismatchError(this.digest, this.expectedSize, size);
    }
  }

  private advance(total: number): void {
    if (total <= this.published) return;
    this.published = total;
    this.notify();
  }

  private settle(state: 'committed' | 'failed'): void {
    this.state = state;
    this.notify();
  }

  private release(): void {
    if (--this.holds > 0 || !this.handle) return;
    const handle = this.handle;
    this.handle = undefined;
    handle.close().catch(() => undefined);
  }

  /** Resolves at the next change (bytes written, size learnt, settled) or an abort. */
  private changed(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const wake = (): void => {
        this.waiters.delete(wake);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      this.waiters.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

function isUpstreamBody(value: Readable | UpstreamBody): value is UpstreamBody {
  return typeof (value as Partial<Readable>).pipe !== 'function' && 'body' in value;
}
