import { Transform, type TransformCallback } from 'node:stream';
import { createDigester, parseDigest, type Digest } from './digest.ts';
import { DigestMismatchError, SizeMismatchError } from './errors.ts';

/**
 * A pass-through stream that hashes what flows and fails the stream at EOF unless the
 * bytes match the expected digest (and size, when known). It also refuses to read past
 * the expected size, so a lying peer cannot make us buffer or store more than promised.
 */
export class VerifyingStream extends Transform {
  private readonly hash;
  private seen = 0;

  readonly expected: Digest;
  readonly expectedSize: number | undefined;

  constructor(expected: Digest, expectedSize?: number) {
    super();
    this.expected = expected;
    this.expectedSize = expectedSize;
    this.hash = createDigester(parseDigest(expected).algorithm);
  }

  get bytesSeen(): number {
    return this.seen;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expectedSize !== undefined && this.seen > this.expectedSize) {
      callback(new SizeMismatchError(this.expected, this.expectedSize, this.seen));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedSize !== undefined && this.seen !== this.expectedSize) {
      callback(new SizeMismatchError(this.expected, this.expectedSize, this.seen));
      return;
    }
    const actual = `${parseDigest(this.expected).algorithm}:${this.hash.digest('hex')}`;
    if (actual !== this.expected) {
      callback(new DigestMismatchError(this.expected, actual));
      return;
    }
    callback();
  }
}
