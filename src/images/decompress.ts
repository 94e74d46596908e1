import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';

export type Compression = 'gzip' | 'zstd' | 'none';

/**
 * Output chunk of the decoders. zlib's default, 16 KiB, costs a thread-pool round trip and a
 * 'data' event per 16 KiB: decompressing and hashing a big layer then took 3-4 times longer.
 */
const DECODE_CHUNK = 256 * 1024;

/**
 * Compressed bytes a LayerDigester lets queue in front of its decoder before its writer must wait:
 * enough that a download never waits on one thread-pool round trip, small enough to stay bounded.
 */
export const DECODE_QUEUE = 4 * 1024 * 1024;

/**
 * A layer's compression judged by its first bytes (gzip 1f 8b, zstd 28 b5 2f fd), since media
 * types lie often enough (Docker's `.tar.gzip` on uncompressed tars, foreign layers). Undecided
 * (undefined) while fewer than 4 bytes are known, unless `final`.
 */
export function compressionOf(head: Uint8Array, final = false): Compression | undefined {
  if (head.length < 4 && !final) return undefined;
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export function createDecoder(kind: Compression, options: { writableHighWaterMark?: number; chunkSize?: number } = {}): Transform {
  if (kind === 'gzip') return createGunzip({ chunkSize: DECODE_CHUNK, ...options });
  if (kind === 'zstd') return createZstdDecompress({ chunkSize: DECODE_CHUNK, ...options });
  return new PassThrough({ ...(options.writableHighWaterMark ? { writableHighWaterMark: options.writableHighWaterMark } : {}) });
}

/** Undoes a layer's compression, judged by its first bytes (see compressionOf). */
export function decompressLayer(source: Readable): Readable {
  const sniffer = new MagicSniffer();
  source.on('error', (error) => sniffer.destroy(error));
  return source.pipe(sniffer).output;
}

class MagicSniffer extends Transform {
  readonly output = new PassThrough();
  private head: Buffer[] = [];
  private headLength = 0;
  private decoder: Transform | undefined;

  constructor() {
    super();
    this.on('error', (error) => this.output.destroy(error));
  }

  private start(): void {
    const head = Buffer.concat(this.head);
    this.decoder = createDecoder(compressionOf(head, true)!);
    this.decoder.on('error', (error) => this.output.destroy(error));
    this.decoder.pipe(this.output);
    this.decoder.write(head);
    this.head = [];
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.decoder) {
      this.head.push(chunk);
      this.headLength += chunk.length;
      if (this.headLength < 4) return callback();
      this.start();
      return callback();
    }
    if (this.decoder.write(chunk)) callback();
    else this.decoder.once('drain', () => callback());
  }

  override _flush(callback: TransformCallback): void {
    if (!this.decoder) this.start();
    this.decoder!.end(() => callback());
  }
}
