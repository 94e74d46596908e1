import type { Digest } from '../../digest/digest.ts';

/** What the registry remembers about one manifest in one repository. */
export interface ManifestRecord {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The manifest's artifactType, else its config media type (for the referrers API). */
  artifactType?: string;
  subject?: Digest;
  annotations?: Record<string, string>;
  createdAt: number;
}

/** A tag, and (for a mirror's cached tags) when the upstream last confirmed it. */
export interface TagRecord {
  digest: Digest;
  /** When the tag last moved (or was first set). */
  updatedAt: number;
  /** When a mirror last fetched or revalidated the tag upstream; absent for local tags and after a move. */
  checkedAt?: number;
}

export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes durably received; the next chunk must start here. */
  offset: number;
  startedAt: number;
  /**
   * Last activity: creation, then every offset change. Expiry is measured from here, not from
   * startedAt, so a long upload that keeps sending chunks never expires.
   */
  updatedAt: number;
}

/** A blob the mirror holds in its cache, counted once however many repositories use it. */
export interface CachedBlob {
  digest: Digest;
  size: number;
}

/** A cached manifest or blob used again at `at` (the LRU's clock: milliseconds since the epoch). */
export interface CacheTouch {
  repository?: string;
  digest: Digest;
  at: number;
}

export interface CacheEvictionRequest {
  /** Stop once this many bytes are released. */
  bytes: number;
  /** Only entries last used before this (the grace period: what was used since stays). */
  usedBefore: number;
  /** Digests in use in this process (a response, a push): neither evicted nor released. */
  pinned: Iterable<Digest>;
  /** The time recorded as the release time. */
  now: number;
  /** The most entries one call examines (one transaction), so that a call stays short. */
  maxSteps?: number;
}

export interface CacheEvictionStep {
  /** Cached manifests removed (with their tags and references), least recently used first. */
  manifests: { repository: string; digest: Digest }[];
  /**
   * Blobs released: no manifest and no local repository uses them any more. They no longer count
   * in cacheSize. The caller deletes each file (confirmRelease, delete, forgetCachedBlob).
   */
  released: CachedBlob[];
  /** Nothing else can be evicted now (all that is left is in use, recent, or local). */
  exhausted: boolean;
}

export interface Page<T> {
  items: T[];
  /** True when more items follow the last one returned. */
  more: boolean;
}

/**
 * Registry metadata: repositories, tags, manifests, blob links, referrers, uploads.
 * The embedded implementation is SQLite; a PostgreSQL one fits the same interface, which is
 * why queries (pages, referrers, unreferenced blobs) live here and not at call sites.
 * Every method is async for that reason.
 */
export interface MetadataStore {
  listRepositories(limit: number | undefined, after: string | undefined): Promise<Page<string>>;
  repositoryExists(repository: string): Promise<boolean>;

  /**
   * Lets `repository` serve the blob (after a push or a mount). A link protects the blob from the
   * garbage collector for the grace period from now (a push's blobs come before its manifest);
   * `size`, when known, counts toward the repository's quota usage.
   */
  linkBlob(repository: string, digest: Digest, size?: number): Promise<void>;
  isBlobLinked(repository: string, digest: Digest): Promise<boolean>;
  unlinkBlob(repository: string, digest: Digest): Promise<boolean>;
  /** The repositories that link the blob, in lexical order, at most `limit`. */
  blobLinks(digest: Digest, limit: number): Promise<string[]>;

  /**
   * Records a manifest, the blobs and manifests it references, and points `tags` at it,
   * all in one transaction. With `required`, the transaction first checks that each of those
   * digests is still linked in the repository (or is one of its manifests) and throws
   * MissingReferencesError if not: the garbage collector may have condemned a blob since the
   * caller checked, and a manifest must never be recorded over a missing blob.
   */
  putManifest(record: ManifestRecord, references: Digest[], tags: string[], options?: { required?: Digest[] }): Promise<void>;
  getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined>;
  resolveTag(repository: string, tag: string): Promise<Digest | undefined>;
  getTag(repository: string, tag: string): Promise<TagRecord | undefined>;
  /**
   * Records that the upstream confirmed the tag at `at` (the mirror's tag TTL counts from here).
   * putManifest clears it when it points the tag anywhere. False when there is no such tag.
   */
  markTagChecked(repository: string, tag: string, at: number): Promise<boolean>;
  listTags(repository: string, limit: number | undefined, after: string | undefined): Promise<Page<string>>;
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** Removes the manifest, every tag on it and its references. */
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;
  listReferrers(repository: string, subject: Digest, artifactType?: string): Promise<ManifestRecord[]>;

