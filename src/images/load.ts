import { randomUUID } from 'node:crypto';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { createDigester, digestOf, isDigest, type Digest } from '../digest/digest.ts';
import { DigestMismatchError } from '../digest/errors.ts';
import type { Descriptor, ImageManifest } from '../oci/descriptor.ts';
import { InvalidManifestError, MAX_MANIFEST_BYTES, parseManifest, validateDescriptor, type ParsedManifest } from '../oci/manifest.ts';
import { IMAGE_MANIFEST_TYPES, MediaTypes } from '../oci/media-types.ts';
import { bestMatch, hostPlatform } from '../oci/platform.ts';
import { formatFamiliar, formatReference, parseReference } from '../reference/reference.ts';
import { decompressLayer } from './decompress.ts';
import { checkDiffIds, DiffIdMismatchError, diffIdOf, readJsonBlob, recordImage, storedCompression, type ImageConfig } from './record.ts';
import type { Ingest } from '../content/store.ts';
import { CONTAINERD_NAME, REF_NAME, STAGING_PREFIX, type ImageRecord, type ImageStore } from './store.ts';
import { drainEntry, entryChunks, readEntry, tarEntries, type TarEntry } from './tar-io.ts';

/** The archive is not one `load` can use: truncated, corrupt, hostile or incomplete. */
export class ArchiveError extends Error {
  readonly code = 'INVALID_ARCHIVE';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ArchiveError';
  }
}

export interface LoadedImage {
  /** The image manifest now in the store (built by skiff for a docker-archive). */
  manifest: Descriptor;
  /** The image ID. */
  config: Descriptor;
  /** Full names it was tagged with; empty for an untagged (dangling) image. */
  names: string[];
  record: ImageRecord;
}

export interface LoadResult {
  images: LoadedImage[];
  /** Docker's output lines, in order: `Loaded image: alpine:3.20`, `Loaded image ID: sha256:…`. */
  messages: string[];
}

export interface LoadOptions {
  signal?: AbortSignal;
  /** Called with each output line as soon as it is known. */
  onMessage?: (line: string) => void;
}

/** What the tar held: regular files (staged, see Staging), links between entries, metadata files. */
interface ArchiveContents {
  files: Map<string, { digest: Digest; size: number }>;
  links: Map<string, string>;
  meta: Map<string, Buffer>;
  staging: Staging;
}

/** A file-system-free plan: which manifest to record and which names to give it. */
interface PlannedImage {
  manifest: Descriptor;
  names: string[];
  /** Where it came from, for error messages: `index.json manifests[0]`, `manifest.json[1]`. */
  where: string;
}

/** Top-level files read into memory (each at most MAX_MANIFEST_BYTES); everything else is streamed. */
const METADATA_FILES = new Set(['index.json', 'manifest.json', 'oci-layout', 'repositories']);
/** Classic `docker save` / skopeo docker-archive per-layer legacy files no loader needs. */
const LEGACY_FILES = /^[^/]+\/(?:VERSION|json)$/;
const BLOB_FILE = /^blobs\/(sha256|sha512)\/([a-f0-9]+)$/;

/**
 * `docker load`: reads an image archive from `input` and adds its images to the store. Accepts
 *  - skiff / docker 25+ `save` output (an OCI layout plus manifest.json: the layout wins),
 *  - an OCI layout alone (`skopeo copy … oci-archive:`); a `ref.name` annotation that is a bare
 *    tag names no repository, so such an image loads untagged unless `io.containerd.image.name` says more,
 *  - a Docker archive alone (`docker save` before 25, `skopeo copy … docker-archive:`): manifest.json
 *    with `<hex>.json` configs and uncompressed `…/layer.tar` layers, for which skiff writes an OCI
 *    manifest (layers stored as they are, `application/vnd.oci.image.layer.v1.tar`).
 * The archive may be gzip- or zstd-compressed, and its entries may come in any order: every file is
 * streamed into the store's ingest area as it arrives, hashed, but not committed (see Staging). Once
 * the metadata is known, only the blobs its manifests reach are committed (`blobs/<alg>/<hex>`
 * verified against the digest its name promises, anything else under the digest it hashes to); the
 * rest is dropped, so an unreferenced 1 GiB entry never becomes an orphan blob. Entry names are
 * only ever keys, never paths on disk. Only when every image has been checked (blobs present,
 * DiffIDs matching the config) are images recorded and tagged, so a corrupt or truncated archive
 * leaves no image behind (verified blobs it reached may stay; `image prune` removes them).
 */
