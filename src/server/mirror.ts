import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobPins } from '../content/blob-pins.ts';
import type { KeyedLock } from '../content/keyed-lock.ts';
import type { BlobStore, ByteRange } from '../content/store.ts';
import { isDigest, type Digest } from '../digest/digest.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { BlobFills, type BlobFillsOptions, type BlobSource, type FillTarget } from '../proxy/blob-fills.ts';
import type { FillEvent } from '../proxy/fill.ts';
import { SharedCalls } from '../proxy/shared-calls.ts';
import { isUpstreamUnavailable, UpstreamError } from '../proxy/upstream.ts';
import type { MirrorRoute, Upstreams } from '../proxy/upstreams.ts';
import { isValidTag } from '../reference/name.ts';
import { noMirrorMetrics, type MirrorKind, type MirrorMetrics } from './metrics.ts';
import { MirrorCache, type MirrorCacheOptions } from './mirror-cache.ts';
import type { ManifestRecord, MetadataStore, Page } from './storage/metadata.ts';

/** A blob ready to send: its size is known, its bytes come from the store or from a fill as they arrive. */
export interface ServedBlob {
  digest: Digest;
  size: number;
  /** Writes the blob (or one range) into `destination` and ends it; on a failure, cuts it before its last byte. */
  copyTo(destination: Writable, range?: ByteRange): Promise<void>;
  /** The bytes are a committed, verified file of the blob store, not a fill in progress (so a front proxy may send it). */
  stored?: boolean;
}

/** What the mirror needs from the registry it fills: its metadata, and its one way to store a manifest. */
export interface MirrorStore {
  readonly metadata: MetadataStore;
  /** Parses, verifies and stores a manifest (no check of its children: they are fetched lazily). */
  storeManifest(repository: string, body: Buffer, contentType: string | undefined, tags: string[]): Promise<ManifestRecord>;
  readManifest(digest: Digest): Promise<Buffer>;
  /** The blobs in use in this process, which the cache's eviction leaves alone. */
  readonly pins: BlobPins;
}

export interface MirroredManifest {
  record: ManifestRecord;
  body: Buffer;
  /** Served from the cache because the upstream could not be asked (answer with a Warning). */
  stale?: boolean;
}

export type MirroredPage = Page<string> & { stale?: boolean };

/** Counts for logs and metrics. */
export interface MirrorStats {
  blobHits: number;
  blobMisses: number;
  manifestHits: number;
  manifestMisses: number;
  /** Tags past their TTL that were checked upstream with a HEAD. */
  revalidations: number;
  staleServes: number;
  upstreamBlobRequests: number;
  upstreamBlobBytes: number;
}

/** What one upstream's routes did since this process started. */
export interface UpstreamTally {
  hits: number;
  misses: number;
  staleServes: number;
}

export interface MirrorOptions {
  log: Logger;
  /** Serve only what is cached: no upstream request at all (`--read-only`). */
  readOnly?: boolean;
  fills?: BlobFillsOptions;
  /** The server's mirror counters (GET /metrics); see also `setMetrics`. */
  metrics?: MirrorMetrics;
  /** The clock the tag TTL and the cache's LRU are measured with (tests). */
  now?: () => number;
  /** The cache's maximum size and LRU settings (`cacheMaxSize`; docs/mirror.md "Eviction"). */
  cache?: Omit<MirrorCacheOptions, 'log' | 'metrics' | 'readOnly' | 'now'>;
  /**
   * Replicas: one upstream fetch or revalidation of a manifest at a time for the whole deployment
   * (a Redis lease per repository and reference). Without it, one per process (SharedCalls).
   */
  manifestLock?: KeyedLock;
}

/**
 * The mirror: the registry's fallback to an upstream for repositories under a cached namespace.
 * It is a *source* for the registry, not a second registry (DESIGN.md §8): misses fill the same
 * blob store through the same verifying writer (BlobFills: one upstream GET per digest, bytes
 * streamed to every waiting client as they land), manifests are stored through the registry's own
 * manifest path, and everything cached is then served by the ordinary registry code.
 */
