import { redactUrl } from '../../errors/redact-url.ts';
import type { KeyedLock } from '../../content/keyed-lock.ts';
import pg from 'pg';
import type { ClientBase, CustomTypesConfig, PoolClient, QueryResultRow } from 'pg';
import type { Digest } from '../../digest/digest.ts';
import { StorageFailureError, StorageFullError } from '../../content/storage-errors.ts';
import { MissingReferencesError, prefixRange, type GcVerdict, type CachedBlob, type CachedTag, type CacheEvictionRequest, type CacheEvictionStep, type CacheTouch, type ManifestRecord, type MetadataStore, type Page, type RepositoryStats, type TaggedDigest, type TagRecord, type UploadSession } from './metadata.ts';
import { manifestRecordOf, type ManifestRow } from './manifest-row.ts';
import { applyMigrations, SCHEMA_VERSION, SchemaVersionError, schemaVersion } from './postgres-migrations.ts';

/*
 * Concurrency: SQLite runs one writer at a time (BEGIN IMMEDIATE), and every promise of the
 * MetadataStore interface was written against that. Here several replicas write at once, so every
 * transaction that writes runs SERIALIZABLE and is retried whole on a serialization failure
 * (40001) or a deadlock (40P01): PostgreSQL's serializable snapshot isolation then guarantees
 * that the committed transactions have the effect of some serial order, the very semantics the
 * SQLite store has. That one mechanism protects, among others:
 * - putManifest(required) against gcCondemn on the same digest: putManifest reads the link,
 *   gcCondemn reads "no reference" and deletes the link; that read/write cycle cannot commit on
 *   both sides, and the retried loser either finds the link gone (MissingReferencesError) or the
 *   reference there (the blob is kept). A manifest is never recorded over a condemned blob;
 * - a tag pushed from two replicas: both upsert one row, the second waits for the first and is
 *   retried, so the last commit wins and the tag always names a manifest recorded with it;
 * - the check-then-act methods (deleteManifestIfUnused, deleteTagIfUnchanged, confirmRelease,
 *   evictCache, gcSettle): a push that commits first makes them see it, one that commits later
 *   comes after them, as in SQLite;
 * - referrers: a manifest, its subject, references and tags commit together or not at all.
 * Every work function is re-runnable (its effects are in the database only) for the retry's sake.
 * Reads are single statements outside a transaction: each sees one committed snapshot, as SQLite's
 * autocommit reads do. Upload sessions and upstream listings are single-row statements on tables
 * no transaction reads with others: they commit alone, without the serializable round trips.
 * Rows are written in a fixed (sorted) order where one statement upserts several, so two
 * transactions rarely deadlock; when they do, the retry covers it.
 */

/** Times and sizes are bigint columns holding JS milliseconds and byte counts: all below 2^53. */
const INT8_OID = 20;
const NUMERIC_INT8: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
};

const RETRYABLE = new Set(['40001', '40P01']);

const ignore = (): void => {};

/** A pause that does not keep the process alive by itself. */
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms).unref());
/** Attempts of one transaction before its serialization failure is reported (contention this long is a bug or an overload). */
const MAX_ATTEMPTS = 60;

/** A digest ($n) some repository links, some manifest references, or is stored as a manifest. */
const linkedOrReferenced = (d: string): string => `(EXISTS (SELECT 1 FROM blob_links WHERE digest = ${d})
  OR EXISTS (SELECT 1 FROM manifest_references WHERE child = ${d})
  OR EXISTS (SELECT 1 FROM manifests WHERE digest = ${d}))`;

const MANIFEST_COLUMNS = 'repository, digest, media_type, size, artifact_type, subject, annotations, created_at';


interface UploadRow {
  id: string;
  repository: string;
  byte_offset: number;
  started_at: number;
  updated_at: number;
}

function toSession(row: UploadRow): UploadSession {
  return { id: row.id, repository: row.repository, offset: row.byte_offset, startedAt: row.started_at, updatedAt: row.updated_at };
}

/** C-locale byte order, as SQLite's and the columns' COLLATE "C": the order rows are locked in. */
const byteOrder = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const sortedUnique = <T extends string>(values: Iterable<T>): T[] => [...new Set(values)].sort(byteOrder);


export type MetadataConnectionProblem = 'METADATA_UNREACHABLE' | 'METADATA_AUTH' | 'METADATA_NO_DATABASE' | 'METADATA_URL' | 'METADATA_SERVER_VERSION';

/** PostgreSQL could not be used at all: unreachable, credentials refused, no such database, a malformed URL. */
export class MetadataConnectionError extends Error {
  override readonly name = 'MetadataConnectionError';
  readonly code: MetadataConnectionProblem;
  /** The database URL without its password. */
  readonly url: string;

  constructor(code: MetadataConnectionProblem, url: string, message: string, cause: unknown) {
    super(message, { cause });
    this.code = code;
    this.url = url;
  }
}

/** errno codes (and pg's own messages) of a server that cannot be reached. */
const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOENT']);
/** SQLSTATEs that mean the server is there but not serving: starting, shutting down, out of connection slots. */
const UNAVAILABLE_SQLSTATE = new Set(['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006']);

/** Classifies a failure to connect, naming the database by its redacted URL and saying what to do. */
function connectionError(error: unknown, where: string): MetadataConnectionError {
  const code = (error as { code?: unknown }).code;
  const detail = error instanceof Error ? error.message : String(error);
  // pg reports a password the server asked for but the URL lacks as a plain Error, with no code.
  if (code === '28P01' || code === '28000' || (code === undefined && /\bSASL\b|\bpassword\b/.test(detail))) {
    return new MetadataConnectionError('METADATA_AUTH', where, `PostgreSQL at ${where} refused the credentials (${detail}); check the user and password of the metadata URL`, error);
  }
  if (code === '3D000') {
    return new MetadataConnectionError('METADATA_NO_DATABASE', where, `PostgreSQL at ${where}: ${detail}; create it (CREATE DATABASE) or fix the database name in the metadata URL`, error);
  }
  if (error instanceof TypeError || code === 'ERR_INVALID_URL') {
    return new MetadataConnectionError('METADATA_URL', where, `the metadata URL ${where} is not a valid PostgreSQL URL (${detail}); expected postgresql://user:password@host:port/database`, error);
  }
  return new MetadataConnectionError('METADATA_UNREACHABLE', where, `cannot reach PostgreSQL at ${where} (${detail}); check that the server runs and accepts connections on that host and port`, error);
}

/** True for a lost or refused connection (not an SQL error): the database is unavailable, not the request wrong. */
function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return UNREACHABLE_ERRNO.has(code) || UNAVAILABLE_SQLSTATE.has(code);
  return /Connection terminated|timeout expired|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error/.test(error.message);
}

/**
 * An established connection that broke (the server terminated its backend in a restart or a
 * failover, the network reset it), as opposed to one that could not be made.
 */
function isLostConnection(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (code === '57P01' || code === '57P02' || code === 'ECONNRESET' || code === 'EPIPE') return true;
  return code === undefined && /Connection terminated unexpectedly|not queryable/.test(error.message);
}

