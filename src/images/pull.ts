import { Readable } from 'node:stream';
import type { PullSource } from '../client/mirrored-client.ts';
import { shortId, type Digest } from '../digest/digest.ts';
import type { Descriptor, Platform } from '../oci/descriptor.ts';
import { parseManifest, type ParsedManifest } from '../oci/manifest.ts';
import { bestMatch, formatPlatform, hostPlatform } from '../oci/platform.ts';
import { canonicalName, formatFamiliar, formatReference, parseReference, type Reference } from '../reference/reference.ts';
import { join } from 'node:path';
import { releaseBulkChunk } from '../client/bulk-get.ts';
import { withFileLock } from '../content/file-lock.ts';
import { Limiter } from '../graph/limiter.ts';
import { DecodeThread } from './decode-thread.ts';
import { LayerDigester, type LayerMeasurement } from './layer-digester.ts';
import { checkDiffIdCount, checkLayerDiffId, diffIdOf, knownLayerMeasurements, readJsonBlob, recordImage, type ImageConfig } from './record.ts';
import type { ImageRecord, ImageStore } from './store.ts';

/**
 * Layers this big are decoded and hashed on a worker thread while they download, so their two
 * sha256 passes (compressed, uncompressed) run on two cores. Below it, starting the thread (tens
 * of milliseconds) would cost more than it saves.
 */
const OFF_THREAD_LAYER_BYTES = 32 * 1024 * 1024;

/** Docker's per-layer progress words, in order. */
export type LayerStatus =
  | 'Pulling fs layer'
  | 'Waiting'
  | 'Downloading'
  | 'Verifying Checksum'
  | 'Download complete'
  | 'Extracting'
  | 'Pull complete'
  | 'Already exists';

export type PullEvent =
  | { type: 'start'; reference: string; repository: string; tag?: string }
  /** `resumedFrom`: on the first `Downloading` of a layer picked up from a partial download, where it picked up. */
  | { type: 'layer'; id: string; digest: Digest; status: LayerStatus; current?: number; total?: number; resumedFrom?: number }
  | { type: 'done'; reference: string; digest: Digest; updated: boolean };

export interface PullOptions {
  platform?: Platform;
  /** Parallel blob downloads for this pull (docker's default is 3). */
  maxConcurrentDownloads?: number;
  signal?: AbortSignal;
  onEvent?: (event: PullEvent) => void;
}

export interface PullResult {
  reference: string;
  /** What the registry resolved the reference to (an index digest when it was an index). */
  digest: Digest;
  record: ImageRecord;
  /** False when the store already had this exact image under this name. */
  updated: boolean;
}

/**
 * Pulls images into a local store. One Puller shares in-flight downloads by digest, so
 * concurrent pulls needing the same layer fetch it once (moby's transfer manager does the same).
 */
export class Puller {
  private readonly store: ImageStore;
  private readonly clientFor: (registry: string) => PullSource;
  private readonly inflight = new Map<Digest, Promise<LayerMeasurement | undefined>>();
  private readonly decodeThread = new DecodeThread();

  constructor(store: ImageStore, clientFor: (registry: string) => PullSource) {
    this.store = store;
    this.clientFor = clientFor;
  }

  /**
   * Stops the decode thread, if one was started. Call once no pull is running: a command that is
   * done should close what it opened rather than wait for the event loop to drain.
   */
  async close(): Promise<void> {
    await this.decodeThread.close();
  }

