import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FsBlobStore } from '../content/fs-blob-store.ts';
import { SendBuffers } from '../content/send-buffers.ts';
import { prepareDataDir } from './data-dir.ts';
import { Registry, type RegistryOptions } from './registry.ts';
import { registryLayout } from './storage/layout.ts';
import { SqliteMetadataStore } from './storage/sqlite-metadata.ts';

/**
 * Opens the embedded storage under `dataDir` and tidies what a crash can leave behind:
 * one-shot writes that never committed, and ingest files whose session is gone.
 * Upload sessions themselves survive, so clients can resume them.
 */
export async function openRegistry(dataDir: string, options: RegistryOptions & { sendBufferMemory?: number }): Promise<Registry> {
  const layout = registryLayout(dataDir);
  await prepareDataDir(dataDir);
  const sendBuffers = options.sendBufferMemory !== undefined ? new SendBuffers(options.sendBufferMemory) : undefined;
  const blobs = await new FsBlobStore(layout.blobs, sendBuffers ? { sendBuffers } : {}).init();
  const metadata = new SqliteMetadataStore(layout.metadata);
  for (const name of await readdir(layout.ingest)) {
    if (name.startsWith('put-') || (await metadata.getUpload(name)) === undefined) await rm(join(layout.ingest, name), { force: true });
  }
  return new Registry(blobs, metadata, options);
}
