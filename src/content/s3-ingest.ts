import { randomUUID, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createDigester, parseDigest, type Algorithm, type Digest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import type { KeyedMutex } from './keyed-mutex.ts';
import { inParallel } from './in-parallel.ts';
import { MAX_PARTS, MIN_PART_SIZE, type S3Bucket } from './s3-bucket.ts';
import { isGoneUpload, isNetworkFailure, s3StorageError } from './s3-errors.ts';
import type { S3Layout } from './s3-layout.ts';
import type { AppendOptions, CommitResult, Ingest } from './store.ts';

/**
 * A resumable write into S3 that any replica may continue, also after the one that began it died.
 *
 * State, all of it in the bucket (s3-layout.ts):
 *   - a multipart upload on `ingest/<ref>/data` whose parts 1..K are each exactly `part-size` bytes;
 *   - the record `ingest/<ref>/tail`: its body is the bytes after part K (fewer than a part, or
 *     one whole part left there by a failed upload), its metadata the upload's id and tag, K, the
 *     part size and a generation. Its size is K × part-size + the body's length.
 * An append reads the tail back (at most one part), fills a part buffer from the request, uploads
 * each full buffer as the next part, and ends by writing the record: the one write that makes the
 * append count. A crash before it leaves the previous record, whose parts are still all there
 * (later parts are only ever added or overwritten); parts uploaded past it are stale and are
 * overwritten by the next append or dropped when the upload completes without them. So `size()`
 * from a fresh process (HEAD of the record) is always the size of a consistent state, and one part
 * buffer is all the memory an append holds: no whole-blob buffering, no local file.
 *
 * Commit: the running hash (kept per ref by the instance that wrote the last record, with the
 * generation it wrote) gives the digest; without it (another replica wrote, or a restart), the
 * completed upload is read back and hashed. The tail goes in as the last part, the upload is
 * completed to `data`, size and digest are checked, and only then is `data` copied server-side to
 * the digest key (CopyObject; radosgw's takes 50–100 ms whatever the size, as it copies the
 * object's manifest rather than its bytes). A multipart upload is
 * bound to the key it was created on, and the digest is not known while the bytes arrive, so some
 * copy (or a pointer from the digest to the upload's key: a "metadata-only commit") is needed. A
 * copy keeps `blobs/` self-describing (stat, list and GC need no second lookup) at the price of
 * one server-side copy, which the CNCF registry's S3 driver pays too (its Move). A blob of at most
 * one part never had an upload: its tail object is what is copied (up to 1 MiB, read and PUT).
 *
 * Why parts of one multipart upload, and not one ordinary object per part (readable at any time,
 * which would make cutting anywhere cheap): the commit would then compose the blob from those
 * objects by UploadPartCopy, a copy of every byte, where completing an upload and copying the
 * result are metadata operations in radosgw. Measured on this radosgw with 104 MiB: complete 21 ms
 * plus CopyObject 101 ms, against 537 ms to compose 13 objects (4 copies at a time).
 *
 * Appending at an offset below the size cuts what is past it, as the filesystem driver truncates
 * its file: inside the tail it keeps the tail's first bytes; at a part boundary it keeps the
 * parts before it. Inside an uploaded part it needs that part's first bytes, which S3 does not
 * serve before completion: the upload is completed to `data`, a new upload takes parts 1..j from
 * it by UploadPartCopy, and the tail is read from it. Only a crash between an append's record and
 * the upload session's offset update leads there.
 */

/** What the record says. */
export interface IngestRecord {
  /** '' before the first full part. */
  uploadId: string;
  /** A random tag given to the upload at creation; the completed `data` object carries it too. */
  tag: string;
  parts: number;
  partSize: number;
  tailSize: number;
  generation: string;
}

/** What the instance that wrote an ingest's last record knows of it (see S3BlobStore's memo). */
export interface IngestMemo {
  generation: string;
  uploadId: string;
  /** ETags of parts 1..K as uploaded or copied by this instance; holes where it did not see them. */
  etags: (string | undefined)[];
  /** The running hash over the ingest's first `offset` bytes. */
  hash?: { algorithm: Algorithm; hash: Hash; offset: number };
}

/** What an S3Ingest needs of its store. */
export interface IngestHost {
  readonly bucket: S3Bucket;
  readonly layout: S3Layout;
  /** Part size of ingests begun here (an ingest keeps the size its record names). */
  readonly partSize: number;
  readonly locks: KeyedMutex;
  memo(ref: string): IngestMemo | undefined;
  setMemo(ref: string, memo: IngestMemo | undefined): void;
  /** Puts verified bytes (in memory, or the object `source` names) under `digest`, or touches the copy already there. */
  place(digest: Digest, source: string | Buffer, size: number): Promise<CommitResult>;
}

/** A commit of an ingest up to this size reads it and PUTs it, rather than have S3 copy it. */
const SMALL_BLOB = 1024 * 1024;

const sizeOf = (record: IngestRecord): number => record.parts * record.partSize + record.tailSize;

/** The ETags of parts 1..K the memo holds, when it holds them all for the record's upload. */
function knownEtags(memo: IngestMemo, record: IngestRecord): string[] | undefined {
  if (memo.uploadId !== record.uploadId) return undefined;
  const etags = memo.etags.slice(0, record.parts);
  return etags.length === record.parts && etags.every((etag) => etag !== undefined) ? (etags as string[]) : undefined;
}

/**
 * The bytes of the part being filled, the tail before it: grown by doubling as bytes arrive (an
 * append of a few bytes does not take a whole part of memory), never beyond one part.
 */
class PartBuffer {
  private data: Buffer;
  length: number;
  readonly capacity: number;

  constructor(capacity: number, initial: Buffer, expected?: number) {
    this.capacity = capacity;
    this.data = Buffer.allocUnsafe(Math.min(capacity, Math.max(initial.length + (expected ?? 0), initial.length * 2, 64 * 1024)));
    initial.copy(this.data);
    this.length = initial.length;
  }

  get full(): boolean {
    return this.length >= this.capacity;
  }

  /** Copies as much of `chunk` from `from` as fits; how many bytes it took. */
  take(chunk: Buffer, from: number): number {
    const count = Math.min(this.capacity - this.length, chunk.length - from);
    if (this.length + count > this.data.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.capacity, Math.max(this.length + count, this.data.length * 2)));
      this.data.copy(grown, 0, 0, this.length);
      this.data = grown;
    }
    chunk.copy(this.data, this.length, from, from + count);
    this.length += count;
    return count;
  }

  view(): Buffer {
    return this.data.subarray(0, this.length);
  }

  reset(): void {
    this.length = 0;
  }
}