export class Mirror {
  readonly upstreams: Upstreams;
  readonly stats: MirrorStats = { blobHits: 0, blobMisses: 0, manifestHits: 0, manifestMisses: 0, revalidations: 0, staleServes: 0, upstreamBlobRequests: 0, upstreamBlobBytes: 0 };
  /** The cache's size and LRU eviction. */
  readonly cache: MirrorCache;
  private readonly store: MirrorStore;
  private readonly pins: BlobPins;
  private readonly blobs: FillTarget;
  private readonly fills: BlobFills;
  private readonly log: Logger;
  private readonly readOnly: boolean;
  private readonly now: () => number;
  private readonly calls = new SharedCalls();
  private readonly manifestLock: KeyedLock | undefined;
  /** Cached repositories waiting for a fill of the digest to commit, to link it. */
  private readonly pendingLinks = new Map<Digest, Set<string>>();
  /** The upstream each running fill reads from, for the metrics' `upstream` label. */
  private readonly fillUpstreams = new Map<Digest, string>();
  private readonly upstreamTallies = new Map<string, UpstreamTally>();
  private metrics: MirrorMetrics;

  constructor(store: MirrorStore, blobs: FillTarget & Pick<BlobStore, 'delete'>, upstreams: Upstreams, options: MirrorOptions) {
    this.store = store;
    this.pins = store.pins;
    this.blobs = blobs;
    this.upstreams = upstreams;
    this.log = options.log;
    this.readOnly = options.readOnly ?? false;
    this.now = options.now ?? Date.now;
    this.metrics = options.metrics ?? noMirrorMetrics;
    this.manifestLock = options.manifestLock;
    this.cache = new MirrorCache(store.metadata, blobs, store.pins, { ...options.cache, readOnly: this.readOnly, log: this.log, metrics: this.metrics, now: this.now });
    const onEvent = options.fills?.onEvent;
    this.fills = new BlobFills(blobs, {
      ...options.fills,
      onEvent: (event) => {
        this.observe(event);
        onEvent?.(event);
      },
    });
  }

  /** Counts into the server's metrics from now on (they are made after the registry is opened). */
  setMetrics(metrics: MirrorMetrics): void {
    this.metrics = metrics;
    this.cache.setMetrics(metrics);
  }

  /** One upstream's counts since start, for the web UI's mirror view (the metrics count by kind, not upstream). */
  private tally(route: { upstream: { host: string } } | undefined): UpstreamTally | undefined {
    if (!route) return undefined;
    let tally = this.upstreamTallies.get(route.upstream.host);
    if (!tally) this.upstreamTallies.set(route.upstream.host, (tally = { hits: 0, misses: 0, staleServes: 0 }));
    return tally;
  }

  private hit(kind: MirrorKind, route: MirrorRoute): void {
    if (kind === 'blob') this.stats.blobHits++;
    if (kind === 'manifest') this.stats.manifestHits++;
    this.tally(route)!.hits++;
    this.metrics.hit(kind);
  }

  private miss(kind: MirrorKind, route: MirrorRoute): void {
    if (kind === 'blob') this.stats.blobMisses++;
    if (kind === 'manifest') this.stats.manifestMisses++;
    this.tally(route)!.misses++;
    this.metrics.miss(kind);
  }

  private stale(kind: MirrorKind, route?: MirrorRoute): void {
    this.stats.staleServes++;
    const tally = this.tally(route);
    if (tally) tally.staleServes++;
    this.metrics.staleServe(kind);
  }

  /** Requests per upstream host answered from the cache (hits), fetched or joined (misses), or served stale, since start. */
  upstreamTally(host: string): UpstreamTally {
    return { ...(this.upstreamTallies.get(host) ?? { hits: 0, misses: 0, staleServes: 0 }) };
  }

  /** Counts one upstream request of `work`, and its failure. */
  private async ask<T>(route: { upstream: { host: string } }, kind: MirrorKind, method: 'GET' | 'HEAD', work: () => Promise<T>): Promise<T> {
    this.metrics.upstreamRequest(route.upstream.host, kind, method);
    try {
      return await work();
    } catch (error) {
      if (isUpstreamUnavailable(error)) this.metrics.upstreamFailure(route.upstream.host, kind);
      throw error;
    }
  }

