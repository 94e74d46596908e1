import { randomUUID } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import type { BlobStore, ByteRange } from '../content/store.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { InvalidDigestError, digestOf, isDigest, parseDigest, type Digest } from '../digest/digest.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { MediaTypes } from '../oci/media-types.ts';
import { InvalidManifestError, MAX_MANIFEST_BYTES, childDescriptors, parseManifest } from '../oci/manifest.ts';
import type { Descriptor, ImageIndex } from '../oci/descriptor.ts';
import { isValidTag, nameProblem } from '../reference/name.ts';
import { ManifestCache } from './manifest-cache.ts';
import { KeyedMutex } from '../content/keyed-mutex.ts';
import type { KeyedLock } from '../content/keyed-lock.ts';
import type { LoginLimiter, LoginLimits } from '../auth/login-limiter.ts';
import { BlobPins } from '../content/blob-pins.ts';
import { MissingReferencesError, type ManifestRecord, type MetadataStore, type UploadSession } from './storage/metadata.ts';
import type { MirrorRoute } from '../proxy/upstreams.ts';
import { pageOf, type Mirror, type MirroredPage, type ServedBlob } from './mirror.ts';
import { Quotas, type QuotaRule } from './quota.ts';

export interface RegistryOptions {
  deleteEnabled: boolean;
  readOnly: boolean;
  /** Repository size limits (YAML `quotas:`); pushes over one are refused with 403 DENIED. */
  quotas?: QuotaRule[] | undefined;
  /** Who may touch an upload session at a time: this process's mutex, or replicas' shared one (Redis). */
  uploadLocks?: KeyedLock | undefined;
  /** Replicas' shared lock under which a garbage-collection cycle runs (PostgreSQL's advisory lock, else a Redis lease: one collector at a time); this process's cycles never overlap anyway. */
  gcLock?: KeyedLock | undefined;
  /** Replicas' shared failed-login counts (Redis), for the access control serve builds. */
  loginLimiter?: ((limits: LoginLimits) => LoginLimiter) | undefined;
}

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** One chunk of an upload as it arrived: the body, its Content-Range and Content-Length. */
export interface UploadChunk {
  body: Readable;
  range?: ByteRange | undefined;
  contentLength?: number | undefined;
}

export interface ManifestHit {
  record: ManifestRecord;
  body: Buffer;
  /** A mirror's cached copy, served because its upstream could not be asked. */
  stale?: boolean;
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
  tags: string[];
}

/**
 * The registry's behaviour, independent of HTTP: every rule of the distribution spec
 * about names, links, uploads, manifests, tags and referrers lives here. The HTTP layer
 * only translates; the mirror will reuse this for its cache.
 */
export class Registry {
  private readonly manifestCache = new ManifestCache();
  /** One request at a time per upload session: the offset check and the write must not interleave. */
  private readonly uploadLocks: KeyedLock;

  readonly blobs: BlobStore;
  readonly metadata: MetadataStore;
  readonly options: RegistryOptions;
  /**
   * Blobs in use right now. A push that finds its blob committed already (a mirror's cached copy,
   * maybe) pins it until it is linked, so the cache's eviction cannot delete it in between.
   */
  readonly pins = new BlobPins();
  /** Mirror mode: the upstreams that repositories under cached namespaces fall back to. */
  mirror: Mirror | undefined;
  /** Repository quotas, when any are configured. */
  readonly quotas: Quotas | undefined;

  constructor(blobs: BlobStore, metadata: MetadataStore, options: RegistryOptions) {
    this.blobs = blobs;
    this.metadata = metadata;
    this.options = options;
    this.uploadLocks = options.uploadLocks ?? new KeyedMutex();
    this.quotas = options.quotas && options.quotas.length > 0 ? new Quotas(options.quotas, metadata) : undefined;
  }

  /**
   * Quota check before `size` bytes of blob are linked in `repository`: a blob linked there
   * already adds nothing. (Concurrent pushes may overshoot by what is in flight: see Quotas.)
   */
  private async checkBlobQuota(repository: string, digest: Digest, size: number): Promise<void> {
    if (!this.quotas?.ruleFor(repository)) return;
    if (await this.metadata.isBlobLinked(repository, digest)) return;
    await this.quotas.checkAdd(repository, size, 'blob');
  }

