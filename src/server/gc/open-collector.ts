import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FsBlobStore } from '../../content/fs-blob-store.ts';
import { FileKeyedLock } from '../../content/file-lock.ts';
import type { BlobStore } from '../../content/store.ts';
import { ConfigError } from '../../errors/config-error.ts';
import { registryLayout } from '../storage/layout.ts';
import type { MetadataStore } from '../storage/metadata.ts';
import { SqliteMetadataStore } from '../storage/sqlite-metadata.ts';
import { GarbageCollector, type CollectableStore } from './collector.ts';
import type { KeyedLock } from '../../content/keyed-lock.ts';
import type { ServeConfig } from '../config.ts';

/** The collector's lease across replicas (Redis): renewed while a cycle runs, gone 30 s after a collector died. */
export const GC_LEASE_MS = 30_000;

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
 * `skiff gc`: the metadata store and the blob store a configuration names, and nothing else.
 * Embedded (`--data DIR`): unlike opening the registry, this touches no ingest file, so it is safe
 * beside a running `skiff serve` (SQLite serializes the two processes' transactions). Scale-out
 * (`storage:`, `metadata:`, `redis:` in `--config`): the bucket and database the replicas share,
 * and the cycle runs under the replicas' collector lease, so it never overlaps theirs.
 */
export async function openCollector(
  config: Pick<ServeConfig, 'data' | 'storage' | 'metadata' | 'redis'>,
  log?: Logger,
): Promise<{ collector: GarbageCollector; metadata: MetadataStore; lease?: KeyedLock; close(): Promise<void> }> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const each of closers.reverse()) await each().catch(() => undefined);
  };
  try {
    let metadata: MetadataStore;
    if (config.metadata) {
      const { openPostgresMetadata } = await import('../storage/open-postgres.ts');
      metadata = await openPostgresMetadata(config.metadata.postgres);
    } else {
      const layout = registryLayout(config.data);
      try {
        await access(layout.metadata);
      } catch {
        throw new ConfigError(`${config.data}: no registry here (no ${layout.metadata}); give the --data of a skiff serve`);
      }
      metadata = new SqliteMetadataStore(layout.metadata);
    }
    closers.push(() => metadata.close());
    let blobs: BlobStore;
    if (config.storage) {
      const { openS3BlobStore } = await import('../storage/open-s3.ts');
      const s3 = await openS3BlobStore(config.storage.s3);
      closers.push(async () => s3.close());
      blobs = s3;
    } else blobs = new FsBlobStore(registryLayout(config.data).blobs);
    // The collector lock `skiff serve` takes too: PostgreSQL's advisory lock or SQLite's lock file, else the replicas' Redis lease.
    let lease: KeyedLock | undefined = (metadata as { advisoryLock?: () => KeyedLock }).advisoryLock?.() ?? (metadata instanceof SqliteMetadataStore ? new FileKeyedLock(config.data) : undefined);
    if (!lease && config.redis) {
      const [{ openRedis }, { RedisKeyedLock }] = await Promise.all([import('../coordination/redis-connection.ts'), import('../coordination/redis-keyed-lock.ts')]);
      const redis = await openRedis(config.redis);
      closers.push(async () => void redis.disconnect());
      lease = new RedisKeyedLock(redis, { prefix: `${config.redis.prefix}lock:`, leaseMs: GC_LEASE_MS });
    }
    return { collector: collectorFor(blobs, metadata, log), metadata, ...(lease ? { lease } : {}), close };
  } catch (error) {
    await close();
    throw error;
  }
}
