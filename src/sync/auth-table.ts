import { ConfigError } from '../errors/config-error.ts';
import { DOCKER_HUB_DOMAIN } from '../reference/reference.ts';
import { expandEnv } from './env-expand.ts';

/** One entry of image-syncer's auth.json: credentials and whether the registry speaks plain HTTP. */
export interface AuthEntry {
  username?: string;
  password?: string;
  insecure?: boolean;
}

const FIELDS = new Set(['username', 'password', 'insecure']);
/** Names users write for Docker Hub; skiff's references say `docker.io`. */
const DOCKER_HUB_ALIASES = ['registry.hub.docker.com', 'registry-1.docker.io', 'index.docker.io', 'hub.docker.com'];

function normalizeKey(key: string): string {
  const trimmed = key.replace(/^https?:\/\//, '').replace(/\/+$/, '');
  const slash = trimmed.indexOf('/');
  const host = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const rest = slash === -1 ? '' : trimmed.slice(slash);
  return `${DOCKER_HUB_ALIASES.includes(host) ? DOCKER_HUB_DOMAIN : host}${rest}`;
}

/**
 * auth.json: keys are `registry` or `registry/namespace`, and the longest key that is a prefix
 * (on a path boundary) of `registry/repository` wins.
 */
export class AuthTable {
  private readonly entries: [string, AuthEntry][];
  /** The file the entries came from, for messages; undefined when no auth file was given. */
  readonly file: string | undefined;

  constructor(entries: Record<string, AuthEntry> = {}, file?: string) {
    this.file = file;
    this.entries = Object.entries(entries)
      .map(([key, entry]): [string, AuthEntry] => [normalizeKey(key), entry])
      .sort((a, b) => b[0].length - a[0].length);
  }

  /** Validates a parsed auth document; errors name the file and key. */
  static parse(document: Record<string, unknown>, file: string, env: NodeJS.ProcessEnv = process.env): AuthTable {
    const entries: Record<string, AuthEntry> = {};
    for (const [key, value] of Object.entries(document)) {
      const where = `${file}: key ${JSON.stringify(key)}`;
      if (key.trim() === '') throw new ConfigError(`${where}: the registry key is empty`);
      // A YAML key with nothing after it (`docker.io:`) is null; image-syncer's decoder reads it as an empty entry.
      if (value !== null && (typeof value !== 'object' || Array.isArray(value))) throw new ConfigError(`${where}: expected {"username", "password", "insecure"}, got ${JSON.stringify(value)}`);
      const entry: AuthEntry = {};
      for (const [field, fieldValue] of Object.entries((value ?? {}) as Record<string, unknown>)) {
        if (!FIELDS.has(field)) throw new ConfigError(`${where}: unknown field ${JSON.stringify(field)} (expected username, password, insecure)`);
        // `username:` left empty in YAML (often an unset shell variable in a heredoc) is null: unset, as in image-syncer.
        if (fieldValue === null) continue;
        if (field === 'insecure') {
          if (typeof fieldValue !== 'boolean') throw new ConfigError(`${where}: "insecure" must be true or false`);
          entry.insecure = fieldValue;
        } else {
          if (typeof fieldValue !== 'string') throw new ConfigError(`${where}: "${field}" must be a string`);
          entry[field as 'username' | 'password'] = expandEnv(fieldValue, env);
        }
      }
      entries[key] = entry;
    }
    return new AuthTable(entries, file);
  }

  /** The entry for `registry/repository`, longest prefix first. */
  lookup(registry: string, repository: string): AuthEntry | undefined {
    return this.keyFor(registry, repository)?.[1];
  }

  /** The (normalized) key whose entry `lookup` gives, with that entry. */
  keyFor(registry: string, repository: string): [key: string, entry: AuthEntry] | undefined {
    // Keys are normalized (registry-1.docker.io → docker.io), so the queried host must be too.
    const full = `${normalizeKey(registry)}/${repository}`;
    return this.entries.find(([key]) => full === key || full.startsWith(`${key}/`));
  }

  /** Whether any entry for this registry marks it insecure (plain HTTP). */
  insecure(registry: string): boolean {
    const host = normalizeKey(registry);
    return this.entries.some(([key, entry]) => entry.insecure === true && (key === host || key.startsWith(`${host}/`)));
  }

  /** Credentials only when both are non-empty, as image-syncer does; otherwise undefined. */
  credentials(registry: string, repository: string): { username: string; password: string } | undefined {
    const entry = this.lookup(registry, repository);
    return entry?.username && entry.password ? { username: entry.username, password: entry.password } : undefined;
  }

  /** Whether auth.json has an entry covering this repository (then docker's config is not consulted). */
  covers(registry: string, repository: string): boolean {
    return this.lookup(registry, repository) !== undefined;
  }
}
