import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../errors/config-error.ts';
import type { UpstreamConfig } from '../proxy/upstream-config.ts';
import { parseDuration, parseSize, type FreeSpaceRule } from './units.ts';
import { configuredUpstreams, parseProxy, parseUpstreamList } from './upstream-config.ts';
import { parseAccessConfig, type AccessConfig } from '../auth/access-policy.ts';
import type { LoginLimits } from '../auth/login-limiter.ts';
import { parseExternalToken, parseFailedLogins, parseTokenService, type ExternalTokenConfig, type TokenServiceConfig } from './auth-config.ts';
import type { GcSettings } from './gc/cycle.ts';
import { parseRetentionRules } from './gc/retention.ts';
import { parseQuotas, type QuotaRule } from './quota.ts';
import { parseMetadata, parseRedis, parseStorage, type MetadataConfig, type RedisConfig, type StorageConfig } from './backend-config.ts';

/** Every `skiff serve` setting; each flag has the same key in the YAML file. */
export interface ServeConfig {
  listen: string;
  data: string;
  delete: boolean;
  readOnly: boolean;
  /** The web UI at `/` and its JSON API under `/api/v1/` (docs/ui.md); `--no-ui` turns both off. */
  ui: boolean;
  logLevel: LogLevel;
  /** Milliseconds for the request line and headers to arrive. */
  headersTimeout: number;
  /** Milliseconds a request body or a response may move no byte before the connection is cut. */
  idleTimeout: number;
  /** Milliseconds an idle keep-alive connection is kept between requests. */
  keepAliveTimeout: number;
  /** Open connections beyond this are answered 503 with Retry-After and closed. */
  maxConnections: number;
  /** /healthz reports unavailable while the data directory's free space is below this. */
  minFreeSpace: FreeSpaceRule;
  /** Upload sessions with no request for this many milliseconds are purged. */
  uploadExpiry: number;
  /** Bytes of read buffers all blob responses together may hold. */
  sendBufferMemory: number;
  /** Bytes all manifest bodies being received together may hold. */
  manifestBodyMemory: number;
  /** Mirror mode: the URL of the default upstream (`--proxy`); unprefixed names are pulled through it. */
  proxy?: string;
  /** Mirror mode: the upstream registries pulled through (YAML only). See docs/mirror.md. */
  upstreams?: UpstreamConfig[];
  /** Mirror mode: bytes the cache may hold before its least recently used images are evicted; unlimited when absent. */
  cacheMaxSize?: number;
  /**
   * Blob offload to an nginx in front: a GET of a blob committed in the store is answered with
   * `X-Accel-Redirect: <prefix>/<path under <data>/blobs/>` and no body (docs/serve.md).
   */
  xAccelRedirect?: string;
  /** Authentication: an htpasswd file of bcrypt entries (docs/auth.md). */
  htpasswd?: string;
  /** The challenge clients get: `token` (the built-in token service, default) or `basic`. */
  authScheme?: 'token' | 'basic';
  /** Anonymous requests may pull every repository (rules may grant more). */
  anonymousPull?: boolean;
  /** The built-in token service's settings (YAML only). */
  token?: Partial<TokenServiceConfig>;
  /** Tokens from an external issuer instead, the CNCF registry's `auth.token` way (YAML only). */
  externalToken?: ExternalTokenConfig;
  /** Users, groups and per-repository rules (YAML only). */
  access?: AccessConfig;
  /** Failed-login bounds (YAML only): perUser, perAddress, window. */
  failedLogins?: LoginLimits;
  /** HTTPS: certificate chain (PEM); reloaded with the key on SIGHUP. */
  tlsCert?: string;
  /** HTTPS: private key (PEM). */
  tlsKey?: string;
  /** Allow authentication over plain HTTP on a non-loopback address (TLS ends at a proxy in front). */
  insecureHttp: boolean;
  /** Garbage collection: `interval` (0: off) and `grace` in ms, and retention rules (docs/gc.md). */
  gc: GcSettings;
  /** Repository size limits (YAML only): the first rule whose globs match a repository gives its maximum (docs/gc.md). */
  quotas?: QuotaRule[];
  /** Blobs in S3-compatible object storage instead of under `data` (YAML only; docs/scale-out.md). */
  storage?: StorageConfig;
  /** Metadata in PostgreSQL instead of SQLite under `data` (YAML only; docs/scale-out.md). */
  metadata?: MetadataConfig;
  /** What replicas share through Redis: upload locks, the mirror's fetches, login counters (YAML only). */
  redis?: RedisConfig;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];
