import { createHash, type Hash } from 'node:crypto';

/** Algorithms skiff can verify, with the hex length the OCI image spec requires. */
export const ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type Algorithm = keyof typeof ALGORITHMS;

/** A digest string such as `sha256:<64 hex>`. */
export type Digest = `${Algorithm}:${string}`;

export interface ParsedDigest {
  algorithm: Algorithm;
  hex: string;
}

/** The general grammar from the image spec; only registered algorithms are accepted after it. */
const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export class InvalidDigestError extends Error {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid digest ${JSON.stringify(input.length > 200 ? `${input.slice(0, 200)}…` : input)}: ${reason}`);
    this.name = 'InvalidDigestError';
    this.input = input;
  }
}

/** Parses and validates a digest; throws InvalidDigestError with the reason. */
export function parseDigest(input: string): ParsedDigest {
  const match = DIGEST_GRAMMAR.exec(input);
  if (!match) throw new InvalidDigestError(input, 'expected <algorithm>:<hex>');
  const algorithm = match[1] as string;
  const hex = match[2] as string;
  if (!Object.hasOwn(ALGORITHMS, algorithm)) {
    throw new InvalidDigestError(input, `unsupported algorithm ${JSON.stringify(algorithm)} (use sha256 or sha512)`);
  }
  const length = ALGORITHMS[algorithm as Algorithm];
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidDigestError(input, `${algorithm} needs ${length} lowercase hex characters`);
  }
  return { algorithm: algorithm as Algorithm, hex };
}

export function isDigest(input: string): input is Digest {
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

/** Validates and narrows; throws InvalidDigestError. */
export function asDigest(input: string): Digest {
  parseDigest(input);
  return input as Digest;
}

export function createDigester(algorithm: Algorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Uint8Array | string, algorithm: Algorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export function formatDigest(algorithm: Algorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}`;
}

/** The 12-hex short form docker uses for IDs and progress lines. */
export function shortId(digest: string): string {
  const colon = digest.indexOf(':');
  return digest.slice(colon + 1, colon + 13);
}