/** An append's view of the ingest while it runs. */
interface Working {
  partSize: number;
  uploadId: string;
  tag: string;
  count: number;
  etags: (string | undefined)[];
  buffer: PartBuffer;
  /** Left behind by this append's start (an abandoned upload, a completed copy): removed once the new record is written. */
  obsolete: (() => Promise<void>)[];
  /** The record's upload was found gone and continued on a copy already (once per append). */
  recovered: boolean;
}

export class S3Ingest implements Ingest {
  readonly ref: string;
  private readonly host: IngestHost;
  private readonly tailKey: string;
  private readonly dataKey: string;

  constructor(host: IngestHost, ref: string) {
    this.host = host;
    this.ref = ref;
    this.tailKey = host.layout.ingestTail(ref); // validates the ref
    this.dataKey = host.layout.ingestData(ref);
  }

  async size(): Promise<number> {
    const record = await this.readRecord();
    return record ? sizeOf(record) : 0;
  }

  append(source: Readable, options: AppendOptions): Promise<number> {
    return this.host.locks.run(this.ref, () => this.appendLocked(source, options));
  }

  commit(expected: Digest, expectedSize?: number): Promise<CommitResult> {
    return this.host.locks.run(this.ref, () => this.commitLocked(expected, expectedSize));
  }

