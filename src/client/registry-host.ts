import { DOCKER_HUB_API_HOST, DOCKER_HUB_DOMAIN, DOCKER_HUB_LEGACY_DOMAIN } from '../reference/reference.ts';

/**
 * Registry hosts as users, config files and references spell them, reduced to one form:
 * lowercase `host[:port]`, no scheme, no path, and every Docker Hub alias as `docker.io`.
 * Pure; shared by the credential lookup (docker-config.ts) and the mirror table (mirrors.ts).
 */

/** Names that all mean Docker Hub. */
const HUB_ALIASES: ReadonlySet<string> = new Set([DOCKER_HUB_DOMAIN, DOCKER_HUB_LEGACY_DOMAIN, DOCKER_HUB_API_HOST]);

const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const HOST = new RegExp(`^(?:${LABEL}(?:\\.${LABEL})*|\\[[0-9a-f:.]+\\])(?::\\d{1,5})?$`);

/**
 * `https://index.docker.io/v1/` → `docker.io`, `http://Ghcr.io/` → `ghcr.io`, `localhost:5000` stays.
 * Lenient: anything is reduced the same way (docker's ConvertToHostname), valid or not.
 */
export function normalizeRegistryHost(input: string): string {
  let host = input.trim();
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(host);
  if (scheme) host = host.slice(scheme[0].length);
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  host = host.toLowerCase();
  return HUB_ALIASES.has(host) ? DOCKER_HUB_DOMAIN : host;
}

/** True for `ghcr.io`, `localhost:5000`, `[::1]:5000`; false for anything with a path, scheme or spaces. */
export function isValidRegistryHost(host: string): boolean {
  const match = /:(\d+)$/.exec(host);
  if (match && Number(match[1]) > 65535) return false;
  return HOST.test(host);
}

export function isDockerHub(host: string): boolean {
  return normalizeRegistryHost(host) === DOCKER_HUB_DOMAIN;
}