  // ---- retention rules and quotas (docs/gc.md) ----
  // Each query reads one repository's rows through an index: retention walks the repositories its
  // rules match, a quota check reads the repository being pushed to.

  /** A repository's tags with the digest each names and when it last moved: newest first, ties broken by the greater tag name. */
  tagsWithTimes(repository: string): Promise<TaggedDigest[]>;
  /**
   * Where retention starts looking for untagged manifests: those of `repository` created before
   * `createdBefore` that no tag names, no manifest of the repository references (an index), and
   * whose subject, if any, is not a manifest of the repository. Oldest first.
   */
  untaggedManifests(repository: string, createdBefore: number): Promise<ManifestRecord[]>;
  /** The manifests of `repository` that reference the manifest `child` (indexes over it). */
  manifestParents(repository: string, child: Digest): Promise<Digest[]>;
  /** The manifests of `repository` that the manifest `digest` references (an index's children); blobs are left out. */
  manifestChildren(repository: string, digest: Digest): Promise<Digest[]>;
  /** The digests of the manifests of `repository` whose subject is `subject` (its referrers), from the subject index alone. */
  referrersOf(repository: string, subject: Digest): Promise<Digest[]>;
  /** True for a mirror's cached repository (markCachedRepository): retention never touches one. */
  isCachedRepository(repository: string): Promise<boolean>;
  /**
   * Deletes the tag only if it still names `digest` and last moved at `updatedAt`: a push that
   * moved or re-pushed it since retention looked wins. False when it did (or there is no such tag).
   */
  deleteTagIfUnchanged(repository: string, tag: string, digest: Digest, updatedAt: number): Promise<boolean>;
  /**
   * deleteManifest, only if, checked in the same transaction, no tag names it, no manifest of the
   * repository references it and its subject is not a manifest of the repository: a push that
   * started using it since retention looked wins. False when it did (or there is no such manifest).
   */
  deleteManifestIfUnused(repository: string, digest: Digest): Promise<boolean>;
  /**
   * Bytes a repository holds for its quota: every blob linked there once (a link of unknown size
   * counts 0), plus the size of each of its manifests.
   */
  repositoryUsage(repository: string): Promise<number>;

  /** Blobs no manifest and no repository link uses any more: what GC may delete. */
  unreferencedBlobs(candidates: Digest[]): Promise<Digest[]>;

  // ---- garbage collection (docs/gc.md) ----
  // A review queue, as GitLab's registry keeps: every event that may leave a blob unused (a link
  // made or removed, a manifest deleted) queues its digest with the event's time. The collector
  // reviews digests whose last event is older than the grace period, and decides each in one
  // transaction; the file goes only after that decision, through a trash entry that survives a crash.

  /** Queued digests whose last event was at or before `before`, in digest order after `after`. */
  gcDue(before: number, limit: number, after?: Digest): Promise<Digest[]>;
  /** How many digests are queued, and how many of them are due at `before`. */
  gcQueue(before: number): Promise<{ queued: number; due: number }>;
  /**
   * Decides queued digests as of `cutoff` (now less the grace period), in one transaction:
   * `kept` when a manifest references it or is stored under it, or the mirror cache holds it (its
   * review is done, and links older than the cutoff in repositories where nothing uses it go);
   * `later` when a link younger than the cutoff protects it (it stays queued, due when that link
   * is); `condemned` when nothing uses it: its links and review go and a trash entry records it,
   * so that its file may be moved aside. With `dryRun`, nothing is written.
   */
  gcCondemn(digests: Digest[], cutoff: number, at: number, options?: { dryRun?: boolean }): Promise<GcVerdict[]>;
  /** Digests in the trash: condemned, their file not yet dealt with (a crash came between). */
  gcTrash(): Promise<Digest[]>;
  /**
   * After condemned blobs' files were moved aside: removes their trash entries and says which came
   * back meanwhile (a push linked it, a manifest references it): those files must return.
   */
  gcSettle(digests: Digest[]): Promise<{ revived: Digest[]; gone: Digest[] }>;
  /** The digests no table mentions (no link, manifest, reference, cache entry, review or trash entry): files no metadata knows. */
  gcUnknown(digests: Digest[]): Promise<Digest[]>;
  /** Queues digests for review with event time `at` (the orphan sweep's finds). */
  gcQueueDigests(digests: Digest[], at: number): Promise<void>;