  private get metadata(): MetadataStore {
    return this.store.metadata;
  }

  /** The upstream a request's repository name leads to, or undefined for a local repository. */
  route(name: string, ns: string | undefined): MirrorRoute | undefined {
    return this.upstreams.route(name, ns);
  }

  /** True when `repository` is a name under a cached namespace. */
  isCached(repository: string): boolean {
    return this.upstreams.isCached(repository);
  }

  // ---- blobs ----

  /**
   * A blob of a cached repository: from the store when this repository may serve it, else filled
   * from upstream (joined when a fill of the digest runs already). Never decided by an upstream
   * HEAD: a 404 on HEAD from a pull-through upstream is not final (distribution#4747).
   */
  async blob(route: MirrorRoute, digest: Digest): Promise<ServedBlob> {
    this.checkAllowed(route);
    // Pinned from the first look at the store until the response has its bytes, so eviction never
    // deletes the file in between: copyTo holds a pin of its own while it runs, and a response
    // that sends no body (HEAD, an X-Accel-Redirect) lets go at the next turn of the event loop.
    const release = await this.pins.pin(digest);
    let served: ServedBlob;
    try {
      served = await this.openBlob(route, digest);
    } catch (error) {
      release();
      throw error;
    }
    setImmediate(release);
    return { ...served, copyTo: (destination, range) => this.pins.hold(digest, () => served.copyTo(destination, range)) };
  }