  private readonly closers: (() => Promise<void>)[] = [];

  /** `close` calls `work` (a connection the storage opened), last registered first. */
  onClose(work: () => Promise<void>): void {
    this.closers.unshift(work);
  }

  /**
   * Closes what the storage holds open, last opened first. Each is closed even when another fails
   * (a Redis left reconnecting would keep the process alive); the first failure is then thrown.
   */
  async close(): Promise<void> {
    const closers = this.closers.splice(0);
    if (closers.length === 0) return this.metadata.close();
    let failure: unknown;
    for (const close of closers) {
      try {
        await close();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /** Turns on mirror mode. */
  useMirror(mirror: Mirror): void {
    this.mirror = mirror;
  }

  /**
   * Where a request's repository name (and its `?ns=`) leads: an upstream route whose cached copy
   * lives under `route.canonical`, or undefined for a local repository.
   */
  private mirrorRoute(name: string, ns: string | undefined): MirrorRoute | undefined {
    if (!this.mirror) return undefined;
    const route = this.mirror.route(name, ns);
    if (route) this.checkName(route.canonical);
    return route;
  }

  /**
   * The name a repository's content is stored under, and its access decided by: a mirror route's
   * canonical name (`docker.io/library/alpine` for `library/alpine` or `?ns=docker.io`), or the name itself.
   */
  policyName(name: string, ns?: string): string {
    if (!this.mirror || nameProblem(name) !== undefined) return name;
    return this.mirror.route(name, ns)?.canonical ?? name;
  }

  /** Pushes and deletes under a cached namespace are refused: the cache follows its upstream. */
  private checkNotCached(name: string, ns: string | undefined, what: string): void {
    const route = this.mirrorRoute(name, ns);
    if (!route) return;
    const how =
      route.via === 'default'
        ? `unprefixed names go to the default upstream ${route.upstream.label}; a name its deny/allow lists exclude stays a local repository`
        : `names under ${route.upstream.prefix}/ (or ?ns=${route.upstream.host}) are cached from upstream ${route.upstream.label}`;
    throw new RegistryError('DENIED', `${what} ${name}: refused, ${route.canonical} is a read-only cache (${how}); push to the upstream itself, or to a repository outside the cached namespaces`, {
      detail: { name, cache: route.canonical, upstream: route.upstream.host },
    });
  }

  checkName(name: string): void {
    const problem = nameProblem(name);
    if (problem) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: ${problem}`, { detail: { name: name.slice(0, 300) } });
  }

  checkDigest(value: string, code: 'DIGEST_INVALID' | 'BLOB_UNKNOWN' = 'DIGEST_INVALID'): Digest {
    try {
      parseDigest(value);
      return value as Digest;
    } catch (error) {
      throw new RegistryError(code, (error as InvalidDigestError).message, { status: 400 });
    }
  }

  private checkWritable(): void {
    if (this.options.readOnly) throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode', { status: 405 });
  }

  private checkDeletable(): void {
    this.checkWritable();
    if (!this.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (started with --no-delete)', { status: 405 });
  }

  // ---- blobs ----

  /** A blob is readable through a repository when linked there, or when it is one of its manifests. */
  async statBlob(repository: string, digestText: string): Promise<BlobInfo> {
    this.checkName(repository);
    const digest = this.checkDigest(digestText);
    const linked = (await this.metadata.isBlobLinked(repository, digest)) || (await this.metadata.getManifest(repository, digest)) !== undefined;
    const size = linked ? await this.blobs.stat(digest) : undefined;
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not known in repository ${repository}`, { detail: { digest } });
    return { digest, size };
  }

  async sendBlob(digest: Digest, destination: Writable, range?: ByteRange): Promise<void> {
    return this.blobs.copyTo(digest, destination, range);
  }

  /**
   * end-2: a blob to serve through `repository`. A local repository serves what it links; a cached
   * one (mirror mode) what it links, else what its upstream sends, streamed as it arrives.
   */
  async openBlob(repository: string, digestText: string, ns?: string): Promise<ServedBlob> {
    const route = this.mirrorRoute(repository, ns);
    if (!route) {
      const blob = await this.statBlob(repository, digestText);
      return { ...blob, stored: true, copyTo: (destination, range) => this.blobs.copyTo(blob.digest, destination, range) };
    }
    return this.mirror!.blob(route, this.checkDigest(digestText));
  }

  async deleteBlob(repository: string, digestText: string, ns?: string): Promise<void> {
    this.checkName(repository);
    const digest = this.checkDigest(digestText);
    this.checkDeletable();
    this.checkNotCached(repository, ns, 'delete from');
    if (!(await this.metadata.unlinkBlob(repository, digest))) {
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not known in repository ${repository}`, { detail: { digest } });
    }
  }

  // ---- uploads ----

  /**
   * Cross-repository mount. From `from`, when the caller may pull it and it links the blob; with no
   * `from`, from any repository the caller may pull that links it, never from a blob no
   * repository links any more (deleted, awaiting collection). Undefined, for a normal upload
   * instead, in every other case alike: the answer never tells whether a digest exists elsewhere.
   */
  async mountBlob(repository: string, digestText: string, from: string | undefined, ns?: string, mayPull: (policyName: string, name: string) => boolean = () => true): Promise<BlobInfo | undefined> {
    this.checkName(repository);
    this.checkWritable();
    this.checkNotCached(repository, ns, 'push to');
    if (!isDigest(digestText)) return undefined;
    const digest = digestText;
    if (from !== undefined) {
      if (nameProblem(from) !== undefined) return undefined;
      // Mounting from a cached repository by the name clients use for it (`library/alpine`).
      const stored = this.policyName(from);
      if (!mayPull(stored, from) || !(await this.metadata.isBlobLinked(stored, digest))) return undefined;
    } else {
      const holders = await this.metadata.blobLinks(digest, AUTO_MOUNT_CANDIDATES);
      if (!holders.some((holder) => mayPull(holder, holder))) return undefined;
    }
    return this.pins.hold(digest, async () => {
      const size = await this.blobs.stat(digest);
      if (size === undefined) return undefined;
      await this.checkBlobQuota(repository, digest, size);
      // The touch tells a collector moving the file aside right now to put it back; a file
      // already moved makes it fail, and the client uploads the blob instead.
      if (!(await this.blobs.touch(digest))) return undefined;
      await this.metadata.linkBlob(repository, digest, size);
      await this.blobs.unmark(digest);
      return { digest, size };
    });
  }

  async putBlob(repository: string, digestText: string, body: Readable, contentLength: number | undefined, ns?: string): Promise<BlobInfo> {
    this.checkName(repository);
    this.checkWritable();
    this.checkNotCached(repository, ns, 'push to');
    const digest = this.checkDigest(digestText);
    // With a Content-Length the quota is checked before a byte is stored; without one, after.
    if (contentLength !== undefined) await this.checkBlobQuota(repository, digest, contentLength);
    return this.pins.hold(digest, async () => {
      const result = await this.translateWriteErrors(() => this.blobs.put(body, digest, contentLength));
      if (contentLength === undefined) {
        try {
          await this.checkBlobQuota(repository, digest, result.size);
        } catch (error) {
          // Stored but not linked: the collector reviews it (another repository may use it).
          await this.metadata.gcQueueDigests([digest], Date.now()).catch(() => undefined);
          throw error;
        }
      }
      await this.metadata.linkBlob(repository, digest, result.size);
      if (result.alreadyExisted) await this.blobs.unmark(digest);
      return { digest, size: result.size };
    });
  }

  async startUpload(repository: string, ns?: string): Promise<UploadSession> {
    this.checkName(repository);
    this.checkWritable();
    this.checkNotCached(repository, ns, 'push to');
    await this.quotas?.checkRoom(repository);
    const now = Date.now();
    const session: UploadSession = { id: randomUUID(), repository, offset: 0, startedAt: now, updatedAt: now };
    // No file yet: the first append creates it (a POST then PUT pays no storage round trip here).
    await this.metadata.createUpload(session);
    return session;
  }

  async getUpload(repository: string, id: string): Promise<UploadSession> {
    this.checkName(repository);
    const session = /^[0-9a-f-]{36}$/.test(id) ? await this.metadata.getUpload(id) : undefined;
    if (!session || session.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${id.slice(0, 64)} is not known in repository ${repository}`);
    }
    return session;
  }

  /**
   * end-13: where the upload stands. Waits for a request already writing to the session, so a
   * client resuming after a broken PATCH reads the offset that PATCH left, not the one before it.
   */
  async uploadStatus(repository: string, id: string): Promise<UploadSession> {
    return this.uploadLocks.run(id, () => this.getUpload(repository, id));
  }

  /**
   * Appends a chunk. With a Content-Range, it must start exactly where the upload stands
   * (416 otherwise) and `length` bounds how much is taken.
   */
  async appendUpload(repository: string, id: string, chunk: UploadChunk): Promise<UploadSession> {
    this.checkWritable();
    return this.uploadLocks.run(id, () => this.appendLocked(repository, id, chunk));
  }

  private async appendLocked(repository: string, id: string, { body, range, contentLength }: UploadChunk): Promise<UploadSession> {
    const session = await this.getUpload(repository, id);
    let maxBytes = contentLength;
    if (range) {
      if (range.start !== session.offset) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', `chunk starts at ${range.start} but the upload stands at ${session.offset}; send the next chunk from there`, {
          status: 416,
          headers: { Range: rangeHeader(session.offset), Location: uploadLocation(repository, id) },
        });
      }
      const length = range.end - range.start + 1;
      if (contentLength !== undefined && contentLength !== length) {
        throw new RegistryError('SIZE_INVALID', `Content-Range covers ${length} bytes but Content-Length is ${contentLength}`, { status: 400 });
      }
      maxBytes = length;
    }
    const ingest = await this.blobs.ingest(id, { resume: true });
    let offset: number;
    try {
      offset = await this.translateWriteErrors(() => ingest.append(body, { offset: session.offset, ...(maxBytes !== undefined ? { maxBytes } : {}) }));
    } catch (error) {
      // Keep what did reach the disk, so the client can resume from the status it reads.
      const kept = await ingest.size().catch(() => session.offset);
      // On a full disk this write can fail too; the append's own error is the one to report.
      // The stored offset then stays behind the file, which the next append truncates to.
      await this.metadata.setUploadOffset(id, kept).catch(() => undefined);
      throw error;
    }
    await this.metadata.setUploadOffset(id, offset);
    if (maxBytes !== undefined && offset - session.offset !== maxBytes) {
      throw new RegistryError('SIZE_INVALID', `chunk was ${offset - session.offset} bytes, expected ${maxBytes}`, {
        headers: { Range: rangeHeader(offset), Location: uploadLocation(repository, id) },
      });
    }
    return { ...session, offset };
  }

  /** Closes an upload: optional last chunk, then verify and commit under `digest`. */
  async finishUpload(repository: string, id: string, digestText: string | null, lastChunk: UploadChunk | undefined): Promise<BlobInfo> {
    this.checkWritable();
    return this.uploadLocks.run(id, () => this.finishLocked(repository, id, digestText, lastChunk));
  }

  private async finishLocked(repository: string, id: string, digestText: string | null, lastChunk: UploadChunk | undefined): Promise<BlobInfo> {
    let session = await this.getUpload(repository, id);
    if (digestText === null) throw new RegistryError('DIGEST_INVALID', 'the closing PUT needs ?digest=<algorithm>:<hex>');
    const digest = this.checkDigest(digestText);
    if (lastChunk) session = await this.appendLocked(repository, id, lastChunk);
    const ingest = await this.blobs.ingest(id, { resume: true });
    try {
      try {
        await this.checkBlobQuota(repository, digest, session.offset);
      } catch (error) {
        await ingest.abort(); // the session ends (below) with nothing stored
        throw error;
      }
      const result = await this.pins.hold(digest, async () => {
        const committed = await this.translateWriteErrors(() => ingest.commit(digest, session.offset));
        await this.metadata.linkBlob(repository, digest, committed.size);
        if (committed.alreadyExisted) await this.blobs.unmark(digest);
        return committed;
      });
      return { digest, size: result.size };
    } finally {
      // The spec's "nothing is stored" on a bad digest: the session ends either way. Should the
      // row not go (a full disk), the commit's own outcome is what the client needs to hear;
      // the upload reaper removes the row later.
      await this.metadata.deleteUpload(id).catch(() => undefined);
    }
  }

  async cancelUpload(repository: string, id: string): Promise<void> {
    this.checkWritable();
    await this.uploadLocks.run(id, async () => {
      await this.getUpload(repository, id);
      await (await this.blobs.ingest(id, { resume: true })).abort();
      await this.metadata.deleteUpload(id);
    });
  }

  /**
   * Purges a session idle since before `idleSince` (the upload reaper's call). A session with a
   * request running or queued is skipped, not waited for: that request refreshes it. Under the
   * lock the row is read again, so a PATCH that finished after the reaper listed it survives.
   * The row goes first: if removing the bytes then fails, start-up removes the orphan file.
   */
  async expireUpload(id: string, idleSince: number): Promise<boolean> {
    const expired = await this.uploadLocks.tryRun(id, async () => {
      const session = await this.metadata.getUpload(id);
      if (!session || session.updatedAt >= idleSince) return false;
      await this.metadata.deleteUpload(id);
      await (await this.blobs.ingest(id, { resume: true })).abort();
      return true;
    });
    return expired ?? false;
  }

  private async translateWriteErrors<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof DigestMismatchError) throw new RegistryError('DIGEST_INVALID', `${error.message}; nothing was stored`, { detail: { expected: error.expected, actual: error.actual } });
      if (error instanceof SizeMismatchError) throw new RegistryError('SIZE_INVALID', error.message, { status: 400 });
      throw error;
    }
  }

  // ---- manifests ----

  async resolveManifest(repository: string, reference: string): Promise<ManifestRecord> {
    this.checkName(repository);
    let digest: Digest | undefined;
    if (reference.includes(':')) digest = this.checkDigest(reference);
    // An impossible tag cannot name anything here: 404, as clients and the conformance suite expect.
    else if (isValidTag(reference)) digest = await this.metadata.resolveTag(repository, reference);
    const record = digest ? await this.metadata.getManifest(repository, digest) : undefined;
    if (!record) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not known in repository ${repository}`, { detail: { reference } });
    return record;
  }

  async getManifest(repository: string, reference: string, ns?: string): Promise<ManifestHit> {
    const route = this.mirrorRoute(repository, ns);
    if (route) {
      if (reference.includes(':')) this.checkDigest(reference);
      return this.mirror!.manifest(route, reference);
    }
    const record = await this.resolveManifest(repository, reference);
    return { record, body: await this.readManifest(record.digest) };
  }

  /** A stored manifest's bytes, through the in-memory cache. */
  async readManifest(digest: Digest): Promise<Buffer> {
    let body = this.manifestCache.get(digest);
    if (!body) {
      body = await this.blobs.readSmall(digest, MAX_MANIFEST_BYTES);
      this.manifestCache.set(digest, body);
    }
    return body;
  }

  async putManifest(repository: string, reference: string, body: Buffer, contentType: string | undefined, extraTags: string[], ns?: string): Promise<PutManifestResult> {
    this.checkName(repository);
    this.checkWritable();
    this.checkNotCached(repository, ns, 'push to');
    const tags = [...extraTags];
    let expected: Digest | undefined;
    if (reference.includes(':')) expected = this.checkDigest(reference);
    else tags.unshift(reference);
    for (const tag of tags) {
      if (!isValidTag(tag)) throw new RegistryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(tag.slice(0, 200))}`, { detail: { tag: tag.slice(0, 200) } });
    }
    const digest = digestOf(body, expected ? parseDigest(expected).algorithm : 'sha256');
    if (expected && digest !== expected) {
      throw new RegistryError('DIGEST_INVALID', `manifest body hashes to ${digest}, not ${expected}`, { detail: { expected, actual: digest } });
    }
    const parsed = this.parseManifestBody(body, contentType);
    const required = await this.checkChildrenPresent(repository, parsed.kind, childDescriptors(parsed));
    // A manifest already in the repository (tagged again) adds nothing.
    if (this.quotas?.ruleFor(repository) && (await this.metadata.getManifest(repository, digest)) === undefined) await this.quotas.checkAdd(repository, body.length, 'manifest');
    await this.recordManifest(repository, body, digest, parsed, tags, required);
    return { digest, tags, ...(parsed.subject ? { subject: parsed.subject.digest } : {}) };
  }

  /**
   * The mirror's way in: stores a manifest fetched from an upstream (already verified against the
   * digest asked for) under a cached repository, with no check of its children, which the mirror
   * fetches lazily when asked.
   */
  async storeManifest(repository: string, body: Buffer, contentType: string | undefined, tags: string[]): Promise<ManifestRecord> {
    this.checkName(repository);
    const parsed = this.parseManifestBody(body, contentType);
    return this.recordManifest(repository, body, digestOf(body), parsed, tags);
  }

  private parseManifestBody(body: Buffer, contentType: string | undefined): ReturnType<typeof parseManifest> {
    try {
      return parseManifest(body, contentType);
    } catch (error) {
      if (error instanceof InvalidManifestError) throw new RegistryError('MANIFEST_INVALID', error.message);
      throw error;
    }
  }

  /** `required`: the children checked present, checked again inside the metadata transaction (a collector may have condemned one since). */
  private async recordManifest(repository: string, body: Buffer, digest: Digest, parsed: ReturnType<typeof parseManifest>, tags: string[], required?: Digest[]): Promise<ManifestRecord> {
    const record: ManifestRecord = { repository, digest, mediaType: parsed.mediaType, size: body.length, createdAt: Date.now() };
    if (parsed.artifactType) record.artifactType = parsed.artifactType;
    if (parsed.subject) record.subject = parsed.subject.digest;
    if (parsed.annotations) record.annotations = parsed.annotations;
    const references = childDescriptors(parsed).map((d) => d.digest);
    // Pinned until the record makes the stored body in use (it may be a cached copy, committed already).
    await this.pins.hold(digest, async () => {
      const stored = await this.blobs.put(Readable.from([body]), digest, body.length);
      try {
        await this.metadata.putManifest(record, references, tags, required ? { required } : {});
        if (stored.alreadyExisted) await this.blobs.unmark(digest);
      } catch (error) {
        if (!(error instanceof MissingReferencesError)) throw error;
        // The body stored above belongs to nothing now: the collector is told, or it would wait for the daily file sweep.
        await this.metadata.gcQueueDigests([digest], Date.now());
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `${error.message} (garbage-collected while the manifest was checked: push them again)`, { detail: { missing: error.missing } });
      }
    });
    this.manifestCache.set(digest, body);
    return record;
  }

  /**
   * True when the linked blob's file is there, waiting a moment if it is not: a collector that
   * condemned an older copy may have moved the file aside just as this push linked it again, and
   * puts it back at once (docs/gc.md). Waiting beats failing a push that did everything right.
   */
  private async blobFileAppears(digest: Digest): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if ((await this.blobs.stat(digest)) !== undefined) return true;
      if (attempt >= 10) return false;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** MANIFEST_BLOB_UNKNOWN unless every referenced blob (or child manifest) is in the repository; the digests checked. */
  private async checkChildrenPresent(repository: string, kind: 'image' | 'index', children: Descriptor[]): Promise<Digest[]> {
    const missing: Digest[] = [];
    const checked: Digest[] = [];
    for (const child of children) {
      // Clients fetch foreign (non-distributable) layers from their URLs: the registry need not
      // hold them. Any other descriptor must be present, URLs or not (as distribution checks).
      if (child.urls && child.urls.length > 0 && FOREIGN_LAYER_TYPES.has(child.mediaType)) continue;
      checked.push(child.digest);
      const present =
        kind === 'index'
          ? (await this.metadata.getManifest(repository, child.digest)) !== undefined
          : (await this.metadata.isBlobLinked(repository, child.digest)) && (await this.blobFileAppears(child.digest));
      if (!present) missing.push(child.digest);
    }
    if (missing.length > 0) {
      const what = kind === 'index' ? 'child manifests' : 'blobs';
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest references ${what} not pushed to ${repository}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`, {
        detail: { missing },
      });
    }
    return checked;
  }

  async deleteManifest(repository: string, reference: string, ns?: string): Promise<void> {
    this.checkName(repository);
    this.checkDeletable();
    this.checkNotCached(repository, ns, 'delete from');
    if (!reference.includes(':')) {
      if (!isValidTag(reference)) throw new RegistryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(reference.slice(0, 200))}`);
      if (!(await this.metadata.deleteTag(repository, reference))) {
        throw new RegistryError('MANIFEST_UNKNOWN', `tag ${reference} is not known in repository ${repository}`);
      }
      return;
    }
    const digest = this.checkDigest(reference);
    if (!(await this.metadata.deleteManifest(repository, digest))) {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} is not known in repository ${repository}`);
    }
  }

  // ---- discovery ----

  async listTags(repository: string, limit: number | undefined, after: string | undefined, ns?: string): Promise<MirroredPage> {
    const route = this.mirrorRoute(repository, ns);
    if (route) return this.mirror!.tags(route, limit, after);
    this.checkName(repository);
    if (!(await this.metadata.repositoryExists(repository))) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${repository} is not known to this registry`, { detail: { name: repository } });
    }
    return this.metadata.listTags(repository, limit, after);
  }

  /** The repositories, in order, that `visible` lets the caller see (all by default). */
  async catalog(limit: number | undefined, after: string | undefined, visible?: (name: string) => boolean): Promise<MirroredPage> {
    if (this.mirror) {
      const all = await this.mirror.catalog((await this.metadata.listRepositories(undefined, undefined)).items, undefined, undefined);
      return { ...pageOf(visible ? all.items.filter(visible) : all.items, limit, after), ...(all.stale ? { stale: true } : {}) };
    }
    if (!visible) return this.metadata.listRepositories(limit, after);
    // Page through the store until the page is full of names the caller may see.
    const items: string[] = [];
    let cursor = after;
    for (;;) {
      const batch = await this.metadata.listRepositories(CATALOG_BATCH, cursor);
      for (const name of batch.items) {
        if (!visible(name)) continue;
        // One visible name past the page: only then is there a next page to link.
        if (limit !== undefined && items.length >= limit) return { items, more: true };
        items.push(name);
      }
      if (!batch.more || batch.items.length === 0) return { items, more: false };
      cursor = batch.items.at(-1);
    }
  }

  /** end-12: of a cached repository, the referrers cached so far (no upstream request). */
  async referrers(repository: string, subjectText: string, artifactType: string | undefined, ns?: string): Promise<ImageIndex> {
    repository = this.mirrorRoute(repository, ns)?.canonical ?? repository;
    this.checkName(repository);
    const subject = this.checkDigest(subjectText);
    const records = await this.metadata.listReferrers(repository, subject, artifactType);
    const manifests: Descriptor[] = records.map((record) => {
      const descriptor: Descriptor = { mediaType: record.mediaType, digest: record.digest, size: record.size };
      if (record.artifactType) descriptor.artifactType = record.artifactType;
      if (record.annotations) descriptor.annotations = record.annotations;
      return descriptor;
    });
    return { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
  }
}

/** Repositories read per step while filtering the catalog for a caller. */
const CATALOG_BATCH = 1000;
/** Repositories linking a digest that an automatic mount looks at. */
const AUTO_MOUNT_CANDIDATES = 1000;

const FOREIGN_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.dockerForeignLayerGzip,
  MediaTypes.ociLayerNondistributable,
  MediaTypes.ociLayerNondistributableGzip,
  MediaTypes.ociLayerNondistributableZstd,
]);

export function uploadLocation(repository: string, id: string): string {
  return `/v2/${repository}/blobs/uploads/${id}`;
}

/** The spec's inclusive `Range: 0-<last byte>`; an empty upload reports `0-0` as the CNCF registry does. */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(0, offset - 1)}`;
}