export async function load(store: ImageStore, input: Readable, options: LoadOptions = {}): Promise<LoadResult> {
  const staging = new Staging(store);
  try {
    return await loadStaged(store, input, staging, options);
  } finally {
    await staging.discard(); // files no manifest reached never become blobs
  }
}

async function loadStaged(store: ImageStore, input: Readable, staging: Staging, options: LoadOptions): Promise<LoadResult> {
  const contents = await readArchive(store, input, staging, options.signal);
  const planned = await planImages(store, contents);
  if (planned.length === 0) throw new ArchiveError('the archive holds no images');
  const measured: Map<Digest, { diffId: Digest; size: number }>[] = [];
  for (const image of planned) measured.push(await checkImage(store, image));
  options.signal?.throwIfAborted();

  const messages: string[] = [];
  const say = (line: string) => {
    messages.push(line);
    options.onMessage?.(line);
  };
  const images: LoadedImage[] = [];
  for (const [i, image] of planned.entries()) {
    const record = await recordImage(store, image.manifest, { uncompressed: measured[i]! });
    for (const name of image.names) {
      const previous = (await store.refs()).find((ref) => ref.name === name);
      if (previous && previous.manifest.digest !== image.manifest.digest) {
        const old = await store.getRecord(previous.manifest.digest);
        const oldId = old?.config.digest ?? previous.manifest.digest;
        if (oldId !== record.config.digest) say(`The image ${familiar(name)} already exists, renaming the old one with ID ${oldId} to empty string`);
      }
      await store.tag(name, image.manifest);
      say(`Loaded image: ${familiar(name)}`);
    }
    if (image.names.length === 0) {
      await store.addUntagged(image.manifest);
      say(`Loaded image ID: ${record.config.digest}`);
    }
    images.push({ manifest: record.manifest, config: record.config, names: image.names, record });
  }
  return { images, messages };
}

function familiar(name: string): string {
  return formatFamiliar(parseReference(name));
}

// ─── phase 1: stream every entry into the store ────────────────────────────────────────────────

async function readArchive(store: ImageStore, input: Readable, staging: Staging, signal: AbortSignal | undefined): Promise<ArchiveContents> {
  const contents: ArchiveContents = { files: new Map(), links: new Map(), meta: new Map(), staging };
  let entries = 0;
  try {
    for await (const entry of tarEntries(decompressLayer(input))) {
      entries++;
      signal?.throwIfAborted();
      await readOne(store, entry, contents);
    }
  } catch (error) {
    input.destroy(); // stop reading (and close a file) now; the tar parser has already let go
    // Our own verdicts, a cancel, and system errors (ENOSPC writing the store, ENOENT opening the file) pass as they are.
    if (error instanceof ArchiveError || (error as Error).name === 'AbortError' || (error as NodeJS.ErrnoException).syscall !== undefined) throw error;
    const message = (error as Error).message;
    const fromDecoder = (error as NodeJS.ErrnoException).code?.startsWith('Z_') === true || (error as NodeJS.ErrnoException).code?.startsWith('ERR_ZSTD') === true;
    // Not even one tar header could be read: this is no tar (an 8-byte file is not a "truncated archive").
    if (entries === 0 && !fromDecoder) {
      const why = /unexpected end/i.test(message) ? 'it ends before its first tar header (512 bytes) is complete' : /invalid tar header/i.test(message) ? 'its first 512 bytes are not a tar header' : message;
      throw new ArchiveError(`not a tar archive (nor a gzip- or zstd-compressed one): ${why}; load reads what skiff save, docker save or skopeo copy write`, { cause: error });
    }
    if (/unexpected end of (data|file)/i.test(message)) throw new ArchiveError(`the archive is truncated (${message.toLowerCase()})`, { cause: error });
    throw new ArchiveError(`cannot read the archive: ${message}`, { cause: error });
  }
  return contents;
}

