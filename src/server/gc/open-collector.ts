import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FsBlobStore } from '../../content/fs-blob-store.ts';
import type { BlobStore } from '../../content/store.ts';
import { ConfigError } from '../../errors/config-error.ts';
import { registryLayout } from '../storage/layout.ts';
import type { MetadataStore } from '../storage/metadata.ts';
import { SqliteMetadataStore } from '../storage/sqlite-metadata.ts';
import { GarbageCollector, type CollectableStore } from './collector.ts';

/** The collector of a running registry's own store. */
export function collectorFor(blobs: BlobStore, metadata: MetadataStore, log?: Logger): GarbageCollector {
  if (!isCollectable(blobs)) throw new Error('garbage collection needs a blob store that can set condemned blobs aside (the filesystem or S3 driver)');
  return new GarbageCollector(metadata, blobs, log);
}

function isCollectable(blobs: BlobStore): blobs is BlobStore & CollectableStore {
  const store = blobs as Partial<CollectableStore>;
  return [store.quarantine, store.restore, store.purge, store.trashed, store.modifiedAt].every((method) => typeof method === 'function');
}

/**
 * `skiff gc --data DIR`: the metadata database and the blob store of a data directory, and
 * nothing else. Unlike opening the registry, this touches no ingest file, so it is safe beside a
 * running `skiff serve` (SQLite serializes the two processes' transactions).
 */
export async function openCollector(dataDir: string, log?: Logger): Promise<{ collector: GarbageCollector; metadata: MetadataStore; close(): Promise<void> }> {
  const layout = registryLayout(dataDir);
  try {
    await access(layout.metadata);
  } catch {
    throw new ConfigError(`${dataDir}: no registry here (no ${layout.metadata}); give the --data of a skiff serve`);
  }
  const metadata = new SqliteMetadataStore(layout.metadata);
  const blobs = new FsBlobStore(layout.blobs);
  return { collector: new GarbageCollector(metadata, blobs, log), metadata, close: () => metadata.close() };
}
