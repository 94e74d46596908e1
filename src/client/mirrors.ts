import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { isDigest } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { InvalidManifestError } from '../oci/manifest.ts';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN, fetchTarget, type Reference } from '../reference/reference.ts';
import { ClientError } from './errors.ts';
import { isLoopbackHost } from './registry-client.ts';
import { isValidRegistryHost, normalizeRegistryHost } from './registry-host.ts';

/**
 * Pull-through mirrors for any registry (not only docker.io, as Docker's `registry-mirrors`),
 * in the spirit of containerd's hosts.toml and containers' registries.conf:
 *
 * ```yaml
 * docker.io:
 *   mirrors:
 *     - url: https://mirror.gcr.io
 *       pullFromMirror: all            # this mirror may also resolve tags
 *     - url: http://10.0.0.5:5000
 *       pullFromMirror: digest-only    # only content addressed by digest (the default)
 *       insecure: true                 # plain HTTP / unverified TLS allowed
 * ghcr.io:
 *   mirrors:
 *     - https://ghcr-cache.internal    # shorthand: url only, digest-only
 * ```
 *
 * A mirror is not trusted to resolve tags unless configured with `pullFromMirror: all`
 * (containerd: "a mirror is never trusted to resolve" without the resolve capability). Content
 * fetched by digest is verified, so any mirror may serve it.
 *
 * How the pull code uses this (RegistryClient is not wired to it yet):
 *
 * ```ts
 * // 1. Resolve the reference: only endpoints trusted with tags when it is a tag.
 * // 2. Fetch manifests/blobs by digest: endpointsFor(registry, digest) adds digest-only mirrors.
 * const endpoints = endpointsFor(ref.domain, ref, mirrorSet);
 * for (const [i, endpoint] of endpoints.entries()) {
 *   try {
 *     // One RegistryClient per endpoint, with that endpoint's own credentials
 *     // (credentialsFor(endpoint.host)): a mirror never gets the origin's secrets.
 *     // Every request path goes through endpointUrl(endpoint, path), which adds ?ns=<origin>.
 *     return await fetchFrom(endpoint);
 *   } catch (error) {
 *     if (i === endpoints.length - 1 || !shouldFallBack(error, endpoint.isMirror, signal)) throw error;
 *     log.warn({ endpoint: endpoint.baseUrl, err: error }, 'trying the next endpoint');
 *   }
 * }
 * ```
 * Retries against one endpoint (RegistryClient's backoff) happen before the error reaches
 * shouldFallBack, so a fallback means that endpoint has already been given its chances.
 */

export type PullFromMirror = 'all' | 'digest-only';
export const PULL_FROM_MIRROR: readonly PullFromMirror[] = ['all', 'digest-only'];
/** Tags are not trusted to a mirror unless the configuration says so. */
export const DEFAULT_PULL_FROM_MIRROR: PullFromMirror = 'digest-only';

export interface Mirror {
  /** Normalized: scheme, host, optional path prefix, no trailing slash. */
  url: string;
  pullFromMirror: PullFromMirror;
  /** Plain HTTP and unverified TLS are allowed for this mirror. */
  insecure: boolean;
}

export interface RegistryMirrors {
  mirrors: Mirror[];
}

/** Normalized registry host (`docker.io`, `ghcr.io`, `localhost:5000`) → its mirrors, in order. */
export type MirrorSet = Record<string, RegistryMirrors>;

/** One place to try a request. */
export interface Endpoint {
  /** Scheme, host and optional path prefix, no trailing slash: requests go to `${baseUrl}/v2/…`. */
  baseUrl: string;
  /** host[:port] of the endpoint (for its own credentials lookup). */
  host: string;
  isMirror: boolean;
  /** Plain HTTP / unverified TLS allowed (configured mirrors; loopback origins speak HTTP anyway). */
  insecure: boolean;
  /** The origin registry, sent to mirrors as `?ns=`; undefined for the origin itself. */
  ns?: string;
}

