import { join } from 'node:path';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { FsBlobStore } from '../content/fs-blob-store.ts';
import { SendBuffers } from '../content/send-buffers.ts';
import type { BlobStore } from '../content/store.ts';
import type { FillTarget } from '../proxy/blob-fills.ts';
import type { Fill } from '../proxy/fill.ts';
import type { UpstreamConfig } from '../proxy/upstream-config.ts';
import { Upstreams } from '../proxy/upstreams.ts';
import { Mirror, type MirrorOptions, type MirrorStore } from './mirror.ts';

export interface OpenMirrorOptions {
  upstreams: UpstreamConfig[];
  log: Logger;
  readOnly?: boolean | undefined;
  cacheMaxSize?: number | undefined;
  /** Read buffers of the fills' spool, when the blob store has no files of its own. */
  sendBufferMemory?: number | undefined;
  /** The replicas' Redis: the fills' and manifest fetches' singleflight across them. */
  redis?: { client: Redis; prefix: string } | undefined;
}

/**
 * Mirror mode on whichever storage the registry opened. On the embedded store the fills write
 * into it directly; on one with no local files (S3) they go through a spool under
 * `<data>/mirror-spool/` (fill-spool.ts), emptied now of what a crash left. With Redis, each blob
 * and each manifest is fetched once for all replicas (docs/scale-out.md "Mirror across replicas").
 */
export async function openMirror(registry: MirrorStore, blobs: BlobStore, dataDir: string, options: OpenMirrorOptions): Promise<Mirror> {
  let target: FillTarget & Pick<BlobStore, 'delete'>;
  if (blobs instanceof FsBlobStore) target = blobs;
  else {
    const { FillSpool } = await import('../proxy/fill-spool.ts');
    const sendBuffers = options.sendBufferMemory !== undefined ? new SendBuffers(options.sendBufferMemory) : undefined;
    target = await FillSpool.open(blobs, join(dataDir, 'mirror-spool'), sendBuffers ? { sendBuffers } : {});
  }
  const shared: Pick<MirrorOptions, 'fills' | 'manifestLock'> = {};
  if (options.redis) {
    const [{ RedisFlights }, { RedisKeyedLock }] = await Promise.all([import('./coordination/redis-flights.ts'), import('./coordination/redis-keyed-lock.ts')]);
    const { client, prefix } = options.redis;
    const onUnshared = (digest: string, error: unknown): void =>
      options.log.warn({ digest, reason: (error as Error).message }, "mirror: cannot take the replicas' lease (Redis); fetching without it");
    shared.fills = { flights: new RedisFlights<Fill>(client, { prefix: `${prefix}lock:mirror:blob:`, leaseMs: 10_000, onUnshared }) };
    shared.manifestLock = new RedisKeyedLock(client, { prefix: `${prefix}lock:mirror:manifest:`, leaseMs: 10_000 });
  }
  const mirror = new Mirror(registry, target, new Upstreams(options.upstreams), {
    log: options.log,
    readOnly: options.readOnly ?? false,
    cache: { maxBytes: options.cacheMaxSize },
    ...shared,
  });
  // Before any request: deletes of evicted blobs that a crash cut short are finished first.
  await mirror.cache.start();
  return mirror;
}
