/**
 * The web UI's JSON API (`/api/v1/…`, docs/ui.md): the shapes the server sends and the browser
 * reads. Shared by both sides, so this file imports nothing (the UI is type-checked with the DOM's
 * types, the server with Node's). Times are milliseconds since the epoch; sizes are bytes.
 *
 * Every endpoint answers errors in the registry's own form: `{"errors":[{"code","message"}]}`.
 * Actions (POST, DELETE) need the `X-CSRF-Token` header equal to the session's `csrf`.
 */

/** GET/POST/DELETE /api/v1/session: who the browser is, and what this server lets it do. */
export interface SessionInfo {
  /** The logged-in user; null when anonymous (or authentication is off). */
  user: string | null;
  /** Send as `X-CSRF-Token` on every POST and DELETE. */
  csrf: string;
  /** Authentication is on: without a login only what anonymous may pull is shown. */
  auth: boolean;
  /** The UI can log in here (the registry issues its own tokens). */
  login: boolean;
  /** Anonymous may browse (auth off, or some repositories allow anonymous pull). */
  anonymousBrowse: boolean;
  /** May run a GC dry run (an admin, or everyone when authentication is off). */
  admin: boolean;
  /** Deletes are enabled on this registry (not --no-delete, not --read-only). */
  deleteEnabled: boolean;
  /** The registry's host[:port] as the browser reached it: for `docker pull <host>/<name>:<tag>` lines. */
  registryHost: string;
  /** Mirror mode is on: the mirror view has something to show. */
  mirror: boolean;
}

/** POST /api/v1/session body (JSON). 401 on wrong credentials, 429 + Retry-After after too many. */
export interface LoginRequest {
  username: string;
  password: string;
}

export interface RepositorySummary {
  name: string;
  /** Tags in the repository. */
  tags: number;
  /** Bytes it holds: every blob linked there once, plus its manifests. */
  size: number;
  /** When a tag last moved there (a push), or its newest manifest; null when empty. */
  lastPush: number | null;
  /** A mirror's cached copy of an upstream repository (read-only). */
  cached: boolean;
}

/** GET /api/v1/repositories?filter=&offset=&limit= (limit ≤ 200, default 50): names containing `filter`, in lexical order, only those the caller may pull. */
export interface RepositoryPage {
  repositories: RepositorySummary[];
  /** Repositories matching the filter that the caller may see, over all pages. */
  total: number;
  offset: number;
  limit: number;
}

export type TagSort = 'pushed' | 'name' | 'size' | 'created' | 'digest' | 'platforms';

export interface TagSummary {
  tag: string;
  digest: string;
  mediaType: string;
  /** The manifest plus what it references: config and layers; for an index, the sum over its images. */
  size: number;
  /** `os/architecture[/variant]` of each image: one for an image, several for an index, none for an artifact. */
  platforms: string[];
  /** The image config's `created` (ISO 8601 as written there), when it has one; for an index, the newest of its images. */
  created: string | null;
  /** When the tag last moved (the push). */
  pushed: number;
}

/** GET /api/v1/repositories/<name>/tags?sort=&order=&offset=&limit=: sort by pushed, name, size, created, digest or platforms; default pushed, order desc (newest first). 404 NAME_UNKNOWN when absent or not visible. */
export interface TagPage {
  name: string;
  tags: TagSummary[];
  total: number;
  offset: number;
  limit: number;
  sort: TagSort;
  order: 'asc' | 'desc';
  /** The caller may delete here (and deletes are enabled). */
  mayDelete: boolean;
  cached: boolean;
}

export interface LayerInfo {
  digest: string;
  mediaType: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created: string | null;
  createdBy: string | null;
  comment: string | null;
  emptyLayer: boolean;
}

/** The image config, as far as people read it. */
export interface ConfigInfo {
  digest: string;
  mediaType: string;
  size: number;
  created: string | null;
  author: string | null;
  os: string | null;
  architecture: string | null;
  variant: string | null;
  env: string[];
  entrypoint: string[] | null;
  cmd: string[] | null;
  workingDir: string | null;
  user: string | null;
  exposedPorts: string[];
  labels: Record<string, string>;
  history: HistoryEntry[];
}