const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]*):(\d{1,5})$/;

export function defaultDataDir(): string {
  if (process.env.SKIFF_DATA) return process.env.SKIFF_DATA;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'skiff-registry');
}


type Parsed<T> = { value: T } | { problem: string };
const ok = <T>(value: T): Parsed<T> => ({ value });
const problem = (text: string): Parsed<never> => ({ problem: text });

function durationField(min: number): (v: unknown) => Parsed<number> {
  return (v) => {
    const ms = parseDuration(v);
    if (ms === undefined) return problem('expected a duration such as 30s, 5m, 24h or 7d (a bare number is seconds)');
    return ms >= min ? ok(ms) : problem(`must be at least ${min} ms`);
  };
}

function sizeField(min: number): (v: unknown) => Parsed<number> {
  return (v) => {
    const size = parseSize(v);
    if (size === undefined || 'percent' in size) return problem('expected a size such as 512KiB, 64MiB or 1GiB (a bare number is bytes)');
    return size.bytes >= min ? ok(size.bytes) : problem(`must be at least ${min} bytes`);
  };
}

/**
 * The schema, as parsers that say what is wrong. Hand-written rather than zod: a dozen keys did
 * not justify the ~18 MiB of resident memory zod adds to a server that must stay small.
 */
const FIELDS: { [K in keyof ServeConfig]: (value: unknown) => Parsed<ServeConfig[K]> } = {
  listen: (v) => {
    if (typeof v !== 'string') return problem('must be a string host:port');
    const match = LISTEN.exec(v);
    return match && Number(match[2]) <= 65535 ? ok(v) : problem('expected host:port, e.g. 127.0.0.1:5000 or [::1]:5000');
  },
  data: (v) => (typeof v === 'string' && v.length > 0 ? ok(v) : problem('must be a non-empty directory path')),
  delete: (v) => (typeof v === 'boolean' ? ok(v) : problem('must be true or false')),
  readOnly: (v) => (typeof v === 'boolean' ? ok(v) : problem('must be true or false')),
  ui: (v) => (typeof v === 'boolean' ? ok(v) : problem('must be true or false')),
  logLevel: (v) => ((LOG_LEVELS as readonly unknown[]).includes(v) ? ok(v as LogLevel) : problem(`must be one of ${LOG_LEVELS.join(', ')}`)),
  headersTimeout: durationField(100),
  idleTimeout: durationField(100),
  keepAliveTimeout: durationField(100),
  maxConnections: (v) => {
    const n = typeof v === 'string' && /^\d{1,9}$/.test(v) ? Number(v) : v;
    return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? ok(n) : problem('must be a whole number of connections, at least 1');
  },
  minFreeSpace: (v) => parseSizeOrPercent(v),
  uploadExpiry: durationField(1000),
  sendBufferMemory: sizeField(1024 * 1024),
  manifestBodyMemory: sizeField(4 * 1024 * 1024),
  proxy: parseProxy,
  upstreams: parseUpstreamList,
  cacheMaxSize: sizeField(1024 * 1024),
  xAccelRedirect: parseAccelPrefix,
  htpasswd: nonEmptyPath,
  authScheme: (v) => (v === 'token' || v === 'basic' ? ok(v) : problem('must be token or basic')),
  anonymousPull: (v) => (typeof v === 'boolean' ? ok(v) : problem('must be true or false')),
  token: parseTokenService,
  externalToken: parseExternalToken,
  access: parseAccessConfig,
  failedLogins: parseFailedLogins,
  tlsCert: nonEmptyPath,
  tlsKey: nonEmptyPath,
  insecureHttp: (v) => (typeof v === 'boolean' ? ok(v) : problem('must be true or false')),
  gc: parseGcSettings,
  quotas: parseQuotas,
  storage: parseStorage,
  metadata: parseMetadata,
  redis: parseRedis,
};

