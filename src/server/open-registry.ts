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

/**
 * Opens the embedded storage under `dataDir` and tidies what a crash can leave behind:
 * one-shot writes that never committed, and ingest files whose session is gone.
 * Upload sessions themselves survive, so clients can resume them.
 */
export async function openRegistry(
  dataDir: string,
  options: RegistryOptions & { sendBufferMemory?: number; upstreams?: UpstreamConfig[]; cacheMaxSize?: number | undefined; log?: Logger },
): Promise<Registry> {
  const layout = registryLayout(dataDir);
  await prepareDataDir(dataDir);
  const sendBuffers = options.sendBufferMemory !== undefined ? new SendBuffers(options.sendBufferMemory) : undefined;
  const blobs = await new FsBlobStore(layout.blobs, sendBuffers ? { sendBuffers } : {}).init();
  const metadata = new SqliteMetadataStore(layout.metadata);
  for (const name of await readdir(layout.ingest)) {
    if (name.startsWith('put-') || (await metadata.getUpload(name)) === undefined) await rm(join(layout.ingest, name), { force: true });
  }
  const registry = new Registry(blobs, metadata, options);
  // Mirror mode: cached repositories fall back to their upstreams (a crash's `fill-*` ingests went above).
  if (options.upstreams && options.upstreams.length > 0) {
    // Loaded only in mirror mode: a plain registry never loads the HTTP client.
    const [{ Mirror }, { Upstreams }] = await Promise.all([import('./mirror.ts'), import('../proxy/upstreams.ts')]);
    const log = options.log ?? pino({ level: 'silent' });
    const mirror = new Mirror(registry, blobs, new Upstreams(options.upstreams), { log, readOnly: options.readOnly, cache: { maxBytes: options.cacheMaxSize } });
    registry.useMirror(mirror);
    // Before any request: deletes of evicted blobs that a crash cut short are finished first.
    await mirror.cache.start();
  }
  return registry;
}
