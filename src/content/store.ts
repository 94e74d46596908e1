import type { Readable, Writable } from 'node:stream';
import type { Digest } from '../digest/digest.ts';

/** An inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface CommitResult {
  digest: Digest;
  size: number;
  /** Another writer committed the same content first; ours was discarded. */
  alreadyExisted: boolean;
}

export interface AppendOptions {
  offset: number;
  maxBytes?: number;
  signal?: AbortSignal;
  /** Bytes taken from the source so far in this append (before they are written). */
  onProgress?: (bytesThisAppend: number) => void;
  /** The ingest's size each time a chunk has been handed to the file (readers may read up to it). */
  onWritten?: (size: number) => void;
  /**
   * Sees every chunk as it is written (a digester measuring a layer on the way in); when `write`
   * returns false the append waits for `drained()` before taking more.
   */
  tap?: { write(chunk: Buffer): boolean; drained(): Promise<void>; readonly keepsChunks?: boolean };
  /**
   * Called with each chunk once it is written, unless the tap kept it: this append was then its
   * last holder (bulk-get's releaseBulkChunk).
   */
  release?: (chunk: Buffer) => void;
  /**
   * Called once the source has ended, with the digest and size of everything the ingest now holds,
   * when the ingest hashed all of it on the way in: before the last writes are flushed and the file
   * closed. A reader that checks bytes by digest need not wait for durability (the mirror's fills).
   * Not called when the append fails, or when the ingest cannot tell without reading the file back.
   */
  onHashed?: (digest: Digest, size: number) => void;
}

/**
 * A resumable write in progress ("ingest", as containerd calls it). Bytes only become
 * visible under a digest through `commit`, after they were verified and made durable.
 */
export interface Ingest {
  readonly ref: string;
  /** Bytes durably written so far. */
  size(): Promise<number>;
  /**
   * Appends `source` at `offset` (bytes past it, left by a crash, are cut first).
   * `maxBytes` bounds this append so a peer cannot write more than it promised.
   * Resolves to the new size. On failure, keeps what reached the disk.
   */
  append(source: Readable, options: AppendOptions): Promise<number>;
  /** Verifies size and digest, then moves the bytes into place atomically. Removes the ingest either way. */
  commit(expected: Digest, expectedSize?: number): Promise<CommitResult>;
  /** Drops the ingest and its bytes. */
  abort(): Promise<void>;
}

/**
 * The blob driver: content-addressed bytes. The filesystem implementation comes first;
 * an S3-compatible one fits the same few methods (multipart upload for ingests).
 */
export interface BlobStore {
  /** Size of a committed blob, or undefined when absent. */
  stat(digest: Digest): Promise<number | undefined>;
  /** Streams a committed blob, optionally one inclusive range of it. Throws BlobNotFoundError. */
  reader(digest: Digest, range?: ByteRange): Promise<Readable>;
  /**
   * Writes a committed blob (or one range of it) into `destination` and ends it. Into a socket or
   * HTTP response the fs driver recycles two read buffers, so serving a blob makes no garbage.
   */
  copyTo(digest: Digest, destination: Writable, range?: ByteRange): Promise<void>;
  /** Reads a small blob (a manifest or config) whole, refusing anything above `limit` bytes. */
  readSmall(digest: Digest, limit: number): Promise<Buffer>;
  /**
   * Opens (or resumes) the ingest named `ref`, creating its file if needed. `resume`: an ingest the
   * caller already knows (an upload session's requests): no storage round trip now; a session
   * that has received nothing yet has no file until its first append.
   */
  ingest(ref: string, options?: { resume?: boolean }): Promise<Ingest>;
  /** Writes and verifies a whole blob in one go. */
  put(source: Readable, expected: Digest, expectedSize?: number, signal?: AbortSignal): Promise<CommitResult>;
  delete(digest: Digest): Promise<boolean>;
  /** Marks a stored blob as wanted now, before a link to it is recorded (the collector's cue); false when it is gone. */
  touch(digest: Digest): Promise<boolean>;
  /** Clears the mark of `touch` once the link is recorded. */
  unmark(digest: Digest): Promise<void>;
  list(): AsyncIterable<Digest>;
  /**
   * Where a client may fetch the committed blob itself, bypassing this process (object storage's
   * presigned URL), or undefined to have the bytes sent from here. Absent on stores with no such URL.
   */
  redirectUrl?(digest: Digest): Promise<string | undefined>;
}

export class BlobNotFoundError extends Error {
  readonly code = 'BLOB_NOT_FOUND';
  readonly digest: string;
  constructor(digest: string) {
    super(`blob ${digest} not found`);
    this.digest = digest;
    this.name = 'BlobNotFoundError';
  }
}