  private async openBlob(route: MirrorRoute, digest: Digest): Promise<ServedBlob> {
    const stored = await this.blobs.stat(digest);
    if (stored !== undefined) {
      if (!(await this.servable(route, digest))) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not known in repository ${route.canonical}, and upstream ${route.upstream.label} does not have it in ${route.repository}`, { detail: { digest } });
      }
      this.hit('blob', route);
      this.cache.usedBlob(digest);
      return { digest, size: stored, stored: true, copyTo: (destination, range) => this.blobs.copyTo(digest, destination, range) };
    }
    if (this.readOnly) throw this.notCached('BLOB_UNKNOWN', `blob ${digest} of ${route.canonical}`);
    if (!this.fillUpstreams.has(digest)) this.fillUpstreams.set(digest, route.upstream.host);
    let source: BlobSource;
    try {
      source = await this.fills.source({ digest, open: route.upstream.opener(route.repository, digest) });
    } catch (error) {
      if (this.fills.running === 0) this.fillUpstreams.clear();
      throw error;
    }
    if (source.from === 'fill') this.miss('blob', route);
    else {
      this.fillUpstreams.delete(digest);
      this.hit('blob', route);
    }
    await this.linkWhenCommitted(route.canonical, digest, source);
    let size: number;
    try {
      size = await source.size();
    } catch (error) {
      throw this.upstreamFailure(error, route, `blob ${digest}`);
    }
    return { digest, size, stored: source.from === 'store', copyTo: (destination, range) => source.copyTo(destination, range) };
  }

  /**
   * Whether a stored blob may be served through this cached repository: it is linked here, or to
   * another cached repository (everything cached is as public as the mirror), or the upstream has
   * it. A blob pushed only to a local repository is never served through a cached name on its
   * digest alone.
   */
  private async servable(route: MirrorRoute, digest: Digest): Promise<boolean> {
    if (await this.metadata.isBlobLinked(route.canonical, digest)) return true;
    if ((await this.metadata.getManifest(route.canonical, digest)) !== undefined) return true;
    const links = await this.metadata.blobLinks(digest, 100);
    const proven =
      links.some((repository) => this.isCached(repository)) || (!this.readOnly && (await this.ask(route, 'blob', 'HEAD', () => route.upstream.hasBlob(route.repository, digest))));
    if (proven) await this.link(route.canonical, digest);
    return proven;
  }

  private async linkWhenCommitted(repository: string, digest: Digest, source: BlobSource): Promise<void> {
    if (source.from === 'store') {
      await this.link(repository, digest);
      return;
    }
    let waiting = this.pendingLinks.get(digest);
    if (!waiting) this.pendingLinks.set(digest, (waiting = new Set()));
    waiting.add(repository);
    // Committed between the fill's start and now: its event has gone by already.
    if ((await this.blobs.stat(digest)) !== undefined) await this.flushLinks(digest);
  }

  private async flushLinks(digest: Digest): Promise<void> {
    const waiting = this.pendingLinks.get(digest);
    if (!waiting) return;
    this.pendingLinks.delete(digest);
    for (const repository of waiting) {
      await this.link(repository, digest).catch((error: unknown) => this.log.error({ err: error, repository, digest }, 'mirror: cannot link a filled blob'));
    }
  }

  /**
   * Links a blob to a cached repository, marked as such first (its links keep nothing from
   * eviction). Read-only writes nothing: the blob is served all the same, unlinked.
   */
  private async link(repository: string, digest: Digest): Promise<void> {
    if (this.readOnly) return;
    await this.cache.adopt(repository);
    await this.metadata.linkBlob(repository, digest);
  }

  private observe(event: FillEvent): void {
    const upstream = this.fillUpstreams.get(event.digest) ?? 'unknown';
    switch (event.type) {
      case 'open':
        this.stats.upstreamBlobRequests++;
        this.metrics.upstreamRequest(upstream, 'blob', 'GET');
        if (event.attempt > 1) this.log.info({ digest: event.digest, offset: event.offset, attempt: event.attempt }, 'mirror: resuming a blob from upstream');
        break;
      case 'stored':
        this.fillUpstreams.delete(event.digest);
        void this.flushLinks(event.digest);
        break;
      case 'commit':
        this.fillUpstreams.delete(event.digest);
        this.stats.upstreamBlobBytes += event.received;
        this.metrics.upstreamBytes(upstream, event.received);
        this.log.info({ digest: event.digest, size: event.size, received: event.received }, 'mirror: blob cached');
        void this.flushLinks(event.digest);
        if (!event.alreadyExisted) {
          this.cache.storedBlob({ digest: event.digest, size: event.size }).catch((error: unknown) => this.log.error({ err: error, digest: event.digest }, 'mirror: cannot record a filled blob in the cache'));
        }
        break;
      case 'fail':
        this.fillUpstreams.delete(event.digest);
        this.stats.upstreamBlobBytes += event.received;
        this.metrics.upstreamBytes(upstream, event.received);
        this.metrics.upstreamFailure(upstream, 'blob');
        this.pendingLinks.delete(event.digest);
        this.log.warn({ digest: event.digest, received: event.received, err: event.error }, 'mirror: blob fill failed; nothing was cached');
        break;
      case 'retry':
        this.metrics.upstreamFailure(upstream, 'blob');
        break;
    }
  }

  // ---- manifests ----

  /**
   * By digest: the cached copy, else fetched, verified and stored. By tag: the cached copy within
   * the upstream's tagTTL; after it, a HEAD upstream, and a fetch only when the digest moved; the
   * cached copy, marked stale, when the upstream cannot answer.
   */
  async manifest(route: MirrorRoute, reference: string): Promise<MirroredManifest> {
    this.checkAllowed(route);
    const { canonical } = route;
    if (reference.includes(':')) {
      const digest = reference as Digest;
      const cached = await this.cachedManifest(canonical, digest);
      if (cached) {
        this.hit('manifest', route);
        return cached;
      }
      if (this.readOnly) throw this.notCached('MANIFEST_UNKNOWN', `manifest ${canonical}@${digest}`);
      const key = `${canonical}@${digest}`;
      return this.calls.run(key, () =>
        this.acrossReplicas(key, async (leased) => {
          const stored = leased ? await this.cachedManifest(canonical, digest) : undefined;
          if (stored) {
            this.hit('manifest', route);
            return stored;
          }
          return this.fetchManifest(route, digest, []);
        }),
      );
    }
    if (!isValidTag(reference)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${reference} is not known in repository ${canonical}`, { detail: { reference } });
    const first = await this.cachedTag(route, reference);
    if (first.fresh) {
      this.hit('manifest', route);
      return first.fresh;
    }
    if (this.readOnly) throw this.notCached('MANIFEST_UNKNOWN', `manifest ${canonical}:${reference}`);
    const key = `${canonical}:${reference}`;
    return this.calls.run(key, () =>
      this.acrossReplicas(key, async (leased) => {
        const now = leased ? await this.cachedTag(route, reference) : first;
        if (now.fresh) {
          this.hit('manifest', route);
          return now.fresh;
        }
        return this.revalidate(route, reference, now.cached);
      }),
    );
  }

