import { createHash } from 'node:crypto';
import type { Transform } from 'node:stream';
import type { Digest } from '../digest/digest.ts';
import type { DecodeThread } from './decode-thread.ts';
import { compressionOf, createDecoder, DECODE_QUEUE, type Compression } from './decompress.ts';

export interface LayerMeasurement {
  /** sha256 of the uncompressed bytes. */
  diffId: Digest;
  /** Uncompressed size in bytes. */
  size: number;
}

/** Where a LayerDigester's compressed bytes go once their compression is known. */
export interface DecodeSink {
  /** False: wait for `drained()` before writing more. */
  write(chunk: Buffer): boolean;
  drained(): Promise<void>;
  readonly error: Error | undefined;
  /** True when a chunk written is still read after `write` returns (so its buffer must not be reused yet). */
  readonly keepsChunks: boolean;
  end(): Promise<LayerMeasurement>;
  destroy(): void;
}

/**
 * Measures a layer (DiffID and uncompressed size) from its compressed bytes as they are written
 * in, so a download can be measured while it arrives. Decompression runs in libuv's thread pool;
 * its output is hashed on this thread, or, given a DecodeThread, on that thread (a big layer's
 * two sha256 passes then use two cores). Memory stays bounded: `write` returns false once a few
 * MiB wait to be decoded, and the writer then awaits `drained()` (as with a Writable).
 *
 * A decoding failure never throws from `write` (a download must go on, and its own digest check
 * come first); it is kept in `error` and rejects `end()`.
 */
export class LayerDigester {
  private readonly identity: Digest | undefined;
  private readonly thread: DecodeThread | undefined;
  private head: Buffer[] = [];
  private headLength = 0;
  private kind: Compression | undefined;
  private sink: DecodeSink | undefined;
  private ended = false;

  /**
   * `identity`: the layer's sha256 digest, when its bytes are verified against it before the result
   * is used. An uncompressed layer's DiffID is then that digest, and its bytes need no hashing here.
   * `thread`: decode and hash there rather than on this thread.
   */
  constructor(options: { identity?: Digest; thread?: DecodeThread } = {}) {
    this.identity = options.identity?.startsWith('sha256:') ? options.identity : undefined;
    this.thread = options.thread;
  }

  /** The layer's compression, once its first bytes were seen. */
  get compression(): Compression | undefined {
    return this.kind;
  }

  /** True when the last chunk written is still read after `write` returned: the head kept to sniff, or a decoder in the thread pool. */
  get keepsChunks(): boolean {
    return this.sink ? this.sink.keepsChunks : this.head.length > 0;
  }

  /** The decoding failure, if any: the layer is not valid gzip/zstd. */
  get error(): Error | undefined {
    return this.sink?.error;
  }

  /** Feeds compressed bytes. False: wait for `drained()` before writing more. */
  write(chunk: Buffer): boolean {
    if (this.ended) throw new Error('LayerDigester: write after end');
    if (this.sink) return this.sink.write(chunk);
    this.head.push(chunk);
    this.headLength += chunk.length;
    const head = this.head.length === 1 ? chunk : Buffer.concat(this.head, this.headLength);
    const kind = compressionOf(head);
    if (kind === undefined) return true;
    return this.start(kind).write(head);
  }

  /** Resolves once more may be written (at once unless the decoder's queue is full). */
  drained(): Promise<void> {
    return this.sink?.drained() ?? Promise.resolve();
  }

  /** All bytes were written: the measurement, or the decoding failure. */
  async end(): Promise<LayerMeasurement> {
    if (this.ended) throw new Error('LayerDigester: end called twice');
    this.ended = true;
    let sink = this.sink;
    if (!sink) {
      const head = Buffer.concat(this.head, this.headLength);
      sink = this.start(compressionOf(head, true)!);
      sink.write(head);
    }
    return sink.end();
  }

  /** Stops decoding and frees the decoder (after a failed download). Safe to call at any time. */
  destroy(): void {
    this.sink?.destroy();
  }

  private start(kind: Compression): DecodeSink {
    this.kind = kind;
    this.head = [];
    this.sink = kind === 'none' ? new PlainSink(this.identity) : this.thread ? this.thread.open(kind) : new DecoderSink(kind);
    return this.sink;
  }
}

/** An uncompressed layer: its bytes are its tar. */
class PlainSink implements DecodeSink {
  private readonly identity: Digest | undefined;
  private readonly hash = createHash('sha256');
  private bytes = 0;
  readonly error = undefined;
  readonly keepsChunks = false;

  constructor(identity: Digest | undefined) {
    this.identity = identity;
  }

  write(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    if (!this.identity) this.hash.update(chunk);
    return true;
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  async end(): Promise<LayerMeasurement> {
    return { diffId: this.identity ?? `sha256:${this.hash.digest('hex')}`, size: this.bytes };
  }

  destroy(): void {}
}

/** Decodes in the thread pool, hashes the output on this thread. */
export class DecoderSink implements DecodeSink {
  /** zlib reads a chunk in the thread pool, after `write` returned. */
  readonly keepsChunks = true;
  private readonly decoder: Transform;
  private readonly hash = createHash('sha256');
  private bytes = 0;
  private failure: Error | undefined;

  constructor(kind: Exclude<Compression, 'none'>) {
    this.decoder = createDecoder(kind, { writableHighWaterMark: DECODE_QUEUE });
    this.decoder.on('data', (chunk: Buffer) => {
      this.hash.update(chunk);
      this.bytes += chunk.length;
    });
    this.decoder.on('error', (error: Error) => {
      this.failure ??= error;
    });
  }

  get error(): Error | undefined {
    return this.failure;
  }

  write(chunk: Buffer): boolean {
    if (this.failure || this.decoder.destroyed || chunk.length === 0) return true;
    return this.decoder.write(chunk);
  }

  drained(): Promise<void> {
    const decoder = this.decoder;
    if (!decoder.writableNeedDrain || this.failure || decoder.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        decoder.off('drain', done);
        decoder.off('close', done);
        resolve();
      };
      decoder.on('drain', done);
      decoder.on('close', done);
    });
  }

  async end(): Promise<LayerMeasurement> {
    const decoder = this.decoder;
    if (!this.failure && !decoder.destroyed) {
      await new Promise<void>((resolve) => {
        decoder.once('end', resolve);
        decoder.once('close', resolve); // after an error, or a destroy
        decoder.end();
      });
    }
    if (this.failure) throw this.failure;
    if (!decoder.readableEnded) throw new Error('layer decoding was stopped');
    return { diffId: `sha256:${this.hash.digest('hex')}`, size: this.bytes };
  }

  destroy(): void {
    this.decoder.destroy();
  }
}