  async abort(): Promise<void> {
    await this.host.locks.run(this.ref, () => this.discard());
  }

  /** The record, or undefined when nothing was written yet (size 0). */
  private async readRecord(): Promise<IngestRecord | undefined> {
    const operation = `reading the record of ingest ${this.ref}`;
    const head = await this.host.bucket.head(this.tailKey, operation);
    if (!head) return undefined;
    const meta = head.Metadata ?? {};
    const record: IngestRecord = {
      uploadId: meta.upload ?? '',
      tag: meta.tag ?? '',
      parts: Number(meta.parts ?? '0'),
      partSize: Number(meta['part-size'] ?? String(this.host.partSize)),
      tailSize: head.ContentLength ?? 0,
      generation: meta.generation ?? '',
    };
    if (!Number.isSafeInteger(record.parts) || record.parts < 0 || record.parts > MAX_PARTS || !Number.isSafeInteger(record.partSize) || record.partSize < MIN_PART_SIZE || (record.parts > 0 && record.uploadId === '')) {
      throw s3StorageError(new Error(`malformed ingest record ${JSON.stringify(meta)}`), operation, this.host.bucket.where(this.tailKey));
    }
    return record;
  }

  /** Writes the record of `w` (its buffer as the tail); the new generation. */
  private async writeRecord(w: Working): Promise<string> {
    const generation = randomUUID();
    await this.host.bucket.put(this.tailKey, w.buffer.view(), `recording ingest ${this.ref}`, {
      upload: w.uploadId,
      tag: w.tag,
      parts: String(w.count),
      'part-size': String(w.partSize),
      generation,
    });
    return generation;
  }

  private async appendLocked(source: Readable, options: AppendOptions): Promise<number> {
    const operation = `writing ingest ${this.ref}`;
    const record = await this.readRecord();
    const size = record ? sizeOf(record) : 0;
    if (options.offset > size) throw new Error(`ingest ${this.ref} holds ${size} bytes, fewer than offset ${options.offset}`);
    const memo = this.host.memo(this.ref);
    this.host.setMemo(this.ref, undefined);
    // Only the instance that wrote the current record knows its ETags and hash.
    const trusted = memo && record && memo.generation === record.generation ? memo : undefined;
    // Continue the running hash only when it is exactly at this offset; else commit re-reads.
    let hash: Hash | undefined;
    if (options.offset === 0) hash = createDigester('sha256');
    else if (trusted?.hash && trusted.hash.algorithm === 'sha256' && trusted.hash.offset === options.offset) hash = trusted.hash.hash;
    const w = await this.startAt(record, options.offset, trusted, options.maxBytes, operation);

    let taken = 0;
    let failure: unknown;
    let storageFailure: unknown;
    const onAbort = () => source.destroy(options.signal?.reason as Error);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      options.signal?.throwIfAborted();
      for await (const chunk of source as AsyncIterable<Buffer>) {
        options.signal?.throwIfAborted();
        taken += chunk.length;
        if (options.maxBytes !== undefined && taken > options.maxBytes) throw new SizeMismatchError('upload', options.maxBytes, taken);
        hash?.update(chunk);
        options.onProgress?.(taken);
        const tapped = options.tap?.write(chunk) ?? true;
        for (let at = 0; at < chunk.length; ) {
          if (w.buffer.full) {
            try {
              await this.flushPart(w, record, operation);
            } catch (error) {
              storageFailure = error;
              throw error;
            }
            options.onWritten?.(w.count * w.partSize);
          }
          at += w.buffer.take(chunk, at);
        }
        if (!tapped) await options.tap!.drained();
      }
    } catch (error) {
      failure = options.signal?.aborted ? options.signal.reason : error;
      source.destroy();
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    // What reached S3 counts, as what reached the disk does for the filesystem driver: the record
    // now names the parts uploaded and the buffer as the tail.
    let generation: string;
    try {
      generation = await this.writeRecord(w);
    } catch (error) {
      throw storageFailure ?? error; // the ingest stays as its previous record says
    }
    // A storage failure outranks what it caused; the hash may cover bytes that were not stored.
    if (storageFailure !== undefined) throw storageFailure;
    const newSize = w.count * w.partSize + w.buffer.length;
    for (const tidy of w.obsolete) await tidy().catch(() => undefined);
    this.host.setMemo(this.ref, { generation, uploadId: w.uploadId, etags: w.etags, ...(hash ? { hash: { algorithm: 'sha256' as const, hash, offset: newSize } } : {}) });
    options.onWritten?.(newSize);
    if (failure !== undefined) throw failure;
    return newSize;
  }