  async pull(referenceText: string, options: PullOptions = {}): Promise<PullResult> {
    const ref = parseReference(referenceText);
    const name = formatReference(ref);
    const emit = options.onEvent ?? (() => undefined);
    emit({ type: 'start', reference: formatFamiliar(ref), repository: ref.path, ...(ref.digest === undefined && ref.tag ? { tag: ref.tag } : {}) });
    const client = this.clientFor(ref.domain);
    const top = await client.getManifest(ref.path, ref.digest ?? ref.tag!, options.signal);
    const { descriptor, parsed } = await this.resolvePlatform(client, ref, top, options);
    const manifestBody = descriptor.digest === top.descriptor.digest ? top.body : (await client.getManifest(ref.path, descriptor.digest, options.signal)).body;

    const limiter = new Limiter(options.maxConcurrentDownloads ?? 3);
    const config = parsed.config!;
    // What is stored already, asked for all at once: the "Already exists" lines then come in the
    // manifest's order (as docker prints them), not in the order the file system answered.
    const blobs = [config, ...parsed.layers];
    const storedSizes = await Promise.all(blobs.map((blob) => this.store.blobs.stat(blob.digest)));
    const stored = new Map(blobs.map((blob, i) => [blob.digest, storedSizes[i]]));
    // The decode thread takes a while to start: start it now if a big layer is coming.
    if (parsed.layers.some((layer) => layer.size >= OFF_THREAD_LAYER_BYTES && stored.get(layer.digest) !== layer.size)) this.decodeThread.warm();
    // Layers already stored were measured when they arrived; an up-to-date pull decompresses nothing.
    const known = await knownLayerMeasurements(this.store);
    const uncompressed = new Map<Digest, LayerMeasurement>();
    // One failure stops the other downloads, and pull() returns only once none is left running.
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    // A layer that was already there says "Already exists" and nothing more, as in docker.
    const present = new Set<Digest>();
    const onEvent = (event: PullEvent) => {
      if (event.type === 'layer' && event.status === 'Already exists') present.add(event.digest);
      emit(event);
    };
    const fetchOptions = { ...options, signal, onEvent };
    const stopOnFailure = <T>(work: Promise<T>) =>
      work.catch((error: unknown) => {
        stop.abort(error);
        throw error;
      });
    // The config goes first (it is first in the limiter's queue, and small), so each layer's DiffID
    // is checked as soon as that layer is in, and a config that cannot match stops the downloads.
    const configReady = stopOnFailure(
      this.fetchBlob(client, ref, config, limiter, fetchOptions, false, known, stored.get(config.digest)).then(async () => {
        const json = await readJsonBlob<ImageConfig>(this.store, config.digest);
        checkDiffIdCount(json, parsed.layers.length);
        return json;
      }),
    );
    const outcomes = await Promise.allSettled([
      configReady,
      ...parsed.layers.map((layer, i) =>
        stopOnFailure(
          (async () => {
            const measured = (await this.fetchBlob(client, ref, layer, limiter, fetchOptions, true, known, stored.get(layer.digest)))!;
            checkLayerDiffId(await configReady, i, measured.diffId);
            uncompressed.set(layer.digest, measured);
          })(),
        ),
      ),
    ]);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !(o.reason instanceof Error && o.reason.name === 'AbortError'));
    const firstFailure = failed ?? outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (firstFailure) throw firstFailure.reason;
    await this.store.blobs.put(Readable.from([manifestBody]), descriptor.digest, manifestBody.length);
    const repoDigest = `${canonicalName(ref)}@${top.descriptor.digest}`;
    const record = await recordImage(this.store, { ...descriptor, size: manifestBody.length }, { repoDigests: [repoDigest], uncompressed });
    for (const layer of parsed.layers) {
      if (!present.has(layer.digest)) emit({ type: 'layer', id: shortId(layer.digest), digest: layer.digest, status: 'Pull complete' });
    }

