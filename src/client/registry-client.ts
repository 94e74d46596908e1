import { pipeline, Readable } from 'node:stream';
import { digestOf, type Digest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { VerifyingStream } from '../digest/verifier.ts';
import type { Descriptor, ImageIndex } from '../oci/descriptor.ts';
import { MANIFEST_ACCEPT, bareMediaType } from '../oci/media-types.ts';
import { MAX_MANIFEST_BYTES } from '../oci/manifest.ts';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN } from '../reference/reference.ts';
import { parseChallenges, type Challenge } from './challenge.ts';
import { ClientError, adviceFor, describeNetworkError, parseErrorBody } from './errors.ts';
import { DEFAULT_RETRY, backoffDelay, isRetryableStatus, parseRetryAfter, sleep, type RetryPolicy } from './retry.ts';
import { TokenCache } from './token-cache.ts';
import { ERROR_BODY_LIMIT, readBody } from './read-body.ts';
import { BlobDownload } from './blob-download.ts';
import { NodeHttpTransport, StalledError, type Transport, type TransportResponse } from './transport.ts';

export interface Credentials {
  username?: string;
  password?: string;
  /** An identity (refresh) token, used with the OAuth2 POST flow. */
  identityToken?: string;
}

export interface RegistryClientOptions {
  /** Registry host as written in references: `docker.io`, `ghcr.io`, `localhost:5000`. */
  registry: string;
  /** Force plain HTTP; by default only loopback hosts use it. */
  plainHttp?: boolean;
  credentials?: Credentials | (() => Promise<Credentials | undefined>);
  retry?: RetryPolicy;
  /** Shared connection pools; by default the client makes its own. */
  transport?: Transport;
  userAgent?: string;
  /**
   * Talk to this base URL instead of the registry's own host: a mirror, e.g.
   * `https://mirror.example/prefix`. Requests then carry `?ns=<registry>` (containerd's convention).
   */
  endpoint?: string;
}

type Action = 'pull' | 'push' | 'delete';

interface RequestOptions {
  repository?: string;
  actions?: Action[];
  headers?: Record<string, string>;
  body?: Buffer | (() => Readable);
  /** Statuses that are success for this call; anything else is an error. */
  expect: number[];
  signal?: AbortSignal;
  /** Extra scopes (a cross-repo mount also needs pull on `from`). */
  extraScopes?: string[];
  /** A body we replay cannot be retried after it was consumed. */
  idempotent?: boolean;
  /** The answer is a blob's bytes, possibly big: read in 1 MiB buffers (TransportRequest.bulk). */
  bulk?: boolean;
  /** Each chunk of the body stream once sent (TransportRequest.releaseBodyChunk). */
  releaseBodyChunk?: (chunk: Buffer) => void;
}

const REDIRECTS = [301, 302, 303, 307, 308];
/** Blobs at least this big are read in 1 MiB buffers (bulk-get.ts); smaller ones share the keep-alive pool. */
const BULK_BLOB_BYTES = 1024 * 1024;

