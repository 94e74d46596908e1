import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../digest/digest.ts';
import type { Descriptor, ImageManifest, Platform } from '../oci/descriptor.ts';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.ts';
import { decompressLayer } from './decompress.ts';
import type { ImageRecord, ImageStore } from './store.ts';

/** The parts of an image config skiff reads. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config?: { Labels?: Record<string, string> | null; [key: string]: unknown };
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean; author?: string }[];
  [key: string]: unknown;
}

export class DiffIdMismatchError extends Error {
  constructor(detail: string) {
    super(`layers from manifest don't match image configuration: ${detail}`);
    this.name = 'DiffIdMismatchError';
  }
}

export async function readJsonBlob<T>(store: ImageStore, digest: Digest): Promise<T> {
  return JSON.parse((await store.blobs.readSmall(digest, MAX_MANIFEST_BYTES)).toString('utf8')) as T;
}

/** Digest and size of a layer's uncompressed tar, streaming. */
export async function diffIdOf(store: ImageStore, layer: Descriptor): Promise<{ diffId: Digest; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(decompressLayer(await store.blobs.reader(layer.digest)), async (chunks: AsyncIterable<Buffer>) => {
    for await (const chunk of chunks) {
      hash.update(chunk);
      size += chunk.length;
    }
  });
  return { diffId: `sha256:${hash.digest('hex')}`, size };
}

/**
 * DiffIDs and uncompressed sizes the store already measured, by layer digest, taken from the
 * image records: a layer present on disk need not be decompressed again to know them.
 */
export async function knownLayerMeasurements(store: ImageStore): Promise<Map<Digest, { diffId: Digest; size: number }>> {
  const known = new Map<Digest, { diffId: Digest; size: number }>();
  for (const record of await store.records()) {
    if (!record.layerSizes || record.layerSizes.length !== record.layers.length) continue;
    record.layers.forEach((layer, i) => known.set(layer.digest, { diffId: record.diffIds[i]!, size: record.layerSizes![i]! }));
  }
  return known;
}

/** Checks DiffIDs count and order against the config, as docker does. */
export function checkDiffIds(config: ImageConfig, actual: Digest[]): void {
  const expected = config.rootfs?.diff_ids ?? [];
  if (expected.length !== actual.length) throw new DiffIdMismatchError(`the config lists ${expected.length} layers, the manifest ${actual.length}`);
  actual.forEach((diffId, i) => {
    if (diffId !== expected[i]) throw new DiffIdMismatchError(`layer ${i} unpacks to ${diffId}, the config says ${expected[i]}`);
  });
}

/**
 * Builds (and stores) the ImageRecord of an image whose blobs are all in the store.
 * `uncompressed` gives DiffIDs and sizes already measured (by pull); missing ones are
 * measured here by decompressing the layer. DiffIDs are always checked against the config.
 */
export async function recordImage(
  store: ImageStore,
  manifestDescriptor: Descriptor,
  options: { repoDigests?: string[]; uncompressed?: Map<Digest, { diffId: Digest; size: number }> } = {},
): Promise<ImageRecord> {
  const manifest = await readJsonBlob<ImageManifest>(store, manifestDescriptor.digest);
  const config = await readJsonBlob<ImageConfig>(store, manifest.config.digest);
  const diffIds: Digest[] = [];
  const layerSizes: number[] = [];
  for (const layer of manifest.layers) {
    const measured = options.uncompressed?.get(layer.digest) ?? (await diffIdOf(store, layer));
    diffIds.push(measured.diffId);
    layerSizes.push(measured.size);
  }
  const unpackedSize = layerSizes.reduce((sum, size) => sum + size, 0);
  checkDiffIds(config, diffIds);
  const platform: Platform = { os: config.os ?? 'unknown', architecture: config.architecture ?? 'unknown', ...(config.variant ? { variant: config.variant } : {}) };
  const previous = await store.getRecord(manifestDescriptor.digest);
  const repoDigests = [...new Set([...(previous?.repoDigests ?? []), ...(options.repoDigests ?? [])])];
  const record: ImageRecord = {
    manifest: { mediaType: manifestDescriptor.mediaType, digest: manifestDescriptor.digest, size: manifestDescriptor.size },
    config: manifest.config,
    layers: manifest.layers,
    diffIds,
    unpackedSize,
    layerSizes,
    platform,
    ...(config.created ? { created: config.created } : {}),
    repoDigests,
    storedAt: previous?.storedAt ?? Date.now(),
    ...(previous?.lastTagTime ? { lastTagTime: previous.lastTagTime } : {}),
  };
  await store.putRecord(record);
  return record;
}
