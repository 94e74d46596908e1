import { DatabaseSync, type StatementSync } from 'node:sqlite';
import type { Digest } from '../../digest/digest.ts';
import { storageError } from '../../content/storage-errors.ts';
import { MissingReferencesError, prefixRange, type GcVerdict, type CachedBlob, type CachedTag, type CacheEvictionRequest, type CacheEvictionStep, type CacheTouch, type ManifestRecord, type MetadataStore, type Page, type RepositoryStats, type TaggedDigest, type TagRecord, type UploadSession } from './metadata.ts';
import { manifestRecordOf, type ManifestRow } from './manifest-row.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS repositories (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blob_links (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  linked_at INTEGER NOT NULL DEFAULT 0,
  size INTEGER,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blob_links_digest ON blob_links (digest);
CREATE TABLE IF NOT EXISTS manifests (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  artifact_type TEXT,
  subject TEXT,
  annotations TEXT,
  created_at INTEGER NOT NULL,
  used_at INTEGER,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifests_subject ON manifests (repository, subject) WHERE subject IS NOT NULL;
CREATE TABLE IF NOT EXISTS manifest_references (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  child TEXT NOT NULL,
  PRIMARY KEY (repository, digest, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS manifest_references_child ON manifest_references (child);
CREATE TABLE IF NOT EXISTS tags (
  repository TEXT NOT NULL,
  tag TEXT NOT NULL,
  digest TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  checked_at INTEGER,
  PRIMARY KEY (repository, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_digest ON tags (repository, digest);
CREATE TABLE IF NOT EXISTS cache_repositories (
  name TEXT PRIMARY KEY
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cache_blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  used_at INTEGER NOT NULL,
  released_at INTEGER,
  recheck INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_blobs_recheck ON cache_blobs (used_at, digest) WHERE released_at IS NULL AND recheck = 1;
CREATE INDEX IF NOT EXISTS cache_blobs_released ON cache_blobs (released_at, digest) WHERE released_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS gc_review (
  digest TEXT PRIMARY KEY,
  touched_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS gc_review_touched ON gc_review (touched_at, digest);
CREATE TABLE IF NOT EXISTS gc_trash (
  digest TEXT PRIMARY KEY,
  since INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS upstream_listings (
  key TEXT PRIMARY KEY,
  names TEXT NOT NULL,
  changed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
  id TEXT PRIMARY KEY,
  repository TEXT NOT NULL,
  offset INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`;

/** A digest (?1) some repository links, some manifest references, or is stored as a manifest. */
const LINKED_OR_REFERENCED = `EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1)
  OR EXISTS (SELECT 1 FROM manifest_references WHERE child = ?1)
  OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)`;

interface UploadRow {
  id: string;
  repository: string;
  offset: number;
  started_at: number;
  updated_at: number;
}

function toSession(row: UploadRow): UploadSession {
  return { id: row.id, repository: row.repository, offset: row.offset, startedAt: row.started_at, updatedAt: row.updated_at };
}


/**
 * Embedded metadata in one SQLite file (node:sqlite, no server, no native build).
 * WAL with synchronous=FULL: a manifest, tag or delete acknowledged to a client survives kill -9
 * and power loss. The bookkeeping of a blob push (upload sessions, blob links) commits with
 * synchronous=NORMAL instead (`relaxed`): it survives kill -9, and a power loss only once a later
 * FULL commit (the manifest that uses the blob) or a checkpoint has synced the log. Its fsyncs,
 * four per blob on this thread, were a third of a sync destination's CPU. The mirror's cache
 * records are mostly relaxed too (cached repositories and blobs, tag checks): a cache that
 * forgets some of its last records after a power loss fetches or checks again. A cached manifest
 * and its record stay FULL. Six of the eight fsyncs per cold image go: 20 cold image pulls held
 * this thread (and every request it serves) 15 ms instead of 79 ms.
 */
export class SqliteMetadataStore implements MetadataStore {
  private readonly db: DatabaseSync;
  private readonly statements = new Map<string, StatementSync>();

  constructor(path: string) {
    try {
      this.db = new DatabaseSync(path);
    } catch (error) {
      throw storageError(error, `opening the metadata database ${path}`);
    }
    try {
      this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = OFF;');
      this.db.exec(SCHEMA);
      this.migrate();
    } catch (error) {
      this.db.close();
      throw storageError(error, `opening the metadata database ${path}`);
    }
  }

  /**
   * Brings a database made by an older skiff up to SCHEMA. Inside BEGIN IMMEDIATE, so two
   * processes opening the same file at once do not both add the column.
   */
  private migrate(): void {
    this.transaction(() => {
      const columns = this.db.prepare('PRAGMA table_info(uploads)').all() as { name: string }[];
      if (!columns.some((column) => column.name === 'updated_at')) {
        // Sessions from before expiry existed: their last activity is unknown, so count from their start.
        this.db.exec('ALTER TABLE uploads ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0; UPDATE uploads SET updated_at = started_at;');
      }
      this.db.exec('CREATE INDEX IF NOT EXISTS uploads_updated_at ON uploads (updated_at)');
      const tagColumns = this.db.prepare('PRAGMA table_info(tags)').all() as { name: string }[];
      // Before the mirror: no tag was ever checked upstream.
      if (!tagColumns.some((column) => column.name === 'checked_at')) this.db.exec('ALTER TABLE tags ADD COLUMN checked_at INTEGER');
      // Before the cache's LRU: no manifest was an LRU entry (used_at stays NULL for local ones).
      const manifestColumns = this.db.prepare('PRAGMA table_info(manifests)').all() as { name: string }[];
      if (!manifestColumns.some((column) => column.name === 'used_at')) this.db.exec('ALTER TABLE manifests ADD COLUMN used_at INTEGER');
      this.db.exec('CREATE INDEX IF NOT EXISTS manifests_lru ON manifests (used_at) WHERE used_at IS NOT NULL');
      // Before garbage collection: links had no time and no size. Every linked digest is queued
      // for review, with the grace period counting from this upgrade.
      const linkColumns = this.db.prepare('PRAGMA table_info(blob_links)').all() as { name: string }[];
      if (!linkColumns.some((column) => column.name === 'linked_at')) {
        const now = Date.now();
        this.db.exec(`ALTER TABLE blob_links ADD COLUMN linked_at INTEGER NOT NULL DEFAULT 0; ALTER TABLE blob_links ADD COLUMN size INTEGER; UPDATE blob_links SET linked_at = ${now};`);
        this.db.exec(`INSERT OR IGNORE INTO gc_review (digest, touched_at) SELECT DISTINCT digest, ${now} FROM blob_links`);
      }
      this.db.exec('CREATE INDEX IF NOT EXISTS manifests_digest ON manifests (digest)');
    });
  }

  private sql(text: string): StatementSync {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Runs `work` in one write transaction. On SQLITE_FULL or an I/O error SQLite may already have
   * rolled back by itself; ROLLBACK then fails ("no transaction is active") and must not hide
   * the error that matters. Storage failures come out as StorageError naming `operation`.
   */
  private transaction<T>(work: () => T, operation = 'updating the metadata database'): T {
    return this.write(operation, () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = work();
        this.db.exec('COMMIT');
        return result;
      } catch (error) {
        if (this.db.isTransaction) {
          try {
            this.db.exec('ROLLBACK');
          } catch {
            // The original error is the one to report.
          }
        }
        throw error;
      }
    });
  }

  /**
   * Runs `work` with synchronous=NORMAL: its commits reach the WAL file but are not fsynced. In WAL
   * mode the database stays consistent after a power loss; it may lose these commits, never a
   * later FULL one (that fsync covers the whole log before it).
   */
  private relaxed<T>(work: () => T): T {
    this.db.exec('PRAGMA synchronous = NORMAL');
    try {
      return work();
    } finally {
      this.db.exec('PRAGMA synchronous = FULL');
    }
  }

  /** One write outside a transaction: storage failures come out as StorageError naming `operation`. */
  private write<T>(operation: string, work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw storageError(error, operation);
    }
  }

  private ensureRepository(repository: string): void {
    this.sql('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)').run(repository, Date.now());
  }

  /** Keyset pagination over a sorted text column; byte order is the spec's "lexical". */
  private page(query: string, params: (string | number)[], limit: number | undefined, after: string | undefined, column: string): Page<string> {
    const where = after !== undefined ? ` AND ${column} > ?` : '';
    const args = after !== undefined ? [...params, after] : params;
    const take = limit === undefined ? -1 : limit + 1;
    const rows = this.sql(`${query}${where} ORDER BY ${column} LIMIT ?`).all(...args, take) as Record<string, string>[];
    const items = rows.map((row) => row[column] as string);
    const more = limit !== undefined && items.length > limit;
    return { items: more ? items.slice(0, limit) : items, more };
  }

  async listRepositories(limit: number | undefined, after: string | undefined): Promise<Page<string>> {
    return this.page('SELECT name FROM repositories WHERE 1 = 1', [], limit, after, 'name');
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return this.sql('SELECT 1 FROM repositories WHERE name = ?').get(repository) !== undefined;
  }

  async linkBlob(repository: string, digest: Digest, size?: number): Promise<void> {
    // Relaxed: a blob only matters to a client once a manifest uses it, and that commit is FULL.
    this.relaxed(() => this.transaction(() => {
      const now = Date.now();
      this.ensureRepository(repository);
      // A link made again (a re-push, a mount) renews the blob's protection from the collector.
      this.sql(
        `INSERT INTO blob_links (repository, digest, linked_at, size) VALUES (?, ?, ?, ?)
         ON CONFLICT (repository, digest) DO UPDATE SET linked_at = excluded.linked_at, size = COALESCE(excluded.size, size)`,
      ).run(repository, digest, now, size ?? null);
      this.review(digest, now);
      this.handOverToLocal(repository, [digest]);
    }, `linking blob ${digest} to ${repository} in the metadata database`));
  }

  /** Queues `digest` for the collector, as of the event at `at`. */
  private review(digest: Digest, at: number): void {
    this.sql('INSERT INTO gc_review (digest, touched_at) VALUES (?, ?) ON CONFLICT (digest) DO UPDATE SET touched_at = MAX(touched_at, excluded.touched_at)').run(digest, at);
  }

  async isBlobLinked(repository: string, digest: Digest): Promise<boolean> {
    return this.sql('SELECT 1 FROM blob_links WHERE repository = ? AND digest = ?').get(repository, digest) !== undefined;
  }

  async unlinkBlob(repository: string, digest: Digest): Promise<boolean> {
    return this.transaction(() => {
      const removed = Number(this.sql('DELETE FROM blob_links WHERE repository = ? AND digest = ?').run(repository, digest).changes) > 0;
      if (removed) {
        this.recheckCachedBlob(digest); // a cached blob this link kept may be unused now
        this.review(digest, Date.now());
      }
      return removed;
    }, `unlinking blob ${digest} from ${repository} in the metadata database`);
  }

  async blobLinks(digest: Digest, limit: number): Promise<string[]> {
    const rows = this.sql('SELECT repository FROM blob_links WHERE digest = ? ORDER BY repository LIMIT ?').all(digest, limit) as { repository: string }[];
    return rows.map((row) => row.repository);
  }

  async putManifest(record: ManifestRecord, references: Digest[], tags: string[], options: { required?: Digest[] } = {}): Promise<void> {
    this.transaction(() => {
      if (options.required && options.required.length > 0) {
        const present = this.sql('SELECT 1 WHERE EXISTS (SELECT 1 FROM blob_links WHERE repository = ?1 AND digest = ?2) OR EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = ?2)');
        const missing = options.required.filter((child) => present.get(record.repository, child) === undefined);
        if (missing.length > 0) throw new MissingReferencesError(record.repository, missing);
      }
      this.ensureRepository(record.repository);
      this.sql(
        `INSERT INTO manifests (repository, digest, media_type, size, artifact_type, subject, annotations, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (repository, digest) DO NOTHING`,
      ).run(
        record.repository,
        record.digest,
        record.mediaType,
        record.size,
        record.artifactType ?? null,
        record.subject ?? null,
        record.annotations ? JSON.stringify(record.annotations) : null,
        record.createdAt,
      );
      const insertReference = this.sql('INSERT OR IGNORE INTO manifest_references (repository, digest, child) VALUES (?, ?, ?)');
      for (const child of references) insertReference.run(record.repository, record.digest, child);
      // A push's blobs were queued for the collector when linked; now that this manifest uses them,
      // their review would only find them kept. Those linked in this repository alone leave the
      // queue (a link elsewhere stays queued, so the collector may prune it if nothing there uses it).
      const settled = this.sql('DELETE FROM gc_review WHERE digest = ?1 AND NOT EXISTS (SELECT 1 FROM blob_links WHERE digest = ?1 AND repository != ?2)');
      for (const child of references) settled.run(child, record.repository);
      const upsertTag = this.sql(
        `INSERT INTO tags (repository, tag, digest, updated_at, checked_at) VALUES (?, ?, ?, ?, NULL)
         ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, checked_at = NULL`,
      );
      for (const tag of tags) upsertTag.run(record.repository, tag, record.digest, Date.now());
      this.handOverToLocal(record.repository, [record.digest, ...references]);
    }, `recording manifest ${record.digest} of ${record.repository} in the metadata database`);
  }

  async getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const row = this.sql('SELECT * FROM manifests WHERE repository = ? AND digest = ?').get(repository, digest) as ManifestRow | undefined;
    return row ? manifestRecordOf(row) : undefined;
  }

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    const row = this.sql('SELECT digest FROM tags WHERE repository = ? AND tag = ?').get(repository, tag) as { digest: string } | undefined;
    return row?.digest as Digest | undefined;
  }

  async getTag(repository: string, tag: string): Promise<TagRecord | undefined> {
    const row = this.sql('SELECT digest, updated_at, checked_at FROM tags WHERE repository = ? AND tag = ?').get(repository, tag) as
      | { digest: string; updated_at: number; checked_at: number | null }
      | undefined;
    if (!row) return undefined;
    const record: TagRecord = { digest: row.digest as Digest, updatedAt: row.updated_at };
    if (row.checked_at !== null) record.checkedAt = row.checked_at;
    return record;
  }

  async markTagChecked(repository: string, tag: string, at: number): Promise<boolean> {
    // Relaxed: a check forgotten is made again.
    return this.relaxed(() => this.write(`recording the upstream check of ${repository}:${tag} in the metadata database`, () => Number(this.sql('UPDATE tags SET checked_at = ? WHERE repository = ? AND tag = ?').run(at, repository, tag).changes) > 0));
  }

  async listTags(repository: string, limit: number | undefined, after: string | undefined): Promise<Page<string>> {
    return this.page('SELECT tag FROM tags WHERE repository = ?', [repository], limit, after, 'tag');
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return this.write(`deleting tag ${repository}:${tag} in the metadata database`, () => Number(this.sql('DELETE FROM tags WHERE repository = ? AND tag = ?').run(repository, tag).changes) > 0);
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    return this.transaction(() => this.dropManifest(repository, digest), `deleting manifest ${digest} of ${repository} in the metadata database`);
  }

  /** Removes a manifest, its tags and its references; the cached blobs it used are checked again by the next eviction. */
  private dropManifest(repository: string, digest: Digest): boolean {
    const children = this.sql('SELECT child FROM manifest_references WHERE repository = ? AND digest = ?').all(repository, digest) as { child: Digest }[];
    const removed = Number(this.sql('DELETE FROM manifests WHERE repository = ? AND digest = ?').run(repository, digest).changes) > 0;
    this.sql('DELETE FROM tags WHERE repository = ? AND digest = ?').run(repository, digest);
    this.sql('DELETE FROM manifest_references WHERE repository = ? AND digest = ?').run(repository, digest);
    this.recheckCachedBlob(digest);
    for (const { child } of children) this.recheckCachedBlob(child);
    if (removed) {
      const now = Date.now();
      this.review(digest, now);
      for (const { child } of children) this.review(child, now);
    }
    return removed;
  }

  async listReferrers(repository: string, subject: Digest, artifactType?: string): Promise<ManifestRecord[]> {
    // INDEXED BY: without statistics the planner would scan the repository's whole primary-key range.
    const rows = (
      artifactType === undefined
        ? this.sql('SELECT * FROM manifests INDEXED BY manifests_subject WHERE repository = ? AND subject = ? ORDER BY created_at, digest').all(repository, subject)
        : this.sql('SELECT * FROM manifests INDEXED BY manifests_subject WHERE repository = ? AND subject = ? AND artifact_type = ? ORDER BY created_at, digest').all(
            repository,
            subject,
            artifactType,
          )
    ) as unknown as ManifestRow[];
    return rows.map(manifestRecordOf);
  }

  async unreferencedBlobs(candidates: Digest[]): Promise<Digest[]> {
    const used = this.sql(
      `SELECT 1 WHERE ${LINKED_OR_REFERENCED}`,
    );
    return candidates.filter((digest) => used.get(digest) === undefined);
  }

  // ---- retention rules and quotas ----

  async tagsWithTimes(repository: string): Promise<TaggedDigest[]> {
    const rows = this.sql('SELECT tag, digest, updated_at FROM tags WHERE repository = ? ORDER BY updated_at DESC, tag DESC').all(repository) as { tag: string; digest: Digest; updated_at: number }[];
    return rows.map((row) => ({ tag: row.tag, digest: row.digest, updatedAt: row.updated_at }));
  }

  async untaggedManifests(repository: string, createdBefore: number): Promise<ManifestRecord[]> {
    const rows = this.sql(
      `SELECT * FROM manifests m
        WHERE m.repository = ?1 AND m.created_at < ?2
          AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = ?1 AND t.digest = m.digest)
          AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = m.digest AND r.repository = ?1)
          AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository = ?1 AND s.digest = m.subject))
        ORDER BY m.created_at, m.digest`,
    ).all(repository, createdBefore) as unknown as ManifestRow[];
    return rows.map(manifestRecordOf);
  }

  async manifestParents(repository: string, child: Digest): Promise<Digest[]> {
    const rows = this.sql('SELECT digest FROM manifest_references WHERE child = ? AND repository = ? ORDER BY digest').all(child, repository) as { digest: Digest }[];
    return rows.map((row) => row.digest);
  }

  async manifestChildren(repository: string, digest: Digest): Promise<Digest[]> {
    const rows = this.sql(
      `SELECT r.child FROM manifest_references r
        WHERE r.repository = ?1 AND r.digest = ?2 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = ?1 AND m.digest = r.child)
        ORDER BY r.child`,
    ).all(repository, digest) as { child: Digest }[];
    return rows.map((row) => row.child);
  }

  async referrersOf(repository: string, subject: Digest): Promise<Digest[]> {
    // Digests only: the partial index manifests_subject answers by itself (SELECT * would make the
    // planner read the repository's manifests instead, without statistics to tell it otherwise).
    const rows = this.sql('SELECT digest FROM manifests WHERE repository = ? AND subject = ? ORDER BY digest').all(repository, subject) as { digest: Digest }[];
    return rows.map((row) => row.digest);
  }

  async isCachedRepository(repository: string): Promise<boolean> {
    return this.sql('SELECT 1 FROM cache_repositories WHERE name = ?').get(repository) !== undefined;
  }

  async deleteTagIfUnchanged(repository: string, tag: string, digest: Digest, updatedAt: number): Promise<boolean> {
    return this.write(`deleting tag ${repository}:${tag} in the metadata database`, () =>
      Number(this.sql('DELETE FROM tags WHERE repository = ? AND tag = ? AND digest = ? AND updated_at = ?').run(repository, tag, digest, updatedAt).changes) > 0,
    );
  }

  async deleteManifestIfUnused(repository: string, digest: Digest): Promise<boolean> {
    const used = this.sql(
      `SELECT 1 WHERE EXISTS (SELECT 1 FROM tags WHERE repository = ?1 AND digest = ?2)
          OR EXISTS (SELECT 1 FROM manifest_references WHERE child = ?2 AND repository = ?1)
          OR EXISTS (SELECT 1 FROM manifests m JOIN manifests s ON s.repository = m.repository AND s.digest = m.subject WHERE m.repository = ?1 AND m.digest = ?2)`,
    );
    return this.transaction(() => (used.get(repository, digest) !== undefined ? false : this.dropManifest(repository, digest)), `deleting manifest ${digest} of ${repository} in the metadata database`);
  }

  async repositoryUsage(repository: string): Promise<number> {
    const row = this.sql(
      `SELECT (SELECT COALESCE(SUM(size), 0) FROM blob_links WHERE repository = ?1)
            + (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repository = ?1) AS bytes`,
    ).get(repository) as { bytes: number };
    return Number(row.bytes);
  }

  // ---- garbage collection ----

  async gcDue(before: number, limit: number, after?: Digest): Promise<Digest[]> {
    const rows = this.sql('SELECT digest FROM gc_review WHERE touched_at <= ? AND digest > ? ORDER BY digest LIMIT ?').all(before, after ?? '', limit) as { digest: Digest }[];
    return rows.map((row) => row.digest);
  }

  async gcQueue(before: number): Promise<{ queued: number; due: number }> {
    const row = this.sql('SELECT COUNT(*) AS queued, COALESCE(SUM(touched_at <= ?), 0) AS due FROM gc_review').get(before) as { queued: number; due: number };
    return { queued: Number(row.queued), due: Number(row.due) };
  }

  async gcCondemn(digests: Digest[], cutoff: number, at: number, options: { dryRun?: boolean } = {}): Promise<GcVerdict[]> {
    const dryRun = options.dryRun ?? false;
    const used = this.sql(
      `SELECT 1 WHERE EXISTS (SELECT 1 FROM manifest_references WHERE child = ?1)
          OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)
          OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = ?1 AND released_at IS NULL)`,
    );
    // Links older than the cutoff in repositories where no manifest uses the blob: a push that
    // never got its manifest, a manifest deleted since. A kept blob stays for the others.
    const stale = `FROM blob_links WHERE digest = ?1 AND linked_at <= ?2
      AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository = blob_links.repository AND r.child = ?1)
      AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository = blob_links.repository AND m.digest = ?1)
      AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = blob_links.repository)`;
    const newestLink = this.sql('SELECT MAX(linked_at) AS newest FROM blob_links WHERE digest = ?');
    const decide = (digest: Digest): GcVerdict => {
      if (used.get(digest) !== undefined) {
        const prunedLinks = dryRun
          ? Number((this.sql(`SELECT COUNT(*) AS n ${stale}`).get(digest, cutoff) as { n: number }).n)
          : Number(this.sql(`DELETE ${stale}`).run(digest, cutoff).changes);
        if (!dryRun) this.sql('DELETE FROM gc_review WHERE digest = ?').run(digest);
        return { digest, verdict: 'kept', prunedLinks };
      }
      const newest = (newestLink.get(digest) as { newest: number | null }).newest;
      if (newest !== null && newest > cutoff) {
        // Due again when that link is as old as the grace period.
        if (!dryRun) this.review(digest, newest);
        return { digest, verdict: 'later', prunedLinks: 0 };
      }
      if (dryRun) return { digest, verdict: 'condemned', prunedLinks: Number((this.sql('SELECT COUNT(*) AS n FROM blob_links WHERE digest = ?').get(digest) as { n: number }).n) };
      const prunedLinks = Number(this.sql('DELETE FROM blob_links WHERE digest = ?').run(digest).changes);
      this.sql('DELETE FROM gc_review WHERE digest = ?').run(digest);
      this.sql('DELETE FROM cache_blobs WHERE digest = ?').run(digest);
      this.sql('INSERT INTO gc_trash (digest, since) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING').run(digest, at);
      return { digest, verdict: 'condemned', prunedLinks };
    };
    if (dryRun) return digests.map(decide);
    return this.transaction(() => digests.map(decide), `reviewing ${digests.length} blobs for garbage collection in the metadata database`);
  }

  async gcTrash(): Promise<Digest[]> {
    return (this.sql('SELECT digest FROM gc_trash ORDER BY since, digest').all() as { digest: Digest }[]).map((row) => row.digest);
  }

  async gcSettle(digests: Digest[]): Promise<{ revived: Digest[]; gone: Digest[] }> {
    if (digests.length === 0) return { revived: [], gone: [] };
    const back = this.sql(
      `SELECT 1 WHERE ${LINKED_OR_REFERENCED} OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = ?1)`,
    );
    return this.transaction(() => {
      const revived: Digest[] = [];
      const gone: Digest[] = [];
      for (const digest of digests) {
        this.sql('DELETE FROM gc_trash WHERE digest = ?').run(digest);
        (back.get(digest) !== undefined ? revived : gone).push(digest);
      }
      return { revived, gone };
    }, `settling ${digests.length} collected blobs in the metadata database`);
  }

  async gcUnknown(digests: Digest[]): Promise<Digest[]> {
    const known = this.sql(
      `SELECT 1 WHERE ${LINKED_OR_REFERENCED}
          OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = ?1)
          OR EXISTS (SELECT 1 FROM gc_review WHERE digest = ?1)
          OR EXISTS (SELECT 1 FROM gc_trash WHERE digest = ?1)`,
    );
    return digests.filter((digest) => known.get(digest) === undefined);
  }

  async gcQueueDigests(digests: Digest[], at: number): Promise<void> {
    if (digests.length === 0) return;
    this.transaction(() => {
      for (const digest of digests) this.review(digest, at);
    }, 'queueing blobs for garbage collection in the metadata database');
  }

  // ---- the mirror cache's LRU ----

  /**
   * Local content that uses a cached blob makes it local: it leaves the cache's count, and no
   * eviction will take it (what becomes of it is garbage collection's business).
   */
  private handOverToLocal(repository: string, digests: Digest[]): void {
    if (this.sql('SELECT 1 FROM cache_repositories WHERE name = ?').get(repository) !== undefined) return;
    const drop = this.sql('DELETE FROM cache_blobs WHERE digest = ?');
    for (const digest of digests) drop.run(digest);
  }

  /** True when a local repository links the blob, stores a manifest under its digest, or has a manifest that references it. */
  private usedLocally(digest: Digest): boolean {
    return (
      this.sql(
        `SELECT 1 WHERE EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = ?1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = l.repository))
            OR EXISTS (SELECT 1 FROM manifests m WHERE m.digest = ?1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = m.repository))
            OR EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = ?1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = r.repository))`,
      ).get(digest) !== undefined
    );
  }

  /** Flags a cached blob for the next eviction step to check: it may have lost its last user. */
  private recheckCachedBlob(digest: Digest): void {
    this.sql('UPDATE cache_blobs SET recheck = 1 WHERE digest = ? AND released_at IS NULL AND recheck = 0').run(digest);
  }

  /** True while a manifest (cached or local) references the blob, one is stored under its digest, or a local repository links it. */
  private blobUsed(digest: Digest): boolean {
    return (
      this.sql(
        `SELECT 1 WHERE EXISTS (SELECT 1 FROM manifest_references WHERE child = ?1)
            OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)
            OR EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = ?1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = l.repository))`,
      ).get(digest) !== undefined
    );
  }

  private recordBlob({ digest, size }: CachedBlob, at: number): number {
    if (this.usedLocally(digest)) return 0; // local content: never the cache's to count or evict
    const before = this.sql('SELECT released_at FROM cache_blobs WHERE digest = ?').get(digest) as { released_at: number | null } | undefined;
    this.sql(
      `INSERT INTO cache_blobs (digest, size, used_at, released_at, recheck) VALUES (?, ?, ?, NULL, 1)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size, used_at = MAX(used_at, excluded.used_at), released_at = NULL, recheck = 1`,
    ).run(digest, size, at);
    return before === undefined || before.released_at !== null ? size : 0;
  }

  async saveUpstreamListing(key: string, names: string[], at: number): Promise<void> {
    const json = JSON.stringify(names);
    // An unchanged answer (the usual case) must not cost a write and an fsync per tags request.
    const row = this.sql('SELECT names FROM upstream_listings WHERE key = ?').get(key) as { names: string } | undefined;
    if (row?.names === json) return;
    this.write(`saving the upstream listing ${key} in the metadata database`, () =>
      this.sql('INSERT INTO upstream_listings (key, names, changed_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET names = excluded.names, changed_at = excluded.changed_at').run(key, json, at),
    );
  }

  async upstreamListing(key: string): Promise<{ names: string[]; changedAt: number } | undefined> {
    const row = this.sql('SELECT names, changed_at FROM upstream_listings WHERE key = ?').get(key) as { names: string; changed_at: number } | undefined;
    return row ? { names: JSON.parse(row.names) as string[], changedAt: row.changed_at } : undefined;
  }

  // Relaxed (see the class comment), but for a cached manifest's record: without its used_at a
  // manifest that survived a power loss would never be evicted, nor the blobs it holds. A cached
  // blob whose record (and link, committed after it) a power loss forgets is left to `skiff gc`
  // once no manifest uses it.

  async markCachedRepository(repository: string): Promise<void> {
    this.relaxed(() => this.write(`marking ${repository} as cached in the metadata database`, () => this.sql('INSERT OR IGNORE INTO cache_repositories (name) VALUES (?)').run(repository)));
  }

  async recordCachedBlob(blob: CachedBlob, at: number): Promise<number> {
    return this.relaxed(() => this.transaction(() => this.recordBlob(blob, at), `recording cached blob ${blob.digest} in the metadata database`));
  }

  async recordCachedManifest(repository: string, blob: CachedBlob, at: number): Promise<number> {
    return this.transaction(() => {
      this.sql('INSERT OR IGNORE INTO cache_repositories (name) VALUES (?)').run(repository);
      this.sql('UPDATE manifests SET used_at = MAX(COALESCE(used_at, 0), ?) WHERE repository = ? AND digest = ?').run(at, repository, blob.digest);
      return this.recordBlob(blob, at);
    }, `recording cached manifest ${blob.digest} of ${repository} in the metadata database`);
  }

  async touchCache(manifests: CacheTouch[], blobs: CacheTouch[]): Promise<void> {
    if (manifests.length === 0 && blobs.length === 0) return;
    this.transaction(() => {
      const manifest = this.sql('UPDATE manifests SET used_at = ?1 WHERE repository = ?2 AND digest = ?3 AND used_at IS NOT NULL AND used_at < ?1');
      for (const { repository, digest, at } of manifests) if (repository !== undefined) manifest.run(at, repository, digest);
      const blob = this.sql('UPDATE cache_blobs SET used_at = ?1 WHERE digest = ?2 AND used_at < ?1');
      for (const { digest, at } of blobs) blob.run(at, digest);
    }, 'recording cache hits in the metadata database');
  }

  async cacheSize(): Promise<number> {
    const row = this.sql('SELECT COALESCE(SUM(size), 0) AS bytes FROM cache_blobs WHERE released_at IS NULL').get() as { bytes: number };
    return row.bytes;
  }

  async evictCache(request: CacheEvictionRequest): Promise<CacheEvictionStep> {
    const pinned = new Set(request.pinned);
    const maxSteps = request.maxSteps ?? 256;
    const blobBatch = pinned.size + 64;
    // Two ordered walks of partial indexes, merged here: the oldest root manifest, and the cached
    // blobs flagged for a check (new, or whose users went), oldest first.
    const manifestQuery = this.sql(
      `SELECT repository, digest, used_at FROM manifests m
        WHERE used_at IS NOT NULL AND used_at < ?
          AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = m.digest AND r.repository = m.repository)
        ORDER BY used_at, repository, digest LIMIT ?`,
    );
    const blobQuery = this.sql('SELECT digest, size, used_at FROM cache_blobs WHERE released_at IS NULL AND recheck = 1 AND used_at < ? ORDER BY used_at, digest LIMIT ?');
    return this.transaction(() => {
      const step: CacheEvictionStep = { manifests: [], released: [], exhausted: false };
      let freed = 0;
      let steps = 0;
      const busy = () => steps >= maxSteps || freed >= request.bytes;
      while (!busy()) {
        const manifest = (manifestQuery.all(request.usedBefore, pinned.size + 1) as { repository: string; digest: Digest; used_at: number }[]).find((row) => !pinned.has(row.digest));
        const rows = blobQuery.all(request.usedBefore, blobBatch) as { digest: Digest; size: number; used_at: number }[];
        let olderManifest = false;
        for (const row of rows) {
          if (busy()) break;
          if (pinned.has(row.digest)) continue;
          if (manifest && manifest.used_at < row.used_at) {
            olderManifest = true;
            break;
          }
          steps++;
          if (this.blobUsed(row.digest)) this.sql('UPDATE cache_blobs SET recheck = 0 WHERE digest = ?').run(row.digest);
          else {
            this.sql('UPDATE cache_blobs SET released_at = ? WHERE digest = ?').run(request.now, row.digest);
            step.released.push({ digest: row.digest, size: row.size });
            freed += row.size;
          }
        }
        if (busy()) break;
        if (!olderManifest && rows.length === blobBatch) continue; // more flagged blobs to look at
        if (!manifest) {
          step.exhausted = true;
          break;
        }
        steps++;
        this.dropManifest(manifest.repository, manifest.digest);
        step.manifests.push({ repository: manifest.repository, digest: manifest.digest });
      }
      return step;
    }, 'evicting from the mirror cache in the metadata database');
  }

  async releasedBlobs(limit: number): Promise<CachedBlob[]> {
    return this.sql('SELECT digest, size FROM cache_blobs WHERE released_at IS NOT NULL ORDER BY released_at, digest LIMIT ?').all(limit) as unknown as CachedBlob[];
  }

  async confirmRelease(digest: Digest): Promise<boolean> {
    return this.transaction(() => {
      const row = this.sql('SELECT released_at FROM cache_blobs WHERE digest = ?').get(digest) as { released_at: number | null } | undefined;
      if (row === undefined || row.released_at === null) return false;
      if (!this.blobUsed(digest)) return true;
      this.sql('UPDATE cache_blobs SET released_at = NULL, recheck = 0 WHERE digest = ?').run(digest);
      return false;
    }, `confirming the release of cached blob ${digest} in the metadata database`);
  }

  async restoreCachedBlob(digest: Digest): Promise<void> {
    this.write(`restoring cached blob ${digest} in the metadata database`, () =>
      this.sql('UPDATE cache_blobs SET released_at = NULL, recheck = 1 WHERE digest = ? AND released_at IS NOT NULL').run(digest),
    );
  }

  async forgetCachedBlob(digest: Digest): Promise<void> {
    this.transaction(() => {
      if (Number(this.sql('DELETE FROM cache_blobs WHERE digest = ? AND released_at IS NOT NULL').run(digest).changes) === 0) return;
      this.sql('DELETE FROM blob_links WHERE digest = ? AND repository IN (SELECT name FROM cache_repositories)').run(digest);
    }, `forgetting evicted blob ${digest} in the metadata database`);
  }

  // ---- the web UI's read-only views ----
  // CROSS JOIN fixes SQLite's join order: the short side (the page's names, an upstream's key range
  // of cached repositories) outside, each repository's rows read through their primary key inside.

  async repositoryStats(names: string[]): Promise<RepositoryStats[]> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return [];
    // One JSON parameter: one cached statement whatever the page's length.
    const rows = this.sql(
      `SELECT r.name,
              (SELECT COUNT(*) FROM tags t WHERE t.repository = r.name) AS tags,
              (SELECT COALESCE(SUM(size), 0) FROM blob_links l WHERE l.repository = r.name)
                + (SELECT COALESCE(SUM(size), 0) FROM manifests m WHERE m.repository = r.name) AS bytes,
              COALESCE((SELECT MAX(updated_at) FROM tags t WHERE t.repository = r.name),
                       (SELECT MAX(created_at) FROM manifests m WHERE m.repository = r.name)) AS last_push,
              EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = r.name) AS cached
         FROM json_each(?) n CROSS JOIN repositories r ON r.name = n.value
        ORDER BY n.key`,
    ).all(JSON.stringify(unique)) as { name: string; tags: number; bytes: number; last_push: number | null; cached: number }[];
    return rows.map((row) => ({ name: row.name, tags: Number(row.tags), bytes: Number(row.bytes), lastPush: row.last_push, cached: row.cached !== 0 }));
  }

  async cachedTags(prefix: string, options: { offset: number; limit: number; checkedBefore?: number }): Promise<{ tags: CachedTag[]; total: number }> {
    const { from, to } = prefixRange(prefix);
    // The count and the page in one statement: both from the same snapshot, and a count even for
    // a page past the end (the LEFT JOIN's one row of NULLs).
    const rows = this.sql(
      `WITH matching AS (
         SELECT t.repository, t.tag, t.digest, t.updated_at, t.checked_at
           FROM cache_repositories c CROSS JOIN tags t ON t.repository = c.name
          WHERE c.name >= ?1 AND c.name < ?2 AND (?3 IS NULL OR t.checked_at IS NULL OR t.checked_at < ?3))
       SELECT (SELECT COUNT(*) FROM matching) AS total, p.*
         FROM (SELECT 1) LEFT JOIN (
           SELECT * FROM matching ORDER BY checked_at NULLS FIRST, repository, tag LIMIT ?4 OFFSET ?5
         ) p ON 1
        ORDER BY p.checked_at NULLS FIRST, p.repository, p.tag`,
    ).all(from, to, options.checkedBefore ?? null, options.limit, options.offset) as {
      total: number;
      repository: string | null;
      tag: string;
      digest: Digest;
      updated_at: number;
      checked_at: number | null;
    }[];
    const tags: CachedTag[] = [];
    for (const row of rows) {
      if (row.repository === null) continue;
      tags.push({ repository: row.repository, tag: row.tag, digest: row.digest, updatedAt: row.updated_at, checkedAt: row.checked_at ?? undefined });
    }
    return { tags, total: Number(rows[0]?.total ?? 0) };
  }

  async cacheUsage(prefix: string, checkedBefore: number): Promise<{ repositories: number; bytes: number; staleTags: number }> {
    const { from, to } = prefixRange(prefix);
    // A digest held by several of the upstream's repositories (a shared base layer) counts once.
    const row = this.sql(
      `WITH repos AS (SELECT name FROM cache_repositories WHERE name >= ?1 AND name < ?2),
            held AS (
              SELECT m.digest, m.size FROM repos r CROSS JOIN manifests m ON m.repository = r.name
              UNION ALL
              SELECT l.digest, COALESCE(l.size, (SELECT b.size FROM cache_blobs b WHERE b.digest = l.digest)) AS size
                FROM repos r CROSS JOIN blob_links l ON l.repository = r.name),
            sizes AS (SELECT digest, MAX(size) AS size FROM held GROUP BY digest)
       SELECT (SELECT COUNT(*) FROM repos) AS repositories,
              (SELECT COALESCE(SUM(size), 0) FROM sizes) AS bytes,
              (SELECT COUNT(*) FROM repos r CROSS JOIN tags t ON t.repository = r.name WHERE t.checked_at IS NULL OR t.checked_at < ?3) AS stale_tags`,
    ).get(from, to, checkedBefore) as { repositories: number; bytes: number; stale_tags: number };
    return { repositories: Number(row.repositories), bytes: Number(row.bytes), staleTags: Number(row.stale_tags) };
  }

  async createUpload(session: UploadSession): Promise<void> {
    // An open upload does not make a repository exist (catalog, tags list): only content does.
    // Relaxed, as every upload-session write: a session lost to a power loss is restarted by its
    // client (BLOB_UPLOAD_UNKNOWN), and an offset left behind its file is cut back to on resume.
    this.relaxed(() =>
      this.write(`recording upload ${session.id} in the metadata database`, () =>
        this.sql('INSERT INTO uploads (id, repository, offset, started_at, updated_at) VALUES (?, ?, ?, ?, ?)').run(
          session.id,
          session.repository,
          session.offset,
          session.startedAt,
          session.updatedAt,
        ),
      ),
    );
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const row = this.sql('SELECT * FROM uploads WHERE id = ?').get(id) as UploadRow | undefined;
    return row ? toSession(row) : undefined;
  }

  async setUploadOffset(id: string, offset: number): Promise<void> {
    this.relaxed(() => this.write(`recording the offset of upload ${id} in the metadata database`, () => this.sql('UPDATE uploads SET offset = ?, updated_at = ? WHERE id = ?').run(offset, Date.now(), id)));
  }

  async staleUploads(idleSince: number, limit: number): Promise<UploadSession[]> {
    const rows = this.sql('SELECT * FROM uploads WHERE updated_at < ? ORDER BY updated_at, id LIMIT ?').all(idleSince, limit) as unknown as UploadRow[];
    return rows.map(toSession);
  }

  async deleteUpload(id: string): Promise<void> {
    this.relaxed(() => this.write(`removing upload ${id} from the metadata database`, () => this.sql('DELETE FROM uploads WHERE id = ?').run(id)));
  }

  async ping(): Promise<void> {
    this.sql('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