export class MirrorConfigError extends Error {
  readonly file: string;
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(problems.map((problem) => `${file}: ${problem}`).join('\n'));
    this.file = file;
    this.problems = problems;
    this.name = 'MirrorConfigError';
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const REGISTRY_KEYS = ['mirrors'];
const MIRROR_KEYS = ['url', 'pullFromMirror', 'insecure'];

/** A mirror URL → normalized form, or a problem. Bare hosts get https (http on loopback). */
function normalizeMirrorUrl(raw: string, insecure: boolean): { url: string } | { problem: string } {
  const text = raw.trim();
  if (text === '') return { problem: 'must not be empty' };
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `${isLoopbackHost(text.split('/')[0] ?? '') ? 'http' : 'https'}://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { problem: `${JSON.stringify(raw)} is not a URL` };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return { problem: `${JSON.stringify(raw)}: scheme must be http or https` };
  if (url.username || url.password) return { problem: `${JSON.stringify(raw)}: must not contain credentials (use skiff login <mirror host>)` };
  if (url.search || url.hash) return { problem: `${JSON.stringify(raw)}: must not have a query or fragment` };
  if (url.protocol === 'http:' && !insecure && !isLoopbackHost(url.host)) {
    return { problem: `${JSON.stringify(raw)}: plain HTTP to a non-loopback host needs insecure: true` };
  }
  const path = url.pathname.replace(/\/+$/, '');
  return { url: `${url.protocol}//${url.host}${path}` };
}

function checkMirror(value: unknown, where: string, problems: string[]): Mirror | undefined {
  const entry: Record<string, unknown> | undefined = typeof value === 'string' ? { url: value } : isPlainObject(value) ? value : undefined;
  if (!entry) {
    problems.push(`${where}: must be a URL or a mapping with url, pullFromMirror, insecure`);
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(entry)) {
    if (!MIRROR_KEYS.includes(key)) problems.push(`${where}.${key}: unknown setting (known: ${MIRROR_KEYS.join(', ')})`);
  }
  const insecure = entry.insecure ?? false;
  if (typeof insecure !== 'boolean') problems.push(`${where}.insecure: must be true or false`);
  const pull = entry.pullFromMirror ?? DEFAULT_PULL_FROM_MIRROR;
  if (typeof pull !== 'string' || !(PULL_FROM_MIRROR as readonly string[]).includes(pull)) {
    problems.push(`${where}.pullFromMirror: must be "all" (tags and digests) or "digest-only", not ${JSON.stringify(pull)}`);
  }
  let url: string | undefined;
  if (entry.url === undefined) problems.push(`${where}.url: required`);
  else if (typeof entry.url !== 'string') problems.push(`${where}.url: must be a string`);
  else {
    const normalized = normalizeMirrorUrl(entry.url, insecure === true);
    if ('problem' in normalized) problems.push(`${where}.url: ${normalized.problem}`);
    else url = normalized.url;
  }
  if (problems.length > before || url === undefined) return undefined;
  return { url, pullFromMirror: pull as PullFromMirror, insecure: insecure as boolean };
}

/**
 * Checks an already-parsed mirror table. Every problem is collected, each naming the file and the
 * key (`ghcr.io: mirrors[1].pullFromMirror: …`), and thrown together as one MirrorConfigError.
 */
export function validateMirrorSet(value: unknown, file: string): MirrorSet {
  if (value === null || value === undefined) return {}; // an empty file: no mirrors
  if (!isPlainObject(value)) throw new MirrorConfigError(file, ['expected a mapping of registry host → { mirrors: [...] }']);
  const problems: string[] = [];
  const set: MirrorSet = {};
  const seen = new Map<string, string>();
  for (const [key, registryValue] of Object.entries(value)) {
    const host = normalizeRegistryHost(key);
    if (key.includes('/') || !isValidRegistryHost(host)) {
      problems.push(`${key}: not a registry host (expected e.g. docker.io, ghcr.io, localhost:5000)`);
      continue;
    }
    const earlier = seen.get(host);
    if (earlier !== undefined) {
      problems.push(`${key}: the same registry as ${earlier} (both mean ${host})`);
      continue;
    }
    seen.set(host, key);
    if (!isPlainObject(registryValue)) {
      problems.push(`${key}: must be a mapping with mirrors: [...]`);
      continue;
    }
    for (const extra of Object.keys(registryValue)) {
      if (!REGISTRY_KEYS.includes(extra)) problems.push(`${key}.${extra}: unknown setting (known: ${REGISTRY_KEYS.join(', ')})`);
    }
    const list = registryValue.mirrors;
    if (list === undefined) {
      problems.push(`${key}.mirrors: required (a list of mirrors)`);
      continue;
    }
    if (!Array.isArray(list)) {
      problems.push(`${key}.mirrors: must be a list`);
      continue;
    }
    const mirrors: Mirror[] = [];
    list.forEach((item: unknown, index) => {
      const mirror = checkMirror(item, `${key}.mirrors[${index}]`, problems);
      if (mirror) mirrors.push(mirror);
    });
    set[host] = { mirrors };
  }
  if (problems.length > 0) throw new MirrorConfigError(file, problems);
  return set;
}

/** Parses mirror configuration text: JSON for `.json`, YAML otherwise (YAML also reads JSON). */
export async function parseMirrorConfig(text: string, file: string): Promise<MirrorSet> {
  let parsed: unknown;
  if (extname(file).toLowerCase() === '.json') {
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new MirrorConfigError(file, [`not valid JSON: ${(error as Error).message}`]);
    }
  } else {
    const { parse } = await import('yaml'); // loaded only when a YAML file is given
    try {
      parsed = parse(text);
    } catch (error) {
      throw new MirrorConfigError(file, [`not valid YAML: ${(error as Error).message}`]);
    }
  }
  return validateMirrorSet(parsed, file);
}

