import type { RegistryClient } from '../client/registry-client.ts';
import { digestOf, type Digest } from '../digest/digest.ts';
import type { Limiter } from '../graph/limiter.ts';
import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.ts';
import { MAX_MANIFEST_BYTES, parseManifest, type ParsedManifest } from '../oci/manifest.ts';
import type { BlobMover, BlobEnd } from './blob-mover.ts';
import { describeFilter, filterIndex, isFilterEmpty, platformMatches, type PlatformFilter } from './platform-filter.ts';
import type { SyncClients } from './sync-clients.ts';
import type { SyncTask } from './sync-task.ts';

export interface CopyOptions {
  filter: PlatformFilter;
  /** Push the manifest even when the destination already has the same digest. */
  force: boolean;
  /** Copy referrers (signatures, SBOMs, attestations) of every manifest copied. */
  referrers: boolean;
  signal?: AbortSignal;
}

export interface ImageResult {
  outcome: 'synced' | 'skipped';
  digest: Digest;
  /** Why it was skipped, or what changed (a platform-filtered index has a new digest). */
  note?: string;
  referrers?: number;
}

/** What a dry run would move for one image. */
export interface ImagePlan {
  upToDate: boolean;
  digest: Digest;
  note?: string;
  /** Blobs the destination repository lacks, with their sizes. */
  missing: Descriptor[];
}

interface Ends {
  source: BlobEnd & { client: RegistryClient };
  destination: BlobEnd & { client: RegistryClient };
}

/**
 * An image's config and layers, less the layers that must not be redistributed (Windows base
 * layers): those stay where their URLs point.
 */
function distributableBlobs(manifest: ParsedManifest): Descriptor[] {
  return [manifest.config!, ...manifest.layers].filter((blob) => !/\.(foreign|nondistributable)\./.test(blob.mediaType));
}

const UP_TO_DATE = 'up to date';

/** The referrers fallback tag of the OCI distribution spec: `sha256-<hex>`. */
function referrersTag(digest: Digest): string {
  return digest.replace(':', '-');
}

/**
 * Copies one image between registries, walking its graph: index children before the index,
 * blobs before their manifest, so the destination never holds a manifest whose content is
 * missing, even if the run is killed midway. Manifests are copied byte for byte.
 */
export class ImageCopier {
  private readonly clients: SyncClients;
  private readonly mover: BlobMover;
  private readonly requests: Limiter;
  private readonly options: CopyOptions;

  constructor(clients: SyncClients, mover: BlobMover, requests: Limiter, options: CopyOptions) {
    this.clients = clients;
    this.mover = mover;
    this.requests = requests;
    this.options = options;
  }

  private request<T>(call: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    return this.requests.run(() => call(this.options.signal));
  }

  private ends(task: SyncTask): Ends {
    return {
      source: { client: this.clients.get(task.source.registry, task.source.repository), repository: task.source.repository },
      destination: { client: this.clients.get(task.destination.registry, task.destination.repository), repository: task.destination.repository },
    };
  }

  /**
   * The source manifest as it should land (platform-filtered when asked) and the destination's
   * current digest, read in parallel: an up-to-date image costs one GET and one HEAD.
   */
  private async resolve(task: SyncTask, ends: Ends) {
    const [fetched, existing] = await Promise.all([
      this.request((signal) => ends.source.client.getManifest(task.source.repository, task.source.reference, signal)),
      this.request((signal) => ends.destination.client.headManifest(task.destination.repository, task.destination.reference, signal)),
    ]);
    const manifest = parseManifest(fetched.body, fetched.descriptor.mediaType);
    let body = fetched.body;
    let note: string | undefined;
    let excluded = false;
    if (!isFilterEmpty(this.options.filter)) {
      if (manifest.kind === 'index') {
        const filtered = filterIndex(body, manifest.value as ImageIndex, this.options.filter);
        excluded = filtered.kept.length === 0;
        if (filtered.changed && !excluded) {
          body = filtered.body;
          note = `index filtered to ${describeFilter(this.options.filter)}: ${filtered.kept.length} of ${manifest.manifests.length} manifests; digest ${fetched.descriptor.digest} became ${digestOf(body)}`;
        }
      } else {
        excluded = !platformMatches(this.options.filter, await this.imagePlatform(ends, manifest));
      }
    }
    const digest = digestOf(body);
    const parsed = body === fetched.body ? manifest : parseManifest(body, manifest.mediaType);
    return { body, parsed, digest, existing, note, excluded };
  }

