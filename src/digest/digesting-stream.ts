import type { Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createDigester, type Algorithm, type Digest } from './digest.ts';

/**
 * A pass-through stream that hashes and counts what flows, for content whose digest is not known
 * in advance (a docker-archive layer, a decompressed layer whose DiffID is to be checked).
 * Read `digest()` once the stream has ended.
 */
export class DigestingStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: Algorithm;
  private result: Digest | undefined;
  bytes = 0;

  constructor(algorithm: Algorithm = 'sha256') {
    super();
    this.algorithm = algorithm;
    this.hash = createDigester(algorithm);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.result = `${this.algorithm}:${this.hash.digest('hex')}`;
    callback();
  }

  /** The digest of everything that passed; throws if the stream has not finished. */
  digest(): Digest {
    if (this.result === undefined) throw new Error('DigestingStream: digest() called before the stream ended');
    return this.result;
  }
}
