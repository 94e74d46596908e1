import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { ImageStore, type ImageRecord } from '../../src/images/store.ts';
import type { Descriptor, Platform } from '../../src/oci/descriptor.ts';
import { MediaTypes } from '../../src/oci/media-types.ts';
import { seededBytes, tarOf, type Blob, type TestImage } from '../../src/testing/images.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';

/** A fresh store in a temp dir; `close` removes it. */
export async function tempStore(): Promise<{ store: ImageStore; dir: string; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-images-'));
  const store = await ImageStore.open(dir);
  return { store, dir, close: () => rm(dir, { recursive: true, force: true }) };
}

function blob(mediaType: string, data: Buffer): Blob {
  return { descriptor: { mediaType, digest: digestOf(data), size: data.length }, data };
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

/**
 * An image whose layers are named by seed, so two images listing the same seed share that
 * layer blob; with full control over created, history, labels and layer sizes.
 */
export async function buildImage(options: {
  layers: { seed: string; size?: number }[];
  created?: string;
  history?: HistoryEntry[];
  labels?: Record<string, string>;
  platform?: Platform;
  extra?: Record<string, unknown>;
}): Promise<TestImage> {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: Blob[] = [];
  const diffIds: Digest[] = [];
  for (const layer of options.layers) {
    const tar = await tarOf([{ name: `${layer.seed}.bin`, data: seededBytes(layer.seed, layer.size ?? 1000) }]);
    diffIds.push(digestOf(tar));
    layers.push(blob(MediaTypes.ociLayerGzip, gzipSync(tar, { level: 1 })));
  }
  const created = options.created ?? '2026-01-01T00:00:00Z';
  const config = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: options.labels ?? {} },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: options.history ?? options.layers.map((l) => ({ created, created_by: `ADD ${l.seed}` })),
    ...options.extra,
  };
  const configBlob = blob(MediaTypes.ociConfig, Buffer.from(JSON.stringify(config)));
  const manifestJson = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: configBlob.descriptor, layers: layers.map((l) => l.descriptor) };
  const manifest = blob(MediaTypes.ociManifest, Buffer.from(JSON.stringify(manifestJson)));
  return { blobs: [configBlob, ...layers], config: configBlob, layers, manifest, diffIds };
}

/** Stores the image, tags it with each of `names` (full canonical refs), and adds repo digests. */
export async function put(store: ImageStore, image: TestImage, names: string[] = [], repoDigests: string[] = []): Promise<ImageRecord> {
  let record = await storeTestImage(store, image, names[0]);
  for (const name of names.slice(1)) await store.tag(name, image.manifest.descriptor);
  if (repoDigests.length > 0) {
    record = { ...record, repoDigests };
    await store.putRecord(record);
  }
  return record;
}

export async function hasBlob(store: ImageStore, descriptor: Descriptor): Promise<boolean> {
  return (await store.blobs.stat(descriptor.digest)) !== undefined;
}

/** A fixed "now" two hours after 2026-01-01. */
export const NOW = new Date('2026-01-01T02:00:00Z');

/**
 * The same image as a docker v2s2 manifest: the same config and layer blobs under another
 * manifest, as when podman pushes one image in both formats, or both archive formats are loaded.
 */
export function dockerTwin(image: TestImage): TestImage {
  const json = {
    schemaVersion: 2,
    mediaType: MediaTypes.dockerManifest,
    config: { ...image.config.descriptor, mediaType: MediaTypes.dockerConfig },
    layers: image.layers.map((l) => ({ ...l.descriptor, mediaType: MediaTypes.dockerLayerGzip })),
  };
  const data = Buffer.from(JSON.stringify(json));
  return { ...image, manifest: { descriptor: { mediaType: MediaTypes.dockerManifest, digest: digestOf(data), size: data.length }, data } };
}
