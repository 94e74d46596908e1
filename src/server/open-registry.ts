import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { FsBlobStore } from '../content/fs-blob-store.ts';
import { SendBuffers } from '../content/send-buffers.ts';
import type { UpstreamConfig } from '../proxy/upstream-config.ts';
import { prepareDataDir } from './data-dir.ts';
import { Registry, type RegistryOptions } from './registry.ts';
import { registryLayout } from './storage/layout.ts';
import { SqliteMetadataStore } from './storage/sqlite-metadata.ts';
import { collectorLock, redisCollectorLease } from './gc/open-collector.ts';
import type { BlobStore } from '../content/store.ts';
import type { MetadataStore } from './storage/metadata.ts';
import type { MetadataConfig, RedisConfig, StorageConfig } from './backend-config.ts';
import type { Redis } from 'ioredis';

export interface OpenRegistryOptions extends RegistryOptions {
  sendBufferMemory?: number;
  upstreams?: UpstreamConfig[];
  cacheMaxSize?: number | undefined;
  log?: Logger;
  /** Blobs in S3 instead of under `dataDir` (docs/scale-out.md). */
  storage?: StorageConfig | undefined;
  /** Metadata in PostgreSQL instead of SQLite under `dataDir`. */
  metadata?: MetadataConfig | undefined;
  /** What replicas share: upload locks, the collector's lease, failed-login counts, the mirror's fetches. */
  redis?: RedisConfig | undefined;
}

/**
 * Opens the registry's storage: embedded under `dataDir` by default, or the scale-out backends the
 * configuration names, each checked now so that a wrong bucket, credential or URL stops the start
 * with a message naming its setting. Embedded, it also tidies what a crash can leave behind:
 * one-shot writes that never committed, and ingest files whose session is gone. Upload sessions
 * themselves survive, so clients can resume them.
 */
export async function openRegistry(dataDir: string, options: OpenRegistryOptions): Promise<Registry> {
  await prepareDataDir(dataDir);
  const closers: (() => Promise<void>)[] = [];
  try {
    const blobs = await openBlobStore(dataDir, options);
    const closable = blobs as BlobStore & { close?: () => void };
    if (typeof closable.close === 'function') closers.push(async () => closable.close!());
    const metadata = await openMetadataStore(dataDir, options);
    closers.push(() => metadata.close());
    let uploadLocks: RegistryOptions['uploadLocks'];
    let loginLimiter: RegistryOptions['loginLimiter'];
    let shared: { client: Redis; prefix: string } | undefined;
    if (options.redis) {
      const [{ openRedis }, { RedisKeyedLock }, { RedisLoginLimiter }] = await Promise.all([
        import('./coordination/redis-connection.ts'),
        import('./coordination/redis-keyed-lock.ts'),
        import('./coordination/redis-login-limiter.ts'),
      ]);
      const redis = await openRedis(options.redis);
      closers.push(async () => void redis.disconnect());
      shared = { client: redis, prefix: options.redis.prefix };
      uploadLocks = new RedisKeyedLock(redis, { prefix: `${options.redis.prefix}lock:upload:`, leaseMs: 8000 });
      const prefix = options.redis.prefix;
      loginLimiter = (limits) => new RedisLoginLimiter(redis, { prefix, limits });
    }
    // Exactly one collector at a time: across replicas, PostgreSQL's advisory lock (held for the
    // cycle, gone with its session), else the Redis lease; on SQLite, a lock file beside it, which a
    // `skiff gc --data` on the same directory takes too.
    const gcLock = collectorLock(metadata, dataDir) ?? (shared ? redisCollectorLease(shared.client, shared.prefix) : undefined);
    if (blobs instanceof FsBlobStore) await removeIngestLeftovers(dataDir, metadata);
    else if (!options.readOnly && hasIngestRefs(blobs)) {
      // In the background: listing a bucket's ingests must not hold up the start of a replica.
      const log = options.log ?? pino({ level: 'silent' });
      void removeOrphanIngests(blobs, metadata).then(
        (removed) => removed > 0 && log.info({ removed }, 'ingests whose upload session is gone were removed'),
        (error: unknown) => log.warn({ err: error }, 'could not tidy ingests whose upload session is gone; the next start tries again'),
      );
    }
    const registry = new Registry(blobs, metadata, { ...options, uploadLocks, gcLock, loginLimiter });
    // Opened first, closed last.
    for (const close of closers) registry.onClose(close);
    closers.length = 0; // the registry closes them from now on
    // Mirror mode: cached repositories fall back to their upstreams (a crash's `fill-*` ingests went above).
    if (options.upstreams && options.upstreams.length > 0) {
      // Loaded only in mirror mode: a plain registry never loads the HTTP client.
      const { openMirror } = await import('./mirror-open.ts');
      const log = options.log ?? pino({ level: 'silent' });
      const { upstreams, readOnly, cacheMaxSize, sendBufferMemory } = options;
      try {
        registry.useMirror(await openMirror(registry, blobs, dataDir, { upstreams, log, readOnly, cacheMaxSize, sendBufferMemory, redis: shared }));
      } catch (error) {
        await registry.close().catch(() => undefined);
        throw error;
      }
    }
    return registry;
  } catch (error) {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw error;
  }
}

async function openBlobStore(dataDir: string, options: OpenRegistryOptions): Promise<BlobStore> {
  const sendBuffers = options.sendBufferMemory !== undefined ? new SendBuffers(options.sendBufferMemory) : undefined;
  if (options.storage) {
    const { openS3BlobStore } = await import('./storage/open-s3.ts'); // only S3 deployments load the AWS SDK
    return openS3BlobStore(options.storage.s3);
  }
  return new FsBlobStore(registryLayout(dataDir).blobs, sendBuffers ? { sendBuffers } : {}).init();
}

async function openMetadataStore(dataDir: string, options: OpenRegistryOptions): Promise<MetadataStore> {
  if (options.metadata) {
    const { openPostgresMetadata } = await import('./storage/open-postgres.ts');
    return openPostgresMetadata(options.metadata.postgres);
  }
  return new SqliteMetadataStore(registryLayout(dataDir).metadata);
}

/** Session ids as the registry makes them (randomUUID): other refs (`put-…`) may be another replica's write in progress. */
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function hasIngestRefs(blobs: BlobStore): blobs is BlobStore & { ingestRefs(): AsyncIterable<string> } {
  return typeof (blobs as { ingestRefs?: unknown }).ingestRefs === 'function';
}

/**
 * Object storage after a crash: ingests of upload sessions that are gone (a session's row is
 * written before its first byte and removed after its ingest, so an ingest without one is an
 * orphan, whichever replica wrote it). Resolves to how many went.
 */
async function removeOrphanIngests(blobs: BlobStore & { ingestRefs(): AsyncIterable<string> }, metadata: MetadataStore): Promise<number> {
  let removed = 0;
  for await (const ref of blobs.ingestRefs()) {
    if (!SESSION_ID.test(ref) || (await metadata.getUpload(ref)) !== undefined) continue;
    await (await blobs.ingest(ref, { resume: true })).abort();
    removed++;
  }
  return removed;
}

/** Embedded storage after a crash: one-shot writes that never committed, ingest files whose session is gone. */
async function removeIngestLeftovers(dataDir: string, metadata: MetadataStore): Promise<void> {
  const { ingest } = registryLayout(dataDir);
  for (const name of await readdir(ingest)) {
    if (name.startsWith('put-') || (await metadata.getUpload(name)) === undefined) await rm(join(ingest, name), { force: true });
  }
}
