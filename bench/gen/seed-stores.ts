import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { registryLayout } from '../../src/server/storage/layout.ts';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata.ts';

/**
 * A registry data directory's blob store and metadata store, opened for seeding a benchmark's data
 * set straight into them (the gc and ui cases): the 256 blob fan-out directories made up front, and
 * SQLite without an fsync per transaction (one per linkBlob/putManifest would cost ~40 s for the
 * gc set; the store keeps its connection private, so this reaches in; without it the setup is
 * slower, not different).
 */
export async function openSeedStores(dir: string): Promise<{ layout: ReturnType<typeof registryLayout>; store: FsBlobStore; metadata: SqliteMetadataStore }> {
  const layout = registryLayout(dir);
  const store = await new FsBlobStore(layout.blobs).init();
  for (let i = 0; i < 256; i++) await mkdir(join(dir, 'blobs', 'sha256', i.toString(16).padStart(2, '0')), { recursive: true });
  const metadata = new SqliteMetadataStore(layout.metadata);
  (metadata as unknown as { db?: { exec(sql: string): void } }).db?.exec('PRAGMA synchronous = OFF');
  return { layout, store, metadata };
}
