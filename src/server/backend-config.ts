import { parseDuration, parseSize } from './units.ts';

/**
 * Where the registry keeps its blobs and metadata, and what its replicas share (docs/scale-out.md).
 * Absent, everything is embedded under `data`: blobs on the filesystem, metadata in SQLite.
 */
export interface S3StorageConfig {
  /** `http(s)://host:port` of the S3 API; absent: AWS's endpoint for `region`. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Both or neither; neither: the AWS SDK's default chain (AWS_ACCESS_KEY_ID…, profiles, instance roles). */
  accessKey?: string;
  secretKey?: string;
  /** Path-style addressing (`endpoint/bucket/key`): what radosgw and MinIO need (default true with an endpoint). */
  forcePathStyle: boolean;
  /** Every key starts with it, so one bucket can hold several registries (e.g. `registry/`). */
  prefix: string;
  /** Bytes of each multipart part, also what one upload holds in memory at most (default 8 MiB, at least 5 MiB). */
  partSize: number;
  /**
   * Blob GETs answered 307 to a presigned URL valid this many milliseconds (default 20 minutes, as the
   * CNCF registry's S3 driver); absent (`redirect: false`): the replica sends the bytes itself, for
   * clients that cannot reach the S3 endpoint.
   */
  redirect?: number;
}

export interface StorageConfig {
  s3: S3StorageConfig;
}

export interface PostgresMetadataConfig {
  /** `postgres://user:password@host:port/database`; libpq's PG* variables fill what it leaves out. */
  url: string;
  /** Connections per replica (default 10). */
  poolSize: number;
}

export interface MetadataConfig {
  postgres: PostgresMetadataConfig;
}

export interface RedisConfig {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. */
  url: string;
  /** Every key starts with it (default `skiff:`), so one Redis can serve several registries. */
  prefix: string;
}

type Parsed<T> = { value: T } | { problem: string };

/** A mapping with only `known` keys, else one problem line per unknown key. */
function mapping(v: unknown, known: string[]): Parsed<Record<string, unknown>> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: `expected a mapping with ${known.join(', ')}` };
  const unknown = Object.keys(v).filter((key) => !known.includes(key));
  if (unknown.length > 0) return { problem: unknown.map((key) => `.${key}: unknown setting (known: ${known.join(', ')})`).join('\n') };
  return { value: v as Record<string, unknown> };
}

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.trim().length > 0;

function urlWithScheme(v: unknown, schemes: string[]): string | undefined {
  if (!nonEmpty(v)) return undefined;
  try {
    return schemes.includes(new URL(v).protocol) ? v : undefined;
  } catch {
    return undefined;
  }
}

const MIN_PART = 5 * 1024 * 1024;
/**
 * Presigned blob redirects by default, as the CNCF registry's S3 driver: a pull then reads the bytes
 * from S3 itself, not through a replica (measured: 200 MiB pulled with skopeo 0.91× the CNCF
 * registry's time with redirects, 1.07× through the replica; bench/README.md "scale-out").
 */
const DEFAULT_REDIRECT_MS = 20 * 60_000;
/** S3's limit on parts: 10,000 parts of 5 GiB at most. */
const MAX_PART = 5 * 1024 ** 3;

