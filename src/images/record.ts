import type { Digest } from '../digest/digest.ts';
import type { Descriptor, ImageManifest, Platform } from '../oci/descriptor.ts';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.ts';
import { compressionOf, type Compression } from './decompress.ts';
import { LayerDigester, type LayerMeasurement } from './layer-digester.ts';
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

/** How a stored layer is really compressed, by its first bytes (media types lie often enough). */
export async function storedCompression(store: ImageStore, digest: Digest): Promise<Compression> {
  const head: Buffer[] = [];
  for await (const chunk of await store.blobs.reader(digest, { start: 0, end: 3 })) head.push(chunk as Buffer);
  return compressionOf(Buffer.concat(head), true)!;
}

/**
 * Digest and size of a stored layer's uncompressed tar, streaming. An uncompressed layer stored
 * under a sha256 digest is its own DiffID (the store verified its bytes): nothing to read but its head.
 */
export async function diffIdOf(store: ImageStore, layer: Descriptor): Promise<LayerMeasurement> {
  if (layer.digest.startsWith('sha256:') && (await storedCompression(store, layer.digest)) === 'none') {
    const size = await store.blobs.stat(layer.digest);
    if (size !== undefined) return { diffId: layer.digest, size };
  }
  const digester = new LayerDigester();
  const reader = await store.blobs.reader(layer.digest);
  try {
    for await (const chunk of reader as AsyncIterable<Buffer>) {
      if (!digester.write(chunk)) await digester.drained();
      if (digester.error) break; // end() reports it; the rest of the file cannot help
    }
    return await digester.end();
  } finally {
    reader.destroy();
    digester.destroy();
  }
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

/** Checks the config lists as many DiffIDs as the manifest has layers, as docker does. */
export function checkDiffIdCount(config: ImageConfig, layers: number): void {
  const expected = config.rootfs?.diff_ids ?? [];
  if (expected.length !== layers) throw new DiffIdMismatchError(`the config lists ${expected.length} layers, the manifest ${layers}`);
}

/** Checks layer `index` unpacks to the DiffID the config gives it. */
export function checkLayerDiffId(config: ImageConfig, index: number, diffId: Digest): void {
  const expected = config.rootfs?.diff_ids?.[index];
  if (diffId !== expected) throw new DiffIdMismatchError(`layer ${index} unpacks to ${diffId}, the config says ${expected}`);
}

/** Checks DiffIDs count and order against the config, as docker does. */
export function checkDiffIds(config: ImageConfig, actual: Digest[]): void {
  checkDiffIdCount(config, actual.length);
  actual.forEach((diffId, i) => checkLayerDiffId(config, i, diffId));
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
