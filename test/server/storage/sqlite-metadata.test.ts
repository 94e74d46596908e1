import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync, type StatementResultingChanges, type StatementSync } from 'node:sqlite';
import { digestOf } from '../../../src/digest/digest.ts';
import type { MetadataStore } from '../../../src/server/storage/metadata.ts';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata.ts';
import { metadataSuite } from './metadata-suite.ts';

metadataSuite('SqliteMetadataStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
  const path = join(dir, 'metadata.db');
  let current: MetadataStore | undefined = new SqliteMetadataStore(path);
  return {
    store: current,
    async reopen() {
      await current?.close();
      current = new SqliteMetadataStore(path);
      return current;
    },
    async cleanup() {
      await current?.close();
      current = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqliteMetadataStore specifics', () => {
  test('blob-push bookkeeping commits relaxed, and every other write is FULL again after it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const store = new SqliteMetadataStore(join(dir, 'metadata.db'));
    // The pragma is per connection: read it on the store's own (2 = FULL, 1 = NORMAL).
    const level = () => (store as unknown as { db: DatabaseSync }).db.prepare('PRAGMA synchronous').get()?.synchronous;
    try {
      assert.equal(level(), 2);
      const session = { id: '6f1c2a9e-0000-4000-8000-000000000001', repository: 'app', offset: 0, startedAt: 1, updatedAt: 1 };
      await store.createUpload(session);
      assert.equal(level(), 2);
      await store.setUploadOffset(session.id, 5);
      await store.linkBlob('app', digestOf('layer'), 5);
      await store.deleteUpload(session.id);
      assert.equal(level(), 2);
      // A failing relaxed write restores FULL too.
      await store.createUpload(session);
      await assert.rejects(store.createUpload(session)); // the same id twice
      assert.equal(level(), 2);
      assert.equal(await store.isBlobLinked('app', digestOf('layer')), true);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the mirror cache's records commit relaxed; a cached manifest and its record stay FULL", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const store = new SqliteMetadataStore(join(dir, 'metadata.db'));
    // Every statement run is recorded with the synchronous level it ran under (2 = FULL, 1 = NORMAL).
    const db = (store as unknown as { db: DatabaseSync }).db;
    const prepare = db.prepare.bind(db);
    const level = () => Number(prepare('PRAGMA synchronous').get()?.synchronous);
    const writes: [string, number][] = [];
    db.prepare = (text: string) => {
      const statement = prepare(text);
      const run = statement.run.bind(statement) as (...args: unknown[]) => StatementResultingChanges;
      statement.run = ((...args: unknown[]) => {
        writes.push([text.trim().split(/\s+/).slice(0, 3).join(' '), level()]);
        return run(...args);
      }) as StatementSync['run'];
      return statement;
    };
    try {
      const manifest = { repository: 'hub/app', digest: digestOf('manifest'), mediaType: 'x/y', size: 8, createdAt: 1 };
      await store.markCachedRepository('hub/app');
      await store.putManifest(manifest, [], ['v1']);
      await store.recordCachedManifest('hub/app', { digest: manifest.digest, size: 8 }, 2);
      const full = writes.length;
      assert.ok(full > 2 && writes.slice(1).every(([, at]) => at === 2), `the manifest and its record are FULL: ${JSON.stringify(writes)}`);
      await store.recordCachedBlob({ digest: digestOf('layer'), size: 5 }, 3);
      assert.equal(await store.markTagChecked('hub/app', 'v1', 4), true);
      const relaxed = [writes[0]!, ...writes.slice(full)];
      assert.ok(relaxed.length >= 3 && relaxed.every(([, at]) => at === 1), `the other records are relaxed: ${JSON.stringify(relaxed)}`);
      assert.equal(level(), 2, 'FULL again after them');
      assert.equal((await store.getTag('hub/app', 'v1'))?.checkedAt, 4);
      assert.equal(await store.cacheSize(), 13);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a failed transaction leaves no partial manifest behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const store = new SqliteMetadataStore(join(dir, 'metadata.db'));
    try {
      const bad = { repository: 'app', digest: digestOf('m'), mediaType: 'x/y', size: 1, createdAt: 1 };
      // A tag that is not a string makes the tag insert fail after the manifest insert ran.
      await assert.rejects(store.putManifest(bad, [digestOf('child')], [{} as unknown as string]));
      assert.equal(await store.getManifest('app', bad.digest), undefined);
      assert.deepEqual(await store.unreferencedBlobs([digestOf('child')]), [digestOf('child')]);
      // The connection is still usable.
      await store.putManifest(bad, [], ['ok']);
      assert.equal(await store.resolveTag('app', 'ok'), bad.digest);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a database from before upload expiry gains updated_at, backfilled from started_at', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const path = join(dir, 'metadata.db');
    const old = new DatabaseSync(path);
    old.exec('CREATE TABLE uploads (id TEXT PRIMARY KEY, repository TEXT NOT NULL, offset INTEGER NOT NULL, started_at INTEGER NOT NULL) WITHOUT ROWID');
    old.prepare('INSERT INTO uploads VALUES (?, ?, ?, ?)').run('old', 'app', 7, 1234);
    old.close();
    let store = new SqliteMetadataStore(path);
    try {
      assert.deepEqual(await store.getUpload('old'), { id: 'old', repository: 'app', offset: 7, startedAt: 1234, updatedAt: 1234 });
      assert.deepEqual((await store.staleUploads(1235, 10)).map((s) => s.id), ['old']);
      await store.createUpload({ id: 'new', repository: 'app', offset: 0, startedAt: 5, updatedAt: 6 });
      await store.close();
      store = new SqliteMetadataStore(path); // migrating again is a no-op
      assert.deepEqual((await store.staleUploads(10_000, 10)).map((s) => s.id), ['new', 'old']);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a database from before the mirror gains tags.checked_at, every tag unchecked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const path = join(dir, 'metadata.db');
    const old = new DatabaseSync(path);
    old.exec('CREATE TABLE tags (repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (repository, tag)) WITHOUT ROWID');
    old.prepare('INSERT INTO tags VALUES (?, ?, ?, ?)').run('app', 'v1', digestOf('m'), 42);
    old.close();
    let store = new SqliteMetadataStore(path);
    try {
      assert.deepEqual(await store.getTag('app', 'v1'), { digest: digestOf('m'), updatedAt: 42 });
      assert.equal(await store.markTagChecked('app', 'v1', 99), true);
      await store.close();
      store = new SqliteMetadataStore(path); // migrating again is a no-op
      assert.equal((await store.getTag('app', 'v1'))?.checkedAt, 99);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a database from before the cache LRU gains manifests.used_at: its manifests are no LRU entries', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const path = join(dir, 'metadata.db');
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE manifests (repository TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size INTEGER NOT NULL, artifact_type TEXT,
      subject TEXT, annotations TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (repository, digest)) WITHOUT ROWID`);
    old.prepare('INSERT INTO manifests (repository, digest, media_type, size, created_at) VALUES (?, ?, ?, ?, ?)').run('app', digestOf('m'), 'x/y', 1, 42);
    old.close();
    let store = new SqliteMetadataStore(path);
    try {
      assert.equal((await store.getManifest('app', digestOf('m')))?.createdAt, 42);
      const step = await store.evictCache({ bytes: 1, usedBefore: Number.MAX_SAFE_INTEGER, pinned: [], now: 1 });
      assert.deepEqual(step, { manifests: [], released: [], exhausted: true });
      await store.close();
      store = new SqliteMetadataStore(path); // migrating again is a no-op
      assert.ok(await store.getManifest('app', digestOf('m')));
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('eviction walks indexes, never whole tables', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const store = new SqliteMetadataStore(join(dir, 'metadata.db'));
    const db = (store as unknown as { db: DatabaseSync }).db;
    try {
      const plan = (sql: string) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(1, 2) as { detail: string }[]).map((row) => row.detail).join('; ');
      const manifests = plan(
        `SELECT repository, digest, used_at FROM manifests m WHERE used_at IS NOT NULL AND used_at < ?
          AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child = m.digest AND r.repository = m.repository) ORDER BY used_at, repository, digest LIMIT ?`,
      );
      assert.match(manifests, /manifests_lru/);
      assert.doesNotMatch(manifests, /TEMP B-TREE/, manifests);
      const blobs = plan('SELECT digest, size, used_at FROM cache_blobs WHERE released_at IS NULL AND recheck = 1 AND used_at < ? ORDER BY used_at, digest LIMIT ?');
      assert.match(blobs, /cache_blobs_recheck/);
      assert.doesNotMatch(blobs, /TEMP B-TREE/, blobs);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('two stores on one file see each other\'s commits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-meta-'));
    const a = new SqliteMetadataStore(join(dir, 'metadata.db'));
    const b = new SqliteMetadataStore(join(dir, 'metadata.db'));
    try {
      await a.putManifest({ repository: 'app', digest: digestOf('m'), mediaType: 'x/y', size: 1, createdAt: 1 }, [], ['t']);
      assert.equal(await b.resolveTag('app', 't'), digestOf('m'));
    } finally {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