/** `gc:` {interval, grace, retention}; flags give interval and grace, merged into the file's section. */
function parseGcSettings(v: unknown): Parsed<GcSettings> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return problem('expected a mapping with interval, grace and retention');
  const input = v as Record<string, unknown>;
  const out: Partial<GcSettings> = {};
  const problems: string[] = [];
  for (const key of Object.keys(input)) if (!['interval', 'grace', 'retention'].includes(key)) problems.push(`.${key}: unknown setting (known: interval, grace, retention)`);
  if (input.interval !== undefined) {
    const ms = parseDuration(input.interval);
    if (ms === undefined || (ms !== 0 && ms < 1000)) problems.push('.interval: expected a duration of at least 1s, such as 1h (0 turns the background collector off)');
    else out.interval = ms;
  }
  if (input.grace !== undefined) {
    const ms = parseDuration(input.grace);
    if (ms === undefined) problems.push('.grace: expected a duration such as 24h (0s collects at once)');
    else out.grace = ms;
  }
  if (input.retention !== undefined) {
    const parsed = parseRetentionRules(input.retention);
    if ('problem' in parsed) problems.push(...parsed.problem.split('\n').map((line) => `.retention${line}`));
    else out.retention = parsed.value;
  }
  return problems.length > 0 ? problem(problems.join('\n')) : ok(out as GcSettings);
}

function nonEmptyPath(v: unknown): Parsed<string> {
  return typeof v === 'string' && v.length > 0 ? ok(v) : problem('must be a non-empty file path');
}

/**
 * An nginx location prefix such as `/_skiff_blobs`: an absolute URI path of plain segments (none
 * starts with a dot, nothing to percent-encode), never under /v2/, where it would shadow the registry's API.
 */
function parseAccelPrefix(v: unknown): Parsed<string> {
  const prefix = typeof v === 'string' ? v.replace(/\/+$/, '') : undefined;
  if (prefix === undefined || !/^(\/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+$/.test(prefix)) {
    return problem('expected a URI path such as /_skiff_blobs: the internal nginx location that aliases <data>/blobs/');
  }
  if (/^\/v2(\/|$)/.test(prefix)) return problem(`${prefix} is under /v2/, the registry's own API; choose a path such as /_skiff_blobs`);
  return ok(prefix);
}

function parseSizeOrPercent(v: unknown): Parsed<FreeSpaceRule> {
  const size = parseSize(v, { percent: true });
  return size === undefined ? problem('expected a size such as 1GiB or 500MiB, or a share of the disk such as 1%') : ok(size);
}

/**
 * Defaults. maxConnections: half of the open-file limit (a connection serving a blob holds a
 * socket and a file), less a reserve for the database, logs and ingest files.
 */
function defaults(): Omit<ServeConfig, 'data'> {
  return {
    listen: '127.0.0.1:5000',
    delete: true,
    readOnly: false,
    ui: true,
    logLevel: 'info',
    headersTimeout: 30_000,
    idleTimeout: 60_000,
    keepAliveTimeout: 30_000,
    maxConnections: Math.max(64, Math.floor((openFileLimit() - 256) / 2)),
    minFreeSpace: { bytes: 1024 ** 3, orPercent: 1 },
    uploadExpiry: 24 * 3600_000,
    sendBufferMemory: 16 * 1024 * 1024,
    manifestBodyMemory: 64 * 1024 * 1024,
    insecureHttp: false,
    gc: { interval: 3600_000, grace: 24 * 3600_000 },
  };
}

/** The soft RLIMIT_NOFILE, read from /proc (Node has no getrlimit); 1024 when unknown. */
export function openFileLimit(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (match) return match[1] === 'unlimited' ? 1_048_576 : Number(match[1]);
  } catch {
    // not Linux: fall through
  }
  return 1024;
}

