import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';

/**
 * Undoes a layer's compression, judged by its first bytes (gzip 1f 8b, zstd 28 b5 2f fd), since
 * media types lie often enough (Docker's `.tar.gzip` on uncompressed tars, foreign layers).
 */
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
    if (head[0] === 0x1f && head[1] === 0x8b) this.decoder = createGunzip();
    else if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) this.decoder = createZstdDecompress();
    else this.decoder = new PassThrough();
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