/** `./a//b` → `a/b`; a leading `/` is dropped; `..` is refused outright. */
export function archivePath(name: string): string {
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw new ArchiveError(`refusing a hostile archive: entry ${JSON.stringify(name)} has a ".." component`);
  return parts.join('/');
}

async function readOne(store: ImageStore, entry: TarEntry, contents: ArchiveContents): Promise<void> {
  const { header } = entry;
  const path = archivePath(header.name);
  switch (header.type) {
    case 'symlink': {
      const target = header.linkname ?? '';
      // A symlink's target is relative to its own directory; an absolute one to the archive root.
      contents.links.set(path, target.startsWith('/') ? target : posix.join(posix.dirname(path), target));
      return drainEntry(entry);
    }
    case 'link':
      contents.links.set(path, header.linkname ?? '');
      return drainEntry(entry);
    case 'file':
    case 'contiguous-file':
      break;
    default:
      return drainEntry(entry);
  }
  if (METADATA_FILES.has(path)) {
    contents.meta.set(path, await readEntry(entry, MAX_MANIFEST_BYTES, path).catch((error: Error) => {
      throw new ArchiveError(`${path} in the archive: ${error.message}`);
    }));
    return;
  }
  if (LEGACY_FILES.test(path)) return drainEntry(entry);
  const blob = BLOB_FILE.exec(path);
  const named = blob ? `${blob[1]}:${blob[2]}` : undefined;
  contents.files.set(path, await contents.staging.stage(entry, path, named !== undefined && isDigest(named) ? named : undefined));
}

/**
 * The archive's files, written to the store's ingest area as they stream past but committed as
 * blobs only when `reach` is asked for them (by a manifest, a config or a layer the archive's
 * metadata leads to). `discard` drops the rest. A file named `blobs/<alg>/<hex>` is staged under
 * that digest and verified when committed; any other under the sha256 it hashes to.
 */
class Staging {
  private readonly store: ImageStore;
  private readonly staged = new Map<Digest, { ingest: Ingest; size: number; path: string }>();

  constructor(store: ImageStore) {
    this.store = store;
  }

  async stage(entry: TarEntry, path: string, named: Digest | undefined): Promise<{ digest: Digest; size: number }> {
    const size = entry.header.size ?? 0;
    if (named !== undefined && (this.staged.has(named) || (await this.store.blobs.stat(named)) === size)) {
      await drainEntry(entry); // already here; the archive's copy is not needed
      return { digest: named, size };
    }
    // The PID lets ImageStore.open tidy what a killed load left (see sweepDeadStaging).
    const ingest = await this.store.blobs.ingest(`${STAGING_PREFIX}${process.pid}-${randomUUID()}`);
    try {
      const hash = named === undefined ? createDigester('sha256') : undefined;
      let written = 0;
      const source = Readable.from(
        (async function* () {
          for await (const chunk of entryChunks(entry)) {
            hash?.update(chunk);
            written += chunk.length;
            yield chunk;
          }
        })(),
        { objectMode: false },
      );
      await ingest.append(source, { offset: 0 });
      const digest: Digest = named ?? `sha256:${hash!.digest('hex')}`;
      if (this.staged.has(digest) || (await this.store.blobs.stat(digest)) === written) {
        await ingest.abort(); // the same content twice (a docker-archive layer also under blobs/)
      } else {
        this.staged.set(digest, { ingest, size: written, path });
      }
      return { digest, size: written };
    } catch (error) {
      await ingest.abort();
      throw error;
    }
  }

