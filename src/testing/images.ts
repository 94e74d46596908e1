import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { digestOf, type Digest } from '../digest/digest.ts';
import type { Descriptor, Platform } from '../oci/descriptor.ts';
import { MediaTypes } from '../oci/media-types.ts';

/** Deterministic pseudo-random bytes (seeded), incompressible enough for tests and benchmarks. */
export function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let counter = 0;
  for (let offset = 0; offset < size; offset += 64) {
    createHash('sha512').update(`${seed}:${counter++}`).digest().copy(out, offset, 0, Math.min(64, size - offset));
  }
  return out;
}

/** A tar with one regular file, as a Buffer. */
export async function tarOf(files: { name: string; data: Buffer }[]): Promise<Buffer> {
  const archive = pack();
  for (const file of files) archive.entry({ name: file.name, size: file.data.length, mode: 0o644, mtime: new Date(0) }, file.data);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export interface Blob {
  descriptor: Descriptor;
  data: Buffer;
}

export interface TestImage {
  /** Every blob: config and layers. */
  blobs: Blob[];
  config: Blob;
  layers: Blob[];
  manifest: Blob;
  /** DiffIDs of the layers (uncompressed digests). */
  diffIds: Digest[];
}

function blob(mediaType: string, data: Buffer, extra: Partial<Descriptor> = {}): Blob {
  return { descriptor: { mediaType, digest: digestOf(data), size: data.length, ...extra }, data };
}

/** A small runnable-looking image: gzip tar layers, a config with matching diff_ids, a manifest. */
export async function makeImage(options: {
  seed: string;
  layers?: number;
  layerSize?: number;
  format?: 'oci' | 'docker';
  platform?: Platform;
  labels?: Record<string, string>;
  /** The config's `created` (and its history entries'); default 2026-01-01T00:00:00Z. */
  created?: string;
  /** One seed per layer instead of `<seed>/layer<i>`: images given the same seed share that layer. */
  layerSeeds?: string[];
}): Promise<TestImage> {
  const format = options.format ?? 'oci';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: Blob[] = [];
  const diffIds: Digest[] = [];
  const seeds = options.layerSeeds ?? Array.from({ length: options.layers ?? 2 }, (_, i) => `${options.seed}/layer${i}`);
  for (const [i, layerSeed] of seeds.entries()) {
    const tar = await tarOf([{ name: `file-${i}.bin`, data: seededBytes(layerSeed, options.layerSize ?? 1024) }]);
    diffIds.push(digestOf(tar));
    layers.push(blob(format === 'oci' ? MediaTypes.ociLayerGzip : MediaTypes.dockerLayerGzip, gzipSync(tar, { level: 1 })));
  }
  const created = options.created ?? '2026-01-01T00:00:00Z';
  const configJson = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: options.labels ?? { seed: options.seed } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created, created_by: `layer ${i}` })),
  };
  const config = blob(format === 'oci' ? MediaTypes.ociConfig : MediaTypes.dockerConfig, Buffer.from(JSON.stringify(configJson)));
  const manifestType = format === 'oci' ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
  const manifestJson = { schemaVersion: 2, mediaType: manifestType, config: config.descriptor, layers: layers.map((l) => l.descriptor) };
  const manifest = blob(manifestType, Buffer.from(JSON.stringify(manifestJson)), { platform });
  return { blobs: [config, ...layers], config, layers, manifest, diffIds };
}

/** An index (OCI or Docker list) over images, with each child's platform. */
export function makeIndex(images: TestImage[], format: 'oci' | 'docker' = 'oci'): Blob {
  const mediaType = format === 'oci' ? MediaTypes.ociIndex : MediaTypes.dockerManifestList;
  const json = { schemaVersion: 2, mediaType, manifests: images.map((image) => image.manifest.descriptor) };
  return blob(mediaType, Buffer.from(JSON.stringify(json)));
}

/**
 * Writes an OCI image layout (oci-layout, index.json, blobs/) that skopeo's `oci:` transport reads.
 * `refs` maps a tag to the top-level manifest or index blob.
 */
export async function writeOciLayout(dir: string, blobs: Blob[], refs: Record<string, Blob>): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  for (const item of blobs) await writeFile(join(dir, 'blobs', 'sha256', item.descriptor.digest.slice('sha256:'.length)), item.data);
  const manifests = Object.entries(refs).map(([tag, top]) => {
    const { platform: _platform, ...descriptor } = top.descriptor;
    return { ...descriptor, annotations: { 'org.opencontainers.image.ref.name': tag } };
  });
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests }));
}
