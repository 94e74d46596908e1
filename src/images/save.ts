import type { Writable } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack, type Pack } from 'tar-stream';
import { parseDigest, type Digest } from '../digest/digest.ts';
import { VerifyingStream } from '../digest/verifier.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { MediaTypes } from '../oci/media-types.ts';
import { formatFamiliar, parseReference } from '../reference/reference.ts';
import { selectImages, type SelectedImage } from './image-selection.ts';
import { CONTAINERD_NAME, REF_NAME, type ImageStore } from './store.ts';
import { addTarEntry } from './tar-io.ts';

/** One element of Docker's `manifest.json`. */
export interface DockerArchiveManifest {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

export interface SaveResult {
  /** The images written, each with the full names it was saved under. */
  images: { manifest: Descriptor; names: string[] }[];
  /** Distinct blobs written (a blob shared by several images is written once). */
  blobs: number;
  bytes: number;
}

/** Every file is dated 1970 and owned by 0:0, so saving the same images twice gives the same bytes. */
const EPOCH = new Date(0);

/** `blobs/sha256/<hex>`: where a blob lives in an OCI layout, and where manifest.json points. */
export function blobPath(digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/**
 * `docker save`: writes the images `refs` name into `output` as one tar that is both an OCI image
 * layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) and a Docker archive (`manifest.json`),
 * the two sharing the same blob files, as docker 25+ does. index.json carries one entry per name,
 * annotated with `io.containerd.image.name` (the full name) and `org.opencontainers.image.ref.name`
 * (the tag); manifest.json lists familiar RepoTags. Blobs are streamed from the store and verified
 * on the way; nothing is held in memory whole. `output` is ended when done.
 *
 * A ref without a tag saves every tag of that repository, as docker does.
 */
export async function save(store: ImageStore, refs: string[], output: Writable, options: { signal?: AbortSignal } = {}): Promise<SaveResult> {
  if (refs.length === 0) throw new Error('save needs at least one image');
  const images = await collect(store, refs);
  const archive = pack();
  archive.on('error', () => undefined); // reported through `piping` (streamx emits even with no listener)
  const piping = pipeline(Readable.from(archive, { objectMode: false }), output, options.signal ? { signal: options.signal } : {});
  // If the output fails (a closed pipe), stop producing instead of waiting for it forever.
  let outputError: unknown;
  piping.catch((error: unknown) => {
    outputError = error;
    archive.destroy(error as Error);
  });
  try {
    const result = await writeArchive(store, archive, images);
    archive.finalize();
    await piping;
    return result;
  } catch (error) {
    // When the output failed first, that is the cause; the writer's error is only its echo.
    const cause = outputError ?? error;
    archive.destroy(error as Error);
    await piping.catch(() => undefined);
    throw cause;
  }
}

/** Resolves every argument, merging names that point at the same image; order follows the arguments. */
async function collect(store: ImageStore, refs: string[]): Promise<SelectedImage[]> {
  const byManifest = new Map<Digest, SelectedImage>();
  for (const ref of refs) {
    for (const image of await selectImages(store, ref, { allTags: true })) {
      const existing = byManifest.get(image.record.manifest.digest);
      if (!existing) byManifest.set(image.record.manifest.digest, { record: image.record, names: [...image.names] });
      else for (const name of image.names) if (!existing.names.includes(name)) existing.names.push(name);
    }
  }
  return [...byManifest.values()];
}

async function writeArchive(store: ImageStore, archive: Pack, images: SelectedImage[]): Promise<SaveResult> {
  const written = new Set<Digest>();
  const algorithms = new Set<string>();
  for (const image of images) for (const d of [image.record.manifest, image.record.config, ...image.record.layers]) algorithms.add(parseDigest(d.digest).algorithm);
  await addTarEntry(archive, dirHeader('blobs/'));
  for (const algorithm of [...algorithms].sort()) await addTarEntry(archive, dirHeader(`blobs/${algorithm}/`));

  let bytes = 0;
  const index: Descriptor[] = [];
  const dockerManifest: DockerArchiveManifest[] = [];
  for (const { record, names } of images) {
    for (const descriptor of [record.manifest, record.config, ...record.layers]) {
      if (written.has(descriptor.digest)) continue;
      const size = await store.blobs.stat(descriptor.digest);
      if (size === undefined) {
        throw new Error(`cannot save ${names[0] ?? record.config.digest}: blob ${descriptor.digest} is missing from the store (pull the image again)`);
      }
      const reader = await store.blobs.reader(descriptor.digest);
      const source = new VerifyingStream(descriptor.digest, size);
      reader.on('error', (error) => source.destroy(error));
      reader.pipe(source);
      try {
        await addTarEntry(archive, { name: blobPath(descriptor.digest), size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0, type: 'file' }, source);
      } finally {
        // pipe() never closes its source: after a digest mismatch or a failed output the file
        // would stay open until the garbage collector closed it (DEP0137).
        await closeReader(reader);
      }
      written.add(descriptor.digest);
      bytes += size;
    }
    const plain: Descriptor = { mediaType: record.manifest.mediaType, digest: record.manifest.digest, size: record.manifest.size };
    for (const name of names) {
      const tag = parseReference(name).tag ?? 'latest';
      index.push({ ...plain, annotations: { [CONTAINERD_NAME]: name, [REF_NAME]: tag } });
    }
    if (names.length === 0) index.push(plain);
    dockerManifest.push({
      Config: blobPath(record.config.digest),
      RepoTags: names.map((name) => formatFamiliar(parseReference(name))),
      Layers: record.layers.map((layer) => blobPath(layer.digest)),
    });
  }
  await addJson(archive, 'index.json', { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: index });
  await addJson(archive, 'manifest.json', dockerManifest);
  await addJson(archive, 'oci-layout', { imageLayoutVersion: '1.0.0' });
  return {
    images: images.map(({ record, names }) => ({ manifest: record.manifest, names })),
    blobs: written.size,
    bytes,
  };
}

async function closeReader(reader: Readable): Promise<void> {
  if (reader.closed) return;
  const closing = new Promise<void>((resolve) => reader.once('close', () => resolve()));
  reader.destroy();
  await closing;
}

function dirHeader(name: string) {
  return { name, mode: 0o755, mtime: EPOCH, uid: 0, gid: 0, type: 'directory' as const };
}

async function addJson(archive: Pack, name: string, value: unknown): Promise<void> {
  const data = Buffer.from(`${JSON.stringify(value)}\n`);
  await addTarEntry(archive, { name, size: data.length, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0, type: 'file' }, data);
}
