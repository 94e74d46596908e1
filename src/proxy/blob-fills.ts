import { randomUUID } from 'node:crypto';
import { http } from '../platform/node-http.ts';
import { Socket } from 'node:net';
import { Readable, type Writable } from 'node:stream';
import type { FsBlobStore } from '../content/fs-blob-store.ts';
import type { SendBuffers } from '../content/send-buffers.ts';
import { writeAndWait } from '../content/write-and-wait.ts';
import type { ByteRange } from '../content/store.ts';
import type { Digest } from '../digest/digest.ts';
import { Fill, isRetryableUpstreamFailure, type FillCursor, type FillEvent, type FillSettings, type FillStore, type UpstreamOpener } from './fill.ts';
import { LocalFlights, type Flights } from './flights.ts';

/**
 * The store the mirror fills: the verifying writer, reads of committed blobs, the send buffers
 * (for reads of a fill's file). An FsBlobStore, or a FillSpool in front of object storage.
 */
export type FillTarget = Pick<FsBlobStore, 'stat' | 'reader' | 'copyTo' | 'ingest' | 'ingestPath'> & Pick<FillStore, 'publish'> & { readonly sendBuffers?: SendBuffers };

export interface BlobFillsOptions {
  /** Who runs the fill of a digest; by default one per digest in this process. */
  flights?: Flights<Fill>;
  /**
   * Upstream opens per fill, the first included (default 3). An opener that resumes on its own
   * (RegistryClient.openBlobFrom) needs fewer.
   */
  attempts?: number;
  /** Wait after failed open number `attempt` (default 200 ms, doubling, at most 5 s). */
  backoffMs?: (attempt: number) => number;
  /** The most stored for a blob whose size nobody knows (default 64 GiB). */
  maxUnknownSize?: number;
  /** Which failures are worth another open at the byte reached (default: isRetryableUpstreamFailure). */
  retryable?: (error: unknown) => boolean;
  /** Every fill's progress, for logs and metrics. */
  onEvent?: (event: FillEvent) => void;
}

/** A blob to serve, and how to fetch it on a miss. */
export interface FillRequest {
  digest: Digest;
  /** The size when known (from a manifest's descriptor); otherwise the upstream's word, checked by the digest. */
  size?: number | undefined;
  open: UpstreamOpener;
}

/** Where a blob's bytes come from: the store (a hit) or a fill (started now, or joined). */
export interface BlobSource {
  readonly digest: Digest;
  readonly from: 'store' | 'fill';
  /** The blob's size; waits for the upstream's answer when nobody knew it. Rejects when the fill failed. */
  size(): Promise<number>;
  /**
   * The blob, or one inclusive range of it, as its bytes arrive. On a fill that fails, the stream
   * is destroyed with the failure before its last byte.
   */
  reader(range?: ByteRange): Promise<Readable>;
  /**
   * Writes the blob (or a range) into `destination` and ends it. On a failure (the fill's, or the
   * destination's), `destination` is destroyed before its last byte and the promise rejects.
   * Into a socket or an HTTP response, the read buffers come from the store's SendBuffers.
   */
  copyTo(destination: Writable, range?: ByteRange): Promise<void>;
}

const DEFAULTS = {
  attempts: 3,
  backoffMs: (attempt: number) => Math.min(200 * 2 ** (attempt - 1), 5_000),
  maxUnknownSize: 64 * 1024 ** 3,
};
const READ_CHUNK = 256 * 1024;

/**
 * The mirror's blob misses: each digest is fetched from upstream once, however many callers ask
 * at the same moment, into the store through its verifying writer, while every caller streams
 * the bytes as they arrive, each from its own offset. See `Fill` for how readers follow it.
 * One instance per store; it owns its flights (DESIGN.md §2.5).
 */
export class BlobFills {
  private readonly store: FillTarget;
  private readonly flights: Flights<Fill>;
  private readonly settings: FillSettings;
  private readonly active = new Set<Fill>();
  private readonly controller = new AbortController();

  constructor(store: FillTarget, options: BlobFillsOptions = {}) {
    this.store = store;
    this.flights = options.flights ?? new LocalFlights<Fill>();
    this.settings = {
      attempts: Math.max(1, options.attempts ?? DEFAULTS.attempts),
      backoffMs: options.backoffMs ?? DEFAULTS.backoffMs,
      maxUnknownSize: options.maxUnknownSize ?? DEFAULTS.maxUnknownSize,
      retryable: options.retryable ?? isRetryableUpstreamFailure,
      onEvent: options.onEvent,
    };
  }

  /** Fills running now. */
  get running(): number {
    return this.active.size;
  }

  /**
   * The blob from the store when committed; otherwise the fill of it, joined or started. The fill
   * goes on whatever becomes of the callers, until the blob is committed or the fill failed.
   */
  async source(request: FillRequest): Promise<BlobSource> {
    if (this.controller.signal.aborted) throw new Error('the mirror is shutting down');
    const stored = await this.store.stat(request.digest);
    if (stored !== undefined) return new StoredSource(this.store, request.digest, stored);
    for (let tries = 1; ; tries++) {
      const fill = await this.flights.join(request.digest, () => this.start(request));
      if (fill.complete && !this.store.publish) {
        // Only its local commit is left, a few milliseconds: a caller who comes now is served the
        // stored blob (a hit, which an nginx in front may send), as one after the commit is. (An
        // upload from a spool to the shared store can take minutes: callers read the spool.)
        await fill.done;
        const committed = await this.store.stat(request.digest);
        if (committed !== undefined) return new StoredSource(this.store, request.digest, committed);
      }
      // One that failed just before we came is not ours to report: the next fill is.
      if (fill.status !== 'failed' || tries >= 3) return new FillSource(this.store, fill);
      await fill.done;
    }
  }

