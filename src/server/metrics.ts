import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type Metric } from 'prom-client';

/**
 * Route names for the `route` label: the router's name for the endpoint a request reached, never
 * its path, so the number of series stays bounded whatever clients send.
 */
export type RouteName = 'base' | 'catalog' | 'tags' | 'manifest' | 'upload' | 'blob' | 'referrers' | 'healthz' | 'metrics' | 'token' | 'ui' | 'api' | 'unknown';

/** What the mirror serves or fetches; the `kind` label of the mirror's metrics. */
export type MirrorKind = 'manifest' | 'blob' | 'tags' | 'catalog';

/**
 * The mirror's counters. Plain calls, so the mirror does not depend on prom-client (and a test
 * can pass `noMirrorMetrics`). `upstream` is the configured upstream's name (e.g. `docker.io`),
 * never a value a client chose, so the label stays bounded.
 */
export interface MirrorMetrics {
  /** Served from the cache without fetching the content (a tag within its TTL or revalidated unchanged, a stored blob). */
  hit(kind: MirrorKind): void;
  /** Not in the cache (or a tag that moved): the content is fetched, or a fill already running is joined. */
  miss(kind: MirrorKind): void;
  /** One request sent upstream: a GET of a blob or manifest (each resumed open is one more), a HEAD revalidation, a tags or catalog pass-through. */
  upstreamRequest(upstream: string, kind: MirrorKind, method: 'GET' | 'HEAD'): void;
  /** Body bytes received from an upstream, whether or not they ended in the cache. */
  upstreamBytes(upstream: string, bytes: number): void;
  /** An upstream request that failed (unreachable, 5xx, 429, a broken or lying stream). */
  upstreamFailure(upstream: string, kind: MirrorKind): void;
  /** A stale cached copy served because the upstream failed. */
  staleServe(kind: MirrorKind): void;
  /** Blobs (or manifests) removed by the LRU, and their bytes. */
  evicted(bytes: number, count?: number): void;
  /** The cache's size now, in bytes. */
  cacheSize(bytes: number): void;
}

/** One garbage collection cycle's numbers, as the collector reports them. */
export interface GcCycleNumbers {
  reviewed: number;
  deletedBlobs: number;
  freedBytes: number;
  prunedLinks: number;
  deletedManifests: number;
  deletedTags: number;
  seconds: number;
  /** Digests still queued after the cycle. */
  queued: number;
}

export const noMirrorMetrics: MirrorMetrics = {
  hit: () => undefined,
  miss: () => undefined,
  upstreamRequest: () => undefined,
  upstreamBytes: () => undefined,
  upstreamFailure: () => undefined,
  staleServe: () => undefined,
  evicted: () => undefined,
  cacheSize: () => undefined,
};

/**
 * Maps the events of a blob fill (src/proxy/fill.ts `FillEvent`) onto the mirror's counters: each
 * upstream open is one GET, the bytes received count when the fill ends (committed or failed).
 * Typed structurally, as the server may not import the proxy: `onEvent: recordFillEvents(m, 'docker.io')`.
 */
export function recordFillEvents(mirror: MirrorMetrics, upstream: string): (event: { type: string; received?: number }) => void {
  return (event) => {
    if (event.type === 'open') mirror.upstreamRequest(upstream, 'blob', 'GET');
    else if (event.type === 'retry') mirror.upstreamFailure(upstream, 'blob');
    else if (event.type === 'commit' || event.type === 'fail') {
      if (event.received) mirror.upstreamBytes(upstream, event.received);
      if (event.type === 'fail') mirror.upstreamFailure(upstream, 'blob');
    }
  };
}

/** Methods the registry serves; anything else is `other`, so clients cannot mint label values. */
const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);
/** Upload requests that carry (or may carry) bytes of a blob being pushed. */
const UPLOAD_METHODS = new Set(['POST', 'PATCH', 'PUT']);

/** From 1 ms (a cached manifest HEAD) to 5 minutes (a large blob over a slow link). */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const PREFIX = 'skiff_';

let processRegistry: Registry | undefined;

/**
 * Default metrics that list every handle of the process at each scrape: with 5,000 connections
 * open they were a third of a scrape's 25 ms, and say little that skiff_http_connections_open and
 * skiff_process_open_fds do not.
 */
const COSTLY_DEFAULTS = ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources', 'nodejs_active_resources_total'];