  /** Whether the blob is in the archive (staged) or already in the store. */
  async has(digest: Digest): Promise<boolean> {
    return this.staged.has(digest) || (await this.store.blobs.stat(digest)) !== undefined;
  }

  /**
   * The size of the blob, committing it first if it is staged; undefined when neither the archive
   * nor the store has it. A staged file whose size is not `expectedSize` is not committed.
   */
  async reach(digest: Digest, expectedSize?: number): Promise<number | undefined> {
    const staged = this.staged.get(digest);
    if (!staged) return this.store.blobs.stat(digest);
    if (expectedSize !== undefined && staged.size !== expectedSize) return staged.size;
    this.staged.delete(digest);
    try {
      await staged.ingest.commit(digest, staged.size);
    } catch (error) {
      if (error instanceof DigestMismatchError) {
        throw new ArchiveError(`archive entry ${staged.path} is corrupt: its content hashes to ${error.actual}, not the digest its name promises`, { cause: error });
      }
      throw error;
    }
    return staged.size;
  }

  async discard(): Promise<void> {
    for (const { ingest } of this.staged.values()) await ingest.abort().catch(() => undefined);
    this.staged.clear();
  }
}

// ─── phase 2: decide which images the archive holds ────────────────────────────────────────────

async function planImages(store: ImageStore, contents: ArchiveContents): Promise<PlannedImage[]> {
  const index = contents.meta.get('index.json');
  const dockerManifest = contents.meta.get('manifest.json');
  if (index) return fromIndex(store, contents, parseJson(index, 'index.json'), dockerManifest && parseJson(dockerManifest, 'manifest.json'));
  if (dockerManifest) return fromDockerManifest(store, contents, parseJson(dockerManifest, 'manifest.json'));
  throw new ArchiveError('not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker save)');
}

function parseJson(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (error) {
    throw new ArchiveError(`${what} in the archive is not valid JSON: ${(error as Error).message}`);
  }
}