export async function loadMirrorConfig(file: string): Promise<MirrorSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new MirrorConfigError(file, [`cannot read: ${(error as Error).message}`]);
  }
  return parseMirrorConfig(text, file);
}

/** True when `reference` names content by digest (a digest wins over a tag, as for fetching). */
function isDigestReference(reference: Reference | string): boolean {
  return isDigest(typeof reference === 'string' ? reference : fetchTarget(reference));
}

/**
 * Where to try, in order: the registry's mirrors (in configured order), then the origin. A
 * `digest-only` mirror appears only when `reference` is a digest (a Reference with a digest, or a
 * `sha256:…` string); a tag is resolved only by mirrors configured with `pullFromMirror: all`.
 */
export function endpointsFor(registry: string, reference: Reference | string, mirrors: MirrorSet = {}): Endpoint[] {
  const host = normalizeRegistryHost(registry);
  const byDigest = isDigestReference(reference);
  const configured = Object.hasOwn(mirrors, host) ? (mirrors[host]?.mirrors ?? []) : [];
  const endpoints: Endpoint[] = configured
    .filter((mirror) => byDigest || mirror.pullFromMirror === 'all')
    .map((mirror) => ({ baseUrl: mirror.url, host: new URL(mirror.url).host, isMirror: true, insecure: mirror.insecure, ns: host }));
  const originHost = host === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : host;
  const plain = isLoopbackHost(originHost);
  endpoints.push({ baseUrl: `${plain ? 'http' : 'https'}://${originHost}`, host: originHost, isMirror: false, insecure: false });
  return endpoints;
}

/**
 * The full URL of a request to an endpoint: `path` (`/v2/<name>/manifests/<ref>`, possibly with its
 * own query) under the endpoint's base, plus `ns=<origin>` on a mirror.
 */
export function endpointUrl(endpoint: Endpoint, path: string): string {
  const url = new URL(`${endpoint.baseUrl}${path.startsWith('/') ? '' : '/'}${path}`);
  if (endpoint.ns !== undefined) url.searchParams.set('ns', endpoint.ns);
  return url.toString();
}

