import { Readable } from 'node:stream';
import { credentialSource } from '../client/credentials.ts';
import { ClientError } from '../client/errors.ts';
import { RegistryClient, type Credentials } from '../client/registry-client.ts';
import type { RetryPolicy } from '../client/retry.ts';
import { normalizeRegistryHost } from '../client/registry-host.ts';
import type { Digest } from '../digest/digest.ts';
import type { ErrorCode } from '../errors/codes.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { Descriptor } from '../oci/descriptor.ts';
import { DOCKER_HUB_DOMAIN } from '../reference/reference.ts';
import type { UpstreamBody, UpstreamOpener } from './fill.ts';
import { RepositoryFilter } from '../reference/glob.ts';
import { storagePrefix, type UpstreamConfig } from './upstream-config.ts';

/**
 * A failure to get something from an upstream, as the mirror's client should hear it: an OCI
 * error (code, status, message naming the upstream), plus whether the upstream was *unavailable*
 * (unreachable, 5xx, 429, broken or lying content), in which case a cached copy may stand in,
 * as opposed to an answer (404, 401/403) that a stale copy must not hide.
 */
export class UpstreamError extends RegistryError {
  readonly unavailable: boolean;
  readonly upstream: string;

  constructor(code: ErrorCode, message: string, options: { status: number; unavailable: boolean; upstream: string; headers?: Record<string, string>; cause?: unknown }) {
    super(code, message, { status: options.status, ...(options.headers ? { headers: options.headers } : {}), cause: options.cause });
    this.name = 'UpstreamError';
    this.unavailable = options.unavailable;
    this.upstream = options.upstream;
  }
}

/** True when `error` says the upstream could not answer, so a stale copy may be served instead. */
export function isUpstreamUnavailable(error: unknown): boolean {
  return error instanceof UpstreamError && error.unavailable;
}

export interface UpstreamOptions {
  /** Retries of one request before it counts as failed (default: 2 attempts, 100–500 ms apart). */
  retry?: RetryPolicy;
  /** Environment for the Docker config lookup (DOCKER_CONFIG); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Short waits: a cached copy is the fallback, so a dead upstream must be given up on quickly. */
const UPSTREAM_RETRY: RetryPolicy = { attempts: 2, baseDelayMs: 100, maxDelayMs: 500 };

/**
 * One upstream registry, spoken to through the registry client (auth, token cache, retries,
 * redirects), with every failure turned into an UpstreamError. The only place the mirror talks
 * HTTP to an upstream.
 */
export class Upstream {
  readonly config: UpstreamConfig;
  readonly host: string;
  /** First path component of the repositories cached from this upstream. */
  readonly prefix: string;
  /** `docker.io (https://registry-1.docker.io)`, for messages. */
  readonly label: string;
  /** True when `url` is the registry itself; otherwise a mirror of it, which is told `?ns=<host>`. */
  readonly isOrigin: boolean;
  private readonly filter: RepositoryFilter;
  private readonly client: RegistryClient;

  constructor(config: UpstreamConfig, options: UpstreamOptions = {}) {
    this.config = config;
    this.host = config.host;
    this.prefix = storagePrefix(config.host);
    this.label = `${config.host} (${config.url})`;
    this.filter = new RepositoryFilter(config.allow, config.deny);
    const url = new URL(config.url);
    const urlHost = normalizeRegistryHost(url.host);
    this.isOrigin = urlHost === config.host && (url.pathname === '' || url.pathname === '/');
    const credentials: Credentials | (() => Promise<Credentials | undefined>) =
      config.username !== undefined ? { username: config.username, password: config.password ?? '' } : credentialSource(urlHost, options.env ? { env: options.env } : {});
    const retry = options.retry ?? UPSTREAM_RETRY;
    this.client = this.isOrigin
      ? new RegistryClient({ registry: config.host, plainHttp: url.protocol === 'http:', credentials, retry, userAgent: 'skiff-mirror/0.1' })
      : // A mirror of the registry (another skiff, a CNCF proxy): told which registry is meant, as containerd does.
        new RegistryClient({ registry: config.host, endpoint: config.url, credentials, retry, userAgent: 'skiff-mirror/0.1' });
  }

  /** Docker Hub's one-component names live under `library/`: `alpine` → `library/alpine`. */
  upstreamName(repository: string): string {
    return this.host === DOCKER_HUB_DOMAIN && !repository.includes('/') ? `library/${repository}` : repository;
  }

  allows(repository: string): boolean {
    return this.filter.allows(repository);
  }

  /** The manifest's descriptor by HEAD, or undefined on a 404 (which a pull-through upstream may not mean). */
  async headManifest(repository: string, reference: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
    try {
      return await this.client.headManifest(repository, reference, signal);
    } catch (error) {
      throw this.failure(error, `manifest ${repository}:${reference}`, 'MANIFEST_UNKNOWN');
    }
  }

  /** GET a manifest (at most 4 MiB), verified against the digest asked for or announced. */
  async getManifest(repository: string, reference: string, signal?: AbortSignal): Promise<{ descriptor: Descriptor; body: Buffer }> {
    try {
      return await this.client.getManifest(repository, reference, signal);
    } catch (error) {
      throw this.failure(error, `manifest ${repository}${reference.includes(':') ? '@' : ':'}${reference}`, 'MANIFEST_UNKNOWN');
    }
  }

