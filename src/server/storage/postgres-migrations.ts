import type { ClientBase } from 'pg';

/**
 * The PostgreSQL schema of PostgresMetadataStore, as versioned migrations. A migration, once
 * released, is never edited: a change is a new version appended here. Each runs in the same
 * transaction as the row that records it in `schema_migrations`, so a crash leaves either both or
 * neither.
 *
 * The tables mirror SqliteMetadataStore's. Differences, and why:
 * - every text key is COLLATE "C": SQLite compares bytes, and the pages (tags, catalog, GC's
 *   digest walk) must come out in the same order whatever the database's default locale;
 * - times and sizes are bigint (JS milliseconds and byte counts, beyond 32 bits);
 * - cache_blobs.recheck is a boolean; uploads' offset column is `byte_offset` (OFFSET is reserved).
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE repositories (
  name text COLLATE "C" PRIMARY KEY,
  created_at bigint NOT NULL
);
CREATE TABLE blob_links (
  repository text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  linked_at bigint NOT NULL,
  size bigint,
  PRIMARY KEY (repository, digest)
);
CREATE INDEX blob_links_digest ON blob_links (digest);
CREATE TABLE manifests (
  repository text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  media_type text NOT NULL,
  size bigint NOT NULL,
  artifact_type text,
  subject text COLLATE "C",
  annotations text,
  created_at bigint NOT NULL,
  used_at bigint,
  PRIMARY KEY (repository, digest)
);
CREATE INDEX manifests_subject ON manifests (repository, subject) WHERE subject IS NOT NULL;
CREATE INDEX manifests_lru ON manifests (used_at, repository, digest) WHERE used_at IS NOT NULL;
CREATE INDEX manifests_digest ON manifests (digest);
CREATE TABLE manifest_references (
  repository text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  child text COLLATE "C" NOT NULL,
  PRIMARY KEY (repository, digest, child)
);
CREATE INDEX manifest_references_child ON manifest_references (child, repository);
CREATE TABLE tags (
  repository text COLLATE "C" NOT NULL,
  tag text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  updated_at bigint NOT NULL,
  checked_at bigint,
  PRIMARY KEY (repository, tag)
);
CREATE INDEX tags_digest ON tags (repository, digest);
CREATE TABLE cache_repositories (
  name text COLLATE "C" PRIMARY KEY
);
CREATE TABLE cache_blobs (
  digest text COLLATE "C" PRIMARY KEY,
  size bigint NOT NULL,
  used_at bigint NOT NULL,
  released_at bigint,
  recheck boolean NOT NULL DEFAULT true
);
CREATE INDEX cache_blobs_recheck ON cache_blobs (used_at, digest) WHERE released_at IS NULL AND recheck;
CREATE INDEX cache_blobs_released ON cache_blobs (released_at, digest) WHERE released_at IS NOT NULL;
CREATE TABLE gc_review (
  digest text COLLATE "C" PRIMARY KEY,
  touched_at bigint NOT NULL
);
CREATE INDEX gc_review_touched ON gc_review (touched_at, digest);
CREATE TABLE gc_trash (
  digest text COLLATE "C" PRIMARY KEY,
  since bigint NOT NULL
);
CREATE TABLE upstream_listings (
  key text COLLATE "C" PRIMARY KEY,
  names text NOT NULL,
  changed_at bigint NOT NULL
);
CREATE TABLE uploads (
  id text COLLATE "C" PRIMARY KEY,
  repository text NOT NULL,
  byte_offset bigint NOT NULL,
  started_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
CREATE INDEX uploads_updated_at ON uploads (updated_at, id);
`,
  },
];

/** The schema version this build of skiff works with. */
export const SCHEMA_VERSION = MIGRATIONS.reduce((newest, migration) => Math.max(newest, migration.version), 0);

/**
 * The key of the transaction-level advisory lock that migrations take: replicas starting together
 * queue on it, and each one after the first finds the work done. Any constant works as long as
 * nothing else in the database uses it ('skiff' in ASCII, then 'mig').
 */
export const MIGRATION_LOCK_KEY = 0x736b6966666d6967n;

/** What the database says about its schema, read without changing anything. */
export async function schemaVersion(client: ClientBase): Promise<number | undefined> {
  const table = await client.query<{ found: string | null }>("SELECT to_regclass('schema_migrations')::text AS found");
  if (table.rows[0]?.found == null) return undefined;
  const row = await client.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
  return row.rows[0]?.version ?? undefined;
}

/**
 * Applies the migrations the database lacks, in order, in one transaction under the advisory
 * lock. READ COMMITTED on purpose (whatever the server's default): each statement after the lock
 * sees what a replica that held the lock before committed, so the second of two replicas starting
 * together reads every version as applied and does nothing. Resolves to the versions applied here.
 * Throws when the database is newer than this build: an older skiff must not write to a schema
 * it does not know.
 */
export async function applyMigrations(client: ClientBase, where: string): Promise<number[]> {
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at bigint NOT NULL
    )`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((row) => row.version));
    const newest = Math.max(0, ...done);
    if (newest > SCHEMA_VERSION) throw new SchemaVersionError(newest, 'newer', where);
    const applied: number[] = [];
    for (const migration of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      if (done.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [migration.version, migration.name, Date.now()]);
      applied.push(migration.version);
    }
    await client.query('COMMIT');
    return applied;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

/** The database's schema is not the one this build works with. */
export class SchemaVersionError extends Error {
  override readonly name = 'SchemaVersionError';
  readonly code = 'METADATA_SCHEMA';
  readonly found: number | undefined;

  /** `where`: the database, as the operator knows it (its URL without the password). */
  constructor(found: number | undefined, how: 'older' | 'newer', where: string) {
    super(
      how === 'newer'
        ? `the metadata database ${where} has schema version ${found}, newer than this skiff knows (${SCHEMA_VERSION}): a newer skiff migrated it; run that version or newer`
        : `the metadata database ${where} has schema version ${found ?? 'none'}, this skiff needs ${SCHEMA_VERSION}: run \`skiff migrate\` (or start with migrations on)`,
    );
    this.found = found;
  }
}
