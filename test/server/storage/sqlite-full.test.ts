/**
 * The metadata store on a full disk. `PRAGMA max_page_count` makes SQLite answer SQLITE_FULL
 * exactly as a full filesystem does (and roll the transaction back by itself, so the old
 * explicit ROLLBACK failed with "no transaction is active" and hid the real error).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { digestOf } from '../../../src/digest/digest.ts';
import { StorageFullError } from '../../../src/content/storage-errors.ts';
import { SqliteMetadataStore } from '../../../src/server/storage/sqlite-metadata.ts';

describe('SqliteMetadataStore on a full disk', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  let db: DatabaseSync;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-meta-full-'));
    store = new SqliteMetadataStore(join(dir, 'metadata.db'));
    db = (store as unknown as { db: DatabaseSync }).db;
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  function fill(): void {
    const { page_count } = db.prepare('PRAGMA page_count').get() as { page_count: number };
    db.exec(`PRAGMA max_page_count = ${page_count}`);
  }
  function unfill(): void {
    db.exec('PRAGMA max_page_count = 1073741823');
  }

  const big = (seed: string) => Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, `${seed}`.repeat(200)]));
  const record = (seed: string) => ({ repository: 'app', digest: digestOf(seed), mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 1, createdAt: 1, annotations: big(seed) });

  test('a transaction that runs out of space throws StorageFullError and leaves nothing behind', async () => {
    await store.putManifest(record('before'), [], ['v0']);
    fill();
    const error = await store.putManifest(record('during'), [digestOf('child')], ['v1']).then(
      () => assert.fail('putManifest succeeded with no space'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof StorageFullError, String(error));
    assert.equal(error.reason, 'SQLITE_FULL');
    assert.match(error.message, /storage is full \(SQLITE_FULL\) while recording manifest sha256:[0-9a-f]{64} of app in the metadata database; free space/);
    assert.equal(db.isTransaction, false);
    // Reads keep working and see no trace of the failed write.
    assert.equal(await store.getManifest('app', digestOf('during')), undefined);
    assert.equal(await store.resolveTag('app', 'v1'), undefined);
    assert.equal(await store.resolveTag('app', 'v0'), digestOf('before'));
    assert.deepEqual(await store.unreferencedBlobs([digestOf('child')]), [digestOf('child')]);
  });

  test('single-statement writes throw StorageFullError too', async () => {
    fill();
    const many = Array.from({ length: 200 }, (_, i) => ({ id: `${String(i).padStart(8, '0')}-0000-0000-0000-000000000000`, repository: 'x'.repeat(500), offset: 0, startedAt: 1, updatedAt: 1 }));
    const error = await (async () => {
      for (const session of many) await store.createUpload(session);
    })().then(
      () => assert.fail('createUpload succeeded with no space'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof StorageFullError, String(error));
    assert.match(error.message, /while recording upload .* in the metadata database/);
  });

  test('with space again, writes succeed on the same connection', async () => {
    unfill();
    await store.putManifest(record('after'), [], ['v2']);
    assert.equal(await store.resolveTag('app', 'v2'), digestOf('after'));
    await store.linkBlob('app', digestOf('layer'));
    assert.equal(await store.isBlobLinked('app', digestOf('layer')), true);
  });
});