/** Fresh connections tried after a lost one, per call (a restart drops every pooled connection at once). */
const LOST_CONNECTION_RETRIES = 3;

export interface PostgresMetadataOptions {
  /** Connections in this process's pool (default 10). */
  poolSize?: number;
  /** How long a connection attempt may take before the database counts as unreachable (default 10 s). */
  connectTimeoutMs?: number;
  /** Apply pending migrations at open (default true); when false, open refuses a database that is not current. */
  migrate?: boolean;
  /** `application_name`, as pg_stat_activity shows it (default `skiff`). */
  applicationName?: string;
}

function newPool(url: string, options: PostgresMetadataOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'skiff',
    types: NUMERIC_INT8,
    // A server that stops answering (a failover that black-holes the old address) fails a query
    // instead of hanging its request: TCP keepalive notices a dead peer, query_timeout a silent one.
    keepAlive: true,
    query_timeout: QUERY_TIMEOUT_MS,
  });
  // An idle connection that breaks (the server restarted) is only dropped: the next query
  // connects afresh and reports a failure itself. Without a listener the process would exit.
  pool.on('error', ignore);
  return pool;
}

/** The longest a query may wait for its answer (a collector's batch included) before it fails as unreachable. */
const QUERY_TIMEOUT_MS = 60_000;

/** A URL pg would misread (anything but postgres:// or postgresql://) is refused before any connection. */
function checkUrl(url: string, where: string): void {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch (error) {
    throw new MetadataConnectionError('METADATA_URL', where, `the metadata URL ${where} is not a valid URL (${(error as Error).message}); expected postgresql://user:password@host:port/database`, error);
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new MetadataConnectionError('METADATA_URL', where, `the metadata URL ${where} is not a PostgreSQL URL; expected postgresql://user:password@host:port/database`, undefined);
  }
}

/**
 * One connection for the checks and migrations at start, apart from the pool: when it fails, it
 * is closed here. (pg leaves the socket of a failed password exchange open, and the server's
 * backend then waits out authentication_timeout, a minute that also holds up DROP DATABASE.)
 */
async function connectOnce(url: string, options: PostgresMetadataOptions, where: string): Promise<pg.Client> {
  checkUrl(url, where);
  let client: pg.Client;
  try {
    client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
      application_name: options.applicationName ?? 'skiff',
      types: NUMERIC_INT8,
    });
  } catch (error) {
    throw connectionError(error, where);
  }
  client.on('error', ignore); // a failure reaches the caller through connect() or its query
  try {
    await client.connect();
    return client;
  } catch (error) {
    await Promise.race([client.end().catch(() => {}), sleep(1000)]);
    throw connectionError(error, where);
  }
}

/**
 * The oldest server accepted. The SQL itself would run on 9.5, but releases before 12 are out of
 * upstream support, and only 15 is tested.
 */
const MIN_SERVER_VERSION = 120000;

async function checkServer(client: ClientBase, where: string): Promise<void> {
  const row = await client.query<{ version: string }>("SELECT current_setting('server_version_num') AS version");
  const version = Number(row.rows[0]?.version);
  if (!(version >= MIN_SERVER_VERSION)) {
    throw new MetadataConnectionError('METADATA_SERVER_VERSION', where, `PostgreSQL at ${where} is version ${version}; skiff needs ${MIN_SERVER_VERSION / 10000} or newer`, undefined);
  }
}

/**
 * Applies pending migrations to the database at `url` and closes the connection: what
 * `skiff migrate` runs. Resolves to the versions applied (none when it was current).
 */
