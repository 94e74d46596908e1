import { GetObjectCommand, HeadBucketCommand, ListBucketsCommand, type HeadObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { randomUUID } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDigester, parseDigest, type Digest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { createS3Client, MAX_PART_SIZE, MIN_PART_SIZE, S3Bucket, type S3ConnectionOptions } from './s3-bucket.ts';
import { isMissingObject, isNetworkFailure, S3AccessError, s3Code, s3Status } from './s3-errors.ts';
import { S3Ingest, type IngestHost, type IngestMemo } from './s3-ingest.ts';
import { s3Layout, type S3Layout } from './s3-layout.ts';
import { BlobNotFoundError, type BlobStore, type ByteRange, type CommitResult, type Ingest } from './store.ts';

export interface S3BlobStoreOptions extends S3ConnectionOptions {
  bucket: string;
  /** Every key starts with it: '' (default) or folders ending in `/`, so one bucket can hold several registries. */
  prefix?: string;
  /** Bytes per multipart part (default 8 MiB, 5 MiB to 5 GiB): also the most one append or put holds in memory. */
  partSize?: number;
  /** Blob GETs may be redirected to presigned URLs valid this many seconds (`redirectUrl`). */
  presign?: { expiresIn: number };
  /** Objects above this are copied in ranges; S3's CopyObject limit, 5 GiB (lowered by tests to reach that path). */
  copyLimit?: number;
}

/** How far ahead `touch` sets a wanted mark: beyond any clock skew, and far from any real write (as FsBlobStore). */
const WANTED_MARK_MS = 24 * 3600_000;
/** Ingests whose running hash an instance keeps at most. */
const MAX_MEMOS = 4096;
/** Presigned URLs live this long when the options name no expiry: the CNCF registry's S3 default (20 minutes). */
const DEFAULT_PRESIGN_SECONDS = 20 * 60;

/**
 * When a blob object was written, in ms on the writer's clock: the `written` stamp every write
 * of this driver sets, else (an object written by another tool) the end of the second its
 * Last-Modified names (S3 gives whole seconds, so a write within it counts as later, never earlier).
 */
function writtenAt(head: HeadObjectCommandOutput): number {
  const stamp = Number(head.Metadata?.written);
  if (Number.isFinite(stamp) && stamp > 0) return stamp;
  return (head.LastModified?.getTime() ?? 0) + 999;
}

/** Until when a wanted mark holds (ms), or 0 without one. */
function wantedUntil(head: HeadObjectCommandOutput | undefined): number {
  const until = Number(head?.Metadata?.until);
  return head && Number.isFinite(until) ? until : 0;
}

/**
 * Blobs in an S3-compatible bucket (AWS S3, Ceph radosgw, MinIO), with the filesystem driver's
 * contract: verified before they appear under their digest, resumable ingests, ranged reads, and
 * the collector's quarantine. The key layout is in s3-layout.ts, the ingest's design in
 * s3-ingest.ts. No object is ever read or written outside the configured prefix.
 *
 * Instance state is only a cache: per ingest, the running hash and part ETags of the record this
 * instance wrote last (checked against the record's generation before use), so another replica,
 * or this one after a restart, continues or commits any ingest from what is in the bucket.
 */
export class S3BlobStore implements BlobStore, IngestHost {
  readonly client: S3Client;
  readonly bucket: S3Bucket;
  readonly layout: S3Layout;
  readonly partSize: number;
  readonly locks = new KeyedMutex();
  /** Blob GETs may be redirected (storage.s3.redirect); absent: the bytes are sent from here. */
  readonly presign: { expiresIn: number } | undefined;
  private readonly endpoint: string;
  private readonly region: string;
  private readonly memos = new Map<string, IngestMemo>();

  constructor(options: S3BlobStoreOptions, client?: S3Client) {
    const partSize = options.partSize ?? 8 * 1024 * 1024;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw new Error(`S3 part size ${partSize} is outside S3's ${MIN_PART_SIZE} bytes (5 MiB) to ${MAX_PART_SIZE} bytes (5 GiB)`);
    }
    if (options.presign && !(options.presign.expiresIn >= 1 && options.presign.expiresIn <= 7 * 24 * 3600)) {
      throw new Error(`presigned URLs live from 1 second to 7 days, not ${options.presign.expiresIn} s`);
    }
    this.partSize = partSize;
    this.client = client ?? createS3Client(options);
    this.bucket = new S3Bucket(this.client, options.bucket, options.copyLimit !== undefined ? { copyLimit: options.copyLimit } : {});
    this.layout = s3Layout(options.prefix ?? '');
    this.presign = options.presign;
    this.endpoint = options.endpoint ?? `AWS S3 (${options.region})`;
    this.region = options.region;
  }

  /** Closes the client's connections. */
  close(): void {
    this.client.destroy();
  }

  /**
   * Checks that the bucket can be used (HeadBucket), for a configuration check at start: throws
   * S3AccessError saying whether the bucket is missing, the credentials are wrong or refused, or
   * the endpoint cannot be reached, and which setting to fix.
   */
  async checkAccess(): Promise<void> {
    const bucket = this.bucket.name;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
      return;
    } catch (error) {
      if (isNetworkFailure(error)) throw new S3AccessError('unreachable', 'endpoint', `cannot reach ${this.endpoint}: ${s3Code(error)} (is the S3 service up? fix endpoint)`, error);
      const status = s3Status(error);
      if (status === 404 || s3Code(error) === 'NoSuchBucket') throw new S3AccessError('bucket-missing', 'bucket', `the bucket ${bucket} does not exist on ${this.endpoint} (create it, or fix bucket)`, error);
      if (s3Code(error) === 'CredentialsProviderError') {
        throw new S3AccessError('credentials', 'accessKey', `no S3 credentials: set accessKey and secretKey, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, error);
      }
      if (status === 301 || s3Code(error) === 'PermanentRedirect') throw new S3AccessError('failed', 'region', `the bucket ${bucket} is in another region than ${this.region} (fix region)`, error);
      if (status !== 403) throw new S3AccessError('failed', 'endpoint', `cannot use the bucket ${bucket} on ${this.endpoint}: ${s3Code(error)}`, error);
    }
    // A HEAD's 403 has no body: ask a request that names the reason (ListBuckets, any valid key may call it).
    try {
      await this.client.send(new ListBucketsCommand({}));
    } catch (error) {
      const code = s3Code(error);
      if (code === 'InvalidAccessKeyId') throw new S3AccessError('credentials', 'accessKey', `the access key is not known to ${this.endpoint} (fix accessKey)`, error);
      if (code === 'SignatureDoesNotMatch') throw new S3AccessError('credentials', 'secretKey', `the secret key does not match the access key on ${this.endpoint} (fix secretKey)`, error);
    }
    throw new S3AccessError('denied', 'bucket', `the bucket ${bucket} on ${this.endpoint} refuses this access key (grant it list, get, put and delete on the bucket)`);
  }

  async stat(digest: Digest): Promise<number | undefined> {
    return (await this.bucket.head(this.layout.blob(digest), `reading the size of blob ${digest}`))?.ContentLength;
  }

  async reader(digest: Digest, range?: ByteRange): Promise<Readable> {
    const object = await this.bucket.get(this.layout.blob(digest), `reading blob ${digest}`, range);
    if (!object) throw new BlobNotFoundError(digest);
    return object.Body;
  }

  /** Pipes the blob (or a range) into `destination` at its pace and ends it; either side failing destroys both. */
  async copyTo(digest: Digest, destination: Writable, range?: ByteRange): Promise<void> {
    await pipeline(await this.reader(digest, range), destination);
  }

  async readSmall(digest: Digest, limit: number): Promise<Buffer> {
    const key = this.layout.blob(digest);
    const operation = `reading blob ${digest}`;
    const object = await this.bucket.get(key, operation);
    if (!object) throw new BlobNotFoundError(digest);
    const size = object.ContentLength ?? 0;
    if (size > limit) {
      object.Body.destroy();
      throw new Error(`blob ${digest} is ${size} bytes, more than the ${limit} allowed here`);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of object.Body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * Opens an ingest. Nothing is written until its first append (an ingest without a record holds
   * 0 bytes), so opening costs no request, resumed (`resume`) or not.
   */
  async ingest(ref: string, _options?: { resume?: boolean }): Promise<Ingest> {
    return new S3Ingest(this, ref);
  }

  /**
   * The refs of every ingest with anything in the bucket (a record, a `data` object or an upload):
   * for a start-up tidy of ingests whose upload session is gone, as the fs driver's caller does
   * with its ingest directory.
   */
  async *ingestRefs(): AsyncIterable<string> {
    const seen = new Set<string>();
    const prefix = this.layout.ingestPrefix;
    const refOf = (key: string): string | undefined => (key.startsWith(prefix) ? key.slice(prefix.length).split('/')[0] : undefined);
    for await (const { key } of this.bucket.list(prefix, 'listing ingests')) {
      const ref = refOf(key);
      if (ref && !seen.has(ref)) {
        seen.add(ref);
        yield ref;
      }
    }
    for await (const { key } of this.bucket.uploads(prefix, 'listing ingests')) {
      const ref = refOf(key);
      if (ref && !seen.has(ref)) {
        seen.add(ref);
        yield ref;
      }
    }
  }

  /**
   * Writes a whole blob. Up to one part, it is hashed in memory and put straight under its digest
   * once verified; a larger one goes through an ingest (`put-<uuid>`) and its commit.
   */
  async put(source: Readable, expected: Digest, expectedSize?: number, signal?: AbortSignal): Promise<CommitResult> {
    const { algorithm } = parseDigest(expected);
    const iterator = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const buffered: Buffer[] = [];
    let total = 0;
    let ended = false;
    const onAbort = () => source.destroy(signal?.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      signal?.throwIfAborted();
      // A size known to be above one part goes to the ingest at once.
      while (expectedSize === undefined || expectedSize <= this.partSize) {
        const next = await iterator.next();
        signal?.throwIfAborted();
        if (next.done) {
          ended = true;
          break;
        }
        buffered.push(next.value);
        total += next.value.length;
        if (expectedSize !== undefined && total > expectedSize) throw new SizeMismatchError(expected, expectedSize, total);
        if (total > this.partSize) break;
      }
    } catch (error) {
      source.destroy();
      throw signal?.aborted ? signal.reason : error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (ended) {
      if (expectedSize !== undefined && total !== expectedSize) throw new SizeMismatchError(expected, expectedSize, total);
      const body = Buffer.concat(buffered, total);
      const actual = `${algorithm}:${createDigester(algorithm).update(body).digest('hex')}`;
      if (actual !== expected) throw new DigestMismatchError(expected, actual);
      return this.placeBytes(expected, body);
    }
    // What was read already, then the rest of the source.
    const rest = Readable.from(
      (async function* () {
        yield* buffered.splice(0);
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      })(),
      { objectMode: false },
    );
    rest.once('close', () => {
      if (!source.destroyed && !source.readableEnded) source.destroy();
    });
    const ingest = new S3Ingest(this, `put-${randomUUID()}`);
    try {
      await ingest.append(rest, { offset: 0, ...(expectedSize !== undefined ? { maxBytes: expectedSize } : {}), ...(signal ? { signal } : {}) });
      return await ingest.commit(expected, expectedSize);
    } catch (error) {
      // The first failure is the one to report; commit removes its ingest itself.
      await ingest.abort().catch(() => undefined);
      throw error;
    }
  }

  /**
   * Puts verified bytes under `digest`, or touches the copy already there. A HEAD first: a blob
   * stored already is not written again, and a new one leaves no wanted mark behind.
   */
  private async placeBytes(digest: Digest, body: Buffer): Promise<CommitResult> {
    const key = this.layout.blob(digest);
    if ((await this.bucket.head(key, `committing blob ${digest}`)) && (await this.touch(digest))) return { digest, size: body.length, alreadyExisted: true };
    await this.bucket.put(key, body, `writing blob ${digest}`, { written: String(Date.now()) });
    return { digest, size: body.length, alreadyExisted: false };
  }

  /** @internal IngestHost: the commit's last step, a server-side copy of the verified bytes (see s3-ingest.ts). */
  async place(digest: Digest, source: string | Buffer, size: number): Promise<CommitResult> {
    if (typeof source !== 'string') return this.placeBytes(digest, source);
    const key = this.layout.blob(digest);
    const operation = `committing blob ${digest}`;
    if ((await this.bucket.head(key, operation)) && (await this.touch(digest))) return { digest, size, alreadyExisted: true };
    await this.bucket.copy(source, key, size, { written: String(Date.now()) }, operation);
    return { digest, size, alreadyExisted: false };
  }

  async delete(digest: Digest): Promise<boolean> {
    const key = this.layout.blob(digest);
    const operation = `deleting blob ${digest}`;
    // S3's DELETE answers the same whether or not the object was there.
    if (!(await this.bucket.head(key, operation))) return false;
    await this.bucket.delete(key, operation);
    return true;
  }

  async *list(): AsyncIterable<Digest> {
    for await (const { key } of this.bucket.list(this.layout.blobsPrefix, 'listing blobs')) {
      const digest = this.layout.digestOfBlobKey(key);
      if (digest) yield digest;
    }
  }

  /** A presigned GET of the blob, valid `expiresIn` seconds (a client may add a Range header). */
  async presignedUrl(digest: Digest, expiresIn: number = this.presign?.expiresIn ?? DEFAULT_PRESIGN_SECONDS): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket.name, Key: this.layout.blob(digest) }), { expiresIn });
  }

  /** Where a client may fetch the blob itself, when redirects are configured (BlobStore.redirectUrl). */
  async redirectUrl(digest: Digest): Promise<string | undefined> {
    return this.presign ? this.presignedUrl(digest, this.presign.expiresIn) : undefined;
  }

  // ---- garbage collection: a condemned blob is copied aside and deleted, then purged or put back ----
  //
  // The race the collector must win (collector.ts, dispose): a writer that finds a blob stored
  // touches it, then links it in the metadata; the collector moves a condemned blob aside, then
  // asks whether the move came after a touch (put it back) or whether the metadata shows a new
  // link (put it back), else deletes it. On a filesystem the touch is the file's mtime set a day
  // ahead and the move a rename(2): one inode, so either the touch lands before the move (and the
  // collector sees it) or it fails (the file is gone, and the writer stores its own copy).
  //
  // S3 has no rename and no mtime to set, so the mark is an object of its own, `gc-wanted/<digest>`,
  // and the two sides order their steps so that one of them must see the other (S3 is strongly
  // consistent: a request sees every write that completed before it began):
  //   writer (touch):          1. PUT the mark           2. HEAD the blob: there -> true
  //   collector (quarantine):  1. copy blob -> gc-trash  2. DELETE the blob  3. HEAD the mark
  // If the writer's HEAD found the blob, its PUT came before that HEAD, which came before the
  // collector's DELETE, which came before its HEAD of the mark: the collector sees the mark and
  // puts the blob back. If the writer's HEAD came after the DELETE, touch says false and the
  // writer stores its own copy (a commit) or the client uploads it (a mount), as with a file.
  // A touch that said false leaves its mark (removing it could hide another writer's): it costs
  // at most one more cycle for that blob, and `restore` and `unmark` clear it.
  // A writer that stores a fresh copy sets the object's `written` stamp, which `quarantine`
  // reports as the fs driver reports a file's mtime.

  /** Marks a stored blob as wanted (a writer about to link it found it stored); false when it is gone. See above. */
  async touch(digest: Digest): Promise<boolean> {
    await this.bucket.put(this.layout.wanted(digest), Buffer.alloc(0), `marking blob ${digest} wanted`, { until: String(Date.now() + WANTED_MARK_MS) });
    return (await this.bucket.head(this.layout.blob(digest), `marking blob ${digest} wanted`)) !== undefined;
  }

  /** Clears the mark of `touch` once its link is recorded (gone is fine). */
  async unmark(digest: Digest): Promise<void> {
    await this.bucket.delete(this.layout.wanted(digest), `clearing the wanted mark of blob ${digest}`).catch(() => undefined);
  }

  /**
   * Moves the blob aside (a copy under gc-trash/, then the blob's delete). When it was written (or
   * until when a writer's mark holds, whichever is later), or undefined when it was not there.
   */
  async quarantine(digest: Digest): Promise<number | undefined> {
    const key = this.layout.blob(digest);
    const trash = this.layout.trash(digest);
    const operation = `moving blob ${digest} aside`;
    const head = await this.bucket.head(key, operation);
    if (!head) return undefined;
    try {
      // `keep`: the trash copy carries the stamp of the object copied, which may be a fresh copy written after the HEAD.
      await this.bucket.copy(key, trash, head.ContentLength ?? 0, head.Metadata ?? {}, operation, { keep: true });
    } catch (error) {
      if (isMissingObject(error)) return undefined; // deleted meanwhile
      throw error;
    }
    await this.bucket.delete(key, operation);
    // The copy's stamp, not the HEAD's: a fresh copy written between the two is the one moved.
    const [mark, moved] = await Promise.all([this.bucket.head(this.layout.wanted(digest), operation), this.bucket.head(trash, operation)]);
    return Math.max(writtenAt(moved ?? head), wantedUntil(mark));
  }

  /**
   * Puts a quarantined blob back (it was linked again meanwhile). A copy committed since wins (its
   * bytes are the same). The wanted mark has done its job: the next review judges the blob afresh.
   * True when the blob is in place afterwards.
   */
  async restore(digest: Digest): Promise<boolean> {
    const key = this.layout.blob(digest);
    const trash = this.layout.trash(digest);
    const operation = `restoring blob ${digest}`;
    if (!(await this.bucket.head(key, operation))) {
      const moved = await this.bucket.head(trash, operation);
      if (moved) {
        try {
          await this.bucket.copy(trash, key, moved.ContentLength ?? 0, { written: String(Date.now()) }, operation);
        } catch (error) {
          if (!isMissingObject(error)) throw error;
        }
      }
    }
    await this.bucket.delete(this.layout.wanted(digest), operation);
    await this.bucket.delete(trash, operation);
    return (await this.bucket.head(key, operation)) !== undefined;
  }

  /** Deletes a quarantined blob for good; the bytes it frees (0 when it was not there). */
  async purge(digest: Digest): Promise<number> {
    const trash = this.layout.trash(digest);
    const operation = `deleting blob ${digest}`;
    const moved = await this.bucket.head(trash, operation);
    if (!moved) return 0;
    await this.bucket.delete(trash, operation);
    return moved.ContentLength ?? 0;
  }

  /** Blobs in quarantine (a cycle cut short leaves some). */
  async *trashed(): AsyncIterable<Digest> {
    for await (const { key } of this.bucket.list(this.layout.trashPrefix, 'listing quarantined blobs')) {
      const digest = this.layout.digestOfTrashKey(key);
      if (digest) yield digest;
    }
  }

  /** When the blob was written (or until when a writer's mark holds, whichever is later), or undefined when absent. */
  async modifiedAt(digest: Digest): Promise<number | undefined> {
    const operation = `reading when blob ${digest} was written`;
    const [head, mark] = await Promise.all([this.bucket.head(this.layout.blob(digest), operation), this.bucket.head(this.layout.wanted(digest), operation)]);
    return head ? Math.max(writtenAt(head), wantedUntil(mark)) : undefined;
  }

  /** @internal IngestHost */
  memo(ref: string): IngestMemo | undefined {
    return this.memos.get(ref);
  }

  /** @internal IngestHost */
  setMemo(ref: string, memo: IngestMemo | undefined): void {
    this.memos.delete(ref);
    if (!memo) return;
    this.memos.set(ref, memo);
    // Sessions abandoned here and ended on another replica never come back to clear theirs: the
    // oldest go (losing one costs its commit a read-back, nothing more).
    if (this.memos.size > MAX_MEMOS) this.memos.delete(this.memos.keys().next().value!);
  }
}
