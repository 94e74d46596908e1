/** Content did not hash to the digest it was promised under. */
export class DigestMismatchError extends Error {
  readonly code = 'DIGEST_MISMATCH';
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
    this.name = 'DigestMismatchError';
  }
}

/** Content was longer or shorter than its descriptor said. */
export class SizeMismatchError extends Error {
  readonly code = 'SIZE_MISMATCH';
  readonly digest: string;
  readonly expected: number;
  readonly actual: number;
  constructor(digest: string, expected: number, actual: number) {
    super(`size mismatch for ${digest}: expected ${expected} bytes, got ${actual}${actual > expected ? ' or more' : ''}`);
    this.digest = digest;
    this.expected = expected;
    this.actual = actual;
    this.name = 'SizeMismatchError';
  }
}
