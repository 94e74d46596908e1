import { randomUUID } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../content/fs-blob-store.ts';
import { syncFile } from '../content/sync-file.ts';
import { isDigest, type Digest } from '../digest/digest.ts';
import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.ts';
import { MediaTypes } from '../oci/media-types.ts';
import { isAlive, sweepStaleLocks, withFileLock } from '../content/file-lock.ts';

/** OCI's annotation for a reference name in index.json; skopeo's `oci:<root>:<ref>` matches on it. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** containerd's annotation for the full image name, written alongside. */
export const CONTAINERD_NAME = 'io.containerd.image.name';

/** What `images`, `inspect` and `rmi` need that the OCI layout does not say directly. */
export interface ImageRecord {
  /** The platform-specific image manifest stored in the layout. */
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** Uncompressed layer digests (config.rootfs.diff_ids, verified at pull). */
  diffIds: Digest[];
  /** Sum of the uncompressed layer sizes: docker's SIZE column. */
  unpackedSize: number;
  /** Uncompressed size of each layer, in manifest order (for `history`). */
  layerSizes?: number[];
  /** When a name was last put on the image (docker's Metadata.LastTagTime), ISO 8601. */
  lastTagTime?: string;
  platform: Platform;
  /** The image config's `created`, ISO 8601, when present. */
  created?: string;
  /** `name@digest` of what the registry served (an index digest when pulled through one). */
  repoDigests: string[];
  /** When this store got the image (ms since epoch). */
  storedAt: number;
}

export interface StoredRef {
  /** Full name with tag, e.g. `docker.io/library/alpine:3.20`; undefined for a dangling image. */
  name: string | undefined;
  manifest: Descriptor;
}

/**
 * Ingest files of a `load` in progress: `load-<pid>-<uuid>`, committed only if a manifest of the
 * archive reaches them. Those of a process that is gone (kill -9) are removed by `open`.
 */
export const STAGING_PREFIX = 'load-';

/** Blobs younger than this are never swept: a pull or load running now commits blobs before it records its image. */
const SWEEP_GRACE_MS = 60 * 60 * 1000;

export function defaultStoreRoot(): string {
  if (process.env.SKIFF_ROOT) return process.env.SKIFF_ROOT;
  return join(process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'skiff');
}

/**
 * The local image store: an OCI image layout that other tools read (`oci-layout`,
 * `index.json`, `blobs/<alg>/<hex>`), plus skiff's own bookkeeping under `.skiff/`:
 *   .skiff/ingest/<ref>        partial downloads, resumed by the next pull (even after kill -9);
 *                              load-<pid>-<uuid>: archive files a load has not (yet) committed
 *   .skiff/images/<hex>.json   one ImageRecord per stored image manifest
 *   .skiff/lock                serializes index.json updates across processes
 */
export class ImageStore {
  readonly root: string;
  readonly blobs: FsBlobStore;

  private constructor(root: string) {
    this.root = root;
    this.blobs = new FsBlobStore(root, { fanout: false, ingestDir: join(root, '.skiff', 'ingest') });
  }

  static async open(root: string = defaultStoreRoot()): Promise<ImageStore> {
    const store = new ImageStore(root);
    await store.blobs.init();
    await sweepStaleLocks(store.blobs.ingestDir);
    await sweepDeadStaging(store.blobs.ingestDir);
    await mkdir(join(root, '.skiff', 'images'), { recursive: true });
    await writeIfMissing(join(root, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeIfMissing(join(root, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] }));
    return store;
  }

  private get indexPath(): string {
    return join(this.root, 'index.json');
  }

  private recordPath(digest: Digest): string {
    return join(this.root, '.skiff', 'images', `${digest.replace(':', '-')}.json`);
  }