  /** The cached manifest of a tag, and whether it may be served without asking the upstream (within the TTL, or read-only). */
  private async cachedTag(route: MirrorRoute, tag: string): Promise<{ cached?: MirroredManifest | undefined; fresh?: MirroredManifest | undefined }> {
    const record = await this.metadata.getTag(route.canonical, tag);
    const cached = record ? await this.cachedManifest(route.canonical, record.digest) : undefined;
    const fresh = cached && (this.readOnly || (record?.checkedAt !== undefined && this.now() - record.checkedAt < route.upstream.config.tagTTL));
    return { cached, fresh: fresh ? cached : undefined };
  }

  /**
   * Runs a manifest's upstream call under the replicas' lease of `key` when there is one. `leased`
   * says the work must look at the cache again: another replica may have fetched or checked it
   * while this one waited for the lease. When Redis cannot be asked, the call runs here unshared:
   * the lease only saves upstream requests, and a stale tag must stay servable without it.
   */
  private async acrossReplicas<T>(key: string, work: (leased: boolean) => Promise<T>): Promise<T> {
    if (!this.manifestLock) return work(false);
    let leaseTaken = false;
    try {
      return await this.manifestLock.run(key, () => {
        leaseTaken = true;
        return work(true);
      });
    } catch (error) {
      if (leaseTaken) throw error;
      this.log.warn({ key, reason: (error as Error).message }, "mirror: cannot take the replicas' lease (Redis); fetching without it");
      return work(true);
    }
  }

  /**
   * A cached manifest with its body, read with its digest pinned (eviction cannot take the body
   * between the lookup and the read), and counted as a use for the LRU. Undefined when not cached.
   */
  private async cachedManifest(repository: string, digest: Digest): Promise<MirroredManifest | undefined> {
    return this.pins.hold(digest, async () => {
      const record = await this.metadata.getManifest(repository, digest);
      if (!record) return undefined;
      const body = await this.store.readManifest(digest);
      this.cache.usedManifest(repository, digest);
      return { record, body };
    });
  }

  private async revalidate(route: MirrorRoute, tag: string, cached: MirroredManifest | undefined): Promise<MirroredManifest> {
    const { canonical } = route;
    try {
      if (cached) {
        const head = await this.ask(route, 'manifest', 'HEAD', () => route.upstream.headManifest(route.repository, tag));
        this.stats.revalidations++;
        if (head?.digest === cached.record.digest) {
          await this.metadata.markTagChecked(canonical, tag, this.now());
          this.hit('manifest', route);
          return cached;
        }
        if (head && isDigest(head.digest)) {
          this.log.info({ repository: canonical, tag, from: cached.record.digest, to: head.digest }, 'mirror: tag moved upstream');
          const known = await this.cachedManifest(canonical, head.digest);
          if (known) {
            await this.cache.adopt(canonical);
            const record = await this.store.storeManifest(canonical, known.body, known.record.mediaType, [tag]);
            await this.metadata.markTagChecked(canonical, tag, this.now());
            return { record, body: known.body };
          }
          return await this.fetchManifest(route, head.digest, [tag]);
        }
        // A 404 on HEAD, or no digest in the answer: a GET decides (a pull-through upstream may
        // fetch only on GET, distribution#4747).
      }
      return await this.fetchManifest(route, tag, [tag]);
    } catch (error) {
      if (cached && isUpstreamUnavailable(error)) {
        this.stale('manifest', route);
        this.log.warn({ repository: canonical, tag, digest: cached.record.digest, upstream: route.upstream.host, reason: (error as Error).message }, 'mirror: upstream unavailable, serving the cached (stale) manifest');
        return { ...cached, stale: true };
      }
      if (cached && error instanceof UpstreamError && error.status === 404) {
        // The upstream says the tag is gone: so is the cached tag (its manifest stays, by digest).
        await this.metadata.deleteTag(canonical, tag);
        this.log.info({ repository: canonical, tag }, 'mirror: tag removed upstream; cached tag removed');
      }
      throw error;
    }
  }