  /** Where an append at `offset` starts: the parts it keeps and the tail it continues. */
  private async startAt(record: IngestRecord | undefined, offset: number, trusted: IngestMemo | undefined, maxBytes: number | undefined, operation: string): Promise<Working> {
    const partSize = record?.partSize ?? this.host.partSize;
    const fresh = (tail: Buffer): Working => ({ partSize, uploadId: '', tag: '', count: 0, etags: [], buffer: new PartBuffer(partSize, tail, maxBytes), obsolete: [], recovered: false });
    const keep = (count: number, tail: Buffer): Working => ({
      partSize,
      uploadId: record!.uploadId,
      tag: record!.tag,
      count,
      etags: trusted && trusted.uploadId === record!.uploadId ? trusted.etags.slice(0, count) : [],
      buffer: new PartBuffer(partSize, tail, maxBytes),
      obsolete: [],
      recovered: false,
    });
    if (!record) return fresh(Buffer.alloc(0));
    const parts = record.parts;
    const kept = Math.floor(offset / partSize);
    const within = offset - kept * partSize;
    if (offset === 0 || (parts === 0 && record.uploadId === '')) {
      const w = fresh(offset > 0 ? await this.readRange(this.tailKey, 0, offset, operation) : Buffer.alloc(0));
      // Starting over: the old upload's parts are not needed once the new record is written.
      if (record.uploadId) w.obsolete.push(() => this.host.bucket.abortUpload(this.dataKey, record.uploadId, operation));
      return w;
    }
    if (offset >= parts * partSize) {
      const tailBytes = offset - parts * partSize;
      return keep(parts, tailBytes > 0 ? await this.readRange(this.tailKey, 0, tailBytes, operation) : Buffer.alloc(0));
    }
    if (within === 0) return keep(kept, Buffer.alloc(0));
    // Inside part kept+1: complete the upload so that part can be read, and go on from a copy of the parts before it.
    const assembled = await this.assemble(record, trusted, operation);
    const tail = await this.readRange(this.dataKey, kept * partSize, within, operation);
    const w = fresh(tail);
    if (kept > 0) Object.assign(w, await this.rebuild(partSize, kept, assembled, operation), { count: kept });
    w.obsolete.push(() => this.host.bucket.delete(this.dataKey, operation));
    return w;
  }

  /** `length` bytes of `key` from `start`, checked. */
  private async readRange(key: string, start: number, length: number, operation: string): Promise<Buffer> {
    const bytes = await this.host.bucket.getBuffer(key, operation, { start, end: start + length - 1 });
    if (bytes?.length !== length) throw s3StorageError(new Error(`expected ${length} bytes from offset ${start}, got ${bytes?.length ?? 'no object'}`), operation, this.host.bucket.where(key));
    return bytes;
  }