  /** A single image's platform, from its config (only read when a platform filter is set). */
  private async imagePlatform(ends: Ends, manifest: ParsedManifest): Promise<Platform | undefined> {
    const config = manifest.config!;
    if (config.size > MAX_MANIFEST_BYTES) return undefined;
    const chunks: Buffer[] = [];
    await this.request(async (signal) => {
      for await (const chunk of ends.source.client.openBlob(ends.source.repository, config, signal)) chunks.push(chunk as Buffer);
    });
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { os?: string; architecture?: string; variant?: string; 'os.version'?: string };
    if (typeof parsed.os !== 'string' || typeof parsed.architecture !== 'string') return undefined;
    return { os: parsed.os, architecture: parsed.architecture, ...(parsed.variant ? { variant: parsed.variant } : {}), ...(parsed['os.version'] ? { 'os.version': parsed['os.version'] } : {}) };
  }

  async copy(task: SyncTask): Promise<ImageResult> {
    const ends = this.ends(task);
    const { body, parsed, digest, existing, note, excluded } = await this.resolve(task, ends);
    if (excluded) return { outcome: 'skipped', digest, note: `no manifest matches the platform filter (${describeFilter(this.options.filter)})` };
    const upToDate = existing?.digest === digest && !this.options.force;
    if (!upToDate) {
      await this.copyChildren(ends, parsed);
      await this.request((signal) => ends.destination.client.pushManifest(task.destination.repository, task.destination.reference, body, parsed.mediaType, signal));
    }
    const referrers = this.options.referrers ? await this.copyReferrers(ends, parsed.kind === 'index' ? [digest, ...parsed.manifests.map((m) => m.digest)] : [digest]) : 0;
    const result: ImageResult = { outcome: upToDate ? 'skipped' : 'synced', digest };
    // A lone note is the constant itself: the report keeps one per image, and 10,000 copies of 'up to date' add up.
    const notes = [upToDate ? UP_TO_DATE : undefined, note].filter((n) => n !== undefined);
    if (notes.length) result.note = notes.length === 1 ? notes[0] : notes.join('; ');
    if (this.options.referrers) result.referrers = referrers;
    return result;
  }

  /** Index children (each a manifest of its own) or an image's blobs, before the parent. */
  private async copyChildren(ends: Ends, manifest: ParsedManifest): Promise<void> {
    if (manifest.kind === 'index') {
      await Promise.all(manifest.manifests.map((child) => this.copyManifestByDigest(ends, child)));
      return;
    }
    await Promise.all(distributableBlobs(manifest).map((blob) => this.mover.ensure(ends.source, ends.destination, blob)));
  }