  /** Runs `work` holding the store lock; every index.json change goes through here. */
  withLock<T>(work: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.root, '.skiff', 'lock'), work);
  }

  async readIndex(): Promise<ImageIndex> {
    return JSON.parse(await readFile(this.indexPath, 'utf8')) as ImageIndex;
  }

  private async writeIndex(index: ImageIndex): Promise<void> {
    await writeAtomic(this.indexPath, `${JSON.stringify(index, null, 2)}\n`);
  }

  async refs(): Promise<StoredRef[]> {
    const index = await this.readIndex();
    return index.manifests.map((entry) => {
      const { annotations, ...manifest } = entry;
      return { name: annotations?.[CONTAINERD_NAME] ?? annotations?.[REF_NAME], manifest };
    });
  }

  /**
   * Points `name` at `manifest` (moving it if it pointed elsewhere). An image left without
   * any name stays in the index unnamed: docker's dangling `<none>` image.
   */
  async tag(name: string, manifest: Descriptor): Promise<void> {
    await this.withLock(async () => {
      const index = await this.readIndex();
      const plain = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
      const previous = index.manifests.find((m) => nameOf(m) === name);
      let entries = index.manifests.filter((m) => nameOf(m) !== name && !(nameOf(m) === undefined && m.digest === manifest.digest));
      entries.push({ ...plain, annotations: { [REF_NAME]: name, [CONTAINERD_NAME]: name } });
      if (previous && previous.digest !== manifest.digest && !entries.some((m) => m.digest === previous.digest)) {
        entries.push({ mediaType: previous.mediaType, digest: previous.digest, size: previous.size });
      }
      entries = entries.sort((a, b) => (nameOf(a) ?? '').localeCompare(nameOf(b) ?? ''));
      await this.writeIndex({ ...index, manifests: entries });
    });
  }

  /** Adds an image without a name (e.g. `load` of an untagged archive). */
  async addUntagged(manifest: Descriptor): Promise<void> {
    await this.withLock(async () => {
      const index = await this.readIndex();
      if (index.manifests.some((m) => m.digest === manifest.digest)) return;
      index.manifests.push({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size });
      await this.writeIndex(index);
    });
  }

  /**
   * Removes the name. Returns the manifest it pointed at and whether any name still refers to it;
   * with `keepDangling: false` an image left nameless leaves the index too.
   */
  async untag(name: string, options: { keepDangling?: boolean } = {}): Promise<{ manifest: Descriptor; stillReferenced: boolean } | undefined> {
    return this.withLock(async () => {
      const index = await this.readIndex();
      const entry = index.manifests.find((m) => nameOf(m) === name);
      if (!entry) return undefined;
      let entries = index.manifests.filter((m) => m !== entry);
      const stillReferenced = entries.some((m) => m.digest === entry.digest && nameOf(m) !== undefined);
      if (!stillReferenced && options.keepDangling) entries.push({ mediaType: entry.mediaType, digest: entry.digest, size: entry.size });
      if (!stillReferenced && !options.keepDangling) entries = entries.filter((m) => m.digest !== entry.digest);
      await this.writeIndex({ ...index, manifests: entries });
      const { annotations: _annotations, ...manifest } = entry;
      return { manifest, stillReferenced };
    });
  }

  async putRecord(record: ImageRecord): Promise<void> {
    await writeAtomic(this.recordPath(record.manifest.digest), JSON.stringify(record, null, 2));
  }

  async getRecord(manifestDigest: Digest): Promise<ImageRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.recordPath(manifestDigest), 'utf8')) as ImageRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async records(): Promise<ImageRecord[]> {
    const dir = join(this.root, '.skiff', 'images');
    const out: ImageRecord[] = [];
    for (const file of await readdir(dir)) {
      if (!file.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(await readFile(join(dir, file), 'utf8')) as ImageRecord);
      } catch {
        // a record being replaced right now; the next listing sees it
      }
    }
    return out;
  }

  /**
   * Deletes an image that no name refers to any more, and every blob that no remaining image
   * uses. Returns the deleted blob digests.
   */
  async removeImage(manifestDigest: Digest): Promise<Digest[]> {
    return this.withLock(async () => {
      const index = await this.readIndex();
      const remaining = index.manifests.filter((m) => m.digest !== manifestDigest);
      if (remaining.length !== index.manifests.length) await this.writeIndex({ ...index, manifests: remaining });
      const record = await this.getRecord(manifestDigest);
      await rm(this.recordPath(manifestDigest), { force: true });
      if (!record) return [];
      const inUse = new Set<string>();
      for (const entry of remaining) {
        const other = await this.getRecord(entry.digest);
        if (!other) continue;
        for (const d of [other.manifest, other.config, ...other.layers]) inUse.add(d.digest);
      }
      const deleted: Digest[] = [];
      for (const d of [record.manifest, record.config, ...record.layers]) {
        if (!inUse.has(d.digest) && (await this.blobs.delete(d.digest))) deleted.push(d.digest);
      }
      return deleted;
    });
  }

  /**
   * Deletes every blob that no stored image reaches: left by a failed pull or load, by an older
   * skiff that stored whole archives, or written into the layout by another tool and untagged since.
   * "Reaches" walks index.json (manifests, configs, layers, nested indexes, for images another tool
   * put here too) and every record. Blobs written in the last `graceMs` (default an hour) stay: a
   * pull or load running now commits its blobs before it records the image that uses them.
   */
  async removeUnreferencedBlobs(options: { graceMs?: number; now?: number } = {}): Promise<{ deleted: Digest[]; reclaimed: number }> {
    const grace = options.graceMs ?? SWEEP_GRACE_MS;
    return this.withLock(async () => {
      const inUse = await this.reachableBlobs();
      const now = options.now ?? Date.now();
      const deleted: Digest[] = [];
      let reclaimed = 0;
      for await (const digest of this.blobs.list()) {
        if (!isDigest(digest) || inUse.has(digest)) continue;
        const info = await stat(this.blobs.blobPath(digest)).catch(() => undefined);
        if (!info?.isFile() || now - info.mtimeMs < grace) continue;
        if (await this.blobs.delete(digest)) {
          deleted.push(digest);
          reclaimed += info.size;
        }
      }
      return { deleted, reclaimed };
    });
  }

  /** Every blob digest an index.json entry or a record leads to. */
  private async reachableBlobs(): Promise<Set<string>> {
    const seen = new Set<string>();
    /** A manifest or an index: marks it and what it lists (configs and layers are only marked). */
    const visit = async (digest: string, depth: number): Promise<void> => {
      if (seen.has(digest)) return;
      seen.add(digest);
      if (depth > 3 || !isDigest(digest)) return;
      let document: { config?: { digest?: unknown }; layers?: { digest?: unknown }[]; manifests?: { digest?: unknown }[] };
      try {
        document = JSON.parse((await this.blobs.readSmall(digest, 4 * 1024 * 1024)).toString('utf8')) as typeof document;
      } catch {
        return; // missing, too big or not JSON: nothing below it
      }
      for (const blob of [document?.config, ...(Array.isArray(document?.layers) ? document.layers : [])]) if (typeof blob?.digest === 'string') seen.add(blob.digest);
      for (const child of Array.isArray(document?.manifests) ? document.manifests : []) if (typeof child?.digest === 'string') await visit(child.digest, depth + 1);
    };
    for (const entry of (await this.readIndex()).manifests) await visit(entry.digest, 0);
    // A record is written before its index entry (pull, load): its blobs are in use already.
    for (const record of await this.records()) for (const d of [record.manifest, record.config, ...record.layers]) seen.add(d.digest);
    return seen;
  }
}

/** Removes `load-<pid>-…` staging files whose process is gone. */
async function sweepDeadStaging(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const match = new RegExp(`^${STAGING_PREFIX}(\\d+)-`).exec(name);
    if (match && !isAlive(Number(match[1]))) await rm(join(dir, name), { force: true });
  }
}

function nameOf(entry: Descriptor): string | undefined {
  return entry.annotations?.[CONTAINERD_NAME] ?? entry.annotations?.[REF_NAME];
}

async function writeIfMissing(path: string, content: string): Promise<void> {
  try {
    await writeFile(path, content, { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** Write to a temp file, fsync, rename: readers see the old file or the new one, never half. */
export async function writeAtomic(path: string, content: string): Promise<void> {
  const temp = `${path}.${randomUUID()}.tmp`;
  await writeFile(temp, content, { flush: true });
  await rename(temp, path);
  await syncFile(join(path, '..'));
}