export async function migrate(url: string, options: Pick<PostgresMetadataOptions, 'connectTimeoutMs' | 'applicationName'> = {}): Promise<number[]> {
  const where = redactUrl(url);
  const client = await connectOnce(url, options, where);
  try {
    await checkServer(client, where);
    return await applyMigrations(client, where);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A connection inside one transaction. */
type Tx = Pick<ClientBase, 'query'>;

/**
 * Registry metadata in PostgreSQL, for several `skiff serve` replicas sharing one database.
 * Same tables, queries and answers as SqliteMetadataStore (the conformance suite checks both);
 * how concurrent writers are kept apart is said at the top of this file.
 */
export class PostgresMetadataStore implements MetadataStore {
  private readonly pool: pg.Pool;
  /** The database URL without its password, for messages. */
  readonly url: string;
  private closed = false;

  private constructor(pool: pg.Pool, url: string) {
    this.pool = pool;
    this.url = url;
  }

  /**
   * Connects, checks the server version, applies pending migrations (under an advisory lock, so
   * replicas starting together apply each once) and resolves to a ready store. Throws
   * MetadataConnectionError (unreachable, credentials, no such database) or SchemaVersionError,
   * naming the URL without its password.
   */
  static async open(url: string, options: PostgresMetadataOptions = {}): Promise<PostgresMetadataStore> {
    const where = redactUrl(url);
    const client = await connectOnce(url, options, where);
    try {
      await checkServer(client, where);
      if (options.migrate ?? true) await applyMigrations(client, where);
      else {
        const version = await schemaVersion(client);
        if (version !== SCHEMA_VERSION) throw new SchemaVersionError(version, version !== undefined && version > SCHEMA_VERSION ? 'newer' : 'older', where);
      }
    } finally {
      await client.end().catch(() => {});
    }
    return new PostgresMetadataStore(newPool(url, options), where);
  }

  /**
   * A database failure as the rest of skiff knows it: a full disk under PostgreSQL is
   * StorageFullError (507, as with SQLite), an I/O or corruption error StorageFailureError, a lost
   * connection MetadataConnectionError; anything else (a duplicate key, MissingReferencesError)
   * unchanged.
   */
  private failure(error: unknown, operation: string): unknown {
    const code = (error as { code?: unknown }).code;
    if (error instanceof pg.DatabaseError && typeof code === 'string') {
      if (code === '53100') return new StorageFullError(`PostgreSQL ${code} disk_full`, `${operation} in the metadata database`, error);
      if (code === '58030' || code === 'XX001' || code === 'XX002') return new StorageFailureError(`PostgreSQL ${code}`, `${operation} in the metadata database`, error);
    }
    if (isConnectionFailure(error)) {
      const detail = error instanceof Error ? error.message : String(error);
      return new MetadataConnectionError('METADATA_UNREACHABLE', this.url, `lost PostgreSQL at ${this.url} while ${operation} (${detail}); check that the server runs`, error);
    }
    return error;
  }

  /** One read statement, outside any transaction (one committed snapshot); run again on a fresh connection if its own broke. */
  private async rows<R extends QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    for (let lost = 0; ; lost++) {
      try {
        return (await this.pool.query<R>(text, values)).rows;
      } catch (error) {
        if (isLostConnection(error) && lost < LOST_CONNECTION_RETRIES) continue; // the pool dropped the broken connection
        throw this.failure(error, 'reading');
      }
    }
  }

  /** One write statement committed alone (tables no transaction reads together with others); resolves to the rows it changed. */
  private async statement(operation: string, text: string, values: unknown[]): Promise<number> {
    try {
      return (await this.pool.query(text, values)).rowCount ?? 0;
    } catch (error) {
      throw this.failure(error, operation);
    }
  }

  /**
   * Runs `work` in one SERIALIZABLE transaction (or, `readOnly`, one REPEATABLE READ READ ONLY
   * snapshot, which cannot fail to serialize), retrying it whole after a serialization failure
   * or a deadlock with a randomised, growing pause, and on a fresh connection when its own broke
   * before COMMIT (the transaction then rolled back; a break during COMMIT leaves its outcome
   * unknown, so that one is reported).
   */
  private async transaction<T>(operation: string, work: (tx: Tx) => Promise<T>, readOnly = false): Promise<T> {
    let lost = 0;
    for (let attempt = 1; ; attempt++) {
      let client: PoolClient;
      try {
        client = await this.pool.connect();
      } catch (error) {
        throw this.failure(error, operation);
      }
      // A checked-out client has no error listener of the pool's: a connection that breaks under
      // a query would otherwise throw from an 'error' event. The query itself rejects too.
      client.on('error', ignore);
      let broken: Error | undefined;
      let committing = false;
      try {
        await client.query(readOnly ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN ISOLATION LEVEL SERIALIZABLE');
        const result = await work(client);
        committing = true;
        await client.query('COMMIT');
        return result;
      } catch (error) {
        // After a failed COMMIT the transaction is over already and ROLLBACK only warns; a
        // ROLLBACK that fails means the connection is gone: the pool must not hand it out again.
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        const code = (error as { code?: unknown }).code;
        if (error instanceof pg.DatabaseError && typeof code === 'string' && RETRYABLE.has(code) && attempt < MAX_ATTEMPTS) {
          await sleep(Math.random() * Math.min(2 ** attempt, 100));
          continue;
        }
        if (!committing && isLostConnection(error) && lost++ < LOST_CONNECTION_RETRIES) {
          broken ??= error as Error;
          continue;
        }
        throw this.failure(error, operation);
      } finally {
        client.removeListener('error', ignore);
        client.release(broken);
      }
    }
  }

  /** One write statement in its own SERIALIZABLE transaction; resolves to the rows it changed. */
  private async write(operation: string, text: string, values: unknown[]): Promise<number> {
    return this.transaction(operation, async (tx) => (await tx.query(text, values)).rowCount ?? 0);
  }

  private async ensureRepository(tx: Tx, repository: string, now: number): Promise<void> {
    await tx.query('INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [repository, now]);
  }

  /** Queues digests for the collector, as of the event at `at` (a later event moves the time forward only). */
  private async review(tx: Tx, digests: Digest[], at: number): Promise<void> {
    if (digests.length === 0) return;
    await tx.query(
      `INSERT INTO gc_review (digest, touched_at) SELECT d, $2::bigint FROM unnest($1::text[]) AS d
       ON CONFLICT (digest) DO UPDATE SET touched_at = GREATEST(gc_review.touched_at, excluded.touched_at)`,
      [sortedUnique(digests), at],
    );
  }

  /** Keyset pagination over a sorted text column; COLLATE "C" makes it byte order, the spec's "lexical", as in SQLite. */
  private async page(query: string, params: unknown[], limit: number | undefined, after: string | undefined, column: string): Promise<Page<string>> {
    const values = [...params];
    let text = query;
    if (after !== undefined) {
      values.push(after);
      text += ` AND ${column} > $${values.length}`;
    }
    values.push(limit === undefined ? null : limit + 1); // LIMIT NULL: no limit
    text += ` ORDER BY ${column} LIMIT $${values.length}`;
    const items = (await this.rows<Record<string, string>>(text, values)).map((row) => row[column] as string);
    const more = limit !== undefined && items.length > limit;
    return { items: more ? items.slice(0, limit) : items, more };
  }

  async listRepositories(limit: number | undefined, after: string | undefined): Promise<Page<string>> {
    return this.page('SELECT name FROM repositories WHERE true', [], limit, after, 'name');
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return (await this.rows('SELECT 1 FROM repositories WHERE name = $1', [repository])).length > 0;
  }

  async linkBlob(repository: string, digest: Digest, size?: number): Promise<void> {
    await this.transaction(`linking blob ${digest} to ${repository}`, async (tx) => {
      const now = Date.now();
      await this.ensureRepository(tx, repository, now);
      // A link made again (a re-push, a mount) renews the blob's protection from the collector.
      await tx.query(
        `INSERT INTO blob_links (repository, digest, linked_at, size) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository, digest) DO UPDATE SET linked_at = excluded.linked_at, size = COALESCE(excluded.size, blob_links.size)`,
        [repository, digest, now, size ?? null],
      );
      await this.review(tx, [digest], now);
      await this.handOverToLocal(tx, repository, [digest]);
    });
  }

  async isBlobLinked(repository: string, digest: Digest): Promise<boolean> {
    return (await this.rows('SELECT 1 FROM blob_links WHERE repository = $1 AND digest = $2', [repository, digest])).length > 0;
  }

  async unlinkBlob(repository: string, digest: Digest): Promise<boolean> {
    return this.transaction(`unlinking blob ${digest} from ${repository}`, async (tx) => {
      const removed = ((await tx.query('DELETE FROM blob_links WHERE repository = $1 AND digest = $2', [repository, digest])).rowCount ?? 0) > 0;
      if (removed) {
        await this.recheckCachedBlobs(tx, [digest]); // a cached blob this link kept may be unused now
        await this.review(tx, [digest], Date.now());
      }
      return removed;
    });
  }

  async blobLinks(digest: Digest, limit: number): Promise<string[]> {
    const rows = await this.rows<{ repository: string }>('SELECT repository FROM blob_links WHERE digest = $1 ORDER BY repository LIMIT $2', [digest, limit]);
    return rows.map((row) => row.repository);
  }

  async putManifest(record: ManifestRecord, references: Digest[], tags: string[], options: { required?: Digest[] } = {}): Promise<void> {
    const { repository, digest } = record;
    const children = sortedUnique(references);
    const tagNames = sortedUnique(tags);
    await this.transaction(`recording manifest ${digest} of ${repository}`, async (tx) => {
      if (options.required && options.required.length > 0) {
        // Serializable: a collector that deletes one of these links after this read cannot also
        // commit its "nothing references it" (see the top of the file).
        const missing = await tx.query<{ child: Digest }>(
          `SELECT r.child FROM unnest($2::text[]) WITH ORDINALITY AS r(child, i)
            WHERE NOT EXISTS (SELECT 1 FROM blob_links WHERE repository = $1 AND digest = r.child)
              AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository = $1 AND digest = r.child)
            ORDER BY r.i`,
          [repository, options.required],
        );
        if (missing.rows.length > 0) throw new MissingReferencesError(repository, missing.rows.map((row) => row.child));
      }
      const now = Date.now();
      await this.ensureRepository(tx, repository, now);
      await tx.query(
        `INSERT INTO manifests (${MANIFEST_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (repository, digest) DO NOTHING`,
        [repository, digest, record.mediaType, record.size, record.artifactType ?? null, record.subject ?? null, record.annotations ? JSON.stringify(record.annotations) : null, record.createdAt],
      );
      if (children.length > 0) {
        await tx.query('INSERT INTO manifest_references (repository, digest, child) SELECT $1, $2, c FROM unnest($3::text[]) AS c ON CONFLICT DO NOTHING', [repository, digest, children]);
        // A push's blobs were queued for the collector when linked; now that this manifest uses
        // them, their review would only find them kept. Those linked in this repository alone
        // leave the queue (a link elsewhere stays queued, so the collector may prune it).
        await tx.query(
          `DELETE FROM gc_review g WHERE g.digest = ANY($1::text[])
            AND NOT EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = g.digest AND l.repository <> $2)`,
          [children, repository],
        );
      }
      if (tagNames.length > 0) {
        await tx.query(
          `INSERT INTO tags (repository, tag, digest, updated_at, checked_at) SELECT $1, t, $3, $4, NULL FROM unnest($2::text[]) AS t
           ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, checked_at = NULL`,
          [repository, tagNames, digest, now],
        );
      }
      await this.handOverToLocal(tx, repository, [digest, ...children]);
    });
  }

  async getManifest(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const [row] = await this.rows<ManifestRow>(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repository = $1 AND digest = $2`, [repository, digest]);
    return row ? manifestRecordOf(row) : undefined;
  }

  async resolveTag(repository: string, tag: string): Promise<Digest | undefined> {
    const [row] = await this.rows<{ digest: Digest }>('SELECT digest FROM tags WHERE repository = $1 AND tag = $2', [repository, tag]);
    return row?.digest;
  }

  async getTag(repository: string, tag: string): Promise<TagRecord | undefined> {
    const [row] = await this.rows<{ digest: Digest; updated_at: number; checked_at: number | null }>(
      'SELECT digest, updated_at, checked_at FROM tags WHERE repository = $1 AND tag = $2',
      [repository, tag],
    );
    if (!row) return undefined;
    const record: TagRecord = { digest: row.digest, updatedAt: row.updated_at };
    if (row.checked_at !== null) record.checkedAt = row.checked_at;
    return record;
  }

  async markTagChecked(repository: string, tag: string, at: number): Promise<boolean> {
    return (await this.write(`recording the upstream check of ${repository}:${tag}`, 'UPDATE tags SET checked_at = $1 WHERE repository = $2 AND tag = $3', [at, repository, tag])) > 0;
  }

  async listTags(repository: string, limit: number | undefined, after: string | undefined): Promise<Page<string>> {
    return this.page('SELECT tag FROM tags WHERE repository = $1', [repository], limit, after, 'tag');
  }

  async deleteTag(repository: string, tag: string): Promise<boolean> {
    return (await this.write(`deleting tag ${repository}:${tag}`, 'DELETE FROM tags WHERE repository = $1 AND tag = $2', [repository, tag])) > 0;
  }

  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    return this.transaction(`deleting manifest ${digest} of ${repository}`, (tx) => this.dropManifest(tx, repository, digest));
  }

  /** Removes a manifest, its tags and its references; the cached blobs it used are checked again by the next eviction. */
  private async dropManifest(tx: Tx, repository: string, digest: Digest): Promise<boolean> {
    // One statement: the three deletes see the same rows, and only one round trip is spent.
    const result = await tx.query<{ removed: number; children: Digest[] }>(
      `WITH refs AS (DELETE FROM manifest_references WHERE repository = $1 AND digest = $2 RETURNING child),
            gone AS (DELETE FROM manifests WHERE repository = $1 AND digest = $2 RETURNING 1),
            untagged AS (DELETE FROM tags WHERE repository = $1 AND digest = $2 RETURNING 1)
       SELECT (SELECT COUNT(*) FROM gone) AS removed, ARRAY(SELECT child FROM refs) AS children`,
      [repository, digest],
    );
    const row = result.rows[0];
    const children = row?.children ?? [];
    await this.recheckCachedBlobs(tx, [digest, ...children]);
    const removed = (row?.removed ?? 0) > 0;
    if (removed) await this.review(tx, [digest, ...children], Date.now());
    return removed;
  }

  async listReferrers(repository: string, subject: Digest, artifactType?: string): Promise<ManifestRecord[]> {
    const rows =
      artifactType === undefined
        ? await this.rows<ManifestRow>(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repository = $1 AND subject = $2 ORDER BY created_at, digest`, [repository, subject])
        : await this.rows<ManifestRow>(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repository = $1 AND subject = $2 AND artifact_type = $3 ORDER BY created_at, digest`, [
            repository,
            subject,
            artifactType,
          ]);
    return rows.map(manifestRecordOf);
  }

  async unreferencedBlobs(candidates: Digest[]): Promise<Digest[]> {
    if (candidates.length === 0) return [];
    const rows = await this.rows<{ digest: Digest }>(
      `SELECT c.digest FROM unnest($1::text[]) WITH ORDINALITY AS c(digest, i) WHERE NOT ${linkedOrReferenced('c.digest')} ORDER BY c.i`,
      [candidates],
    );
    return rows.map((row) => row.digest);
  }

  // ---- retention rules and quotas ----

  async tagsWithTimes(repository: string): Promise<TaggedDigest[]> {
    const rows = await this.rows<{ tag: string; digest: Digest; updated_at: number }>(
      'SELECT tag, digest, updated_at FROM tags WHERE repository = $1 ORDER BY updated_at DESC, tag DESC',
      [repository],
    );
    return rows.map((row) => ({ tag: row.tag, digest: row.digest, updatedAt: row.updated_at }));
  }

  async untaggedManifests(repository: string, createdBefore: number): Promise<ManifestRecord[]> {
    const rows = await this.rows<ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m
        WHERE m.repository = $1 AND m.created_at < $2
          AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = $1 AND t.digest = m.digest)
          AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = m.digest AND r.repository = $1)
          AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository = $1 AND s.digest = m.subject))
        ORDER BY m.created_at, m.digest`,
      [repository, createdBefore],
    );
    return rows.map(manifestRecordOf);
  }

  async manifestParents(repository: string, child: Digest): Promise<Digest[]> {
    const rows = await this.rows<{ digest: Digest }>('SELECT digest FROM manifest_references WHERE child = $1 AND repository = $2 ORDER BY digest', [child, repository]);
    return rows.map((row) => row.digest);
  }

  async manifestChildren(repository: string, digest: Digest): Promise<Digest[]> {
    const rows = await this.rows<{ child: Digest }>(
      `SELECT r.child FROM manifest_references r
        WHERE r.repository = $1 AND r.digest = $2 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = $1 AND m.digest = r.child)
        ORDER BY r.child`,
      [repository, digest],
    );
    return rows.map((row) => row.child);
  }

  async referrersOf(repository: string, subject: Digest): Promise<Digest[]> {
    const rows = await this.rows<{ digest: Digest }>('SELECT digest FROM manifests WHERE repository = $1 AND subject = $2 ORDER BY digest', [repository, subject]);
    return rows.map((row) => row.digest);
  }

  async isCachedRepository(repository: string): Promise<boolean> {
    return (await this.rows('SELECT 1 FROM cache_repositories WHERE name = $1', [repository])).length > 0;
  }

  async deleteTagIfUnchanged(repository: string, tag: string, digest: Digest, updatedAt: number): Promise<boolean> {
    return (
      (await this.write(`deleting tag ${repository}:${tag}`, 'DELETE FROM tags WHERE repository = $1 AND tag = $2 AND digest = $3 AND updated_at = $4', [repository, tag, digest, updatedAt])) > 0
    );
  }

  async deleteManifestIfUnused(repository: string, digest: Digest): Promise<boolean> {
    return this.transaction(`deleting manifest ${digest} of ${repository}`, async (tx) => {
      const used = await tx.query(
        `SELECT 1 WHERE EXISTS (SELECT 1 FROM tags WHERE repository = $1 AND digest = $2)
            OR EXISTS (SELECT 1 FROM manifest_references WHERE child = $2 AND repository = $1)
            OR EXISTS (SELECT 1 FROM manifests m JOIN manifests s ON s.repository = m.repository AND s.digest = m.subject WHERE m.repository = $1 AND m.digest = $2)`,
        [repository, digest],
      );
      return used.rows.length > 0 ? false : this.dropManifest(tx, repository, digest);
    });
  }

  async repositoryUsage(repository: string): Promise<number> {
    const [row] = await this.rows<{ bytes: number }>(
      `SELECT ((SELECT COALESCE(SUM(size), 0) FROM blob_links WHERE repository = $1)
             + (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repository = $1))::bigint AS bytes`,
      [repository],
    );
    return row?.bytes ?? 0;
  }

  // ---- garbage collection ----

  async gcDue(before: number, limit: number, after?: Digest): Promise<Digest[]> {
    const rows = await this.rows<{ digest: Digest }>('SELECT digest FROM gc_review WHERE touched_at <= $1 AND digest > $2 ORDER BY digest LIMIT $3', [before, after ?? '', limit]);
    return rows.map((row) => row.digest);
  }

  async gcQueue(before: number): Promise<{ queued: number; due: number }> {
    const [row] = await this.rows<{ queued: number; due: number }>('SELECT COUNT(*) AS queued, COUNT(*) FILTER (WHERE touched_at <= $1) AS due FROM gc_review', [before]);
    return { queued: row?.queued ?? 0, due: row?.due ?? 0 };
  }

  /**
   * SQLite decides digest after digest; here the whole batch is decided by a few set statements
   * (a GC batch in one transaction must stay short, or concurrent pushes keep forcing its retry).
   * The result is the same: each digest's verdict reads and writes only its own rows. A digest
   * given twice gets its verdict twice, the second time with nothing left to prune, as when
   * SQLite decides it again right after the first.
   */
  async gcCondemn(digests: Digest[], cutoff: number, at: number, options: { dryRun?: boolean } = {}): Promise<GcVerdict[]> {
    if (digests.length === 0) return [];
    const dryRun = options.dryRun ?? false;
    const unique = sortedUnique(digests);
    // Links older than the cutoff in repositories where no manifest uses the blob: a push that
    // never got its manifest, a manifest deleted since. A kept blob stays for the others.
    const stale = `FROM blob_links b WHERE b.digest = ANY($1::text[]) AND b.linked_at <= $2
      AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository = b.repository AND r.child = b.digest)
      AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository = b.repository AND m.digest = b.digest)
      AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = b.repository)`;
    const decided = await this.transaction(
      `reviewing ${unique.length} blobs for garbage collection`,
      async (tx) => {
        const facts = await tx.query<{ digest: Digest; used: boolean; newest: number | null; links: number }>(
          `SELECT d.digest,
              (EXISTS (SELECT 1 FROM manifest_references WHERE child = d.digest)
                OR EXISTS (SELECT 1 FROM manifests WHERE digest = d.digest)
                OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = d.digest AND released_at IS NULL)) AS used,
              (SELECT MAX(linked_at) FROM blob_links WHERE digest = d.digest) AS newest,
              (SELECT COUNT(*) FROM blob_links WHERE digest = d.digest) AS links
            FROM unnest($1::text[]) AS d(digest)`,
          [unique],
        );
        const verdicts = new Map<Digest, GcVerdict>();
        const kept: Digest[] = [];
        const later: { digest: Digest; newest: number }[] = [];
        const condemned: Digest[] = [];
        for (const { digest, used, newest, links } of facts.rows) {
          if (used) {
            kept.push(digest);
            verdicts.set(digest, { digest, verdict: 'kept', prunedLinks: 0 });
          } else if (newest !== null && newest > cutoff) {
            later.push({ digest, newest });
            verdicts.set(digest, { digest, verdict: 'later', prunedLinks: 0 });
          } else {
            condemned.push(digest);
            // Every link of a condemned blob goes: counted here for a dry run, by the DELETE otherwise.
            verdicts.set(digest, { digest, verdict: 'condemned', prunedLinks: dryRun ? links : 0 });
          }
        }
        const prune = (rows: { digest: Digest }[]): void => {
          for (const { digest } of rows) {
            const verdict = verdicts.get(digest);
            if (verdict) verdict.prunedLinks++;
          }
        };
        if (dryRun) {
          if (kept.length > 0) prune((await tx.query<{ digest: Digest }>(`SELECT b.digest ${stale}`, [kept, cutoff])).rows);
          return verdicts;
        }
        if (kept.length > 0) prune((await tx.query<{ digest: Digest }>(`DELETE ${stale} RETURNING b.digest`, [kept, cutoff])).rows);
        // Due again when that link is as old as the grace period.
        if (later.length > 0) {
          await tx.query(
            `INSERT INTO gc_review (digest, touched_at) SELECT * FROM unnest($1::text[], $2::bigint[])
             ON CONFLICT (digest) DO UPDATE SET touched_at = GREATEST(gc_review.touched_at, excluded.touched_at)`,
            [later.map((l) => l.digest), later.map((l) => l.newest)],
          );
        }
        if (condemned.length > 0) {
          prune((await tx.query<{ digest: Digest }>('DELETE FROM blob_links WHERE digest = ANY($1::text[]) RETURNING digest', [condemned])).rows);
          await tx.query('DELETE FROM cache_blobs WHERE digest = ANY($1::text[])', [condemned]);
          await tx.query('INSERT INTO gc_trash (digest, since) SELECT d, $2::bigint FROM unnest($1::text[]) AS d ON CONFLICT (digest) DO NOTHING', [condemned, at]);
        }
        if (kept.length + condemned.length > 0) await tx.query('DELETE FROM gc_review WHERE digest = ANY($1::text[])', [[...kept, ...condemned].sort(byteOrder)]);
        return verdicts;
      },
      dryRun,
    );
    const seen = new Set<Digest>();
    return digests.map((digest) => {
      const verdict = decided.get(digest) ?? { digest, verdict: 'kept', prunedLinks: 0 }; // every digest has a row in facts
      const again = seen.has(digest);
      seen.add(digest);
      return { ...verdict, prunedLinks: again && !dryRun ? 0 : verdict.prunedLinks };
    });
  }

  async gcTrash(): Promise<Digest[]> {
    return (await this.rows<{ digest: Digest }>('SELECT digest FROM gc_trash ORDER BY since, digest')).map((row) => row.digest);
  }

  async gcSettle(digests: Digest[]): Promise<{ revived: Digest[]; gone: Digest[] }> {
    if (digests.length === 0) return { revived: [], gone: [] };
    return this.transaction(`settling ${digests.length} collected blobs`, async (tx) => {
      await tx.query('DELETE FROM gc_trash WHERE digest = ANY($1::text[])', [sortedUnique(digests)]);
      const rows = await tx.query<{ digest: Digest; back: boolean }>(
        `SELECT c.digest, (${linkedOrReferenced('c.digest')} OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = c.digest)) AS back
           FROM unnest($1::text[]) WITH ORDINALITY AS c(digest, i) ORDER BY c.i`,
        [digests],
      );
      const revived: Digest[] = [];
      const gone: Digest[] = [];
      for (const row of rows.rows) (row.back ? revived : gone).push(row.digest);
      return { revived, gone };
    });
  }

  async gcUnknown(digests: Digest[]): Promise<Digest[]> {
    if (digests.length === 0) return [];
    const rows = await this.rows<{ digest: Digest }>(
      `SELECT c.digest FROM unnest($1::text[]) WITH ORDINALITY AS c(digest, i)
        WHERE NOT (${linkedOrReferenced('c.digest')}
          OR EXISTS (SELECT 1 FROM cache_blobs WHERE digest = c.digest)
          OR EXISTS (SELECT 1 FROM gc_review WHERE digest = c.digest)
          OR EXISTS (SELECT 1 FROM gc_trash WHERE digest = c.digest))
        ORDER BY c.i`,
      [digests],
    );
    return rows.map((row) => row.digest);
  }

  async gcQueueDigests(digests: Digest[], at: number): Promise<void> {
    if (digests.length === 0) return;
    await this.transaction('queueing blobs for garbage collection', (tx) => this.review(tx, digests, at));
  }

  // ---- the mirror cache's LRU ----

  /**
   * Local content that uses a cached blob makes it local: it leaves the cache's count, and no
   * eviction will take it (what becomes of it is garbage collection's business).
   */
  private async handOverToLocal(tx: Tx, repository: string, digests: Digest[]): Promise<void> {
    await tx.query('DELETE FROM cache_blobs WHERE digest = ANY($2::text[]) AND NOT EXISTS (SELECT 1 FROM cache_repositories WHERE name = $1)', [repository, sortedUnique(digests)]);
  }

  /** True when a local repository links the blob, stores a manifest under its digest, or has a manifest that references it. */
  private async usedLocally(tx: Tx, digest: Digest): Promise<boolean> {
    const result = await tx.query(
      `SELECT 1 WHERE EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = $1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = l.repository))
          OR EXISTS (SELECT 1 FROM manifests m WHERE m.digest = $1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = m.repository))
          OR EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = $1 AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = r.repository))`,
      [digest],
    );
    return result.rows.length > 0;
  }

  /** Flags cached blobs for the next eviction step to check: they may have lost their last user. */
  private async recheckCachedBlobs(tx: Tx, digests: Digest[]): Promise<void> {
    await tx.query('UPDATE cache_blobs SET recheck = true WHERE digest = ANY($1::text[]) AND released_at IS NULL AND NOT recheck', [sortedUnique(digests)]);
  }

  /** Of `digests`, those a manifest (cached or local) references, one is stored under, or a local repository links. */
  private async blobsInUse(tx: Tx, digests: Digest[]): Promise<Set<Digest>> {
    if (digests.length === 0) return new Set();
    const rows = await tx.query<{ digest: Digest }>(
      `SELECT d.digest FROM unnest($1::text[]) AS d(digest)
        WHERE EXISTS (SELECT 1 FROM manifest_references WHERE child = d.digest)
           OR EXISTS (SELECT 1 FROM manifests WHERE digest = d.digest)
           OR EXISTS (SELECT 1 FROM blob_links l WHERE l.digest = d.digest AND NOT EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = l.repository))`,
      [digests],
    );
    return new Set(rows.rows.map((row) => row.digest));
  }

  private async recordBlob(tx: Tx, { digest, size }: CachedBlob, at: number): Promise<number> {
    if (await this.usedLocally(tx, digest)) return 0; // local content: never the cache's to count or evict
    const before = await tx.query<{ released_at: number | null }>('SELECT released_at FROM cache_blobs WHERE digest = $1', [digest]);
    await tx.query(
      `INSERT INTO cache_blobs (digest, size, used_at, released_at, recheck) VALUES ($1, $2, $3, NULL, true)
       ON CONFLICT (digest) DO UPDATE SET size = excluded.size, used_at = GREATEST(cache_blobs.used_at, excluded.used_at), released_at = NULL, recheck = true`,
      [digest, size, at],
    );
    const row = before.rows[0];
    return row === undefined || row.released_at !== null ? size : 0;
  }

  async saveUpstreamListing(key: string, names: string[], at: number): Promise<void> {
    const json = JSON.stringify(names);
    // An unchanged answer (the usual case) must not cost a write per tags request.
    const [row] = await this.rows<{ names: string }>('SELECT names FROM upstream_listings WHERE key = $1', [key]);
    if (row?.names === json) return;
    await this.statement(
      `saving the upstream listing ${key}`,
      'INSERT INTO upstream_listings (key, names, changed_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET names = excluded.names, changed_at = excluded.changed_at',
      [key, json, at],
    );
  }

  async upstreamListing(key: string): Promise<{ names: string[]; changedAt: number } | undefined> {
    const [row] = await this.rows<{ names: string; changed_at: number }>('SELECT names, changed_at FROM upstream_listings WHERE key = $1', [key]);
    return row ? { names: JSON.parse(row.names) as string[], changedAt: row.changed_at } : undefined;
  }

  async markCachedRepository(repository: string): Promise<void> {
    await this.write(`marking ${repository} as cached`, 'INSERT INTO cache_repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [repository]);
  }

  async recordCachedBlob(blob: CachedBlob, at: number): Promise<number> {
    return this.transaction(`recording cached blob ${blob.digest}`, (tx) => this.recordBlob(tx, blob, at));
  }

  async recordCachedManifest(repository: string, blob: CachedBlob, at: number): Promise<number> {
    return this.transaction(`recording cached manifest ${blob.digest} of ${repository}`, async (tx) => {
      await tx.query('INSERT INTO cache_repositories (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [repository]);
      await tx.query('UPDATE manifests SET used_at = GREATEST(COALESCE(used_at, 0), $1) WHERE repository = $2 AND digest = $3', [at, repository, blob.digest]);
      return this.recordBlob(tx, blob, at);
    });
  }

  async touchCache(manifests: CacheTouch[], blobs: CacheTouch[]): Promise<void> {
    const manifestTouches = manifests.filter((touch) => touch.repository !== undefined);
    if (manifestTouches.length === 0 && blobs.length === 0) return;
    await this.transaction('recording cache hits', async (tx) => {
      // Several touches of one entry in a batch: the latest counts (as SQLite's one-by-one updates end up).
      if (manifestTouches.length > 0) {
        await tx.query(
          `UPDATE manifests m SET used_at = t.at
             FROM (SELECT repository, digest, MAX(at) AS at FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(repository, digest, at) GROUP BY repository, digest) t
            WHERE m.repository = t.repository AND m.digest = t.digest AND m.used_at IS NOT NULL AND m.used_at < t.at`,
          [manifestTouches.map((t) => t.repository), manifestTouches.map((t) => t.digest), manifestTouches.map((t) => t.at)],
        );
      }
      if (blobs.length > 0) {
        await tx.query(
          `UPDATE cache_blobs b SET used_at = t.at
             FROM (SELECT digest, MAX(at) AS at FROM unnest($1::text[], $2::bigint[]) AS u(digest, at) GROUP BY digest) t
            WHERE b.digest = t.digest AND b.used_at < t.at`,
          [blobs.map((t) => t.digest), blobs.map((t) => t.at)],
        );
      }
    });
  }

  async cacheSize(): Promise<number> {
    const [row] = await this.rows<{ bytes: number }>('SELECT COALESCE(SUM(size), 0)::bigint AS bytes FROM cache_blobs WHERE released_at IS NULL');
    return row?.bytes ?? 0;
  }

  async evictCache(request: CacheEvictionRequest): Promise<CacheEvictionStep> {
    const pinned = new Set(request.pinned);
    const maxSteps = request.maxSteps ?? 256;
    const blobBatch = pinned.size + 64;
    // Two ordered walks of partial indexes, merged here: the oldest root manifest, and the cached
    // blobs flagged for a check (new, or whose users went), oldest first.
    const manifestQuery = `SELECT repository, digest, used_at FROM manifests m
        WHERE used_at IS NOT NULL AND used_at < $1
          AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = m.digest AND r.repository = m.repository)
        ORDER BY used_at, repository, digest LIMIT $2`;
    const blobQuery = 'SELECT digest, size, used_at FROM cache_blobs WHERE released_at IS NULL AND recheck AND used_at < $1 ORDER BY used_at, digest LIMIT $2';
    return this.transaction('evicting from the mirror cache', async (tx) => {
      const step: CacheEvictionStep = { manifests: [], released: [], exhausted: false };
      let freed = 0;
      let steps = 0;
      const busy = () => steps >= maxSteps || freed >= request.bytes;
      while (!busy()) {
        const manifest = (await tx.query<{ repository: string; digest: Digest; used_at: number }>(manifestQuery, [request.usedBefore, pinned.size + 1])).rows.find((row) => !pinned.has(row.digest));
        const rows = (await tx.query<{ digest: Digest; size: number; used_at: number }>(blobQuery, [request.usedBefore, blobBatch])).rows;
        // Whether each blob is in use does not depend on the cache rows this loop updates, so one
        // query answers for the whole batch.
        const inUse = await this.blobsInUse(
          tx,
          rows.filter((row) => !pinned.has(row.digest)).map((row) => row.digest),
        );
        const settled: Digest[] = [];
        const released: Digest[] = [];
        let olderManifest = false;
        for (const row of rows) {
          if (busy()) break;
          if (pinned.has(row.digest)) continue;
          if (manifest && manifest.used_at < row.used_at) {
            olderManifest = true;
            break;
          }
          steps++;
          if (inUse.has(row.digest)) settled.push(row.digest);
          else {
            released.push(row.digest);
            step.released.push({ digest: row.digest, size: row.size });
            freed += row.size;
          }
        }
        if (settled.length > 0) await tx.query('UPDATE cache_blobs SET recheck = false WHERE digest = ANY($1::text[])', [settled.sort(byteOrder)]);
        if (released.length > 0) await tx.query('UPDATE cache_blobs SET released_at = $1 WHERE digest = ANY($2::text[])', [request.now, released.sort(byteOrder)]);
        if (busy()) break;
        if (!olderManifest && rows.length === blobBatch) continue; // more flagged blobs to look at
        if (!manifest) {
          step.exhausted = true;
          break;
        }
        steps++;
        await this.dropManifest(tx, manifest.repository, manifest.digest);
        step.manifests.push({ repository: manifest.repository, digest: manifest.digest });
      }
      return step;
    });
  }

  async releasedBlobs(limit: number): Promise<CachedBlob[]> {
    const rows = await this.rows<{ digest: Digest; size: number }>('SELECT digest, size FROM cache_blobs WHERE released_at IS NOT NULL ORDER BY released_at, digest LIMIT $1', [limit]);
    return rows.map((row) => ({ digest: row.digest, size: row.size }));
  }

  async confirmRelease(digest: Digest): Promise<boolean> {
    return this.transaction(`confirming the release of cached blob ${digest}`, async (tx) => {
      const [row] = (await tx.query<{ released_at: number | null }>('SELECT released_at FROM cache_blobs WHERE digest = $1', [digest])).rows;
      if (row === undefined || row.released_at === null) return false;
      if (!(await this.blobsInUse(tx, [digest])).has(digest)) return true;
      await tx.query('UPDATE cache_blobs SET released_at = NULL, recheck = false WHERE digest = $1', [digest]);
      return false;
    });
  }

  async restoreCachedBlob(digest: Digest): Promise<void> {
    await this.write(`restoring cached blob ${digest}`, 'UPDATE cache_blobs SET released_at = NULL, recheck = true WHERE digest = $1 AND released_at IS NOT NULL', [digest]);
  }

  async forgetCachedBlob(digest: Digest): Promise<void> {
    await this.transaction(`forgetting evicted blob ${digest}`, async (tx) => {
      if (((await tx.query('DELETE FROM cache_blobs WHERE digest = $1 AND released_at IS NOT NULL', [digest])).rowCount ?? 0) === 0) return;
      await tx.query('DELETE FROM blob_links WHERE digest = $1 AND repository IN (SELECT name FROM cache_repositories)', [digest]);
    });
  }

  // ---- the web UI's read-only views ----
  // Single statements (one round trip, one snapshot). Names compare COLLATE "C", so an upstream's
  // key range is byte order, as in SQLite, and walks the primary key.

  async repositoryStats(names: string[]): Promise<RepositoryStats[]> {
    const unique = [...new Set(names)];
    if (unique.length === 0) return [];
    // = ANY: the repositories are probed through their primary key (a join with the unnested names
    // lets the planner scan the whole table instead). LATERAL: each one's tags, manifests and links
    // are read once, through their primary key. The order asked is restored here.
    const rows = await this.rows<{ name: string; tags: number; bytes: number; last_push: number | null; cached: boolean }>(
      `SELECT r.name, t.tags, (b.bytes + m.bytes)::bigint AS bytes, COALESCE(t.last_tag, m.last_manifest) AS last_push,
              EXISTS (SELECT 1 FROM cache_repositories c WHERE c.name = r.name) AS cached
         FROM repositories r
         CROSS JOIN LATERAL (SELECT COUNT(*) AS tags, MAX(updated_at) AS last_tag FROM tags WHERE repository = r.name) t
         CROSS JOIN LATERAL (SELECT COALESCE(SUM(size), 0) AS bytes, MAX(created_at) AS last_manifest FROM manifests WHERE repository = r.name) m
         CROSS JOIN LATERAL (SELECT COALESCE(SUM(size), 0) AS bytes FROM blob_links WHERE repository = r.name) b
        WHERE r.name = ANY($1::text[])`,
      [unique],
    );
    const position = new Map(unique.map((name, i) => [name, i]));
    return rows
      .sort((x, y) => position.get(x.name)! - position.get(y.name)!)
      .map((row) => ({ name: row.name, tags: row.tags, bytes: row.bytes, lastPush: row.last_push, cached: row.cached }));
  }

  async cachedTags(prefix: string, options: { offset: number; limit: number; checkedBefore?: number }): Promise<{ tags: CachedTag[]; total: number }> {
    const { from, to } = prefixRange(prefix);
    // The count and the page in one statement: both from the same snapshot, and a count even for
    // a page past the end (the LEFT JOIN's one row of NULLs).
    const rows = await this.rows<{ total: number; repository: string | null; tag: string; digest: Digest; updated_at: number; checked_at: number | null }>(
      `WITH matching AS (
         SELECT t.repository, t.tag, t.digest, t.updated_at, t.checked_at
           FROM cache_repositories c JOIN tags t ON t.repository = c.name
          WHERE c.name >= $1 AND c.name < $2 AND ($3::bigint IS NULL OR t.checked_at IS NULL OR t.checked_at < $3::bigint))
       SELECT (SELECT COUNT(*) FROM matching) AS total, p.*
         FROM (SELECT 1) one LEFT JOIN (
           SELECT * FROM matching ORDER BY checked_at NULLS FIRST, repository, tag LIMIT $4 OFFSET $5
         ) p ON true
        ORDER BY p.checked_at NULLS FIRST, p.repository, p.tag`,
      [from, to, options.checkedBefore ?? null, options.limit, options.offset],
    );
    const tags: CachedTag[] = [];
    for (const row of rows) {
      if (row.repository === null) continue;
      tags.push({ repository: row.repository, tag: row.tag, digest: row.digest, updatedAt: row.updated_at, checkedAt: row.checked_at ?? undefined });
    }
    return { tags, total: rows[0]?.total ?? 0 };
  }

  async cacheUsage(prefix: string, checkedBefore: number): Promise<{ repositories: number; bytes: number; staleTags: number }> {
    const { from, to } = prefixRange(prefix);
    // A digest held by several of the upstream's repositories (a shared base layer) counts once.
    const [row] = await this.rows<{ repositories: number; bytes: number; stale_tags: number }>(
      `WITH repos AS (SELECT name FROM cache_repositories WHERE name >= $1 AND name < $2),
            held AS (
              SELECT m.digest, m.size FROM repos r JOIN manifests m ON m.repository = r.name
              UNION ALL
              SELECT l.digest, COALESCE(l.size, (SELECT b.size FROM cache_blobs b WHERE b.digest = l.digest)) AS size
                FROM repos r JOIN blob_links l ON l.repository = r.name),
            sizes AS (SELECT digest, MAX(size) AS size FROM held GROUP BY digest)
       SELECT (SELECT COUNT(*) FROM repos) AS repositories,
              (SELECT COALESCE(SUM(size), 0) FROM sizes)::bigint AS bytes,
              (SELECT COUNT(*) FROM repos r JOIN tags t ON t.repository = r.name WHERE t.checked_at IS NULL OR t.checked_at < $3) AS stale_tags`,
      [from, to, checkedBefore],
    );
    return { repositories: row?.repositories ?? 0, bytes: row?.bytes ?? 0, staleTags: row?.stale_tags ?? 0 };
  }

  // Upload sessions: one row each, written by single statements (see the top of the file). A
  // session is in the database, not in a replica, so the next PATCH may land on any replica.

  async createUpload(session: UploadSession): Promise<void> {
    // An open upload does not make a repository exist (catalog, tags list): only content does.
    await this.statement(`recording upload ${session.id}`, 'INSERT INTO uploads (id, repository, byte_offset, started_at, updated_at) VALUES ($1, $2, $3, $4, $5)', [
      session.id,
      session.repository,
      session.offset,
      session.startedAt,
      session.updatedAt,
    ]);
  }

  async getUpload(id: string): Promise<UploadSession | undefined> {
    const [row] = await this.rows<UploadRow>('SELECT id, repository, byte_offset, started_at, updated_at FROM uploads WHERE id = $1', [id]);
    return row ? toSession(row) : undefined;
  }

  async setUploadOffset(id: string, offset: number): Promise<void> {
    await this.statement(`recording the offset of upload ${id}`, 'UPDATE uploads SET byte_offset = $1, updated_at = $2 WHERE id = $3', [offset, Date.now(), id]);
  }

  async staleUploads(idleSince: number, limit: number): Promise<UploadSession[]> {
    const rows = await this.rows<UploadRow>('SELECT id, repository, byte_offset, started_at, updated_at FROM uploads WHERE updated_at < $1 ORDER BY updated_at, id LIMIT $2', [idleSince, limit]);
    return rows.map(toSession);
  }

  async deleteUpload(id: string): Promise<void> {
    await this.statement(`removing upload ${id}`, 'DELETE FROM uploads WHERE id = $1', [id]);
  }

  async ping(): Promise<void> {
    await this.rows('SELECT 1');
  }

  /**
   * A lock held by one process at a time across every replica and `skiff gc`: a PostgreSQL session
   * advisory lock on a connection of its own, kept for the whole of `work`. Unlike a lease it cannot
   * run out under a live holder, and PostgreSQL drops it when the holder's session ends (a crash,
   * kill -9), so the collector's one-at-a-time rule rests on the same server as its decisions.
   */
  advisoryLock(): KeyedLock {
    const hold = async <T>(key: string, work: () => Promise<T>, wait: boolean): Promise<T | undefined> => {
      const client = await this.pool.connect();
      let broken: Error | undefined;
      // A checked-out client has no listener of the pool's: a session the server ends while it holds
      // the lock would otherwise be an uncaught error that takes the process down.
      const onError = (error: Error): void => {
        broken = error;
      };
      client.on('error', onError);
      try {
        const lockKey = `skiff:${key}`;
        const taken = wait
          ? (await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]), true)
          : (await client.query<{ taken: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS taken', [lockKey])).rows[0]?.taken === true;
        if (!taken) return undefined;
        try {
          return await work();
        } finally {
          await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch((error: Error) => (broken = error));
        }
      } catch (error) {
        if (isConnectionFailure(error)) broken = error as Error;
        throw error;
      } finally {
        // A connection whose unlock failed may still hold the lock: it goes, and its session with it.
        client.off('error', onError);
        client.release(broken);
      }
    };
    return {
      run: async (key, work) => (await hold(key, work, true)) as Awaited<ReturnType<typeof work>>,
      tryRun: (key, work) => hold(key, work, false),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