function check(values: Record<string, unknown>, where: string, into: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const parse = Object.hasOwn(FIELDS, key) ? (FIELDS[key as keyof ServeConfig] as (v: unknown) => Parsed<unknown>) : undefined;
    if (!parse) {
      problems.push(`${where}: ${key}: unknown setting (known: ${Object.keys(FIELDS).join(', ')})`);
      continue;
    }
    const parsed = parse(value);
    // A list's problems come one per line, each naming its entry: `upstreams[1].url: …`.
    if ('problem' in parsed) for (const line of parsed.problem.split('\n')) problems.push(`${where}: ${key}${line.startsWith('[') || line.startsWith('.') ? '' : ': '}${line}`);
    // gc: a flag (--gc-interval) fills in the file's section instead of replacing it.
    else into[key] = key === 'gc' ? { ...(into.gc as object), ...(parsed.value as object) } : parsed.value;
  }
  return problems;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read: ${(error as Error).message}`);
  }
  const { parse } = await import('yaml'); // loaded only when a file is given
  let parsed: unknown;
  try {
    parsed = parse(text) ?? {};
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a mapping of settings`);
  return expandVariables(parsed, file, '') as Record<string, unknown>;
}

/**
 * `${NAME}` in a string value is the environment variable NAME, so secrets stay out of the file
 * (`secretKey: ${S3_SECRET_KEY}`, `url: postgres://skiff:${PG_PASSWORD}@db/registry`). Only the
 * braced form: a bare `$` (in a password, a regex) is left alone. A variable that is not set is an
 * error naming the key, never a silent empty string.
 */
function expandVariables(value: unknown, file: string, key: string): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = process.env[name];
      if (found === undefined) throw new ConfigError(`${file}: ${key}: \${${name}} names an environment variable that is not set`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => expandVariables(item, file, `${key}[${i}]`));
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandVariables(v, file, key ? `${key}.${k}` : k)]));
  return value;
}

/** Flags beat the file; the file beats defaults. Errors name the file (or "flags"), the key and why. */
export async function resolveServeConfig(flags: Record<string, unknown>, file?: string): Promise<ServeConfig> {
  const fromFile = file !== undefined ? await readConfigFile(file) : {};
  const fromFlags = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const resolved: Record<string, unknown> = { ...defaults(), data: defaultDataDir() };
  const problems = [...check(fromFile, file ?? '', resolved), ...check(fromFlags, 'flags', resolved)];
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  configuredUpstreams(resolved, fromFlags.proxy !== undefined ? 'flags' : (file ?? 'flags'));
  if ((resolved.tlsCert === undefined) !== (resolved.tlsKey === undefined)) throw new ConfigError('tlsCert and tlsKey (--tls-cert, --tls-key) go together: give both or neither');
  if (resolved.htpasswd !== undefined && resolved.externalToken !== undefined && resolved.authScheme === 'basic') throw new ConfigError('authScheme basic does not fit externalToken: clients of an external issuer need a Bearer challenge');
  checkBackends(resolved as unknown as ServeConfig, file ?? 'flags');
  return resolved as unknown as ServeConfig;
}

/** Settings that do not fit the chosen storage: said at start, not found out by a replica in use. */
function checkBackends(config: ServeConfig, where: string): void {
  if (config.storage && config.xAccelRedirect !== undefined) {
    throw new ConfigError(`${where}: xAccelRedirect hands nginx a file under data/blobs, which storage: s3 does not have; use storage.s3.redirect (presigned URLs) instead`);
  }
  // Replicas that each made their own signing key would refuse each other's tokens.
  if (config.metadata && config.htpasswd !== undefined && config.externalToken === undefined && config.authScheme !== 'basic' && config.token?.key === undefined) {
    throw new ConfigError(`${where}: token.key: required with metadata: postgres, so that every replica signs and checks tokens with the same key (a PEM file they all read, e.g. from openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out token-key.pem)`);
  }
}

/** A full config from a few settings, for tests and embedders: the same defaults as the CLI. */
export function serveConfig(settings: Partial<ServeConfig> & Pick<ServeConfig, 'data'>): ServeConfig {
  return { ...defaults(), ...settings };
}

export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(listen.slice(colon + 1)) };
}