  /** Uploads the full buffer as the next part (making the upload first, if this is part 1). */
  private async flushPart(w: Working, record: IngestRecord | undefined, operation: string): Promise<void> {
    const number = w.count + 1;
    if (number > MAX_PARTS) throw new Error(`ingest ${this.ref} needs more than S3's ${MAX_PARTS} parts of ${w.partSize} bytes: raise the part size`);
    if (!w.uploadId) {
      w.tag = randomUUID();
      w.uploadId = await this.host.bucket.createUpload(this.dataKey, operation, { tag: w.tag });
    }
    let etag: string;
    try {
      etag = await this.host.bucket.uploadPart(this.dataKey, w.uploadId, number, w.buffer.view(), `${operation} (part ${number})`);
    } catch (error) {
      if (!(await this.uploadGone(error, w.uploadId, operation)) || w.recovered || !record || w.uploadId !== record.uploadId) throw error;
      // A commit elsewhere completed the upload and stopped short of removing the ingest: its
      // parts are in `data` now, so go on with a copy of them.
      Object.assign(w, await this.rebuild(w.partSize, w.count, record.tag, operation), { recovered: true });
      w.obsolete.push(() => this.host.bucket.delete(this.dataKey, operation));
      etag = await this.host.bucket.uploadPart(this.dataKey, w.uploadId, number, w.buffer.view(), `${operation} (part ${number})`);
    }
    w.etags[w.count] = etag;
    w.count = number;
    w.buffer.reset();
  }

  /**
   * Whether a failed UploadPart met an upload that is gone. S3 says NoSuchUpload; but radosgw
   * answers that before reading the body and closes the connection, so the sender often sees only
   * the broken pipe (EPIPE, ECONNRESET): then ListParts decides.
   */
  private async uploadGone(error: unknown, uploadId: string, operation: string): Promise<boolean> {
    if (isGoneUpload(error)) return true;
    if (!isNetworkFailure(error)) return false;
    try {
      await this.host.bucket.listParts(this.dataKey, uploadId, operation);
      return false;
    } catch (listing) {
      return isGoneUpload(listing);
    }
  }

