import { isDigest, type Digest } from '../digest/digest.ts';
import { MAX_NAME_LENGTH, isValidTag, nameProblem } from './name.ts';

/**
 * Docker image references (`distribution/reference`), normalized the way `docker pull` does:
 * `alpine` is `docker.io/library/alpine:latest`. Pure; no I/O.
 */
export interface Reference {
  /** Registry host with optional port, e.g. `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path inside the registry, e.g. `library/alpine`. */
  path: string;
  tag?: string;
  digest?: Digest;
}

export const DOCKER_HUB_DOMAIN = 'docker.io';
export const DOCKER_HUB_LEGACY_DOMAIN = 'index.docker.io';
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
export const DEFAULT_TAG = 'latest';

export class InvalidReferenceError extends Error {
  readonly input: string;
  constructor(input: string, reason: string) {
    super(`invalid reference format ${JSON.stringify(input)}: ${reason}`);
    this.input = input;
    this.name = 'InvalidReferenceError';
  }
}

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const ANCHORED_HEX64 = /^[a-f0-9]{64}$/;

/** Splits the first path component off as a registry only when it looks like a host. */
function splitDomain(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  const looksLikeHost = first !== '' && (first === 'localhost' || first.includes('.') || first.includes(':') || first !== first.toLowerCase());
  let domain = looksLikeHost ? first : DOCKER_HUB_DOMAIN;
  let path = looksLikeHost ? name.slice(slash + 1) : name;
  if (domain === DOCKER_HUB_LEGACY_DOMAIN) domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !path.includes('/')) path = `library/${path}`;
  return { domain, path };
}

/** Parses a reference as `docker pull` would, applying docker.io and `latest` defaults when asked. */
export function parseReference(input: string, options: { defaultTag?: boolean } = {}): Reference {
  if (input.length === 0) throw new InvalidReferenceError(input, 'empty reference');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const candidate = rest.slice(at + 1);
    if (!isDigest(candidate)) throw new InvalidReferenceError(input, `bad digest ${JSON.stringify(candidate)}`);
    digest = candidate;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw new InvalidReferenceError(input, `bad tag ${JSON.stringify(tag)}`);
  }
  if (ANCHORED_HEX64.test(rest)) {
    throw new InvalidReferenceError(input, 'repository name must not be a 64-character hex string (that looks like an image ID)');
  }
  const { domain, path } = splitDomain(rest);
  if (!DOMAIN.test(domain)) throw new InvalidReferenceError(input, `bad registry host ${JSON.stringify(domain)}`);
  const problem = nameProblem(path);
  if (problem) throw new InvalidReferenceError(input, problem);
  if (domain.length + 1 + path.length > MAX_NAME_LENGTH) {
    throw new InvalidReferenceError(input, `name is longer than ${MAX_NAME_LENGTH} characters`);
  }
  const reference: Reference = { domain, path };
  if (tag !== undefined) reference.tag = tag;
  else if (digest === undefined && options.defaultTag !== false) reference.tag = DEFAULT_TAG;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

/** `docker.io/library/alpine` */
export function canonicalName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** `alpine`, `user/app`, `ghcr.io/o/app`: docker's short display form. */
export function familiarName(ref: Reference): string {
  if (ref.domain !== DOCKER_HUB_DOMAIN) return canonicalName(ref);
  const rest = ref.path.startsWith('library/') ? ref.path.slice('library/'.length) : ref.path;
  return rest.includes('/') ? ref.path : rest;
}

function suffix(ref: Reference): string {
  return `${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

export function formatReference(ref: Reference): string {
  return `${canonicalName(ref)}${suffix(ref)}`;
}

export function formatFamiliar(ref: Reference): string {
  return `${familiarName(ref)}${suffix(ref)}`;
}

/** What to ask the registry for: the digest wins over the tag. */
export function fetchTarget(ref: Reference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}