/**
 * The process's own metrics (CPU, memory, heap, event-loop lag, GC, open files), with the skiff_
 * prefix. One set per process, shared by every server in it: they describe the process, and
 * prom-client's collectors (an event-loop delay monitor, a GC observer) are never released, so a
 * set per server would pile up in a process that starts many (the tests).
 */
function processMetrics(): Metric[] {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: PREFIX });
    for (const name of COSTLY_DEFAULTS) processRegistry.removeSingleMetric(PREFIX + name);
  }
  return processRegistry.getMetricsAsArray() as unknown as Metric[];
}

interface SocketTally {
  read: number;
  written: number;
}

interface RequestState {
  route: RouteName;
  upload: boolean;
}

export interface ServerMetricsOptions {
  /** Include the process's metrics (default true). */
  processMetrics?: boolean;
}

/** Counts of a summary line: totals since start, or the change over a window. */
export interface MetricsCounts {
  requests: number;
  /** Requests by status class: 2xx, 3xx, 4xx, 5xx. */
  statuses: Record<string, number>;
  incomplete: number;
  receivedBytes: number;
  sentBytes: number;
  connectionsRefused: number;
  mirror: { hits: number; misses: number; upstreamRequests: number; upstreamBytes: number; upstreamFailures: number; staleServes: number; evictions: number; evictedBytes: number };
}

