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
import type { Redis } from 'ioredis';
import { RedisKeyedLock } from '../coordination/redis-keyed-lock.ts';
import type { ServeConfig } from '../config.ts';

/** The collector's lease across replicas (Redis): renewed while a cycle runs, gone 30 s after a collector died. */
const GC_LEASE_MS = 30_000;

/**
 * The collector's lock that lives with the metadata, taken by `skiff serve`'s scheduler and by
 * `skiff gc` alike: PostgreSQL's advisory lock, or SQLite's lock file `<data>/gc.lock`; undefined
 * for a store with neither (then the replicas' Redis lease, redisCollectorLease).
 */
export function collectorLock(metadata: MetadataStore, dataDir: string): KeyedLock | undefined {
  if (metadata instanceof SqliteMetadataStore) return new FileKeyedLock(dataDir);
  return (metadata as { advisoryLock?: () => KeyedLock }).advisoryLock?.();
}

/** The collector's turn as a Redis lease (`<prefix>lock:gc`), for metadata with no lock of its own. */
export function redisCollectorLease(redis: Redis, prefix: string): KeyedLock {
  return new RedisKeyedLock(redis, { prefix: `${prefix}lock:`, leaseMs: GC_LEASE_MS });
}

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
    // The collector lock `skiff serve` takes too (Redis is opened only when neither store has one).
    let lease = collectorLock(metadata, config.data);
    if (!lease && config.redis) {
      const { openRedis } = await import('../coordination/redis-connection.ts');
      const redis = await openRedis(config.redis);
      closers.push(async () => void redis.disconnect());
      lease = redisCollectorLease(redis, config.redis.prefix);
    }
    return { collector: collectorFor(blobs, metadata, log), metadata, ...(lease ? { lease } : {}), close };
  } catch (error) {
    await close();
    throw error;
  }
}