  private async fetchManifest(route: MirrorRoute, reference: string, tags: string[]): Promise<MirroredManifest> {
    const { descriptor, body } = await this.ask(route, 'manifest', 'GET', () => route.upstream.getManifest(route.repository, reference));
    this.metrics.upstreamBytes(route.upstream.host, body.length);
    let record: ManifestRecord;
    try {
      await this.cache.adopt(route.canonical); // before the manifest: in a repository not marked cached it would be local content
      record = await this.store.storeManifest(route.canonical, body, descriptor.mediaType, tags);
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'MANIFEST_INVALID') {
        throw new UpstreamError('MANIFEST_INVALID', `upstream ${route.upstream.label} sent a manifest for ${route.repository}:${reference} that skiff cannot store: ${error.message}`, {
          status: 502,
          unavailable: false,
          upstream: route.upstream.host,
          cause: error,
        });
      }
      throw error;
    }
    await this.cache
      .storedManifest(route.canonical, { digest: record.digest, size: record.size })
      .catch((error: unknown) => this.log.error({ err: error, repository: route.canonical, digest: record.digest }, 'mirror: cannot record a manifest in the cache'));
    for (const tag of tags) await this.metadata.markTagChecked(route.canonical, tag, this.now());
    this.miss('manifest', route);
    this.log.info({ repository: route.canonical, reference, digest: record.digest }, 'mirror: manifest cached');
    return { record, body };
  }

  // ---- discovery ----

  /**
   * The upstream's tags (all pages), paged here. When it cannot answer: its last answer, with the
   * tags cached since, marked stale.
   */
  async tags(route: MirrorRoute, limit: number | undefined, after: string | undefined): Promise<MirroredPage> {
    this.checkAllowed(route);
    const key = `tags:${route.canonical}`;
    const cachedPage = async (): Promise<MirroredPage> => {
      const [answered, cached] = await Promise.all([this.metadata.upstreamListing(key), this.metadata.listTags(route.canonical, undefined, undefined)]);
      if (!answered && !(await this.metadata.repositoryExists(route.canonical))) {
        throw new RegistryError('NAME_UNKNOWN', `repository ${route.canonical} is not cached here`, { detail: { name: route.canonical } });
      }
      return pageOf([...(answered?.names ?? []), ...cached.items], limit, after);
    };
    if (this.readOnly) return cachedPage();
    try {
      const names = await this.ask(route, 'tags', 'GET', () => route.upstream.listTags(route.repository));
      await this.metadata.saveUpstreamListing(key, names, Date.now());
      return pageOf(names, limit, after);
    } catch (error) {
      if (!isUpstreamUnavailable(error)) throw error;
      const page = await cachedPage().catch(() => {
        throw error;
      });
      this.stale('tags', route);
      this.log.warn({ repository: route.canonical, upstream: route.upstream.host, reason: (error as Error).message }, 'mirror: upstream unavailable, serving the cached tags');
      return { ...page, stale: true };
    }
  }

  /**
   * The local repositories (the cached ones among them, under their canonical names) and every
   * upstream's catalog, as `<prefix>/<name>`. An upstream without a catalog (Docker Hub) adds
   * nothing; one that cannot answer marks the answer stale.
   */
  async catalog(local: string[], limit: number | undefined, after: string | undefined): Promise<MirroredPage> {
    const names = new Set(local);
    let stale = false;
    if (!this.readOnly) {
      await Promise.all(
        this.upstreams.list.map(async (upstream) => {
          try {
            const answer = await this.ask({ upstream }, 'catalog', 'GET', () => upstream.catalog());
            await this.metadata.saveUpstreamListing(`catalog:${upstream.host}`, answer, Date.now());
            for (const name of answer) if (upstream.allows(name)) names.add(`${upstream.prefix}/${name}`);
          } catch (error) {
            if (isUpstreamUnavailable(error)) {
              stale = true;
              // Its last answer stands in, as the cached tags do for a repository.
              const last = await this.metadata.upstreamListing(`catalog:${upstream.host}`);
              for (const name of last?.names ?? []) if (upstream.allows(name)) names.add(`${upstream.prefix}/${name}`);
              this.log.warn({ upstream: upstream.host, reason: (error as Error).message, lastAnswer: last?.names.length ?? 0 }, 'mirror: upstream unavailable, serving its last catalog');
            } else this.log.debug({ upstream: upstream.host, reason: (error as Error).message }, 'mirror: upstream has no catalog');
          }
        }),
      );
    }
    if (stale) this.stale('catalog');
    return { ...pageOf([...names], limit, after), ...(stale ? { stale } : {}) };
  }

  // ---- life ----

  /** Asks each upstream once (GET /v2/) and logs whether it answers; never fails the start. */
  async checkUpstreams(): Promise<void> {
    await Promise.all(
      this.upstreams.list.map(async (upstream) => {
        const where = { upstream: upstream.host, url: upstream.config.url, default: upstream.config.default, tagTTL: upstream.config.tagTTL };
        try {
          await upstream.ping();
          this.log.info(where, `mirror: upstream ${upstream.host} reachable`);
        } catch (error) {
          if (error instanceof UpstreamError && !error.unavailable) this.log.info({ ...where, answer: error.message }, `mirror: upstream ${upstream.host} reachable`);
          else this.log.warn({ ...where, reason: (error as Error).message }, `mirror: upstream ${upstream.host} is unreachable; serving what is cached until it is back`);
        }
      }),
    );
  }

  /**
   * Waits until the fills running now are over and the cache has recorded them. A client's pull
   * can end before that: its last byte waits for the digest check, not for the commit.
   */
  async settled(): Promise<void> {
    await this.fills.settled();
    await this.cache.idle();
  }

  /** Aborts the fills running (their clients are cut, their ingests removed) and closes the upstream connections. */
  async close(): Promise<void> {
    await this.fills.close();
    await this.cache.close(); // after the fills: their records are written, then the hits
    await this.upstreams.close();
  }

  private checkAllowed(route: MirrorRoute): void {
    if (route.allowed) return;
    const { allow, deny } = route.upstream.config;
    throw new RegistryError('DENIED', `repository ${route.repository} of upstream ${route.upstream.host} is not served by this mirror (allow: [${allow.join(', ')}], deny: [${deny.join(', ')}])`, {
      detail: { name: route.repository, upstream: route.upstream.host },
    });
  }

  private notCached(code: 'BLOB_UNKNOWN' | 'MANIFEST_UNKNOWN', what: string): RegistryError {
    return new RegistryError(code, `${what} is not cached, and this registry is read-only: it does not fetch from upstreams`);
  }

  private upstreamFailure(error: unknown, route: MirrorRoute, what: string): Error {
    if (error instanceof RegistryError) return error;
    return new UpstreamError('UNAVAILABLE', `cannot get ${what} of ${route.repository} from upstream ${route.upstream.label}: ${(error as Error).message}; nothing was cached`, {
      status: 502,
      unavailable: true,
      upstream: route.upstream.host,
      cause: error,
    });
  }
}

/** One page of a sorted, de-duplicated listing: `n` limits, `last` starts after. */
export function pageOf(all: string[], limit: number | undefined, after: string | undefined): Page<string> {
  const sorted = [...new Set(all)].sort();
  const start = after === undefined ? 0 : sorted.findIndex((item) => item > after);
  const from = start === -1 ? sorted.length : start;
  const items = limit === undefined ? sorted.slice(from) : sorted.slice(from, from + limit);
  return { items, more: from + items.length < sorted.length && limit !== undefined };
}
