import { Readable } from 'node:stream';
import { ClientError } from './errors.ts';
import { backoffDelay, sleep, type RetryPolicy } from './retry.ts';
import { StalledError, type TransportResponse } from './transport.ts';

/** How one attempt asks for the bytes from `from` on (a `Range` request when from > 0). */
export type FetchFrom = (from: number) => Promise<TransportResponse>;

export interface BlobDownloadOptions {
  /** The blob's size: the download never yields past it, and ends only once it has all of it. */
  size: number;
  /** Where to start. */
  offset: number;
  retry: RetryPolicy;
  /** `GET host/path`, for messages. */
  what: string;
  registry: string;
  signal?: AbortSignal;
  /** Sees the error the download ends with (to mark it as the source's). */
  onFailure?: (error: Error) => unknown;
}

/**
 * Chunks a reader may fall behind before the response is paused; it is resumed on demand. A blob
 * of 1 MiB or more arrives in reads of up to 1 MiB (bulk-get.ts), so this is at most 4 MiB per
 * download; 16 had been no faster (a 200 MiB pull, 8 interleaved rounds) and its peak RSS 20 MB higher. Counted in chunks: the stream is in object mode so that a
 * reader gets the response's own buffers one by one, never a fresh concatenation of them (which a
 * byte-mode `read()` makes of whatever is buffered: a copy of every byte, and garbage).
 */
const BUFFERED_CHUNKS = 4;

/**
 * A blob's bytes from an offset on, resuming with `Range` after a broken or stalled connection,
 * as one byte stream. The response's chunks are pushed as they arrive: no async generator per
 * hop, so a 200 MiB layer costs a few thousand `push` calls, not a chain of promises per chunk
 * (which had been most of a pull's JavaScript time).
 *
 * An error this stream ends with is final: the retries already happened here.
 */
export class BlobDownload extends Readable {
  private readonly fetchFrom: FetchFrom;
  private readonly options: BlobDownloadOptions;
  private received: number;
  private attempt = 0;
  private stalls = 0;
  private response: TransportResponse | undefined;
  private fetching = false;
  private finished = false;

  constructor(fetchFrom: FetchFrom, options: BlobDownloadOptions) {
    super({ objectMode: true, highWaterMark: BUFFERED_CHUNKS });
    this.fetchFrom = fetchFrom;
    this.options = options;
    this.received = options.offset;
    const signal = options.signal;
    if (signal) {
      const onAbort = () => this.destroy(signal.reason as Error);
      signal.addEventListener('abort', onAbort, { once: true });
      this.once('close', () => signal.removeEventListener('abort', onAbort));
    }
  }

  override _read(): void {
    if (this.response) this.response.body.resume();
    else if (!this.fetching && !this.finished) void this.nextAttempt();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.finished = true;
    this.response?.body.destroy();
    this.response = undefined;
    if (error) this.options.onFailure?.(error);
    callback(error);
  }

  private async nextAttempt(): Promise<void> {
    const { size, signal } = this.options;
    if (this.received >= size && !(size === 0 && this.attempt === 0)) return this.end();
    this.fetching = true;
    this.attempt++;
    let response: TransportResponse;
    try {
      response = await this.fetchFrom(this.received);
    } catch (error) {
      this.fetching = false;
      this.destroy(error as Error); // the request's own retries are over
      return;
    }
    this.fetching = false;
    if (this.destroyed) {
      response.body.destroy();
      return;
    }
    if (signal?.aborted) {
      response.body.destroy();
      this.destroy(signal.reason as Error);
      return;
    }
    this.response = response;
    const before = this.received;
    // A server that ignored Range sends the whole blob again: skip what is already here.
    let skip = this.received > 0 && response.statusCode === 200 ? this.received : 0;
    const body = response.body;
    let settled = false;
    const settle = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      if (this.response === response) this.response = undefined;
      if (this.destroyed || this.finished) return;
      if (error === undefined && this.received >= size) return this.end();
      void this.retryAfter(error ?? new Error(`the response ended at byte ${this.received} of ${size}`), before);
    };
    const onData = (chunk: Buffer) => {
      let piece = chunk;
      if (skip > 0) {
        const drop = Math.min(skip, piece.length);
        piece = piece.subarray(drop);
        skip -= drop;
      }
      if (piece.length === 0) return;
      if (this.received + piece.length > size) {
        settled = true;
        body.destroy();
        this.destroy(new ClientError(`${this.options.what}: the blob is longer than its ${size} bytes`, { status: response.statusCode, registry: this.options.registry, code: 'SIZE_INVALID' }));
        return;
      }
      this.received += piece.length;
      if (!this.push(piece)) body.pause();
    };
    body.on('data', onData);
    body.once('end', () => settle(undefined));
    body.once('error', (error) => settle(error));
    // A response destroyed without an error (the reader went away) just stops.
    body.once('close', () => settle(body.readableEnded ? undefined : new Error('the connection closed')));
  }

  private async retryAfter(error: Error, before: number): Promise<void> {
    const { retry, signal } = this.options;
    // A stall that moved nothing counts towards giving up early; progress resets it.
    this.stalls = error instanceof StalledError && this.received - before < 64 * 1024 ? this.stalls + 1 : 0;
    if (signal?.aborted) return void this.destroy(signal.reason as Error);
    if (this.attempt >= retry.attempts || this.stalls >= 2) {
      const code = (error as NodeJS.ErrnoException).code;
      const reason = error instanceof StalledError ? error.reason : `the connection broke after byte ${this.received} of ${this.options.size} (${error.message}${code ? `, ${code}` : ''})`;
      this.destroy(new ClientError(`${this.options.what}: ${reason}; gave up after ${this.attempt} attempts; try again later`, { status: 0, registry: this.options.registry, cause: error }));
      return;
    }
    this.fetching = true;
    try {
      await sleep(backoffDelay(retry, this.attempt), signal);
    } catch (aborted) {
      this.fetching = false;
      this.destroy(aborted as Error);
      return;
    }
    this.fetching = false;
    if (!this.destroyed) void this.nextAttempt();
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.push(null);
  }
}
