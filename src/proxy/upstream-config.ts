import { isValidRegistryHost, normalizeRegistryHost } from '../client/registry-host.ts';
import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN } from '../reference/reference.ts';
import { nameProblem } from '../reference/name.ts';

/**
 * One upstream registry the mirror pulls through: `skiff serve --proxy <url>`, or one entry of the
 * YAML `upstreams:` list. The server's config parses and validates it (src/server/upstream-config.ts);
 * everything here is pure.
 */
export interface UpstreamConfig {
  /**
   * The registry's name as clients write it (`docker.io`, `ghcr.io`, `registry.local:5000`): the
   * path prefix (`/v2/ghcr.io/org/app/…`) and the `?ns=` value that reach this upstream.
   */
  host: string;
  /** Where to reach it: its own address, or another mirror of it. */
  url: string;
  username?: string;
  password?: string;
  /** Milliseconds a cached tag is served before the upstream is asked again (HEAD). */
  tagTTL: number;
  /** Globs over the upstream repository name (`library/*`, `org/**`); empty: every name. */
  allow: string[];
  /** Globs over the upstream repository name; beats `allow`. */
  deny: string[];
  /** Unprefixed names (`/v2/library/alpine/…`) go to this upstream: Docker's `registry-mirrors` use. */
  default: boolean;
}

export const DEFAULT_TAG_TTL = 5 * 60_000;

/**
 * Why `host` cannot name an upstream, or undefined. It must look like a registry domain to a
 * reference parser (a dot, a port, or `localhost`), else `/v2/<host>/app` would be read as a
 * repository path; and its storage prefix must be a valid repository path component.
 */
export function upstreamHostProblem(host: string): string | undefined {
  if (!isValidRegistryHost(host) || host.startsWith('[')) return 'expected a registry host name such as docker.io, ghcr.io or registry.local:5000';
  if (!host.includes('.') && !host.includes(':') && host !== 'localhost') return 'a registry host needs a dot or a port (or is localhost), else clients read it as part of a repository name';
  if (nameProblem(storagePrefix(host)) !== undefined) return 'expected a registry host name such as docker.io, ghcr.io or registry.local:5000';
  return undefined;
}

/** `Docker.io`, `index.docker.io`, `https://ghcr.io/` → `docker.io`, `ghcr.io`. */
export function normalizeUpstreamHost(host: string): string {
  return normalizeRegistryHost(host);
}

/**
 * The first path component of the repositories cached from `host`: the host itself, with a port's
 * `:` (not allowed in repository names) written `_`: `registry.local:5000` → `registry.local_5000`.
 */
export function storagePrefix(host: string): string {
  return host.replace(':', '_');
}

/** `docker.io` → `https://registry-1.docker.io`; any other host → `https://<host>`. */
export function defaultUpstreamUrl(host: string): string {
  return host === DOCKER_HUB_DOMAIN ? `https://${DOCKER_HUB_API_HOST}` : `https://${host}`;
}

/** Why `url` cannot be an upstream's address, or undefined. */
export function upstreamUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected an http:// or https:// URL, e.g. https://registry-1.docker.io';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'expected an http:// or https:// URL, e.g. https://registry-1.docker.io';
  if (parsed.username || parsed.password) return 'put credentials in username/password (or the Docker config), not in the URL';
  if (parsed.search || parsed.hash) return 'the URL takes no query or fragment';
  return undefined;
}

/** The upstream `--proxy <url>` defines: named after the URL's host, the default for unprefixed names. */
export function proxyUpstream(url: string): UpstreamConfig {
  return { host: normalizeRegistryHost(new URL(url).host), url: url.replace(/\/+$/, ''), tagTTL: DEFAULT_TAG_TTL, allow: [], deny: [], default: true };
}
