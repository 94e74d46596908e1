import { rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { FsBlobStore } from '../content/fs-blob-store.ts';
import type { SendBuffers } from '../content/send-buffers.ts';
import type { BlobStore, ByteRange, CommitResult, Ingest } from '../content/store.ts';
import type { Digest } from '../digest/digest.ts';
import type { FillTarget } from './blob-fills.ts';

/**
 * The mirror's fills into a blob store that keeps no local files (S3). A fill's readers follow
 * its ingest file as the bytes land (fill.ts), and object storage has no such file: so fills
 * write into a local spool, an FsBlobStore of its own under the data directory, exactly as they
 * write into the embedded store. Once a blob is verified and committed in the spool, `publish`
 * streams it into the shared store (whose `put` hashes it again and verifies it before it appears
 * under its digest) and removes the spool's copy; only then is the fill committed. Everything
 * else (stat, reads, deletes of committed blobs) is the shared store's.
 *
 * The spool holds each running fill once, never a whole blob in memory (the S3 driver buffers at
 * most one part). A fill never outlives its process, so the spool starts empty.
 */
export class FillSpool implements FillTarget {
  readonly sendBuffers: SendBuffers;
  private readonly shared: BlobStore;
  private readonly spool: FsBlobStore;

  private constructor(shared: BlobStore, spool: FsBlobStore) {
    this.shared = shared;
    this.spool = spool;
    this.sendBuffers = spool.sendBuffers;
  }

  /** A spool under `dir` in front of `shared`, emptied of what a crash left there. */
  static async open(shared: BlobStore, dir: string, options: { sendBuffers?: SendBuffers } = {}): Promise<FillSpool> {
    await rm(dir, { recursive: true, force: true });
    return new FillSpool(shared, await new FsBlobStore(dir, options.sendBuffers ? { sendBuffers: options.sendBuffers } : {}).init());
  }

  stat(digest: Digest): Promise<number | undefined> {
    return this.shared.stat(digest);
  }

  reader(digest: Digest, range?: ByteRange): Promise<Readable> {
    return this.shared.reader(digest, range);
  }

  copyTo(digest: Digest, destination: Writable, range?: ByteRange): Promise<void> {
    return this.shared.copyTo(digest, destination, range);
  }

  delete(digest: Digest): Promise<boolean> {
    return this.shared.delete(digest);
  }

  ingest(ref: string, options?: { resume?: boolean }): Promise<Ingest> {
    return this.spool.ingest(ref, options);
  }

  ingestPath(ref: string): string {
    return this.spool.ingestPath(ref);
  }

  /** Puts the spooled blob into the shared store, then drops the spool's copy (also when the put failed). */
  async publish(digest: Digest, size: number, signal: AbortSignal): Promise<CommitResult> {
    let source: Readable | undefined;
    try {
      source = await this.spool.reader(digest);
      return await this.shared.put(source, digest, size, signal);
    } finally {
      source?.destroy();
      // Readers still on the fill's file keep reading: they hold it open (fill.ts).
      await this.spool.delete(digest).catch(() => undefined);
    }
  }
}
