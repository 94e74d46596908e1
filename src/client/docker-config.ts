import { syncFile } from '../content/sync-file.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, realpath, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DOCKER_HUB_DOMAIN } from '../reference/reference.ts';
import { normalizeRegistryHost } from './registry-host.ts';

/**
 * Docker's `config.json`: where it lives, what its credential parts mean, and how to change it
 * without losing anything else in it (`proxies`, `currentContext`, `plugins`, ... stay as they were).
 *
 * Lookup order, as docker/cli: `credHelpers[host]` beats `credsStore`, which beats
 * `auths[host]`. This file only reads and writes the file; credentials.ts runs the helpers.
 */

/** Docker Hub's credentials live under this key, for historical reasons. */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';
export const CONFIG_FILE_NAME = 'config.json';

/** One `auths` entry. Unknown fields (e.g. `email`) are kept as they are. */
export interface DockerAuthEntry {
  /** base64 of `username:password` */
  auth?: string;
  identitytoken?: string;
  /** Some tools (podman, old docker) write these in the clear instead of `auth`. */
  username?: string;
  password?: string;
  [key: string]: unknown;
}

export interface DockerConfigFile {
  auths?: Record<string, DockerAuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

export interface DockerConfigOptions {
  /** The directory holding config.json; beats `$DOCKER_CONFIG` and `~/.docker`. */
  configDir?: string;
  /** Environment to read `DOCKER_CONFIG` (and, for helpers, `PATH`) from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface LoadedDockerConfig {
  /** The file this came from (it may not exist yet). */
  path: string;
  /** False when there was no file; `data` is then empty. */
  exists: boolean;
  data: DockerConfigFile;
}

/** What a stored entry holds, decoded. */
export interface StoredAuth {
  /** The key it was found under, exactly as written in the file. */
  key: string;
  username?: string;
  password?: string;
  identityToken?: string;
}

export class DockerConfigError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.path = path;
    this.name = 'DockerConfigError';
  }
}

export function dockerConfigDir(options: DockerConfigOptions = {}): string {
  if (options.configDir) return options.configDir;
  const fromEnv = (options.env ?? process.env).DOCKER_CONFIG;
  return fromEnv ? fromEnv : join(homedir(), '.docker');
}

export function dockerConfigPath(options: DockerConfigOptions = {}): string {
  return join(dockerConfigDir(options), CONFIG_FILE_NAME);
}