/** `storage:` — `{ s3: {...} }`; the filesystem under `data` when absent. */
export function parseStorage(v: unknown): Parsed<StorageConfig> {
  const top = mapping(v, ['s3']);
  if ('problem' in top) return top;
  if (top.value.s3 === undefined) return { problem: 'expected s3: {...} (leave storage out for blobs on the filesystem under data)' };
  const fields = mapping(top.value.s3, ['endpoint', 'region', 'bucket', 'accessKey', 'secretKey', 'forcePathStyle', 'prefix', 'partSize', 'redirect']);
  if ('problem' in fields) return { problem: fields.problem.split('\n').map((line) => `.s3${line.startsWith('.') ? '' : ': '}${line}`).join('\n') };
  const input = fields.value;
  const problems: string[] = [];
  const out: Partial<S3StorageConfig> = { region: 'us-east-1', prefix: '', partSize: 8 * 1024 * 1024, redirect: DEFAULT_REDIRECT_MS };
  if (input.endpoint !== undefined) {
    const endpoint = urlWithScheme(input.endpoint, ['http:', 'https:']);
    if (endpoint === undefined) problems.push('.s3.endpoint: expected an http:// or https:// URL such as http://127.0.0.1:7480');
    else out.endpoint = endpoint.replace(/\/+$/, '');
  }
  if (input.region !== undefined) {
    if (!nonEmpty(input.region)) problems.push('.s3.region: must be a region name such as us-east-1');
    else out.region = input.region;
  }
  // Bucket names: S3's rules (3–63 of lower-case letters, digits, dots and hyphens).
  if (!(typeof input.bucket === 'string' && /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(input.bucket))) problems.push('.s3.bucket: required: a bucket name of 3–63 lower-case letters, digits, dots and hyphens');
  else out.bucket = input.bucket;
  if ((input.accessKey === undefined) !== (input.secretKey === undefined)) problems.push('.s3: accessKey and secretKey go together (leave both out for the AWS SDK default credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles)');
  else if (input.accessKey !== undefined) {
    if (!nonEmpty(input.accessKey) || !nonEmpty(input.secretKey)) problems.push('.s3: accessKey and secretKey must be non-empty strings');
    else {
      out.accessKey = input.accessKey;
      out.secretKey = input.secretKey as string;
    }
  }
  if (input.forcePathStyle !== undefined && typeof input.forcePathStyle !== 'boolean') problems.push('.s3.forcePathStyle: must be true or false');
  out.forcePathStyle = typeof input.forcePathStyle === 'boolean' ? input.forcePathStyle : out.endpoint !== undefined;
  if (input.prefix !== undefined) {
    if (typeof input.prefix !== 'string' || !/^([A-Za-z0-9._-]+\/)*$/.test(input.prefix) || input.prefix.split('/').some((part) => part === '.' || part === '..')) problems.push('.s3.prefix: expected key folders ending in a slash, such as registry/ (letters, digits, . _ -)');
    else out.prefix = input.prefix;
  }
  if (input.partSize !== undefined) {
    const size = parseSize(input.partSize);
    if (size === undefined || 'percent' in size || size.bytes < MIN_PART || size.bytes > MAX_PART) problems.push('.s3.partSize: expected a size from 5MiB to 5GiB, such as 16MiB');
    else out.partSize = size.bytes;
  }
  if (input.redirect === false) delete out.redirect;
  else if (input.redirect !== undefined) {
    const ms = parseDuration(input.redirect);
    // SigV4 presigned URLs live at most 7 days.
    if (ms === undefined || ms < 1000 || ms > 7 * 24 * 3600_000) problems.push('.s3.redirect: expected how long a presigned URL stays valid, from 1s to 7d, such as 20m (or false)');
    else out.redirect = ms;
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: { s3: out as S3StorageConfig } };
}

/** `metadata:` — `{ postgres: { url, poolSize } }`; SQLite under `data` when absent. */
export function parseMetadata(v: unknown): Parsed<MetadataConfig> {
  const top = mapping(v, ['postgres']);
  if ('problem' in top) return top;
  if (top.value.postgres === undefined) return { problem: 'expected postgres: {url: ...} (leave metadata out for SQLite under data)' };
  const fields = mapping(top.value.postgres, ['url', 'poolSize']);
  if ('problem' in fields) return { problem: fields.problem.split('\n').map((line) => `.postgres${line.startsWith('.') ? '' : ': '}${line}`).join('\n') };
  const problems: string[] = [];
  const url = urlWithScheme(fields.value.url, ['postgres:', 'postgresql:']);
  if (url === undefined) problems.push('.postgres.url: required: a URL such as postgres://skiff:secret@127.0.0.1:5432/registry');
  const poolSize = fields.value.poolSize ?? 10;
  if (!(typeof poolSize === 'number' && Number.isInteger(poolSize) && poolSize >= 2 && poolSize <= 1000)) problems.push('.postgres.poolSize: must be a whole number of connections from 2 to 1000');
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: { postgres: { url: url!, poolSize: poolSize as number } } };
}

/** `redis:` — `{ url, prefix }` or just the URL. */
export function parseRedis(v: unknown): Parsed<RedisConfig> {
  const fields = typeof v === 'string' ? { value: { url: v } as Record<string, unknown> } : mapping(v, ['url', 'prefix']);
  if ('problem' in fields) return fields;
  const problems: string[] = [];
  const url = urlWithScheme(fields.value.url, ['redis:', 'rediss:']);
  if (url === undefined) problems.push('.url: required: a URL such as redis://127.0.0.1:6379/0');
  const prefix = fields.value.prefix ?? 'skiff:';
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9:._-]{1,64}$/.test(prefix)) problems.push('.prefix: expected up to 64 letters, digits and : . _ -, such as skiff:');
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: { url: url!, prefix: prefix as string } };
}