  // ---- the mirror cache's LRU (docs/mirror.md "Eviction") ----
  // Cached content is recorded apart from local content: its repositories (whose blob links keep
  // nothing), its blobs with their sizes, each once, and a last-use time on each cached manifest.
  // A blob that local content uses (a local repository's link or manifest) is local: linkBlob and
  // putManifest in a repository not marked cached take it out of the cache, and recording it does
  // not put it in. Eviction is a query here plus blob deletes, never a walk of the files.

  /** `repository` is a mirror's copy of an upstream's: its manifests can be evicted, and its blob links keep no blob. */
  markCachedRepository(repository: string): Promise<void>;
  /**
   * Records a blob the mirror stored (a filled layer or config), last used at `at`. Resolves the
   * bytes newly counted: its size when it was not in the cache (or released) and no local content
   * uses it, else 0.
   */
  recordCachedBlob(blob: CachedBlob, at: number): Promise<number>;
  /**
   * Records a manifest the mirror stored in a cached repository (after putManifest): the repository
   * is marked cached, the manifest becomes an LRU entry used at `at`, and its body a cached blob.
   * Resolves the bytes newly counted.
   */
  recordCachedManifest(repository: string, blob: CachedBlob, at: number): Promise<number>;
  /**
   * Moves the last use of cached manifests and blobs forward (never back). One call per batch:
   * the mirror coalesces hits in memory and writes them every few seconds. Entries that are not
   * in the cache are left alone.
   */
  touchCache(manifests: CacheTouch[], blobs: CacheTouch[]): Promise<void>;
  /** Bytes the cache holds: every cached blob once, released ones excluded. */
  cacheSize(): Promise<number>;
  /**
   * One step of LRU eviction, in one transaction. Entries, least recently used first, are the
   * cached manifests that no other manifest of their repository references (an index takes its
   * children along), and the cached blobs that nothing uses any more. A manifest is removed (its
   * tags and references with it), which may leave its blobs unused: they then take their turn by
   * their own last use. A blob is released when no manifest (cached or local) references it, no
   * manifest is stored under its digest, and no local repository links it. Local content is
   * never an entry.
   */
  evictCache(request: CacheEvictionRequest): Promise<CacheEvictionStep>;
  /**
   * The mirror's last answer from an upstream for a listing (`tags:<cached repository>`,
   * `catalog:<upstream host>`): what it serves, marked stale, while that upstream cannot answer.
   * Saving the same names again writes nothing.
   */
  saveUpstreamListing(key: string, names: string[], at: number): Promise<void>;
  upstreamListing(key: string): Promise<{ names: string[]; changedAt: number } | undefined>;
  /** Released blobs not forgotten yet (a crash came between release and delete), oldest release first. */
  releasedBlobs(limit: number): Promise<CachedBlob[]>;
  /**
   * Just before the file of a released blob is deleted: true when still nothing uses it. When
   * something does again (a push linked it meanwhile), it is back in the cache and false comes back.
   */
  confirmRelease(digest: Digest): Promise<boolean>;
  /** A released blob that was in use when its turn came is back in the cache (checked again later). */
  restoreCachedBlob(digest: Digest): Promise<void>;
  /** After its file was deleted: the released blob's row goes, with the cached repositories' links to it. */
  forgetCachedBlob(digest: Digest): Promise<void>;

  // ---- the web UI's read-only views (issue 16) ----
  // Each is one statement, so a page of the UI costs one round trip whatever its size, and sees one
  // committed snapshot. An upstream's repositories are found by a key range on their names, never
  // LIKE: an upstream's prefix holds `_` (`127.0.0.1_5000`), and a range walks the primary key.