  /**
   * A new upload whose parts 1..count are copied (server-side) from the completed `data` object of
   * the upload tagged `fromTag`: how an ingest goes on once its upload was completed.
   */
  private async rebuild(partSize: number, count: number, fromTag: string, operation: string): Promise<{ uploadId: string; tag: string; etags: string[] }> {
    const bucket = this.host.bucket;
    const head = await bucket.head(this.dataKey, operation);
    if (!head || head.Metadata?.tag !== fromTag || (head.ContentLength ?? 0) < count * partSize) {
      throw s3StorageError(new Error(`the multipart upload of ingest ${this.ref} is gone, and no completed copy of its ${count} parts is left`), operation, bucket.where(this.dataKey));
    }
    const tag = randomUUID();
    const uploadId = await bucket.createUpload(this.dataKey, operation, { tag });
    try {
      const ranges = Array.from({ length: count }, (_, index) => ({ start: index * partSize, end: (index + 1) * partSize - 1 }));
      const etags = await inParallel(ranges, 4, (range, index) => bucket.copyPart(this.dataKey, this.dataKey, uploadId, index + 1, range, `${operation} (copying part ${index + 1})`));
      return { uploadId, tag, etags };
    } catch (error) {
      await bucket.abortUpload(this.dataKey, uploadId, operation).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Makes `data` hold exactly the ingest's bytes (for a record with parts): the tail goes in as
   * the last part and the upload is completed. An upload found gone was completed by a commit that
   * did not finish; its parts are then taken from that copy into a new upload first. Resolves to
   * the tag `data` carries now.
   */
  private async assemble(record: IngestRecord, trusted: IngestMemo | undefined, operation: string): Promise<string> {
    const bucket = this.host.bucket;
    let uploadId = record.uploadId;
    let tag = record.tag;
    let etags = trusted ? knownEtags(trusted, record) : undefined;
    if (!etags) {
      try {
        etags = await this.listedEtags(record, operation);
      } catch (error) {
        if (!isGoneUpload(error)) throw error;
        ({ uploadId, tag, etags } = await this.rebuild(record.partSize, record.parts, record.tag, operation));
      }
    }
    try {
      if (record.tailSize > 0) {
        const tail = await this.readRange(this.tailKey, 0, record.tailSize, operation);
        etags = [...etags, await bucket.uploadPart(this.dataKey, uploadId, record.parts + 1, tail, `${operation} (last part)`)];
      }
      await bucket.completeUpload(this.dataKey, uploadId, etags, operation);
      return tag;
    } catch (error) {
      // The memo's upload is gone in a way its generation did not show (a commit elsewhere that
      // did not finish): go the long way, from what S3 lists.
      if (trusted && uploadId === record.uploadId && (await this.uploadGone(error, uploadId, operation))) return this.assemble(record, undefined, operation);
      throw error;
    }
  }

  /** ETags of parts 1..K as S3 lists them, each checked to be one whole part. */
  private async listedEtags(record: IngestRecord, operation: string): Promise<string[]> {
    const listed = new Map((await this.host.bucket.listParts(this.dataKey, record.uploadId, operation)).map((part) => [part.number, part]));
    return Array.from({ length: record.parts }, (_, index) => {
      const part = listed.get(index + 1);
      if (part?.size !== record.partSize) {
        throw s3StorageError(new Error(`part ${index + 1} of ${record.parts} is ${part ? `${part.size} bytes, not ${record.partSize}` : 'missing'}`), operation, this.host.bucket.where(this.dataKey));
      }
      return part.etag;
    });
  }

  private async commitLocked(expected: Digest, expectedSize: number | undefined): Promise<CommitResult> {
    const operation = `committing blob ${expected} from ingest ${this.ref}`;
    try {
      const record = await this.readRecord();
      const size = record ? sizeOf(record) : 0;
      if (expectedSize !== undefined && size !== expectedSize) throw new SizeMismatchError(expected, expectedSize, size);
      const { algorithm } = parseDigest(expected);
      const memo = this.host.memo(this.ref);
      const trusted = memo && record && memo.generation === record.generation ? memo : undefined;
      // What holds the whole ingest: a small tail read into memory (a PUT of it is quicker than
      // radosgw's CopyObject, about 50 ms whatever the size), a larger tail when no part filled,
      // else the completed upload.
      let source: string | Buffer;
      if (record && record.parts > 0) {
        await this.assemble(record, trusted, operation);
        source = this.dataKey;
      } else if (size <= SMALL_BLOB) source = size > 0 ? await this.readRange(this.tailKey, 0, size, operation) : Buffer.alloc(0);
      else source = this.tailKey;
      const running = trusted?.hash;
      let actual: Digest;
      if (running && running.algorithm === algorithm && running.offset === size) actual = `${algorithm}:${running.hash.digest('hex')}`;
      else if (typeof source !== 'string') actual = `${algorithm}:${createDigester(algorithm).update(source).digest('hex')}`;
      else actual = await this.hashObject(source, algorithm, size, operation);
      if (actual !== expected) throw new DigestMismatchError(expected, actual);
      return await this.host.place(expected, source, size);
    } finally {
      // The ingest goes either way; never mask the commit's own outcome.
      await this.discard().catch(() => undefined);
    }
  }

  /** Reads `source` back (a replica that did not write it all, or a restart) and hashes it. */
  private async hashObject(source: string, algorithm: Algorithm, size: number, operation: string): Promise<Digest> {
    const hash = createDigester(algorithm);
    let read = 0;
    const object = await this.host.bucket.get(source, operation);
    if (!object) throw s3StorageError(new Error('the ingest vanished during its commit'), operation, this.host.bucket.where(source));
    try {
      for await (const chunk of object.Body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        read += chunk.length;
      }
    } catch (error) {
      throw s3StorageError(error, operation, this.host.bucket.where(source));
    }
    if (read !== size) throw s3StorageError(new Error(`read ${read} bytes back, expected ${size}`), operation, this.host.bucket.where(source));
    return `${algorithm}:${hash.digest('hex')}`;
  }

  /** Removes every upload and object of the ingest (uploads first: the objects name them). */
  private async discard(): Promise<void> {
    this.host.setMemo(this.ref, undefined);
    const operation = `removing ingest ${this.ref}`;
    const bucket = this.host.bucket;
    for await (const upload of bucket.uploads(this.host.layout.ingest(this.ref), operation)) await bucket.abortUpload(upload.key, upload.uploadId, operation);
    await bucket.deleteKeys([this.dataKey, this.tailKey], operation);
  }
}