/** Loopback hosts speak plain HTTP (as Docker allows); everything else HTTPS. */
export function isLoopbackHost(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * One registry, spoken to over HTTP with auth (Basic, Bearer token with a per-scope cache),
 * retries with backoff and Retry-After, and capped error bodies. Every method takes an AbortSignal.
 */
export class RegistryClient {
  readonly registry: string;
  readonly baseUrl: string;
  private readonly transport: Transport;
  private readonly retry: RetryPolicy;
  private readonly tokens = new TokenCache();
  private readonly userAgent: string;
  private readonly credentialSource: RegistryClientOptions['credentials'];
  private readonly pathPrefix: string;
  /** The origin registry, sent as `?ns=` when this client talks to a mirror. */
  private readonly namespace: string | undefined;
  /** The challenge the registry answered with last; lets later requests authenticate up front. */
  private challenge: Challenge | undefined;

  constructor(options: RegistryClientOptions) {
    this.registry = options.registry;
    const host = options.registry === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : options.registry;
    const plain = options.plainHttp ?? isLoopbackHost(host);
    const endpoint = options.endpoint ? new URL(options.endpoint) : undefined;
    this.baseUrl = endpoint ? endpoint.origin : `${plain ? 'http' : 'https'}://${host}`;
    this.pathPrefix = endpoint ? endpoint.pathname.replace(/\/+$/, '') : '';
    this.namespace = endpoint ? options.registry : undefined;
    this.transport = options.transport ?? new NodeHttpTransport();
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.userAgent = options.userAgent ?? 'skiff/0.1';
    this.credentialSource = options.credentials;
  }

  private async credentials(): Promise<Credentials | undefined> {
    return typeof this.credentialSource === 'function' ? this.credentialSource() : this.credentialSource;
  }

  private scopes(options: RequestOptions): string[] {
    const scopes = options.repository ? [`repository:${options.repository}:${(options.actions ?? ['pull']).join(',')}`] : [];
    return [...scopes, ...(options.extraScopes ?? [])];
  }

  private async authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    const credentials = await this.credentials();
    if (challenge.scheme === 'basic') {
      if (!credentials?.username) return undefined;
      return `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
    }
    if (challenge.scheme !== 'bearer') return undefined;
    const token = await this.tokens.get(challenge, scopes, credentials, { transport: this.transport, userAgent: this.userAgent, registry: this.registry, ...(signal ? { signal } : {}) });
    return `Bearer ${token}`;
  }

  /** `GET ghcr.io/v2/o/app/manifests/v1`: a request as messages name it (no query: it may hold secrets). */
  describe(method: string, path: string): string {
    return `${method} ${new URL(this.baseUrl).host}${this.pathPrefix}${path.split('?')[0]}`;
  }

  /** Sends one request with auth and retries; returns the response for the caller to consume. */
  async send(method: string, path: string, options: RequestOptions): Promise<TransportResponse> {
    const scopes = this.scopes(options);
    const request = this.describe(method, path);
    let authRetried = false;
    let stalls = 0;
    for (let attempt = 1; ; attempt++) {
      const authorization = await this.authorization(scopes, options.signal);
      const body = typeof options.body === 'function' ? options.body() : options.body;
      let response: TransportResponse;
      // Where the answer came from: the registry, or the host a redirect sent us to.
      let answeredBy = new URL(this.baseUrl);
      try {
        response = await this.transport.request({
          origin: this.baseUrl,
          path: this.endpointPath(path),
          method,
          headers: { 'user-agent': this.userAgent, ...options.headers, ...(authorization ? { authorization } : {}) },
          ...(body !== undefined ? { body } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.bulk ? { bulk: true } : {}),
          ...(options.releaseBodyChunk ? { releaseBodyChunk: options.releaseBodyChunk } : {}),
        });
        if (REDIRECTS.includes(response.statusCode) && (method === 'GET' || method === 'HEAD') && response.headers.location) {
          // Blob downloads are often redirected to object storage or a CDN.
          response = await this.followRedirect(method, response, authorization, options, (url) => (answeredBy = url));
        }
      } catch (error) {
        if (error instanceof ClientError) throw error; // a verdict on the redirect itself, not the network
        // A stall (no bytes, or too few, for a whole window) is retried once: a host that stalls
        // twice in a row is down, and five windows of waiting would tell the user nothing more.
        if (error instanceof StalledError) stalls++;
        if (options.signal?.aborted || attempt >= this.retry.attempts || options.idempotent === false || stalls >= 2) {
          const via = answeredBy.host === new URL(this.baseUrl).host ? '' : ` (redirected to ${answeredBy.host})`;
          // The scheme matters for a connection failure (plain HTTP or TLS), so it is shown here.
          throw new ClientError(`${method} ${this.baseUrl}${this.pathPrefix}${path.split('?')[0]}${via}: ${describeNetworkError(error, answeredBy.host, this.registry)}`, { status: 0, registry: this.registry, cause: error });
        }
        await sleep(backoffDelay(this.retry, attempt), options.signal);
        continue;
      }
      if (options.expect.includes(response.statusCode)) return response;
      const foreign = answeredBy.origin !== new URL(this.baseUrl).origin;
      const text = (await readBody(response.body, ERROR_BODY_LIMIT, { what: request, registry: this.registry, status: response.statusCode }, false).catch(() => Buffer.alloc(0))).toString('utf8');
      const header = (name: string) => {
        const value = response.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      if (response.statusCode === 401 && foreign) {
        // The credential leak this guards against: registry → 307 to a CDN → 401 naming any realm.
        // A challenge from another host is not the registry's; its credentials never answer it.
        throw new ClientError(
          `${request}: the registry redirected to ${answeredBy.host}${answeredBy.pathname}, which asks for credentials (401); skiff does not send ${this.registry}'s credentials to another host. The registry's storage link is broken or expired: try again, or tell the registry's operator`,
          { status: 401, registry: this.registry, code: 'UNAUTHORIZED' },
        );
      }
      if (response.statusCode === 401 && !authRetried) {
        const offered = parseChallenges(header('www-authenticate') ?? '');
        const usable = offered.find((c) => c.scheme === 'bearer') ?? offered.find((c) => c.scheme === 'basic');
        if (usable) {
          this.challenge = usable;
          this.tokens.forget(scopes);
          authRetried = true;
          attempt--;
          continue;
        }
      }
      const retryAfterMs = parseRetryAfter(header('retry-after'));
      const retryable = isRetryableStatus(response.statusCode) && (response.statusCode !== 429 || retryAfterMs !== undefined || attempt < 3);
      if (retryable && attempt < this.retry.attempts && options.idempotent !== false) {
        await sleep(backoffDelay(this.retry, attempt, retryAfterMs), options.signal);
        continue;
      }
      const { code, message } = foreign ? {} : parseErrorBody(text);
      const advice = foreign ? 'the registry\'s storage link is broken or expired; try again, or tell the registry\'s operator' : adviceFor(response.statusCode, code, header('ratelimit-remaining'));
      const answered = foreign ? `the registry redirected to ${answeredBy.host}${answeredBy.pathname}, which answered ` : '';
      throw new ClientError(`${request}: ${answered}${response.statusCode}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}${advice ? ` (${advice})` : ''}`, {
        status: response.statusCode,
        registry: this.registry,
        ...(code ? { code } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
  }

  /**
   * Follows up to five redirects. `Authorization` goes along only while the origin stays the
   * registry's own: a pre-signed storage URL must never see the registry's credentials.
   * `onHop` learns each URL asked, so errors (and 401s) are blamed on the host that gave them.
   */
  private async followRedirect(method: string, first: TransportResponse, authorization: string | undefined, options: RequestOptions, onHop: (url: URL) => void): Promise<TransportResponse> {
    let response = first;
    let base = new URL(this.baseUrl);
    for (let hop = 0; hop < 5 && REDIRECTS.includes(response.statusCode); hop++) {
      const location = response.headers.location;
      await response.body.dump();
      const target = new URL(String(Array.isArray(location) ? location[0] : location), base);
      if (target.protocol !== 'https:' && target.protocol !== 'http:') {
        throw new ClientError(`${this.describe(method, '')}: redirected to ${JSON.stringify(`${target.protocol}…`)}, which is not http(s)`, { status: response.statusCode, registry: this.registry });
      }
      // Same origin, scheme included: a redirect to http:// on the same host must not carry credentials in clear.
      const sameOrigin = target.origin === new URL(this.baseUrl).origin;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...options.headers, ...(sameOrigin && authorization ? { authorization } : {}) };
      onHop(target);
      response = await this.transport.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method,
        headers,
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.bulk ? { bulk: true } : {}),
      });
      base = target;
    }
    return response;
  }

  /** Adds a mirror's path prefix and `ns=` to a registry API path. */
  private endpointPath(path: string): string {
    if (!path.startsWith('/v2/') && path !== '/v2') return path;
    const prefixed = `${this.pathPrefix}${path}`;
    if (!this.namespace) return prefixed;
    return `${prefixed}${prefixed.includes('?') ? '&' : '?'}ns=${encodeURIComponent(this.namespace)}`;
  }

  async ping(signal?: AbortSignal): Promise<void> {
    const res = await this.send('GET', '/v2/', { expect: [200], ...(signal ? { signal } : {}) });
    await res.body.dump();
  }

  /** HEAD a manifest: its descriptor, or undefined when the registry does not have it. */
  async headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
    const res = await this.send('HEAD', `/v2/${repository}/manifests/${reference}`, { repository, expect: [200, 404], headers: { accept: MANIFEST_ACCEPT }, ...(signal ? { signal } : {}) });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    const digest = String(res.headers['docker-content-digest'] ?? '');
    return { mediaType: bareMediaType(String(res.headers['content-type'] ?? '')), digest: digest as Digest, size: Number(res.headers['content-length'] ?? 0) };
  }

  /**
   * Sends a GET whose answer is read whole (a manifest, a tag page), at most `limit` bytes. A body
   * cut short is retried like a failed request: it is small, and nothing was delivered yet.
   */
  private async getWhole(path: string, options: RequestOptions, limit: number, what: string, tooLargeAdvice: string): Promise<{ response: TransportResponse; body: Buffer }> {
    for (let attempt = 1; ; attempt++) {
      const response = await this.send('GET', path, options);
      try {
        const label = { what: `${what} from ${this.describe('GET', path)}`, registry: this.registry, status: response.statusCode, tooLargeAdvice };
        return { response, body: await readBody(response.body, limit, label) };
      } catch (error) {
        if (!(error instanceof ClientError) || error.status !== 0 || options.signal?.aborted || attempt >= this.retry.attempts) throw error;
        await sleep(backoffDelay(this.retry, attempt), options.signal);
      }
    }
  }

  /** GET a manifest, capped at 4 MiB and verified against the digest asked for or announced. */
  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ descriptor: Descriptor; body: Buffer }> {
    const { response: res, body } = await this.getWhole(
      `/v2/${repository}/manifests/${reference}`,
      { repository, expect: [200], headers: { accept: MANIFEST_ACCEPT }, ...(signal ? { signal } : {}) },
      MAX_MANIFEST_BYTES,
      'the manifest',
      `a manifest is small JSON: check the reference ${repository}:${reference}, or report the registry`,
    );
    const digest = digestOf(body);
    const expected = reference.includes(':') ? reference : (res.headers['docker-content-digest'] as string | undefined);
    if (expected && expected !== digest) {
      throw new ClientError(`${this.registry}/${repository}@${reference}: manifest hashes to ${digest}, not ${expected}`, { status: 200, registry: this.registry, code: 'DIGEST_INVALID' });
    }
    return { descriptor: { mediaType: bareMediaType(String(res.headers['content-type'] ?? '')), digest, size: body.length }, body };
  }

  async putManifest(repository: string, reference: string, body: Buffer, mediaType: string, signal?: AbortSignal): Promise<Digest> {
    return (await this.pushManifest(repository, reference, body, mediaType, signal)).digest;
  }

  /**
   * PUT a manifest. Returns its digest, checked against the one the registry announces, and
   * whether the registry took the `subject` into its referrers index (the `OCI-Subject` header).
   */
  async pushManifest(repository: string, reference: string, body: Buffer, mediaType: string, signal?: AbortSignal): Promise<{ digest: Digest; subjectIndexed: boolean }> {
    const res = await this.send('PUT', `/v2/${repository}/manifests/${reference}`, {
      repository,
      actions: ['pull', 'push'],
      expect: [200, 201, 202],
      headers: { 'content-type': mediaType },
      body,
      ...(signal ? { signal } : {}),
    });
    await res.body.dump();
    const digest = digestOf(body);
    const announced = res.headers['docker-content-digest'];
    if (typeof announced === 'string' && announced !== '' && announced !== digest) {
      throw new ClientError(`${this.registry}/${repository}:${reference}: the registry stored the manifest as ${announced}, not ${digest}`, { status: res.statusCode, registry: this.registry, code: 'DIGEST_INVALID' });
    }
    return { digest, subjectIndexed: res.headers['oci-subject'] !== undefined };
  }

  async deleteManifest(repository: string, reference: string, signal?: AbortSignal): Promise<void> {
    const res = await this.send('DELETE', `/v2/${repository}/manifests/${reference}`, { repository, actions: ['delete'], expect: [200, 202], ...(signal ? { signal } : {}) });
    await res.body.dump();
  }

  /** Size of a blob in the repository, or undefined. */
  async headBlob(repository: string, digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    const res = await this.send('HEAD', `/v2/${repository}/blobs/${digest}`, { repository, expect: [200, 404], ...(signal ? { signal } : {}) });
    await res.body.dump();
    return res.statusCode === 404 ? undefined : Number(res.headers['content-length'] ?? 0);
  }

  /**
   * A verified stream of a blob. A broken connection resumes with `Range` from the bytes
   * already delivered; the stream fails on a digest or size mismatch at the end.
   */
  openBlob(repository: string, descriptor: Descriptor, signal?: AbortSignal): Readable {
    // pipeline(), not pipe(): the source's errors reach the reader, and a reader that stops early
    // (destroys the stream, breaks out of `for await`) closes the GET instead of leaving it open.
    return pipeline(this.openBlobFrom(repository, descriptor, 0, signal), new VerifyingStream(descriptor.digest, descriptor.size), () => undefined);
  }

  /**
   * The blob's bytes from `offset` on, unverified (the caller verifies the whole, e.g. an ingest
   * commit), resuming with `Range` after a broken connection. Never yields past the descriptor's size.
   */
  openBlobFrom(repository: string, descriptor: Descriptor, offset: number, signal?: AbortSignal): Readable {
    const path = `/v2/${repository}/blobs/${descriptor.digest}`;
    const bulk = descriptor.size >= BULK_BLOB_BYTES;
    const fetchFrom = (from: number) =>
      this.send('GET', path, { repository, expect: [200, 206], headers: from > 0 ? { range: `bytes=${from}-` } : {}, bulk, ...(signal ? { signal } : {}) });
    return new BlobDownload(fetchFrom, {
      size: descriptor.size,
      offset,
      retry: this.retry,
      what: this.describe('GET', path),
      registry: this.registry,
      // What a reader sees is final: the retries happened in the download.
      onFailure: markSourceFailure,
      ...(signal ? { signal } : {}),
    });
  }

  /** Cross-repository mount; true when the registry mounted it (201). */
  async mountBlob(repository: string, digest: Digest, from: string, signal?: AbortSignal): Promise<boolean> {
    const res = await this.send('POST', `/v2/${repository}/blobs/uploads/?mount=${digest}&from=${encodeURIComponent(from)}`, {
      repository,
      actions: ['pull', 'push'],
      extraScopes: [`repository:${from}:pull`],
      expect: [201, 202],
      ...(signal ? { signal } : {}),
    });
    await res.body.dump();
    if (res.statusCode === 202) {
      // The registry opened a session we will not use; close it politely.
      if (typeof res.headers.location === 'string') await this.cancelUpload(repository, this.locationPath(res.headers.location));
    }
    return res.statusCode === 201;
  }

  /**
   * Uploads a blob: POST, then one streamed PATCH, then PUT ?digest=. If the PATCH breaks, asks
   * the session where it stands and re-opens the source from there. `source(offset)` must
   * produce the blob's bytes from `offset`. `releaseChunk` gets each chunk of the source once
   * sent, when the source's chunks are the upload's alone (a blob GET's bulk reads).
   */
  async pushBlob(
    repository: string,
    descriptor: Descriptor,
    source: (offset: number) => Readable | Promise<Readable>,
    signal?: AbortSignal,
    options: { monolithicMaxBytes?: number; releaseChunk?: (chunk: Buffer) => void } = {},
  ): Promise<void> {
    const release = options.releaseChunk ? { releaseBodyChunk: options.releaseChunk } : {};
    const scope = { repository, actions: ['pull', 'push'] as Action[], ...(signal ? { signal } : {}) };
    const post = await this.send('POST', `/v2/${repository}/blobs/uploads/`, { ...scope, expect: [202], headers: { 'content-length': '0' } });
    await post.body.dump();
    let location = this.locationPath(post.headers.location);
    if (descriptor.size <= (options.monolithicMaxBytes ?? -1)) {
      // Small blobs: the bytes ride on the closing PUT, one round trip (and one registry write) less.
      // Any failure closes this session and falls back to the resumable path below.
      let stream: Readable | undefined;
      try {
        const body = (stream = await source(0));
        const separator = location.includes('?') ? '&' : '?';
        const put = await this.send('PUT', `${location}${separator}digest=${descriptor.digest}`, {
          ...scope,
          expect: [201],
          idempotent: false,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(descriptor.size) },
          body: () => body,
          ...release,
        });
        await put.body.dump();
        return;
      } catch (error) {
        stream?.destroy(); // see the PATCH below
        const fromSource = sourceFailure(error);
        if (fromSource) throw fromSource;
        if (signal?.aborted || (error instanceof ClientError && error.status >= 400 && error.status < 500 && error.status !== 416)) throw error;
        await this.cancelUpload(repository, location);
        const { monolithicMaxBytes: _, ...resumable } = options;
        return this.pushBlob(repository, descriptor, source, signal, resumable);
      }
    }
    try {
      let offset = 0;
      for (let attempt = 1; offset < descriptor.size || attempt === 1; attempt++) {
        let stream: Readable | undefined;
        try {
          const body = (stream = await source(offset));
          const patch = await this.send('PATCH', location, {
            ...scope,
            expect: [202],
            idempotent: false,
            headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${descriptor.size - 1}`, 'content-length': String(descriptor.size - offset) },
            body: () => body,
            ...release,
          });
          await patch.body.dump();
          location = this.locationPath(patch.headers.location, location);
          offset = descriptor.size;
          break;
        } catch (error) {
          // This attempt's source is done with: a GET or a file left open here would stay open,
          // paused, until the process ends (a paused body is never judged stalled).
          stream?.destroy();
          // A source that gave up (after its own retries) or sent wrong bytes: re-sending cannot help.
          const fromSource = sourceFailure(error);
          if (fromSource) throw fromSource;
          // 416: the registry stands at another offset than we thought (the broken chunk was still
          // landing when we asked): ask again and go on from there, like any other resume.
          if (signal?.aborted || attempt >= this.retry.attempts || (error instanceof ClientError && error.status >= 400 && error.status < 500 && error.status !== 416)) throw error;
          await sleep(backoffDelay(this.retry, attempt), signal);
          const status = await this.send('GET', location, { ...scope, expect: [204] });
          await status.body.dump();
          location = this.locationPath(status.headers.location, location);
          const range = /^0-(\d+)$/.exec(String(status.headers.range ?? ''));
          offset = range ? Number(range[1]) + 1 : 0;
          if (offset === 1 && descriptor.size !== 1) offset = 0; // "0-0" means nothing received
        }
      }
      const separator = location.includes('?') ? '&' : '?';
      const put = await this.send('PUT', `${location}${separator}digest=${descriptor.digest}`, { ...scope, expect: [201], headers: { 'content-length': '0' } });
      await put.body.dump();
    } catch (error) {
      // Close the session rather than leave the registry holding a half upload until it expires.
      if (!signal?.aborted) await this.cancelUpload(repository, location);
      throw error;
    }
  }

  /** Closes an upload session, once and best-effort: it would expire on its own anyway. */
  private async cancelUpload(repository: string, location: string): Promise<void> {
    await this.send('DELETE', location, { repository, actions: ['pull', 'push'], expect: [200, 202, 204, 404], idempotent: false }).then((r) => r.body.dump(), () => undefined);
  }

  private locationPath(header: string | string[] | undefined, fallback?: string): string {
    const value = Array.isArray(header) ? header[0] : header;
    if (!value) {
      if (fallback) return fallback;
      throw new ClientError(`${this.registry}: upload response had no Location`, { status: 0, registry: this.registry });
    }
    const url = new URL(value, this.baseUrl);
    const pathname = this.pathPrefix && url.pathname.startsWith(`${this.pathPrefix}/`) ? url.pathname.slice(this.pathPrefix.length) : url.pathname;
    const search = new URLSearchParams(url.search);
    search.delete('ns'); // endpointPath adds it back
    const query = search.toString();
    return `${pathname}${query ? `?${query}` : ''}`;
  }

  /** Every tag, following `Link: rel="next"` pages. */
  async listTags(repository: string, signal?: AbortSignal, pageSize?: number): Promise<string[]> {
    return this.paged(`/v2/${repository}/tags/list${pageSize ? `?n=${pageSize}` : ''}`, 'tags', { repository, ...(signal ? { signal } : {}) });
  }

  async catalog(signal?: AbortSignal, pageSize?: number): Promise<string[]> {
    return this.paged(`/v2/_catalog${pageSize ? `?n=${pageSize}` : ''}`, 'repositories', { extraScopes: ['registry:catalog:*'], ...(signal ? { signal } : {}) });
  }

  private async paged(first: string, key: string, options: Omit<RequestOptions, 'expect'>): Promise<string[]> {
    const all: string[] = [];
    let path: string | undefined = first;
    for (let pages = 0; path !== undefined && pages < 10_000; pages++) {
      const { response: res, body: raw } = await this.getWhole(path, { ...options, expect: [200] }, 16 * 1024 * 1024, `the ${key} list`, 'ask for smaller pages, or report the registry');
      const body = parseJson(raw, `the ${key} list from ${this.describe('GET', path)}`, this.registry) as Record<string, unknown>;
      const items = body[key];
      if (Array.isArray(items)) all.push(...items.filter((t): t is string => typeof t === 'string'));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(String(res.headers.link ?? ''));
      path = link ? this.locationPath(link[1]) : undefined;
    }
    return all;
  }

  async referrers(repository: string, digest: Digest, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[]> {
    const query = artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : '';
    const path = `/v2/${repository}/referrers/${digest}${query}`;
    const { response: res, body } = await this.getWhole(path, { repository, expect: [200], ...(signal ? { signal } : {}) }, MAX_MANIFEST_BYTES, 'the referrers index', 'report the registry');
    const index = parseJson(body, `the referrers index from ${this.describe('GET', path)}`, this.registry) as ImageIndex;
    const all = Array.isArray(index.manifests) ? index.manifests : [];
    // A registry that ignored the filter (no OCI-Filters-Applied) still gets filtered here.
    return artifactType && !res.headers['oci-filters-applied'] ? all.filter((d) => d.artifactType === artifactType) : all;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

/** Errors with which a blob source (openBlobFrom) gave up after its own retries. */
const sourceFailures = new WeakSet<object>();

function markSourceFailure(error: unknown): unknown {
  if (error instanceof Error) sourceFailures.add(error);
  return error;
}

/**
 * The source-side error inside an upload failure, if any: a blob source that gave up, or bytes
 * that failed verification (digest or size). The upload's own retries must not repeat those.
 */
function sourceFailure(error: unknown): Error | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (sourceFailures.has(e) || e instanceof DigestMismatchError || e instanceof SizeMismatchError) return e;
  }
  return undefined;
}

/** JSON a registry sent; anything else is an error naming what and where. */
function parseJson(body: Buffer, what: string, registry: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ClientError(`${what} is not JSON (${(error as Error).message}); is this an OCI registry?`, { status: 200, registry });
  }
}