  /** Waits until every fill running now is over (committed, or failed with its ingest removed). */
  async settled(): Promise<void> {
    await Promise.all([...this.active].map((fill) => fill.done));
  }

  /** Aborts every fill (their readers fail, their ingests go) and waits until they are over. */
  async close(): Promise<void> {
    this.controller.abort(new Error('the mirror is shutting down'));
    await this.settled();
  }

  private start(request: FillRequest): Fill {
    // The ref starts with `fill-`: no upload session has that name, so a crash's leftover is
    // removed when the registry opens (open-registry.ts removes ingests without a session).
    const fill = new Fill(this.store, request, this.settings, `fill-${randomUUID()}`, this.controller.signal);
    this.active.add(fill);
    void fill.done.then(() => this.active.delete(fill));
    return fill;
  }
}

class StoredSource implements BlobSource {
  readonly from = 'store';
  readonly digest: Digest;
  private readonly store: FillTarget;
  private readonly bytes: number;

  constructor(store: FillTarget, digest: Digest, size: number) {
    this.store = store;
    this.digest = digest;
    this.bytes = size;
  }

  async size(): Promise<number> {
    return this.bytes;
  }

  async reader(range?: ByteRange): Promise<Readable> {
    checkRange(range, this.bytes);
    return this.store.reader(this.digest, range);
  }

  async copyTo(destination: Writable, range?: ByteRange): Promise<void> {
    checkRange(range, this.bytes);
    return this.store.copyTo(this.digest, destination, range);
  }
}

class FillSource implements BlobSource {
  readonly from = 'fill';
  readonly digest: Digest;
  private readonly store: FillTarget;
  private readonly fill: Fill;

  constructor(store: FillTarget, fill: Fill) {
    this.store = store;
    this.fill = fill;
    this.digest = fill.digest;
  }

  size(): Promise<number> {
    return this.fill.size();
  }

  async reader(range?: ByteRange): Promise<Readable> {
    const cursor = await this.open(range);
    return cursor ? new FillReader(cursor) : this.store.reader(this.digest, range);
  }

  async copyTo(destination: Writable, range?: ByteRange): Promise<void> {
    let cursor: FillCursor | undefined;
    try {
      cursor = await this.open(range);
    } catch (error) {
      fail(destination, error);
      throw error;
    }
    if (!cursor) return this.store.copyTo(this.digest, destination, range);
    // Lending is safe only where a write's callback means the bytes left our memory (see FsBlobStore.copyTo).
    const buffers = destination instanceof http.ServerResponse || destination instanceof Socket ? this.store.sendBuffers : undefined;
    const gone = new AbortController();
    const onClose = (): void => gone.abort(new Error('the destination closed before the blob was sent'));
    destination.once('close', onClose);
    try {
      for (;;) {
        const wanted = await cursor.ready(gone.signal);
        if (wanted === 0) break;
        const buffer = buffers ? buffers.take(wanted) : Buffer.allocUnsafe(Math.min(READ_CHUNK, wanted));
        let count: number;
        try {
          count = await cursor.read(buffer, gone.signal);
        } catch (error) {
          buffers?.give(buffer);
          throw error;
        }
        if (count === 0) {
          buffers?.give(buffer);
          continue;
        }
        try {
          await writeAndWait(destination, buffer.subarray(0, count));
        } catch (error) {
          buffers?.forget(buffer); // a destroyed socket may still hold it
          throw error;
        }
        buffers?.give(buffer);
      }
      await new Promise<void>((resolve, reject) => destination.end((error?: Error | null) => (error ? reject(error) : resolve())));
    } catch (error) {
      fail(destination, error);
      throw error;
    } finally {
      destination.off('close', onClose);
      cursor.close();
    }
  }

  private async open(range: ByteRange | undefined): Promise<FillCursor | undefined> {
    const size = await this.fill.size();
    checkRange(range, size);
    return this.fill.cursor(range?.start ?? 0, range ? range.end + 1 : size);
  }
}

/** A Readable over a fill cursor: one chunk in memory at a time, the cursor let go when it closes. */
class FillReader extends Readable {
  private readonly cursor: FillCursor;
  private readonly gone = new AbortController();
  private reading = false;

  constructor(cursor: FillCursor) {
    super({ highWaterMark: READ_CHUNK });
    this.cursor = cursor;
  }

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.next().then(
      (chunk) => {
        this.reading = false;
        if (!this.destroyed) this.push(chunk);
      },
      (error: unknown) => {
        this.reading = false;
        this.destroy(error as Error);
      },
    );
  }

  /** The next chunk, sized to what the fill holds beyond the cursor (so no large buffer for a small read); null at the end. */
  private async next(): Promise<Buffer | null> {
    for (;;) {
      const visible = await this.cursor.ready(this.gone.signal);
      if (visible === 0) return null;
      const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, visible));
      const count = await this.cursor.read(buffer, this.gone.signal);
      if (count > 0) return count === buffer.length ? buffer : buffer.subarray(0, count);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.gone.abort(error ?? new Error('the reader was closed'));
    this.cursor.close();
    callback(error);
  }
}

function checkRange(range: ByteRange | undefined, size: number): void {
  if (!range) return;
  if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.start > range.end || range.end >= size) {
    throw new RangeError(`range ${range.start}-${range.end} is outside the blob's ${size} bytes`);
  }
}

/** Cuts `destination` with `error`; an error nobody listens for is not allowed to crash the process. */
function fail(destination: Writable, error: unknown): void {
  if (destination.destroyed) return;
  if (destination.listenerCount('error') === 0) destination.once('error', () => undefined);
  destination.destroy(error instanceof Error ? error : new Error(String(error)));
}