  /** A child manifest (or referrer), skipped when the destination has it, else children first. */
  private async copyManifestByDigest(ends: Ends, descriptor: Descriptor): Promise<void> {
    const fetched = await this.fetchMissing(ends, descriptor, this.options.force);
    if (!fetched) return;
    const { body, manifest } = fetched;
    await this.copyChildren(ends, manifest);
    const pushed = await this.request((signal) => ends.destination.client.pushManifest(ends.destination.repository, descriptor.digest, body, manifest.mediaType, signal));
    // A registry without the referrers API needs the fallback tag kept up to date by the client.
    if (manifest.subject && !pushed.subjectIndexed) await this.addToFallbackTag(ends, manifest.subject.digest, { mediaType: manifest.mediaType, digest: descriptor.digest, size: body.length, ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}), ...(manifest.annotations ? { annotations: manifest.annotations } : {}) });
  }

  /** A child manifest from the source, or undefined when the destination has it already (and `force` is off). */
  private async fetchMissing(ends: Ends, descriptor: Descriptor, force: boolean): Promise<{ body: Buffer; manifest: ParsedManifest } | undefined> {
    const present = await this.request((signal) => ends.destination.client.headManifest(ends.destination.repository, descriptor.digest, signal));
    if (present && !force) return undefined;
    const fetched = await this.request((signal) => ends.source.client.getManifest(ends.source.repository, descriptor.digest, signal));
    return { body: fetched.body, manifest: parseManifest(fetched.body, fetched.descriptor.mediaType || descriptor.mediaType) };
  }

  /** Copies the referrers of each digest; returns how many there were. */
  private async copyReferrers(ends: Ends, digests: Digest[]): Promise<number> {
    let count = 0;
    for (const subject of digests) {
      const found = await this.listReferrers(ends, subject);
      count += found.length;
      await Promise.all(found.map((referrer) => this.copyManifestByDigest(ends, referrer)));
      if (found.length) count += await this.copyReferrers(ends, found.map((r) => r.digest)); // signatures of SBOMs
    }
    return count;
  }

  /** The referrers API, or the `sha256-<hex>` fallback tag for registries without it. */
  private async listReferrers(ends: Ends, subject: Digest): Promise<Descriptor[]> {
    try {
      return await this.request((signal) => ends.source.client.referrers(ends.source.repository, subject, undefined, signal));
    } catch (error) {
      if ((error as { status?: number }).status !== 404) throw error;
    }
    const tag = referrersTag(subject);
    const present = await this.request((signal) => ends.source.client.headManifest(ends.source.repository, tag, signal));
    if (!present) return [];
    const fallback = await this.request((signal) => ends.source.client.getManifest(ends.source.repository, tag, signal));
    return parseManifest(fallback.body, fallback.descriptor.mediaType).manifests;
  }

  private async addToFallbackTag(ends: Ends, subject: Digest, entry: Descriptor): Promise<void> {
    const { client, repository } = ends.destination;
    const tag = referrersTag(subject);
    const present = await this.request((signal) => client.headManifest(repository, tag, signal));
    const index: ImageIndex = present
      ? (parseManifest((await this.request((signal) => client.getManifest(repository, tag, signal))).body).value as ImageIndex)
      : { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] };
    if (index.manifests.some((m) => m.digest === entry.digest)) return;
    index.manifests = [...index.manifests, entry];
    await this.request((signal) => client.pushManifest(repository, tag, Buffer.from(JSON.stringify(index)), 'application/vnd.oci.image.index.v1+json', signal));
  }

  /** What a copy would move, without moving it. Blobs are HEADed; nothing is written. */
  async plan(task: SyncTask): Promise<ImagePlan> {
    const ends = this.ends(task);
    const { parsed, digest, existing, note, excluded } = await this.resolve(task, ends);
    if (excluded) return { upToDate: true, digest, note: `no manifest matches the platform filter (${describeFilter(this.options.filter)})`, missing: [] };
    if (existing?.digest === digest && !this.options.force) return { upToDate: true, digest, ...(note ? { note } : {}), missing: [] };
    const missing: Descriptor[] = [];
    const visit = async (manifest: ParsedManifest): Promise<void> => {
      if (manifest.kind === 'index') {
        for (const child of manifest.manifests) {
          const fetched = await this.fetchMissing(ends, child, false);
          if (fetched) await visit(fetched.manifest);
        }
        return;
      }
      const blobs = distributableBlobs(manifest);
      const sizes = await Promise.all(blobs.map((blob) => this.request((signal) => ends.destination.client.headBlob(ends.destination.repository, blob.digest, signal))));
      blobs.forEach((blob, i) => sizes[i] === undefined && missing.push(blob));
    };
    await visit(parsed);
    return { upToDate: false, digest, ...(note ? { note } : {}), missing };
  }
}
