/** Synthetic OCI images: gzip tar layers of seeded random data, a config with matching diff_ids, a manifest. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { writeBlobBytes, writeBlobStream, type Descriptor } from './blob-writer.ts';
import { keystream } from './keystream.ts';
import { MediaTypes } from './media-types.ts';
import { tarHeader, tarTrailer } from './tar.ts';

export interface Platform {
  os: string;
  architecture: string;
}

export interface GeneratedImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

const CREATED = '2026-01-01T00:00:00Z';

/**
 * One layer: a tar holding one file of `size` random bytes, gzip level 1 (what registries usually
 * hold; on random data deflate stores the blocks, so the layer stays ~size bytes).
 */
async function writeLayer(layout: string, seed: string, size: number): Promise<{ descriptor: Descriptor; diffId: string }> {
  const diff = createHash('sha256');
  function* parts(): Generator<Buffer> {
    yield tarHeader(`data/${seed.replace(/[^\w.-]/g, '_')}.bin`, size);
    yield* keystream(seed, size);
    yield tarTrailer(size);
  }
  function* tar(): Generator<Buffer> {
    // The DiffID is the digest of the uncompressed tar, taken on the way into gzip.
    for (const chunk of parts()) {
      diff.update(chunk);
      yield chunk;
    }
  }
  const descriptor = await writeBlobStream(layout, MediaTypes.layerGzip, Readable.from(tar(), { objectMode: false }), createGzip({ level: 1 }));
  return { descriptor, diffId: `sha256:${diff.digest('hex')}` };
}

export async function writeImage(layout: string, options: { seed: string; layers: number; layerSize: number; platform?: Platform }): Promise<GeneratedImage> {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (let i = 0; i < options.layers; i++) {
    const layer = await writeLayer(layout, `${options.seed}/layer-${i}`, options.layerSize);
    layers.push(layer.descriptor);
    diffIds.push(layer.diffId);
  }
  const configJson = {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], Labels: { 'bench.seed': options.seed } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: CREATED, created_by: `bench layer ${i}` })),
  };
  const config = await writeBlobBytes(layout, MediaTypes.config, Buffer.from(JSON.stringify(configJson)));
  const manifestJson = { schemaVersion: 2, mediaType: MediaTypes.manifest, config, layers };
  const manifest = await writeBlobBytes(layout, MediaTypes.manifest, Buffer.from(JSON.stringify(manifestJson)));
  return { manifest: { ...manifest, platform }, config, layers };
}

/** An OCI index over images, each entry carrying its platform. */
export async function writeIndex(layout: string, images: GeneratedImage[]): Promise<Descriptor> {
  const json = { schemaVersion: 2, mediaType: MediaTypes.index, manifests: images.map((image) => image.manifest) };
  return writeBlobBytes(layout, MediaTypes.index, Buffer.from(JSON.stringify(json)));
}