/** One image of an index. */
export interface PlatformEntry {
  digest: string;
  mediaType: string;
  size: number;
  /** `os/architecture[/variant]`, or `unknown/unknown` (attestations). */
  platform: string;
}

export interface ReferrerEntry {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  size: number;
  annotations: Record<string, string>;
}

/** GET /api/v1/repositories/<name>/manifests/<tag|digest>. 404 MANIFEST_UNKNOWN / NAME_UNKNOWN. */
export interface ManifestDetail {
  name: string;
  digest: string;
  mediaType: string;
  /** The manifest's own size. */
  size: number;
  /** Manifest plus referenced blobs (as TagSummary.size). */
  totalSize: number;
  /** As TagSummary.created: the config's, or for an index its newest image's. */
  created: string | null;
  kind: 'image' | 'index' | 'artifact';
  /** Tags in this repository that name this manifest. */
  tags: string[];
  artifactType: string | null;
  annotations: Record<string, string>;
  subject: string | null;
  /** Images and artifacts: their layers (blobs), in order. */
  layers: LayerInfo[];
  /** Images: the parsed config; null for indexes and for artifacts without an image config. */
  config: ConfigInfo | null;
  /** Indexes: the manifests they list, with platforms. */
  platforms: PlatformEntry[];
  /** Manifests whose subject is this one: signatures, SBOMs, attestations. */
  referrers: ReferrerEntry[];
  /** The manifest's JSON, pretty-printed. */
  raw: string;
  mayDelete: boolean;
  cached: boolean;
}

/** DELETE /api/v1/repositories/<name>/tags/<tag> and DELETE /api/v1/repositories/<name>/manifests/<digest>: 200 with this. */
export interface DeleteResult {
  deleted: string;
}

export interface UpstreamView {
  /** The upstream's registry host (`docker.io`), its path prefix here, and its URL. */
  host: string;
  prefix: string;
  url: string;
  /** Unprefixed names go here (Docker's registry-mirrors). */
  default: boolean;
  /** Milliseconds a cached tag is served before a HEAD revalidates it. */
  tagTtl: number;
  /** Cached repositories under the prefix, and the bytes their manifests and blobs hold (a blob shared with another upstream counts in both). */
  repositories: number;
  cacheBytes: number;
  /** Since this server process started: requests answered from the cache, and ones that went upstream. */
  hits: number;
  misses: number;
  /** hits / (hits + misses); null before any request. */
  hitRatio: number | null;
  staleServes: number;
  /** Cached tags past their TTL (the next pull revalidates them), or never confirmed. */
  staleTags: number;
}

/** GET /api/v1/mirror */
export interface MirrorView {
  upstreams: UpstreamView[];
  /** Bytes the whole cache holds (each blob once), and its configured maximum (null: unlimited). */
  cacheBytes: number;
  cacheMaxSize: number | null;
}

export interface CachedTagView {
  repository: string;
  tag: string;
  digest: string;
  /** When the tag last moved in the cache. */
  updatedAt: number;
  /** When the upstream last confirmed it (fetch or HEAD); null when never. */
  checkedAt: number | null;
  /** Past its TTL, or never confirmed. */
  stale: boolean;
}

/** GET /api/v1/mirror/tags?upstream=<host>&stale=true&offset=&limit=: cached tags the caller may pull, stalest first. */
export interface CachedTagPage {
  upstream: string;
  tags: CachedTagView[];
  total: number;
  offset: number;
  limit: number;
}

export interface GcRow {
  kind: 'tag' | 'manifest' | 'blob';
  repository: string | null;
  target: string;
  size: number | null;
  reason: string;
}

/** POST /api/v1/gc/dry-run (admins): what a collection cycle would delete now; nothing is deleted. */
export interface GcDryRun {
  rows: GcRow[];
  reviewed: number;
  /** Blobs in their grace period, and links that would be pruned. */
  later: number;
  prunedLinks: number;
  freedBytes: number;
  queued: number;
  ms: number;
}
