import { syncFile } from './sync-file.ts';
import { randomUUID, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats, type WriteStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { http } from '../platform/node-http.ts';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { ALGORITHMS, createDigester, formatDigest, isDigest, parseDigest, type Algorithm, type Digest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { BlobNotFoundError, type AppendOptions, type BlobStore, type ByteRange, type CommitResult, type Ingest } from './store.ts';
import { EarlyWriteback } from './early-writeback.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { SendBuffers } from './send-buffers.ts';
import { writeAndWait } from './write-and-wait.ts';
import { guardStorage, storageError } from './storage-errors.ts';

const INGEST_REF = /^[A-Za-z0-9_-]{1,128}$/;
const READ_CHUNK = 1024 * 1024;

/** Hash state of an ingest as far as `offset`; lets commit skip re-reading the file. */
interface HashState {
  algorithm: Algorithm;
  hash: Hash;
  offset: number;
}

/**
 * Filesystem blob store. Layout under `root`:
 *   blobs/<alg>/<first two hex>/<hex>   committed, verified, immutable content
 *   ingest/<ref>                        bytes of a write in progress, never served
 * A blob appears under its digest only by rename(2) of a fully written, fsynced file.
 */
/** How far ahead `touch` sets a blob's modification time: beyond any clock skew, and far from any real write. */
const WANTED_MARK_MS = 24 * 3600_000;

export class FsBlobStore implements BlobStore {
  private readonly hashes = new Map<string, HashState>();
  readonly locks = new KeyedMutex();
  /** The collector's trash directory, made once. */
  private trashReady: Promise<void> | undefined;

  readonly root: string;

  /** `blobs/sha256/ab/<hex>` (registry) or `blobs/sha256/<hex>` (an OCI image layout). */
  readonly fanout: boolean;
  readonly ingestDir: string;

  /** Read buffers for blob responses, bounded for the whole store (see SendBuffers). */
  readonly sendBuffers: SendBuffers;

  constructor(root: string, options: { fanout?: boolean; ingestDir?: string; sendBuffers?: SendBuffers } = {}) {
    this.root = root;
    this.sendBuffers = options.sendBuffers ?? new SendBuffers(16 * 1024 * 1024);
    this.fanout = options.fanout ?? true;
    this.ingestDir = options.ingestDir ?? join(root, 'ingest');
  }

  async init(): Promise<this> {
    await mkdir(this.ingestDir, { recursive: true });
    for (const algorithm of Object.keys(ALGORITHMS)) await mkdir(join(this.root, 'blobs', algorithm), { recursive: true });
    return this;
  }

  blobPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return this.fanout ? join(this.root, 'blobs', algorithm, hex.slice(0, 2), hex) : join(this.root, 'blobs', algorithm, hex);
  }

  ingestPath(ref: string): string {
    if (!INGEST_REF.test(ref)) throw new Error(`invalid ingest ref ${JSON.stringify(ref)}`);
    return join(this.ingestDir, ref);
  }

  async stat(digest: Digest): Promise<number | undefined> {
    return (await this.fileStats(digest))?.size;
  }

  /** The blob file's stats, or undefined when there is no such file. */
  private async fileStats(digest: Digest): Promise<Stats | undefined> {
    try {
      return await stat(this.blobPath(digest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async reader(digest: Digest, range?: ByteRange): Promise<Readable> {
    const handle = await this.openBlob(digest);
    return handle.createReadStream({ highWaterMark: READ_CHUNK, ...(range ? { start: range.start, end: range.end } : {}) });
  }

  async copyTo(digest: Digest, destination: Writable, range?: ByteRange): Promise<void> {
    const handle = await this.openBlob(digest);
    // Lending is safe only where a write's callback means the bytes left our memory (a socket,
    // an HTTP response); other Writables (a PassThrough, a tee) may still hold the chunk.
    const lend = destination instanceof http.ServerResponse || destination instanceof Socket;
    const take = (wanted: number) => (lend ? this.sendBuffers.take(wanted) : Buffer.allocUnsafe(Math.min(READ_CHUNK, wanted)));
    const giveBack = (buffer: Buffer): void => {
      if (lend) this.sendBuffers.give(buffer);
    };
    try {
      let position = range?.start ?? 0;
      const end = range ? range.end + 1 : (await handle.stat()).size;
      // One chunk is read while the previous one is being written (with large buffers, below).
      let previousWrite: Promise<void> = Promise.resolve();
      while (position < end) {
        const buffer = take(end - position);
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position));
          if (bytesRead === 0) throw new Error(`blob ${digest} ended at ${position} bytes, before ${end}`);
          await previousWrite;
        } catch (error) {
          giveBack(buffer);
          throw error;
        }
        position += bytesRead;
        previousWrite = writeAndWait(destination, buffer.subarray(0, bytesRead)).then(
          () => giveBack(buffer),
          (error: unknown) => {
            if (lend) this.sendBuffers.forget(buffer);
            throw error;
          },
        );
        previousWrite.catch(() => undefined); // awaited next turn; a client gone mid-read must not be "unhandled"
        // Read ahead only with a large buffer: a small one means the budget is lent out, maybe to
        // stalled readers, and a stalled reader must pin one small buffer, not two.
        if (buffer.length < READ_CHUNK) await previousWrite;
      }
      await previousWrite;
      await new Promise<void>((resolve, reject) => destination.end((error?: Error | null) => (error ? reject(error) : resolve())));
    } finally {
      await handle.close();
    }
  }

  private async openBlob(digest: Digest) {
    return open(this.blobPath(digest), 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' ? new BlobNotFoundError(digest) : error;
    });
  }

  async readSmall(digest: Digest, limit: number): Promise<Buffer> {
    const handle = await this.openBlob(digest);
    try {
      const { size } = await handle.stat();
      if (size > limit) throw new Error(`blob ${digest} is ${size} bytes, more than the ${limit} allowed here`);
      const buffer = Buffer.allocUnsafe(size);
      let read = 0;
      while (read < size) {
        const { bytesRead } = await handle.read(buffer, read, size - read, read);
        if (bytesRead === 0) break;
        read += bytesRead;
      }
      return buffer.subarray(0, read);
    } finally {
      await handle.close();
    }
  }

  async ingest(ref: string, options: { resume?: boolean } = {}): Promise<Ingest> {
    const path = this.ingestPath(ref);
    if (options.resume) return new FsIngest(this, ref, path); // no file operation: an append from offset 0 makes the file
    await guardStorage(`creating ingest file ${ref}`, async () => {
      const handle = await open(path, 'a');
      await handle.close();
    });
    return new FsIngest(this, ref, path);
  }

  async put(source: Readable, expected: Digest, expectedSize?: number, signal?: AbortSignal): Promise<CommitResult> {
    const ingest = await this.ingest(`put-${randomUUID()}`);
    try {
      await ingest.append(source, { offset: 0, ...(expectedSize !== undefined ? { maxBytes: expectedSize } : {}), ...(signal ? { signal } : {}) });
      return await ingest.commit(expected, expectedSize);
    } catch (error) {
      // The first failure is the one to report; a leftover put-* file is removed at start-up.
      await ingest.abort().catch(() => undefined);
      throw error;
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw storageError(error, `deleting blob ${digest}`);
    }
  }

  async *list(): AsyncIterable<Digest> {
    for (const algorithm of Object.keys(ALGORITHMS)) {
      const base = join(this.root, 'blobs', algorithm);
      for (const entry of await readdir(base).catch(() => [] as string[])) {
        if (!this.fanout) yield `${algorithm as Algorithm}:${entry}`;
        else for (const hex of await readdir(join(base, entry)).catch(() => [] as string[])) yield `${algorithm as Algorithm}:${hex}`;
      }
    }
  }

  // ---- garbage collection: a condemned blob is moved aside, then deleted or put back ----

  /** Where a condemned blob waits for the collector's last word: `<root>/gc-trash/<alg>-<hex>` (same filesystem, so a rename). */
  trashPath(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'gc-trash', `${algorithm}-${hex}`);
  }

  /**
   * Marks a stored blob as wanted: a writer that found the blob already stored, or a mount, calls
   * it before linking. The mark is a modification time a day ahead, which no write produces: a
   * collector that moves the file aside afterwards sees it (on the same inode) and puts the file
   * back, clearing the mark. False when the file is gone.
   */
  async touch(digest: Digest): Promise<boolean> {
    const ahead = new Date(Date.now() + WANTED_MARK_MS);
    try {
      await utimes(this.blobPath(digest), ahead, ahead);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw storageError(error, `touching blob ${digest}`);
    }
  }

  /**
   * Clears a `touch` once its link is recorded: the link protects the blob from then on, and a
   * mark left behind would make a later collection of it wait one more cycle. Gone is fine.
   */
  async unmark(digest: Digest): Promise<void> {
    const now = new Date();
    await utimes(this.blobPath(digest), now, now).catch(() => undefined);
  }

  /**
   * Moves the blob aside (readers with the file open keep reading). Its modification time once
   * moved (a writer's touch just before the move shows there), or undefined when it was not there.
   */
  async quarantine(digest: Digest): Promise<number | undefined> {
    for (let attempt = 0; ; attempt++) {
      this.trashReady ??= mkdir(join(this.root, 'gc-trash'), { recursive: true }).then(() => undefined);
      await this.trashReady;
      try {
        await rename(this.blobPath(digest), this.trashPath(digest));
        return (await stat(this.trashPath(digest))).mtimeMs;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw storageError(error, `moving blob ${digest} aside`);
        // The blob is gone, or the trash directory is (removed by hand since): make it again once.
        if (attempt > 0 || (await this.stat(digest)) === undefined) return undefined;
        this.trashReady = undefined;
      }
    }
  }

  /**
   * Puts a quarantined blob back (it was linked again meanwhile). A copy committed since wins:
   * link(2) never replaces a file. True when the blob is in place afterwards.
   */
  async restore(digest: Digest): Promise<boolean> {
    const target = this.blobPath(digest);
    try {
      await mkdir(join(target, '..'), { recursive: true });
      await link(this.trashPath(digest), target);
      // Back in place, the wanted mark has done its job: the next review judges the blob afresh.
      const now = new Date();
      await utimes(target, now, now);
      await syncFile(join(target, '..'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST' && code !== 'ENOENT') throw storageError(error, `restoring blob ${digest}`);
    }
    await unlink(this.trashPath(digest)).catch(() => undefined);
    return (await this.stat(digest)) !== undefined;
  }

  /** Deletes a quarantined blob for good; the bytes it frees (0 when it was not there). */
  async purge(digest: Digest): Promise<number> {
    const path = this.trashPath(digest);
    try {
      const { size } = await stat(path);
      await unlink(path);
      return size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw storageError(error, `deleting blob ${digest}`);
    }
  }

  /** Blobs in quarantine (a cycle cut short leaves some). */
  async *trashed(): AsyncIterable<Digest> {
    for (const entry of await readdir(join(this.root, 'gc-trash')).catch(() => [] as string[])) {
      const dash = entry.indexOf('-');
      const digest = `${entry.slice(0, dash)}:${entry.slice(dash + 1)}`;
      if (dash > 0 && isDigest(digest)) yield digest;
    }
  }

  /** When the blob's file was last written (ms since the epoch), or undefined when absent. */
  async modifiedAt(digest: Digest): Promise<number | undefined> {
    return (await this.fileStats(digest))?.mtimeMs;
  }

  /** @internal hash bookkeeping shared with FsIngest */
  hashState(ref: string): HashState | undefined {
    return this.hashes.get(ref);
  }

  /** @internal */
  setHashState(ref: string, state: HashState | undefined): void {
    if (state) this.hashes.set(ref, state);
    else this.hashes.delete(ref);
  }
}

class FsIngest implements Ingest {
  private readonly store: FsBlobStore;
  readonly ref: string;
  private readonly path: string;

  constructor(store: FsBlobStore, ref: string, path: string) {
    this.store = store;
    this.ref = ref;
    this.path = path;
  }

  async size(): Promise<number> {
    return (await stat(this.path)).size;
  }

  /** The size; an ingest never written to (an upload closed with no byte) gets its empty file now. */
  private async sizeOrCreate(): Promise<number> {
    try {
      return await this.size();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await (await open(this.path, 'a')).close();
      return 0;
    }
  }

  async append(source: Readable, options: AppendOptions): Promise<number> {
    return this.store.locks.run(this.ref, async () => {
      const operation = `writing ingest ${this.ref}`;
      // From offset 0 the write stream's own open creates or empties the file: nothing to check, one
      // file operation (each is a thread-pool round trip, and a small blob's push is mostly those).
      // Past 0, the file must hold at least `offset` bytes, and anything past it is cut first.
      // (The stream opens the path itself: a stream over a FileHandle sometimes left that handle
      // to the garbage collector when its request broke.)
      if (options.offset > 0) {
        await guardStorage(operation, async () => {
          const handle = await open(this.path, 'r+');
          try {
            const { size } = await handle.stat();
            if (size < options.offset) throw new Error(`ingest ${this.ref} holds ${size} bytes, fewer than offset ${options.offset}`);
            if (size > options.offset) await handle.truncate(options.offset);
          } finally {
            await handle.close();
          }
        });
      }
      // Continue the running hash only when it is exactly at this offset; else commit re-reads.
      let state = this.store.hashState(this.ref);
      if (options.offset === 0) state = { algorithm: 'sha256', hash: createDigester('sha256'), offset: 0 };
      else if (state && state.offset !== options.offset) state = undefined;
      this.store.setHashState(this.ref, undefined);
      let written = 0;
      let hashed = 0;
      let landed = options.offset;
      // flush: fsync before close, so an acknowledged chunk survives a crash.
      const flags = options.offset === 0 ? 'w' : 'r+'; // 'w': O_CREAT | O_TRUNC
      const sink = createWriteStream(this.path, { flags, start: options.offset, flush: true, highWaterMark: READ_CHUNK });
      // A write, the fsync or the close can fail at any moment (ENOSPC, EIO), also while the
      // loop waits for the source: keep a listener for the stream's whole life, so the failure
      // is recorded and reported instead of escaping as an unhandled 'error' event.
      let sinkError: Error | undefined;
      sink.on('error', (error) => {
        sinkError ??= error;
      });
      const writeback = new EarlyWriteback();
      let failure: unknown;
      // An abort must end a source that is stalled between chunks, too.
      const onAbort = () => source.destroy(options.signal?.reason as Error);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        options.signal?.throwIfAborted();
        // Not pipeline(): when the source breaks, every byte already received must still reach
        // the disk (a resumed transfer continues after them), so the file is ended, not destroyed.
        for await (const chunk of source as AsyncIterable<Buffer>) {
          options.signal?.throwIfAborted();
          if (sinkError) throw sinkError;
          written += chunk.length;
          if (options.maxBytes !== undefined && written > options.maxBytes) throw new SizeMismatchError('upload', options.maxBytes, written);
          state?.hash.update(chunk);
          hashed += chunk.length;
          options.onProgress?.(written);
          const { onWritten, release } = options;
          let released = false; // set below, before the write can complete
          const accepted =
            onWritten || release
              ? sink.write(chunk, (error) => {
                  if (!error) onWritten?.((landed += chunk.length));
                  if (released) release?.(chunk);
                })
              : sink.write(chunk);
          writeback.wrote((sink as WriteStream & { fd: number | null }).fd, chunk.length); // fd: set once open, untyped in @types/node
          const tapped = options.tap?.write(chunk) ?? true;
          released = !options.tap?.keepsChunks;
          if (!accepted) await drained(sink, () => sinkError);
          if (!tapped) await options.tap!.drained();
        }
        if (state && !sinkError) options.onHashed?.(formatDigest(state.algorithm, state.hash.copy()), options.offset + written);
      } catch (error) {
        failure = options.signal?.aborted ? options.signal.reason : error;
        source.destroy();
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
      await writeback.idle(); // its fdatasync must not outlive the descriptor
      await closed(sink);
      // A storage failure outranks what it caused (a source destroyed after the sink broke).
      if (sinkError) throw storageError(sinkError, operation);
      if (failure !== undefined) {
        // Bytes past maxBytes were never written; what is on disk is a clean prefix, and the
        // running hash covers exactly it: a resumed upload continues it instead of re-reading.
        if (state) this.store.setHashState(this.ref, { ...state, offset: options.offset + hashed });
        throw failure;
      }
      if (state) this.store.setHashState(this.ref, { ...state, offset: options.offset + written });
      return options.offset + written;
    });
  }

  async commit(expected: Digest, expectedSize?: number): Promise<CommitResult> {
    return this.store.locks.run(this.ref, async () => {
      let moved = false; // the ingest file became the blob: nothing left to remove
      try {
        return await guardStorage(`committing blob ${expected}`, async () => {
          // The running hash knows the size when it covers the whole file (one process wrote it all).
          const state = this.store.hashState(this.ref);
          const size = state !== undefined && state.offset === expectedSize ? state.offset : await this.sizeOrCreate();
          if (expectedSize !== undefined && size !== expectedSize) throw new SizeMismatchError(expected, expectedSize, size);
          const { algorithm } = parseDigest(expected);
          const actual = await this.computeDigest(algorithm, size);
          if (actual !== expected) throw new DigestMismatchError(expected, actual);
          const target = this.store.blobPath(expected);
          // Already stored: touch it instead of replacing it. A garbage collector that moves the
          // file aside after this touch sees it and puts the file back; one that moved it before
          // makes the touch fail, and this copy is committed as a new one (docs/gc.md).
          if (await this.store.touch(expected)) return { digest: expected, size, alreadyExisted: true };
          const dir = join(target, '..');
          // The directory nearly always exists: make it only when the rename says it is missing.
          await rename(this.path, target).catch(async (error: NodeJS.ErrnoException) => {
            if (error.code !== 'ENOENT') throw error;
            await mkdir(dir, { recursive: true });
            await rename(this.path, target);
          });
          moved = true;
          await syncFile(dir);
          return { digest: expected, size, alreadyExisted: false };
        });
      } finally {
        // Never mask the commit's own outcome; an ingest file left behind is tidied at start-up.
        if (moved) this.store.setHashState(this.ref, undefined);
        else await this.discard().catch(() => undefined);
      }
    });
  }

  async abort(): Promise<void> {
    await this.store.locks.run(this.ref, () => this.discard());
  }

  private async discard(): Promise<void> {
    this.store.setHashState(this.ref, undefined);
    await rm(this.path, { force: true });
  }

  private async computeDigest(algorithm: Algorithm, size: number): Promise<Digest> {
    const state = this.store.hashState(this.ref);
    if (state && state.algorithm === algorithm && state.offset === size) return `${algorithm}:${state.hash.digest('hex')}`;
    const hash = createDigester(algorithm);
    await pipeline(createReadStream(this.path, { highWaterMark: READ_CHUNK }), async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) hash.update(chunk);
    });
    return `${algorithm}:${hash.digest('hex')}`;
  }
}

/** Waits for 'drain', or rejects with the stream's failure (which may have happened already). */
async function drained(sink: WriteStream, failed: () => Error | undefined): Promise<void> {
  const error = failed();
  if (error) throw error;
  if (sink.destroyed) throw new Error('the ingest file was closed during a write');
  await once(sink, 'drain');
}

/** Ends the stream unless it broke already, and waits until its file is closed. Never rejects. */
async function closed(sink: WriteStream): Promise<void> {
  if (!sink.destroyed && !sink.writableEnded) sink.end();
  if (!sink.closed) await new Promise<void>((resolve) => sink.once('close', () => resolve()));
}
