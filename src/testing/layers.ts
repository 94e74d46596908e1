import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { digestOf, type Digest } from '../digest/digest.ts';
import { MediaTypes } from '../oci/media-types.ts';
import type { Blob, TestImage } from './images.ts';

/** One entry of a hand-made layer tar; anything hostile is allowed on purpose. */
export interface LayerEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device';
  data?: Buffer | string;
  mode?: number;
  mtime?: Date;
  linkname?: string;
  uid?: number;
  gid?: number;
}

export const TEST_MTIME = new Date('2020-02-02T02:02:02Z');

/** A tar built entry by entry with tar-stream, exactly as given (no cleaning of names). */
export async function layerTar(entries: LayerEntry[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of archive) chunks.push(chunk as Buffer);
  })();
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    const header = {
      name: entry.name,
      type,
      mode: entry.mode ?? (type === 'directory' ? 0o755 : 0o644),
      mtime: entry.mtime ?? TEST_MTIME,
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      size: type === 'file' ? data.length : 0,
      ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      if (type === 'file') archive.entry(header, data, (error) => (error ? reject(error) : resolve()));
      else archive.entry(header, (error) => (error ? reject(error) : resolve()));
    });
  }
  archive.finalize();
  await collected;
  return Buffer.concat(chunks);
}

function blob(mediaType: string, data: Buffer): Blob {
  return { descriptor: { mediaType, digest: digestOf(data), size: data.length }, data };
}

/**
 * An OCI image whose layers are the given entry lists (gzip-compressed unless `compress: false`),
 * with a config whose diff_ids match, ready for `storeTestImage`.
 */
export async function makeImageFromLayers(layers: LayerEntry[][], options: { seed?: string; compress?: boolean } = {}): Promise<TestImage> {
  const layerBlobs: Blob[] = [];
  const diffIds: Digest[] = [];
  for (const entries of layers) {
    const tar = await layerTar(entries);
    diffIds.push(digestOf(tar));
    layerBlobs.push(options.compress === false ? blob(MediaTypes.ociLayer, tar) : blob(MediaTypes.ociLayerGzip, gzipSync(tar, { level: 1 })));
  }
  const configJson = {
    created: '2026-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/usr/bin:/bin'], Labels: { seed: options.seed ?? 'layers' } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
  };
  const config = blob(MediaTypes.ociConfig, Buffer.from(JSON.stringify(configJson)));
  const manifestJson = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: layerBlobs.map((l) => l.descriptor) };
  const manifest = blob(MediaTypes.ociManifest, Buffer.from(JSON.stringify(manifestJson)));
  return { blobs: [config, ...layerBlobs], config, layers: layerBlobs, manifest, diffIds };
}