  /**
   * Figures for a page of repositories (≤ 200 names) in ONE round trip/query per store (the UI asks
   * for a page of 50 of 10,000 repositories and must answer in a few ms); results in the order of
   * `names`; names that are not repositories are left out (a name given twice comes once).
   */
  repositoryStats(names: string[]): Promise<RepositoryStats[]>;
  /**
   * The tags of the cached repositories whose name starts with `prefix + '/'` (one upstream's), stalest
   * first: never-checked (checked_at NULL) first, then checked_at ascending, then repository, tag.
   * With `checkedBefore`, only those never checked or checked before it (the stale ones).
   * `total` counts all that match (for paging).
   */
  cachedTags(prefix: string, options: { offset: number; limit: number; checkedBefore?: number }): Promise<{ tags: CachedTag[]; total: number }>;
  /**
   * One upstream's share of the mirror cache: cached repositories under `prefix + '/'`, and the bytes of
   * each DISTINCT digest they hold once: their manifests (manifests.size) and the blobs linked in them
   * (size from the link, else cache_blobs.size). `staleTags`: their tags never checked or checked before `checkedBefore`.
   * cacheSize cannot answer this: it counts a blob once for all upstreams, and only while no local content uses it.
   */
  cacheUsage(prefix: string, checkedBefore: number): Promise<{ repositories: number; bytes: number; staleTags: number }>;

  createUpload(session: UploadSession): Promise<void>;
  getUpload(id: string): Promise<UploadSession | undefined>;
  /** Also sets updatedAt to now (Date.now(): the clock staleUploads' idleSince comes from). */
  setUploadOffset(id: string, offset: number): Promise<void>;
  deleteUpload(id: string): Promise<void>;
  /** Up to `limit` sessions with updatedAt before `idleSince`, least recently active first. */
  staleUploads(idleSince: number, limit: number): Promise<UploadSession[]>;

  /** Readiness probe for /healthz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** One repository's figures for the UI's list (MetadataStore.repositoryStats). */
export interface RepositoryStats {
  name: string;
  /** Tags in the repository. */
  tags: number;
  /** Same definition as repositoryUsage: every blob linked there (its link's size; a link of unknown size counts 0) plus the size of each of its manifests. */
  bytes: number;
  /** max(tags.updated_at) of the repository; when it has no tag, max(manifests.created_at); null when neither. */
  lastPush: number | null;
  /** Marked cached (markCachedRepository). */
  cached: boolean;
}

/** A cached repository's tag and its upstream check, for the UI's mirror view (MetadataStore.cachedTags). */
export interface CachedTag {
  repository: string;
  tag: string;
  digest: Digest;
  /** When the tag last moved (or was first set). */
  updatedAt: number;
  /** When the upstream last confirmed it; undefined when never (or not since it moved). */
  checkedAt: number | undefined;
}

/**
 * The key range of the repositories under `prefix + '/'`: [prefix/, prefix0), '0' being the
 * character after '/'. In byte order (SQLite's, and COLLATE "C" in PostgreSQL) a name lies in it
 * exactly when it starts with `prefix + '/'`; unlike LIKE, `_` and `%` in the prefix mean themselves.
 */
export function prefixRange(prefix: string): { from: string; to: string } {
  return { from: `${prefix}/`, to: `${prefix}0` };
}

/** A tag and what it names, for retention (MetadataStore.tagsWithTimes). */
export interface TaggedDigest {
  tag: string;
  digest: Digest;
  /** When the tag last moved (or was first set, or pushed again). */
  updatedAt: number;
}

/** The collector's decision on one digest (MetadataStore.gcCondemn). */
export interface GcVerdict {
  digest: Digest;
  verdict: 'kept' | 'later' | 'condemned';
  /** Links removed: all of a condemned blob's, or a kept blob's links that nothing in their repository uses. */
  prunedLinks: number;
}

/** A manifest's references that are no longer in its repository (putManifest with requireReferences). */
export class MissingReferencesError extends Error {
  override readonly name = 'MissingReferencesError';
  readonly missing: Digest[];

  constructor(repository: string, missing: Digest[]) {
    super(`manifest references blobs no longer in ${repository}: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    this.missing = missing;
  }
}