/** The key `docker login <registry>` stores under: Hub's legacy URL, else the bare host. */
export function configKeyFor(registry: string): string {
  const host = normalizeRegistryHost(registry);
  return host === DOCKER_HUB_DOMAIN ? DOCKER_HUB_CONFIG_KEY : host;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the parts skiff relies on; everything else is carried through untouched. */
export function validateDockerConfig(value: unknown, path: string): DockerConfigFile {
  if (!isPlainObject(value)) throw new DockerConfigError(path, 'expected a JSON object at the top level');
  const problems: string[] = [];
  if (value.auths !== undefined && value.auths !== null) {
    if (!isPlainObject(value.auths)) problems.push('auths: must be an object of registry → {auth, identitytoken}');
    else {
      for (const [key, entry] of Object.entries(value.auths)) {
        if (!isPlainObject(entry)) {
          problems.push(`auths[${JSON.stringify(key)}]: must be an object`);
          continue;
        }
        for (const field of ['auth', 'identitytoken', 'username', 'password'] as const) {
          if (entry[field] !== undefined && typeof entry[field] !== 'string') problems.push(`auths[${JSON.stringify(key)}].${field}: must be a string`);
        }
      }
    }
  }
  if (value.credsStore !== undefined && typeof value.credsStore !== 'string') problems.push('credsStore: must be a string naming docker-credential-<name>');
  if (value.credHelpers !== undefined && value.credHelpers !== null) {
    if (!isPlainObject(value.credHelpers)) problems.push('credHelpers: must be an object of registry → helper name');
    else {
      for (const [key, helper] of Object.entries(value.credHelpers)) {
        if (typeof helper !== 'string') problems.push(`credHelpers[${JSON.stringify(key)}]: must be a string naming docker-credential-<name>`);
      }
    }
  }
  if (problems.length > 0) throw new DockerConfigError(path, problems.join('; '));
  return value as DockerConfigFile;
}

/** Reads config.json; a missing file is an empty config, a broken one an error naming the file. */
export async function readDockerConfig(options: DockerConfigOptions = {}): Promise<LoadedDockerConfig> {
  const path = dockerConfigPath(options);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { path, exists: false, data: {} };
    throw new DockerConfigError(path, `cannot read: ${(error as Error).message}`, { cause: error });
  }
  if (text.trim() === '') return { path, exists: true, data: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new DockerConfigError(path, `not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return { path, exists: true, data: validateDockerConfig(parsed, path) };
}

/**
 * Writes config.json atomically: a 0600 temporary file next to it, fsync, rename over. A symlinked
 * config.json is followed, so the link survives (docker does the same). Creates the directory (0700).
 */
export async function writeDockerConfig(data: DockerConfigFile, options: DockerConfigOptions = {}): Promise<string> {
  let path = dockerConfigPath(options);
  try {
    path = await realpath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new DockerConfigError(path, `cannot resolve: ${(error as Error).message}`, { cause: error });
  }
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = join(dir, `.${CONFIG_FILE_NAME}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(`${JSON.stringify(data, null, '\t')}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new DockerConfigError(path, `cannot write: ${(error as Error).message}`, { cause: error });
  }
  await syncDirectory(dir);
  return path;
}

async function syncDirectory(dir: string): Promise<void> {
  // Some filesystems refuse to fsync a directory; the rename is still atomic.
  await syncFile(dir).catch(() => undefined);
}

/** Read, change, write back. `change` mutates the data it is given. */
export async function updateDockerConfig<T>(options: DockerConfigOptions, change: (data: DockerConfigFile, loaded: LoadedDockerConfig) => T | Promise<T>): Promise<{ path: string; result: T }> {
  const loaded = await readDockerConfig(options);
  const result = await change(loaded.data, loaded);
  const path = await writeDockerConfig(loaded.data, options);
  return { path, result };
}

/**
 * The keys of `record` that mean `registry`: the exact config key first (so
 * `https://index.docker.io/v1/` wins over a stray `docker.io`), then `https://host`, `http://host`,
 * `host/anything`, in file order.
 */
export function matchingKeys(record: Record<string, unknown> | undefined, registry: string): string[] {
  if (!record) return [];
  const host = normalizeRegistryHost(registry);
  const exact = configKeyFor(host);
  const keys = Object.keys(record).filter((key) => normalizeRegistryHost(key) === host);
  return keys.sort((a, b) => Number(b === exact) - Number(a === exact));
}

/** `credHelpers[host]`, else `credsStore`, else undefined (then `auths` holds the credentials). */
export function helperFor(data: DockerConfigFile, registry: string): { helper: string; via: 'credHelpers' | 'credsStore' } | undefined {
  const key = matchingKeys(data.credHelpers, registry)[0];
  const specific = key !== undefined ? data.credHelpers?.[key] : undefined;
  if (specific) return { helper: specific, via: 'credHelpers' };
  if (data.credsStore) return { helper: data.credsStore, via: 'credsStore' };
  return undefined;
}

/** The `auths` entry for `registry`, decoded; undefined when there is none or it is empty. */
export function storedAuth(data: DockerConfigFile, registry: string, path = CONFIG_FILE_NAME): StoredAuth | undefined {
  for (const key of matchingKeys(data.auths, registry)) {
    const entry = data.auths?.[key];
    if (!entry) continue;
    const found: StoredAuth = { key };
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) throw new DockerConfigError(path, `auths[${JSON.stringify(key)}].auth: not base64 of "username:password"`);
      found.username = decoded.slice(0, colon);
      found.password = decoded.slice(colon + 1);
    } else if (entry.username) {
      found.username = entry.username;
      found.password = entry.password ?? '';
    }
    if (entry.identitytoken) found.identityToken = entry.identitytoken;
    if (found.username !== undefined || found.identityToken !== undefined) return found;
  }
  return undefined;
}

/** Stores `username:password` under the registry's key in `auths`, keeping the entry's other fields. */
export function setStoredAuth(data: DockerConfigFile, registry: string, credentials: { username: string; password: string }): string {
  const key = configKeyFor(registry);
  const auths = (data.auths ??= {});
  const { username: _u, password: _p, identitytoken: _t, ...rest } = auths[key] ?? {};
  auths[key] = { ...rest, auth: Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64') };
  return key;
}

/**
 * What docker does when a helper holds the secret: an `auths` entry with nothing secret in it
 * (kept so `docker info`-style listings know the registry), and no clear-text leftovers.
 */
export function setHelperPlaceholder(data: DockerConfigFile, registry: string): string {
  const key = configKeyFor(registry);
  const auths = (data.auths ??= {});
  const { auth: _a, username: _u, password: _p, identitytoken: _t, ...rest } = auths[key] ?? {};
  auths[key] = rest;
  return key;
}

/** Removes every `auths` key meaning `registry` (`host`, `https://host`, `http://host`); returns them. */
export function removeStoredAuth(data: DockerConfigFile, registry: string): string[] {
  const keys = matchingKeys(data.auths, registry);
  for (const key of keys) delete data.auths?.[key];
  return keys;
}