function isRecordValue(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Merges plans that end at the same manifest (one index entry per tag). */
function addPlan(plans: PlannedImage[], plan: PlannedImage): void {
  const existing = plans.find((p) => p.manifest.digest === plan.manifest.digest);
  if (!existing) plans.push(plan);
  else for (const name of plan.names) if (!existing.names.includes(name)) existing.names.push(name);
}

async function fromIndex(store: ImageStore, contents: ArchiveContents, index: unknown, dockerManifest: unknown): Promise<PlannedImage[]> {
  if (!isRecordValue(index) || !Array.isArray(index.manifests)) throw new ArchiveError('index.json is not an OCI image index: it has no "manifests" array');
  // A docker-save archive also names its images in manifest.json; use that for an entry index.json leaves unnamed.
  const repoTagsByConfig = new Map<Digest, string[]>();
  if (Array.isArray(dockerManifest)) {
    for (const item of dockerManifest) {
      if (!isRecordValue(item) || typeof item.Config !== 'string' || !Array.isArray(item.RepoTags)) continue;
      const config = resolveFile(contents, item.Config);
      if (config) repoTagsByConfig.set(config.digest, item.RepoTags.filter((t): t is string => typeof t === 'string'));
    }
  }
  const plans: PlannedImage[] = [];
  for (const [i, raw] of index.manifests.entries()) {
    const where = `index.json manifests[${i}]`;
    let descriptor: Descriptor;
    try {
      descriptor = validateDescriptor(raw, where);
    } catch (error) {
      throw new ArchiveError((error as Error).message);
    }
    const { descriptor: manifest, parsed } = await resolveImageManifest(store, contents, descriptor, where, 0);
    let names = namesFromAnnotations(descriptor.annotations, where);
    if (names.length === 0) names = (repoTagsByConfig.get(parsed.config!.digest) ?? []).map((tag) => normalizeName(tag, `manifest.json RepoTags of ${where}`));
    addPlan(plans, { manifest, names, where });
  }
  return plans;
}

/**
 * containerd's name annotation wins. `ref.name` is used only when it is a whole reference
 * (`alpine:3.20`, `ghcr.io/o/app`); a bare tag (`3.20`, `latest`) names no repository.
 */
function namesFromAnnotations(annotations: Record<string, string> | undefined, where: string): string[] {
  const full = annotations?.[CONTAINERD_NAME];
  if (full) return [normalizeName(full, `${where} ${CONTAINERD_NAME}`)];
  const refName = annotations?.[REF_NAME];
  if (refName && (refName.includes(':') || refName.includes('/'))) {
    try {
      return [normalizeName(refName, where)];
    } catch {
      return []; // OCI allows any string here; one that is not a reference just names nothing
    }
  }
  return [];
}

/** `alpine:3.20` → `docker.io/library/alpine:3.20`; a digest-only reference cannot be a tag. */
function normalizeName(text: string, where: string): string {
  let ref;
  try {
    ref = parseReference(text);
  } catch (error) {
    throw new ArchiveError(`${where}: ${(error as Error).message}`);
  }
  if (ref.tag === undefined) throw new ArchiveError(`${where}: ${JSON.stringify(text)} has a digest but no tag, so it cannot name a loaded image`);
  return formatReference({ domain: ref.domain, path: ref.path, tag: ref.tag });
}

async function requireBlob(contents: ArchiveContents, descriptor: Descriptor, what: string): Promise<void> {
  const size = await contents.staging.reach(descriptor.digest, descriptor.size);
  if (size === undefined) throw new ArchiveError(`${what}: blob ${descriptor.digest} is not in the archive`);
  if (size !== descriptor.size) throw new ArchiveError(`${what}: blob ${descriptor.digest} is ${size} bytes, but the descriptor says ${descriptor.size}`);
}

/** Follows an index down to one image manifest: the host's platform if present, else the first present. */
async function resolveImageManifest(
  store: ImageStore,
  contents: ArchiveContents,
  descriptor: Descriptor,
  where: string,
  depth: number,
): Promise<{ descriptor: Descriptor; parsed: ParsedManifest }> {
  await requireBlob(contents, descriptor, where);
  let parsed: ParsedManifest;
  try {
    parsed = parseManifest(await store.blobs.readSmall(descriptor.digest, MAX_MANIFEST_BYTES));
  } catch (error) {
    if (error instanceof InvalidManifestError) throw new ArchiveError(`${where}: ${error.message}`);
    throw error;
  }
  if (parsed.kind === 'image') {
    await requireBlob(contents, parsed.config!, `${where} config`);
    for (const [i, layer] of parsed.layers.entries()) await requireBlob(contents, layer, `${where} layer ${i}`);
    return { descriptor: { mediaType: parsed.mediaType, digest: descriptor.digest, size: descriptor.size }, parsed };
  }
  if (depth >= 2) throw new ArchiveError(`${where}: indexes nested too deeply`);
  const present: Descriptor[] = [];
  for (const child of parsed.manifests) {
    if (!IMAGE_MANIFEST_TYPES.includes(child.mediaType) && !child.mediaType.includes('index') && !child.mediaType.includes('list')) continue;
    if (await contents.staging.has(child.digest)) present.push(child);
  }
  const chosen = bestMatch(hostPlatform(), present) ?? present[0];
  if (!chosen) throw new ArchiveError(`${where}: none of the ${parsed.manifests.length} manifests of index ${descriptor.digest} is in the archive`);
  return resolveImageManifest(store, contents, chosen, `${where} → ${chosen.digest}`, depth + 1);
}

/** Finds the file an archive path means, following symlinks and hard links between entries. */
function resolveFile(contents: ArchiveContents, name: string): { digest: Digest; size: number } | undefined {
  let path: string;
  try {
    path = archivePath(name);
  } catch {
    return undefined;
  }
  for (let hops = 0; hops < 40; hops++) {
    const file = contents.files.get(path);
    if (file) return file;
    const target = contents.links.get(path);
    if (target === undefined) return undefined;
    try {
      path = archivePath(posix.normalize(`/${target}`));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

async function fromDockerManifest(store: ImageStore, contents: ArchiveContents, items: unknown): Promise<PlannedImage[]> {
  if (!Array.isArray(items)) throw new ArchiveError('manifest.json is not a list of images ([{"Config", "RepoTags", "Layers"}])');
  const plans: PlannedImage[] = [];
  for (const [i, item] of items.entries()) {
    const where = `manifest.json[${i}]`;
    if (!isRecordValue(item) || typeof item.Config !== 'string' || !Array.isArray(item.Layers) || !item.Layers.every((l) => typeof l === 'string')) {
      throw new ArchiveError(`${where} needs "Config" (a path) and "Layers" (a list of paths)`);
    }
    if (item.RepoTags !== undefined && item.RepoTags !== null && (!Array.isArray(item.RepoTags) || !item.RepoTags.every((t) => typeof t === 'string'))) {
      throw new ArchiveError(`${where}.RepoTags must be a list of names`);
    }
    const config = resolveFile(contents, item.Config);
    if (!config) throw new ArchiveError(`${where} refers to config ${JSON.stringify(item.Config)}, which is not in the archive`);
    await contents.staging.reach(config.digest);
    const layers: Descriptor[] = [];
    for (const layerPath of item.Layers as string[]) {
      const layer = resolveFile(contents, layerPath);
      if (!layer) throw new ArchiveError(`${where} refers to layer ${JSON.stringify(layerPath)}, which is not in the archive`);
      await contents.staging.reach(layer.digest);
      layers.push({ mediaType: await layerMediaType(store, layer.digest), digest: layer.digest, size: layer.size });
    }
    const manifestJson: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifestJson));
    const put = await store.blobs.put(Readable.from([bytes]), digestOf(bytes), bytes.length);
    const names = ((item.RepoTags as string[] | null | undefined) ?? []).map((tag) => normalizeName(tag, `${where}.RepoTags`));
    addPlan(plans, { manifest: { mediaType: MediaTypes.ociManifest, digest: put.digest, size: put.size }, names, where });
  }
  return plans;
}

/** The OCI layer type a stored layer really is, by its first bytes. */
async function layerMediaType(store: ImageStore, digest: Digest): Promise<string> {
  const compression = await storedCompression(store, digest);
  return compression === 'gzip' ? MediaTypes.ociLayerGzip : compression === 'zstd' ? MediaTypes.ociLayerZstd : MediaTypes.ociLayer;
}

// ─── phase 3: check every image before recording any ───────────────────────────────────────────

/** Measures DiffIDs (an uncompressed sha256 layer is its own DiffID) and checks them against the config. */
async function checkImage(store: ImageStore, image: PlannedImage): Promise<Map<Digest, { diffId: Digest; size: number }>> {
  const manifest = await readJsonBlob<ImageManifest>(store, image.manifest.digest);
  let config: ImageConfig;
  try {
    config = await readJsonBlob<ImageConfig>(store, manifest.config.digest);
  } catch (error) {
    throw new ArchiveError(`${image.where}: the image config ${manifest.config.digest} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isRecordValue(config)) throw new ArchiveError(`${image.where}: the image config ${manifest.config.digest} is not a JSON object`);
  const measured = new Map<Digest, { diffId: Digest; size: number }>();
  const diffIds: Digest[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    let entry = measured.get(layer.digest);
    if (!entry) {
      entry = await diffIdOf(store, layer).catch((error: Error) => {
        throw new ArchiveError(`${image.where} layer ${i} (${layer.digest}) cannot be decompressed: ${error.message}`);
      });
    }
    measured.set(layer.digest, entry);
    diffIds.push(entry.diffId);
  }
  try {
    checkDiffIds(config, diffIds);
  } catch (error) {
    if (error instanceof DiffIdMismatchError) throw new ArchiveError(`${image.where}${image.names[0] ? ` (${familiar(image.names[0])})` : ''}: ${error.message}`, { cause: error });
    throw error;
  }
  return measured;
}
