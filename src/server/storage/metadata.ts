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

  /** Lets `repository` serve the blob (after a push or a mount). */
  linkBlob(repository: string, digest: Digest): Promise<void>;
  isBlobLinked(repository: string, digest: Digest): Promise<boolean>;
  unlinkBlob(repository: string, digest: Digest): Promise<boolean>;
  /** The repositories that link the blob, in lexical order, at most `limit`. */
  blobLinks(digest: Digest, limit: number): Promise<string[]>;

  /**
   * Records a manifest, the blobs and manifests it references, and points `tags` at it,
   * all in one transaction.
   */
  putManifest(record: ManifestRecord, references: Digest[], tags: string[]): Promise<void>;
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

  /** Blobs no manifest and no repository link uses any more: what GC may delete. */
  unreferencedBlobs(candidates: Digest[]): Promise<Digest[]>;

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