/**
 * The server's metrics, in a registry of its own (never prom-client's global one), served as
 * Prometheus text at GET /metrics. Recording is a few map updates per request; the work of a
 * scrape is rendering the text.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly mirror: MirrorMetrics;

  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly duration: Histogram<'method' | 'route'>;
  private readonly incomplete: Counter<'method' | 'route'>;
  private readonly inFlight: Gauge;
  private readonly uploads: Gauge;
  private readonly received: Counter;
  private readonly sent: Counter;
  private readonly refused: Counter;
  private readonly offloads: Counter;
  private readonly mirrorCounters: {
    hits: Counter<'kind'>;
    misses: Counter<'kind'>;
    upstreamRequests: Counter<'upstream' | 'kind' | 'method'>;
    upstreamBytes: Counter<'upstream'>;
    upstreamFailures: Counter<'upstream' | 'kind'>;
    staleServes: Counter<'kind'>;
    evictions: Counter;
    evictedBytes: Counter;
    cacheSize: Gauge;
  };
  private readonly gcCounters: {
    cycles: Counter<'outcome'>;
    reviewed: Counter;
    deleted: Counter;
    freed: Counter;
    prunedLinks: Counter;
    manifests: Counter;
    tags: Counter;
    duration: Gauge;
    queued: Gauge;
    lastSuccess: Gauge;
  };
  private readonly states = new WeakMap<IncomingMessage, RequestState>();
  /** Sockets with a request seen, and the bytes already counted for each. */
  private readonly sockets = new Map<Socket, SocketTally>();
  private connections: { open(): number } | undefined;

  constructor(options: ServerMetricsOptions = {}) {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name: PREFIX + name, help, labelNames, registers });
    this.requests = counter('http_requests_total', 'HTTP requests answered, by method, route and status code.', ['method', 'route', 'status']);
    this.duration = new Histogram({
      name: `${PREFIX}http_request_duration_seconds`,
      help: 'Time from the request to the last byte of its response, for completed responses (not /metrics itself).',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.incomplete = counter('http_requests_incomplete_total', 'Requests whose response did not complete: the client left, or a stall was cut.', ['method', 'route']);
    this.inFlight = new Gauge({ name: `${PREFIX}http_requests_in_flight`, help: 'Requests received and not yet answered (pipelined ones included).', registers });
    this.uploads = new Gauge({
      name: `${PREFIX}uploads_in_progress`,
      help: 'Upload requests running now (POST, PATCH or PUT on /v2/<name>/blobs/uploads/): the pushes sending bytes.',
      registers,
    });
    this.received = counter('http_received_bytes_total', 'Bytes read from client connections (request lines, headers and bodies).');
    this.sent = counter('http_sent_bytes_total', 'Bytes written to client connections (status lines, headers and bodies).');
    const sockets = this.sockets;
    const flush = this.flushSockets.bind(this);
    const connectionsOpen = () => this.connections?.open();
    new Gauge({
      name: `${PREFIX}http_connections_open`,
      help: 'Client connections open now (those under the maxConnections cap).',
      registers,
      collect: function (this: Gauge) {
        flush(); // byte counters move while long transfers run, not only when they end
        this.set(connectionsOpen() ?? sockets.size);
      },
    });
    this.refused = counter('http_connections_refused_total', 'Connections answered 503 and closed because maxConnections were open.');
    this.offloads = counter('http_blob_offloads_total', 'Blob GETs answered with X-Accel-Redirect and no body, for the nginx in front to send the file (--x-accel-redirect).');

    const c = {
      hits: counter('mirror_cache_hits_total', 'Mirror requests served from the cache, by kind (manifest, blob, tags, catalog).', ['kind']),
      misses: counter('mirror_cache_misses_total', 'Mirror requests not in the cache (fetched upstream, or joined a fetch running), by kind.', ['kind']),
      upstreamRequests: counter('mirror_upstream_requests_total', 'Requests the mirror sent upstream, by upstream, kind and method.', ['upstream', 'kind', 'method']),
      upstreamBytes: counter('mirror_upstream_bytes_total', 'Body bytes received from upstreams.', ['upstream']),
      upstreamFailures: counter('mirror_upstream_failures_total', 'Upstream requests that failed (unreachable, 5xx, 429, broken or corrupt stream).', ['upstream', 'kind']),
      staleServes: counter('mirror_stale_serves_total', 'Stale cached copies served because the upstream failed, by kind.', ['kind']),
      evictions: counter('mirror_cache_evictions_total', 'Entries removed from the mirror cache by the LRU.'),
      evictedBytes: counter('mirror_cache_evicted_bytes_total', 'Bytes removed from the mirror cache by the LRU.'),
      cacheSize: new Gauge({ name: `${PREFIX}mirror_cache_size_bytes`, help: 'Bytes the mirror cache holds now.', registers }),
    };
    this.mirrorCounters = c;
    this.mirror = {
      hit: (kind) => c.hits.inc({ kind }),
      miss: (kind) => c.misses.inc({ kind }),
      upstreamRequest: (upstream, kind, method) => c.upstreamRequests.inc({ upstream, kind, method }),
      upstreamBytes: (upstream, bytes) => {
        if (bytes > 0) c.upstreamBytes.inc({ upstream }, bytes);
      },
      upstreamFailure: (upstream, kind) => c.upstreamFailures.inc({ upstream, kind }),
      staleServe: (kind) => c.staleServes.inc({ kind }),
      evicted: (bytes, count = 1) => {
        c.evictions.inc(count);
        if (bytes > 0) c.evictedBytes.inc(bytes);
      },
      cacheSize: (bytes) => c.cacheSize.set(bytes),
    };
    this.gcCounters = {
      cycles: counter('gc_cycles_total', 'Garbage collection cycles run, by outcome (ok, failed).', ['outcome']),
      reviewed: counter('gc_blobs_reviewed_total', 'Digests the collector reviewed (their last link, unlink or unreference was older than the grace period).'),
      deleted: counter('gc_blobs_deleted_total', 'Blobs (layers, configs, manifest bodies) the collector deleted.'),
      freed: counter('gc_bytes_freed_total', 'Bytes the collector freed.'),
      prunedLinks: counter('gc_links_pruned_total', 'Repository blob links the collector removed.'),
      manifests: counter('gc_manifests_deleted_total', 'Manifests retention rules deleted (referrers included).'),
      tags: counter('gc_tags_deleted_total', 'Tags retention rules deleted.'),
      duration: new Gauge({ name: `${PREFIX}gc_last_cycle_seconds`, help: 'How long the last garbage collection cycle took.', registers }),
      queued: new Gauge({ name: `${PREFIX}gc_review_queue`, help: 'Digests waiting in the review queue after the last cycle (most within their grace period).', registers }),
      lastSuccess: new Gauge({ name: `${PREFIX}gc_last_success_timestamp_seconds`, help: 'When the last garbage collection cycle finished without error (Unix time).', registers }),
    };
    if (options.processMetrics !== false) for (const metric of processMetrics()) this.registry.registerMetric(metric);
  }

  /** One garbage collection cycle ended: its numbers, or its failure. */
  gcCycle(numbers: GcCycleNumbers | 'failed'): void {
    const g = this.gcCounters;
    if (numbers === 'failed') {
      g.cycles.inc({ outcome: 'failed' });
      return;
    }
    g.cycles.inc({ outcome: 'ok' });
    g.reviewed.inc(numbers.reviewed);
    g.deleted.inc(numbers.deletedBlobs);
    g.freed.inc(numbers.freedBytes);
    g.prunedLinks.inc(numbers.prunedLinks);
    g.manifests.inc(numbers.deletedManifests);
    g.tags.inc(numbers.deletedTags);
    g.duration.set(numbers.seconds);
    g.queued.set(numbers.queued);
    g.lastSuccess.set(Date.now() / 1000);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The connection limiter's count of open connections (connection-limit.ts). */
  trackConnections(connections: { open(): number }): void {
    this.connections = connections;
  }

  /** One connection answered 503 at the cap. */
  connectionRefused(): void {
    this.refused.inc();
  }

  /** Call on each request as it arrives; its numbers are recorded when its response closes. */
  observe(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    const state: RequestState = { route: 'unknown', upload: false };
    this.states.set(req, state);
    this.inFlight.inc();
    const socket = req.socket;
    if (socket && !this.sockets.has(socket)) {
      const tally = { read: 0, written: 0 };
      this.sockets.set(socket, tally);
      socket.once('close', () => {
        this.flushSocket(socket, tally);
        this.sockets.delete(socket);
      });
    }
    res.once('close', () => {
      this.inFlight.dec();
      if (state.upload) this.uploads.dec();
      const method = METHODS.has(req.method ?? '') ? req.method! : 'other';
      const { route } = state;
      this.requests.inc({ method, route, status: String(res.statusCode) });
      if (res.hasHeader('x-accel-redirect')) this.offloads.inc();
      if (!res.writableFinished) this.incomplete.inc({ method, route });
      // A scrape is not traffic: its own time would only blur latency summed over all routes.
      else if (route !== 'metrics') this.duration.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
      const tally = socket && this.sockets.get(socket);
      if (tally) this.flushSocket(socket, tally);
    });
  }

  /** Names the endpoint a request reached, once the router (or the server) knows it. */
  route(req: IncomingMessage, route: RouteName): void {
    const state = this.states.get(req);
    if (!state) return;
    state.route = route;
    if (route === 'upload' && !state.upload && UPLOAD_METHODS.has(req.method ?? '')) {
      state.upload = true;
      this.uploads.inc();
    }
  }

  /** The Prometheus text of every metric. */
  async render(): Promise<string> {
    return this.registry.metrics();
  }

  /** GET or HEAD /metrics. */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.route(req, 'metrics');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const body = JSON.stringify({ errors: [{ code: 'UNSUPPORTED', message: `method ${req.method} is not allowed on /metrics` }] });
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const text = await this.render();
    res.writeHead(200, { 'Content-Type': this.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : text);
  }

  /** Totals since the server started, for the summary line in the log. */
  async counts(): Promise<MetricsCounts> {
    const sum = async (metric: Counter<string>) => (await metric.get()).values.reduce((total, { value }) => total + value, 0);
    const statuses: Record<string, number> = {};
    let requests = 0;
    for (const { value, labels } of (await this.requests.get()).values) {
      requests += value;
      const statusClass = `${String(labels.status ?? '')[0] ?? '?'}xx`;
      statuses[statusClass] = (statuses[statusClass] ?? 0) + value;
    }
    this.flushSockets();
    const m = this.mirrorCounters;
    return {
      requests,
      statuses,
      incomplete: await sum(this.incomplete),
      receivedBytes: await sum(this.received),
      sentBytes: await sum(this.sent),
      connectionsRefused: await sum(this.refused),
      mirror: {
        hits: await sum(m.hits),
        misses: await sum(m.misses),
        upstreamRequests: await sum(m.upstreamRequests),
        upstreamBytes: await sum(m.upstreamBytes),
        upstreamFailures: await sum(m.upstreamFailures),
        staleServes: await sum(m.staleServes),
        evictions: await sum(m.evictions),
        evictedBytes: await sum(m.evictedBytes),
      },
    };
  }

  /** The gauges now, for the summary line. */
  async gauges(): Promise<{ inFlight: number; uploadsInProgress: number; connectionsOpen: number; mirrorCacheSizeBytes: number }> {
    const value = async (gauge: Gauge) => (await gauge.get()).values[0]?.value ?? 0;
    return {
      inFlight: await value(this.inFlight),
      uploadsInProgress: await value(this.uploads),
      connectionsOpen: this.connections?.open() ?? this.sockets.size,
      mirrorCacheSizeBytes: await value(this.mirrorCounters.cacheSize),
    };
  }

  private flushSockets(): void {
    for (const [socket, tally] of this.sockets) this.flushSocket(socket, tally);
  }

  private flushSocket(socket: Socket, tally: SocketTally): void {
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (read > tally.read) this.received.inc(read - tally.read);
    if (written > tally.written) this.sent.inc(written - tally.written);
    tally.read = Math.max(tally.read, read);
    tally.written = Math.max(tally.written, written);
  }
}