/**
 * Why a request to one endpoint failed, as far as fallback cares:
 * - `cancelled`: the caller's signal aborted, or an AbortError/TimeoutError (the caller's deadline)
 * - `unsupported`: content no endpoint will serve differently (e.g. a schema 1 manifest)
 * - `local`: our own disk failed (ENOSPC, EACCES, ...), not the endpoint
 * - `network`: connection refused/reset, DNS, TLS, socket timeouts, or the client's status-0 error
 * - `server`: 5xx
 * - `unexpected-status`: a status with no registry error code where none was expected (400, 3xx, 418, ...)
 * - `registry`: the registry answered with an error code, or 401/403/404/429 (it spoke, and said no)
 * - `content`: the endpoint served bytes that do not match their digest or size, or an invalid manifest
 * - `unknown`: anything else
 */
export type FailureKind = 'cancelled' | 'unsupported' | 'local' | 'network' | 'server' | 'unexpected-status' | 'registry' | 'content' | 'unknown';

const LOCAL_ERRNO = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'EISDIR', 'ENOTDIR']);
const NETWORK_ERRNO = /^(ECONN|ENOTFOUND|EAI_|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENETDOWN|EPIPE|EPROTO|UND_ERR_|ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_|SELF_SIGNED_|ERR_STREAM_PREMATURE_CLOSE)/;

/** The error and its causes, outermost first (bounded, in case of a cycle). */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}

function errorName(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { name?: unknown }).name === 'string' ? (error as { name: string }).name : undefined;
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : undefined;
}

export function classifyFailure(error: unknown, signal?: AbortSignal): FailureKind {
  if (signal?.aborted) return 'cancelled';
  const chain = causes(error);
  // Our own deadline or cancel, however deeply wrapped. (undici's per-socket timeouts are named
  // ConnectTimeoutError/HeadersTimeoutError/BodyTimeoutError: those are the endpoint being slow.)
  if (chain.some((e) => errorName(e) === 'AbortError' || errorName(e) === 'TimeoutError')) return 'cancelled';
  if (chain.some((e) => e instanceof InvalidManifestError && e.kind === 'unsupported')) return 'unsupported';
  if (error instanceof ClientError) {
    if (error.status === 0) return 'network';
    if (error.status >= 500) return 'server';
    if (error.code === 'DIGEST_INVALID' && error.status < 300) return 'content';
    if (error.code !== undefined || [401, 403, 404, 429].includes(error.status)) return 'registry';
    return 'unexpected-status';
  }
  if (chain.some((e) => e instanceof DigestMismatchError || e instanceof SizeMismatchError || e instanceof InvalidManifestError)) return 'content';
  for (const e of chain) {
    const code = errorCode(e);
    if (code === undefined) continue;
    if (LOCAL_ERRNO.has(code)) return 'local';
    if (NETWORK_ERRNO.test(code)) return 'network';
  }
  return 'unknown';
}

/**
 * REFERENCE.md §B, "when to try the next endpoint":
 * - a network error, a 5xx or an unexpected status → yes, whatever the endpoint;
 * - a registry error code (401, MANIFEST_UNKNOWN, 429, …), or bad content → only from a mirror
 *   (the origin's "no" is the answer; a mirror's "no" may just be a gap in its cache);
 * - cancel, timeout (the caller's), an unsupported media type, or a local disk error → stop.
 * Anything unrecognised falls back, as moby does ("let's be nice and fallback").
 */
export function shouldFallBack(error: unknown, endpointIsMirror: boolean, signal?: AbortSignal): boolean {
  switch (classifyFailure(error, signal)) {
    case 'cancelled':
    case 'unsupported':
    case 'local':
      return false;
    case 'registry':
    case 'content':
      return endpointIsMirror;
    case 'network':
    case 'server':
    case 'unexpected-status':
    case 'unknown':
      return true;
  }
}