    let updated: boolean;
    if (ref.tag !== undefined && ref.digest === undefined) {
      const current = (await this.store.refs()).find((r) => r.name === name);
      updated = current?.manifest.digest !== descriptor.digest;
      if (updated) await this.store.tag(name, { ...descriptor, size: manifestBody.length });
    } else {
      const known = (await this.store.refs()).some((r) => r.manifest.digest === descriptor.digest);
      updated = !known;
      if (!known) await this.store.addUntagged({ ...descriptor, size: manifestBody.length });
    }
    emit({ type: 'done', reference: formatFamiliar(ref), digest: top.descriptor.digest, updated });
    return { reference: formatFamiliar(ref), digest: top.descriptor.digest, record, updated };
  }

  /** Every tag of a repository (`--all-tags`), one after another. */
  async pullAllTags(repositoryText: string, options: PullOptions = {}): Promise<PullResult[]> {
    const ref = parseReference(repositoryText, { defaultTag: false });
    if (ref.tag !== undefined || ref.digest !== undefined) throw new Error('tag can not be used with --all-tags');
    const tags = await this.clientFor(ref.domain).listTags(ref.path, options.signal);
    const results: PullResult[] = [];
    for (const tag of tags) results.push(await this.pull(`${canonicalName(ref)}:${tag}`, options));
    return results;
  }

  private async resolvePlatform(
    client: PullSource,
    ref: Reference,
    top: { descriptor: Descriptor; body: Buffer },
    options: PullOptions,
  ): Promise<{ descriptor: Descriptor; parsed: ParsedManifest }> {
    const parsed = parseManifest(top.body, top.descriptor.mediaType);
    if (parsed.kind === 'image') return { descriptor: { ...top.descriptor, mediaType: parsed.mediaType }, parsed };
    const wanted = options.platform ?? hostPlatform();
    const choice = bestMatch(wanted, parsed.manifests);
    if (!choice) {
      const offered = parsed.manifests.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ');
      throw new Error(`no matching manifest for ${formatPlatform(wanted)} in the manifest list entries of ${formatFamiliar(ref)} (it has: ${offered})`);
    }
    const child = await client.getManifest(ref.path, choice.digest, options.signal);
    const childParsed = parseManifest(child.body, child.descriptor.mediaType || choice.mediaType);
    if (childParsed.kind !== 'image') throw new Error(`${formatFamiliar(ref)}: nested indexes are not supported for pull`);
    return { descriptor: { mediaType: childParsed.mediaType, digest: choice.digest, size: child.body.length }, parsed: childParsed };
  }

  /**
   * Makes sure one blob is in the store: skip when present, share an in-flight download,
   * else download into a resumable ingest (kept across failures and kill -9) and commit verified.
   * For layers, also measures the DiffID and uncompressed size.
   */
  private async fetchBlob(
    client: PullSource,
    ref: Reference,
    blob: Descriptor,
    limiter: Limiter,
    options: PullOptions,
    isLayer: boolean,
    known: Map<Digest, LayerMeasurement>,
    /** The blob's size in the store when the pull began (undefined: absent). */
    storedSize: number | undefined,
  ): Promise<LayerMeasurement | undefined> {
    const emit = options.onEvent ?? (() => undefined);
    const measureStored = () => (isLayer ? (known.get(blob.digest) ?? diffIdOf(this.store, blob)) : undefined);
    const id = shortId(blob.digest);
    const layerEvent = (status: LayerStatus, extra: { current?: number; total?: number; resumedFrom?: number } = {}) => {
      if (isLayer) emit({ type: 'layer', id, digest: blob.digest, status, ...extra });
    };
    if (storedSize === blob.size) {
      layerEvent('Already exists');
      return measureStored();
    }
    const existing = this.inflight.get(blob.digest);
    if (existing) return existing;
    layerEvent('Pulling fs layer');
    const ingestRef = blob.digest.replace(':', '-');
    const work = limiter.run(
      // The lock file keeps two skiff processes from writing one partial file at once; the
      // second waits, then finds the blob committed.
      () => withFileLock(join(this.store.blobs.ingestDir, `${ingestRef}.lock`), async () => {
        if ((await this.store.blobs.stat(blob.digest)) === blob.size) {
          layerEvent('Already exists');
          return measureStored();
        }
        const ingest = await this.store.blobs.ingest(ingestRef);
        let offset = await ingest.size();
        if (offset > blob.size) offset = 0; // a stale or bogus partial file: start over
        let current = offset;
        let lastEmit = 0;
        layerEvent('Downloading', { current, total: blob.size, ...(offset > 0 ? { resumedFrom: offset } : {}) });
        // A fresh layer download is measured (DiffID, size) while it arrives: its bytes also go
        // through a decoder (zlib in the thread pool; a big layer's output hashed on the decode
        // thread). A resumed one cannot be decoded from the middle: it is measured from the file
        // once committed.
        const thread = blob.size >= OFF_THREAD_LAYER_BYTES ? { thread: this.decodeThread } : {};
        const digester = isLayer && offset === 0 ? new LayerDigester({ identity: blob.digest, ...thread }) : undefined;
        const source = client.openBlobFrom(ref.path, blob, offset, options.signal);
        // Progress is counted by the writer: a 'data' listener here would start the stream
        // flowing before the writer is attached, and lose bytes.
        const onProgress = (written: number) => {
          current = offset + written;
          const now = Date.now();
          if (now - lastEmit >= 100) {
            lastEmit = now;
            layerEvent('Downloading', { current, total: blob.size });
          }
        };
        try {
          await ingest.append(source, { offset, maxBytes: blob.size - offset, onProgress, release: releaseBulkChunk, ...(digester ? { tap: digester } : {}), ...(options.signal ? { signal: options.signal } : {}) });
          layerEvent('Verifying Checksum');
          const measuring = digester?.end();
          measuring?.catch(() => undefined); // awaited below: a digest mismatch is the error to report first
          await ingest.commit(blob.digest, blob.size);
          layerEvent('Download complete');
          if (!isLayer) return undefined;
          layerEvent('Extracting', { current: 0, total: blob.size });
          // Should the in-stream measurement fail (the decode thread died, or the layer is corrupt),
          // the file decides: it measures the same bytes, or fails with the decoder's own error.
          return await (measuring?.catch(() => diffIdOf(this.store, blob)) ?? diffIdOf(this.store, blob));
        } finally {
          digester?.destroy();
        }
      }),
      () => layerEvent('Waiting'),
    );
    this.inflight.set(blob.digest, work);
    try {
      return await work;
    } finally {
      this.inflight.delete(blob.digest);
    }
  }
}