  /**
   * Opens the blob from `offset`, one GET per call: the fill (BlobFills) calls it again at the byte
   * reached when a stream breaks, and verifies the whole at the end. Announces the blob's total
   * size from Content-Length or Content-Range.
   */
  opener(repository: string, digest: Digest): UpstreamOpener {
    return async (offset, signal) => {
      const path = `/v2/${repository}/blobs/${digest}`;
      let response;
      try {
        response = await this.client.send('GET', path, { repository, expect: [200, 206], headers: offset > 0 ? { range: `bytes=${offset}-` } : {}, bulk: true, signal });
      } catch (error) {
        throw this.failure(error, `blob ${digest} of ${repository}`, 'BLOB_UNKNOWN');
      }
      const header = (name: string): string | undefined => {
        const value = response.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      if (response.statusCode === 206) {
        const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header('content-range') ?? '');
        if (!match || Number(match[1]) !== offset) {
          response.body.destroy();
          throw new UpstreamError('UNAVAILABLE', `upstream ${this.label} answered a Range request for byte ${offset} of blob ${digest} with Content-Range ${JSON.stringify(header('content-range') ?? '')}`, {
            status: 502,
            unavailable: true,
            upstream: this.host,
          });
        }
        return { body: response.body, ...(match[3] !== '*' ? { size: Number(match[3]) } : {}) } satisfies UpstreamBody;
      }
      const length = /^\d+$/.test(header('content-length') ?? '') ? Number(header('content-length')) : undefined;
      // A 200 to a Range request: the whole blob, whose first `offset` bytes we have already.
      const body = offset > 0 ? skip(response.body, offset) : response.body;
      return { body, ...(length !== undefined ? { size: length } : {}) } satisfies UpstreamBody;
    };
  }

  /**
   * Whether the upstream serves the blob, without fetching it. A 404 on HEAD is not believed (a
   * pull-through upstream fetches only on GET: distribution#4747): a GET of its first byte decides.
   */
  async hasBlob(repository: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    try {
      if ((await this.client.headBlob(repository, digest, signal)) !== undefined) return true;
      // 416 answers an empty blob's first byte: it exists.
      const response = await this.client.send('GET', `/v2/${repository}/blobs/${digest}`, { repository, expect: [200, 206, 404, 416], headers: { range: 'bytes=0-0' }, ...(signal ? { signal } : {}) });
      response.body.destroy();
      return response.statusCode !== 404;
    } catch (error) {
      throw this.failure(error, `blob ${digest} of ${repository}`, 'BLOB_UNKNOWN');
    }
  }

  async listTags(repository: string, signal?: AbortSignal): Promise<string[]> {
    try {
      return await this.client.listTags(repository, signal);
    } catch (error) {
      throw this.failure(error, `the tags of ${repository}`, 'NAME_UNKNOWN');
    }
  }

  async catalog(signal?: AbortSignal): Promise<string[]> {
    try {
      return await this.client.catalog(signal);
    } catch (error) {
      throw this.failure(error, 'the catalog', 'NAME_UNKNOWN');
    }
  }

  async ping(signal?: AbortSignal): Promise<void> {
    try {
      await this.client.ping(signal);
    } catch (error) {
      throw this.failure(error, '/v2/', 'UNSUPPORTED');
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** What the mirror's client should hear when fetching `what` failed. */
  failure(error: unknown, what: string, notFound: ErrorCode): UpstreamError {
    if (error instanceof UpstreamError) return error;
    const base = `cannot get ${what} from upstream ${this.label}`;
    const upstream = this.host;
    if (!(error instanceof ClientError)) {
      if ((error as { name?: string }).name === 'AbortError') return new UpstreamError('UNAVAILABLE', `${base}: cancelled`, { status: 503, unavailable: true, upstream, cause: error });
      return new UpstreamError('UNAVAILABLE', `${base}: ${(error as Error).message}`, { status: 502, unavailable: true, upstream, cause: error });
    }
    const detail = error.message;
    const status = error.status;
    if (status === 0 || status >= 500) {
      return new UpstreamError('UNAVAILABLE', `${base}, which is unavailable: ${detail}`, { status: 503, unavailable: true, upstream, cause: error });
    }
    if (status === 429) {
      const headers = error.retryAfterMs !== undefined ? { 'Retry-After': String(Math.ceil(error.retryAfterMs / 1000)) } : undefined;
      return new UpstreamError('TOOMANYREQUESTS', `${base}, which is rate-limiting this mirror: ${detail}`, { status: 429, unavailable: true, upstream, cause: error, ...(headers ? { headers } : {}) });
    }
    if (status === 401 || status === 403) {
      return new UpstreamError('DENIED', `${base}: it refused the mirror (${detail}); the mirror's operator must give this upstream username/password in the config, or credentials in the Docker config of the host running skiff`, {
        status: 403,
        unavailable: false,
        upstream,
        cause: error,
      });
    }
    if (status === 404) {
      const code = error.code === 'MANIFEST_UNKNOWN' || error.code === 'BLOB_UNKNOWN' || error.code === 'NAME_UNKNOWN' ? error.code : notFound;
      return new UpstreamError(code, `${base}: not found there (${detail})`, { status: 404, unavailable: false, upstream, cause: error });
    }
    if (status === 200 || error.code === 'DIGEST_INVALID' || error.code === 'SIZE_INVALID') {
      // Content that failed verification: the upstream is broken, and nothing of it was kept.
      return new UpstreamError('UNAVAILABLE', `${base}, which sent bad content; nothing was cached: ${detail}`, { status: 502, unavailable: true, upstream, cause: error });
    }
    return new UpstreamError(error.code ?? 'UNKNOWN', `${base}: ${detail}`, { status: 502, unavailable: false, upstream, cause: error });
  }
}

/** The stream without its first `count` bytes. */
function skip(source: Readable, count: number): Readable {
  let left = count;
  async function* rest(): AsyncGenerator<Buffer> {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (left >= chunk.length) {
        left -= chunk.length;
        continue;
      }
      yield left > 0 ? chunk.subarray(left) : chunk;
      left = 0;
    }
  }
  return Readable.from(rest(), { objectMode: false });
}
