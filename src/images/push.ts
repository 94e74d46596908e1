import { pipeline, Readable, Transform } from 'node:stream';
import type { RegistryClient } from '../client/registry-client.ts';
import { shortId, type Digest } from '../digest/digest.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.ts';
import { canonicalName, formatReference, parseReference, type Reference } from '../reference/reference.ts';
import { Limiter } from '../graph/limiter.ts';
import type { ImageStore } from './store.ts';

export type PushStatus = 'Preparing' | 'Waiting' | 'Pushing' | 'Pushed' | 'Layer already exists' | 'Mounted from';

/**
 * What a push reports, in docker's words. Layers only, as docker does: the config goes up too,
 * but is small and not shown. `Pushing` repeats with `current` at most every 100 ms.
 */
export type PushEvent =
  | { type: 'start'; repository: string }
  | { type: 'layer'; id: string; digest: Digest; status: PushStatus; from?: string; current?: number; total?: number }
  | { type: 'done'; tag: string; digest: Digest; size: number };

export interface PushOptions {
  maxConcurrentUploads?: number;
  signal?: AbortSignal;
  onEvent?: (event: PushEvent) => void;
}

/**
 * Pushes images from the local store: blobs the registry has are skipped (HEAD), blobs it has in
 * another repository are mounted, the rest upload in resumable sessions; the manifest goes last.
 */
export class Pusher {
  private readonly store: ImageStore;
  private readonly clientFor: (registry: string) => RegistryClient;

  constructor(store: ImageStore, clientFor: (registry: string) => RegistryClient) {
    this.store = store;
    this.clientFor = clientFor;
  }

  /** `name:tag` pushes that tag; a bare name pushes every local tag of the repository, like docker. */
  async push(referenceText: string, options: PushOptions = {}): Promise<{ tag: string; digest: Digest }[]> {
    const ref = parseReference(referenceText, { defaultTag: false });
    if (ref.digest) throw new Error('push takes a tag, not a digest');
    const repository = canonicalName(ref);
    const refs = (await this.store.refs()).filter((r) => r.name !== undefined && (ref.tag ? r.name === formatReference(ref) : r.name.startsWith(`${repository}:`)));
    if (refs.length === 0) throw new Error(`An image does not exist locally with the tag: ${referenceText}`);
    options.onEvent?.({ type: 'start', repository });
    const pushed: { tag: string; digest: Digest }[] = [];
    for (const local of refs) {
      const tag = local.name!.slice(repository.length + 1);
      pushed.push({ tag, digest: await this.pushOne(ref, tag, local.manifest, options) });
    }
    return pushed;
  }

  private async pushOne(ref: Reference, tag: string, manifest: Descriptor, options: PushOptions): Promise<Digest> {
    const emit = options.onEvent ?? (() => undefined);
    const record = await this.store.getRecord(manifest.digest);
    if (!record) throw new Error(`the local store has no record of ${manifest.digest}; pull or load the image again`);
    const client = this.clientFor(ref.domain);
    // Other repositories on the same registry that this image came from: candidates for a mount.
    const mountSources = record.repoDigests
      .map((repoDigest) => parseReference(repoDigest.split('@')[0]!, { defaultTag: false }))
      .filter((source) => source.domain === ref.domain && source.path !== ref.path)
      .map((source) => source.path);
    const limiter = new Limiter(options.maxConcurrentUploads ?? 5);
    // docker lists the layers top first, all "Preparing" at once; those beyond the concurrency
    // limit then say "Waiting". The same layer twice in one image goes up once.
    const layers = [...new Map(record.layers.map((layer) => [layer.digest, layer])).values()].reverse();
    for (const layer of layers) emit({ type: 'layer', id: shortId(layer.digest), digest: layer.digest, status: 'Preparing' });
    await Promise.all(
      [...layers.map((blob) => ({ blob, shown: true })), { blob: record.config, shown: false }].map(({ blob, shown }) =>
        limiter.run(
          () => this.pushBlob(client, ref, blob, mountSources, shown ? options : { ...options, onEvent: undefined }),
          () => {
            if (shown) emit({ type: 'layer', id: shortId(blob.digest), digest: blob.digest, status: 'Waiting' });
          },
        ),
      ),
    );
    const body = await this.store.blobs.readSmall(manifest.digest, MAX_MANIFEST_BYTES);
    const digest = await client.putManifest(ref.path, tag, body, manifest.mediaType, options.signal);
    const repoDigest = `${canonicalName(ref)}@${digest}`;
    if (!record.repoDigests.includes(repoDigest)) await this.store.putRecord({ ...record, repoDigests: [...record.repoDigests, repoDigest] });
    emit({ type: 'done', tag, digest, size: body.length });
    return digest;
  }

  private async pushBlob(client: RegistryClient, ref: Reference, blob: Descriptor, mountSources: string[], options: PushOptions): Promise<void> {
    const onEvent = options.onEvent;
    const emit = (status: PushStatus, extra: { from?: string; current?: number; total?: number } = {}) =>
      onEvent?.({ type: 'layer', id: shortId(blob.digest), digest: blob.digest, status, ...extra });
    if ((await client.headBlob(ref.path, blob.digest, options.signal)) !== undefined) return emit('Layer already exists');
    for (const from of mountSources) {
      if (await client.mountBlob(ref.path, blob.digest, from, options.signal).catch(() => false)) return emit('Mounted from', { from });
    }
    emit('Pushing', { current: 0, total: blob.size });
    // Each attempt opens the file again; a failed one may leave its reader unconsumed, and a
    // FileHandle left to the garbage collector is a leak (and DEP0137): close them all here.
    const readers: Readable[] = [];
    let lastEmit = Date.now();
    const open = async (offset: number): Promise<Readable> => {
      const file = offset >= blob.size ? Readable.from([]) : await this.store.blobs.reader(blob.digest, { start: offset, end: blob.size - 1 });
      readers.push(file);
      if (!onEvent) return file;
      // Counted as the client reads (docker's progress reader does the same); a resumed attempt
      // starts counting again from where the registry said it stands.
      let sent = offset;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          sent += chunk.length;
          const now = Date.now();
          if (now - lastEmit >= 100) {
            lastEmit = now;
            emit('Pushing', { current: sent, total: blob.size });
          }
          callback(null, chunk);
        },
      });
      // Errors reach the client through `counter`; destroying `counter` closes the file.
      pipeline(file, counter, () => undefined);
      readers.push(counter);
      return counter;
    };
    try {
      await client.pushBlob(ref.path, blob, open, options.signal);
    } finally {
      for (const reader of readers) reader.destroy();
    }
    emit('Pushed');
  }
}
