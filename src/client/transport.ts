import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { http, https } from '../platform/node-http.ts';
import type { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { BulkGetter } from './bulk-get.ts';
import { StalledError } from './stalled-error.ts';

export { StalledError };

/** A host that accepts no connection within this long is down (undici's default, too). */
const CONNECT_TIMEOUT_MS = 10_000;
/** A request with no bytes moving either way for this long has stalled. */
const IDLE_TIMEOUT_MS = 60_000;
/**
 * A response body slower than this, averaged over the window, has stalled too: without it a
 * server sending one byte every 20 s (never idle for 60 s) would hold a pull forever.
 */
const MIN_BYTES_PER_SECOND = 1024;
const THROUGHPUT_WINDOW_MS = 60_000;
/** Connections in use per origin by default, for each kind of request (node:http's agent, the small-answer pool). */
const DEFAULT_CONNECTIONS = 16;

export interface TransportRequest {
  /** `http://host:port` or `https://host:port`. */
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
  /**
   * The answer's body may be big (a blob GET): it comes as views of 1 MiB read batches
   * (bulk-get.ts) instead of small copies. GET only.
   */
  bulk?: boolean;
  /**
   * Called with each chunk of a stream body once the socket has taken it, so that a bulk read's
   * batch can take the next reads (bulk-get's releaseBulkChunk): only for a body whose chunks
   * nothing else holds, e.g. a blob GET streamed into an upload.
   */
  releaseBodyChunk?: (chunk: Buffer) => void;
}

/**
 * `body.pipe(req)`, handing each chunk to `release` once its write is done. A chunk whose write
 * failed is not handed back: the destroyed socket may still hold it.
 */
function pumpReleasing(body: Readable, req: Writable, release: (chunk: Buffer) => void): void {
  const onData = (chunk: Buffer): void => {
    const more = req.write(chunk, (error) => {
      if (!error) release(chunk);
    });
    if (!more) body.pause();
  };
  const onDrain = (): void => {
    body.resume();
  };
  const onEnd = (): void => {
    stop();
    req.end();
  };
  const stop = (): void => {
    body.off('data', onData);
    body.off('end', onEnd);
    req.off('drain', onDrain);
    req.off('close', stop);
  };
  body.on('data', onData);
  body.once('end', onEnd);
  req.on('drain', onDrain);
  req.once('close', stop);
}

/** Bytes `dump()` reads to keep a connection for reuse; a longer body closes it instead. */
const DUMP_LIMIT = 64 * 1024;

/** A response body: a stream, plus the two ways the client finishes with one. */
export type ResponseBody = Readable & {
  /** Reads and discards the rest, so the connection can be reused. */
  dump(): Promise<void>;
};

export interface TransportResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: ResponseBody;
}

/** What the registry client needs from HTTP: one request at a time, pooled connections. */
export interface Transport {
  request(request: TransportRequest): Promise<TransportResponse>;
  close(): Promise<void>;
}

export interface NodeTransportOptions {
  /** Extra certificate authorities (PEM), on top of Node's bundled roots when given with them. */
  ca?: string[];
  /** Connections per host. */
  connections?: number;
  keepAliveMs?: number;
  /** No bytes either way for this long: stalled. */
  idleTimeoutMs?: number;
  /** A response body slower than this (bytes per second, averaged over `throughputWindowMs`) has stalled; 0: no such rule. */
  minBytesPerSecond?: number;
  throughputWindowMs?: number;
}

function withBodyHelpers(message: Readable): ResponseBody {
  const body = message as ResponseBody;
  // The socket goes back to the pool only once the body has been read to its end, even an empty one.
  body.dump = () =>
    new Promise<void>((resolve) => {
      if (message.readableEnded || message.destroyed) return resolve();
      message.once('end', () => resolve());
      message.once('close', () => resolve());
      message.once('error', () => resolve());
      // Past a small body, reusing the connection is not worth reading an endless one for.
      let seen = 0;
      message.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen > DUMP_LIMIT) message.destroy();
      });
    });
  return body;
}

/** The stall rules in force; see resolveTransportOptions. */
interface StallRules {
  idleTimeoutMs: number;
  minBytesPerSecond: number;
  throughputWindowMs: number;
}

function envNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text.trim() === '') return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`$${name}: expected a number ≥ 0, not ${JSON.stringify(text)}`);
  return value;
}

/**
 * The stall rules, resolved in one place: the option, else the environment
 * (`SKIFF_IDLE_TIMEOUT_MS`, `SKIFF_MIN_TRANSFER_RATE` in bytes per second, 0 turns the rule off,
 * `SKIFF_TRANSFER_WINDOW_MS`), else the defaults (60 s idle; 1 KiB/s averaged over 60 s).
 */
export function resolveStallRules(options: NodeTransportOptions, env: NodeJS.ProcessEnv = process.env): StallRules {
  return {
    idleTimeoutMs: options.idleTimeoutMs ?? envNumber(env, 'SKIFF_IDLE_TIMEOUT_MS') ?? IDLE_TIMEOUT_MS,
    minBytesPerSecond: options.minBytesPerSecond ?? envNumber(env, 'SKIFF_MIN_TRANSFER_RATE') ?? MIN_BYTES_PER_SECOND,
    throughputWindowMs: options.throughputWindowMs ?? envNumber(env, 'SKIFF_TRANSFER_WINDOW_MS') ?? THROUGHPUT_WINDOW_MS,
  };
}

function humanRate(bytesPerSecond: number): string {
  return bytesPerSecond >= 1024 && bytesPerSecond % 1024 === 0 ? `${bytesPerSecond / 1024} KiB/s` : `${bytesPerSecond} B/s`;
}

/** Checks per window for unread data, so a reader that fell behind is noticed between window ends. */
const PEEKS_PER_WINDOW = 6;

/** A body being received: the stream, the bytes that arrived for it, whether all did. */
interface WatchedBody {
  stream: Readable;
  bytesRead(): number;
  complete(): boolean;
}

/**
 * Destroys a response body that delivers less than the minimum rate over a whole window. Bytes
 * are counted as they arrive, so watching never starts the body flowing; a window in which the
 * body was seen holding unread data is not judged (our reader was the slow one, not the server).
 */
function watchThroughput(watched: WatchedBody, rules: StallRules, describe: string, host: string): void {
  if (rules.minBytesPerSecond <= 0 || rules.throughputWindowMs <= 0) return;
  const message = watched.stream;
  const minimum = (rules.minBytesPerSecond * rules.throughputWindowMs) / 1000;
  let start = watched.bytesRead();
  let readerBehind = false;
  let peeks = 0;
  const timer = setInterval(() => {
    if (watched.complete()) return clearInterval(timer); // all received: any wait now is the reader's
    if (message.readableLength > 0) readerBehind = true;
    if (++peeks < PEEKS_PER_WINDOW) return;
    const delta = watched.bytesRead() - start;
    const judged = !readerBehind;
    start = watched.bytesRead();
    readerBehind = false;
    peeks = 0;
    if (!judged || delta >= minimum) return;
    message.destroy(
      new StalledError(
        host,
        describe,
        `transfer stalled: ${delta} bytes in the last ${rules.throughputWindowMs / 1000} s, below the minimum of ${humanRate(rules.minBytesPerSecond)} ($SKIFF_MIN_TRANSFER_RATE); ${host} or the network to it is too slow, try again later`,
      ),
    );
  }, rules.throughputWindowMs / PEEKS_PER_WINDOW);
  timer.unref();
  message.on('pause', () => (readerBehind = true));
  const stop = () => clearInterval(timer);
  message.once('end', stop);
  message.once('close', stop);
  message.once('error', stop);
}

/**
 * Whether node:http sends requests through a proxy from the environment (Node 24's
 * `NODE_USE_ENV_PROXY=1` or `--use-env-proxy` with `HTTP(S)_PROXY`): bulk-get.ts connects
 * directly, so it then stands aside and GETs and HEADs go the way every other request goes.
 */
export function usesEnvProxy(env: NodeJS.ProcessEnv = process.env, execArgv: string[] = process.execArgv): boolean {
  const enabled = env.NODE_USE_ENV_PROXY === '1' || env.NODE_USE_ENV_PROXY === 'true' || execArgv.includes('--use-env-proxy');
  return enabled && Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy);
}

/**
 * HTTP/1.1: GETs and HEADs without a request body over bulk-get.ts's keep-alive connections, every
 * other request (uploads, token POSTs, DELETEs) over node:http and node:https keep-alive agents.
 * Chosen over undici for the CLI: a `skiff sync` that finds everything up to date is ~100 ms of
 * work, and undici's module load and its llhttp WebAssembly warm-up cost 70–100 ms of every cold
 * process (measured: 40 manifest requests took 95 ms wall with node:http against 156–197 ms with
 * undici, process start included).
 */
export class NodeHttpTransport implements Transport {
  private readonly options: NodeTransportOptions;
  private readonly stall: StallRules;
  private readonly httpAgent: HttpAgent;
  private httpsAgent: HttpsAgent | undefined;
  /** Blob GETs (`bulk`): bodies as views of 1 MiB batches. */
  private bulkGetter: BulkGetter | undefined;
  /** Every other GET and HEAD: small bodies, copied out; as many connections per origin as node:http's agent. */
  private smallGetter: BulkGetter | undefined;
  /** bulk-get.ts does not speak to proxies: with one from the environment, node:http carries everything. */
  private readonly leanAllowed = !usesEnvProxy();

  constructor(options: NodeTransportOptions = {}) {
    this.options = options;
    this.stall = resolveStallRules(options);
    this.httpAgent = new http.Agent(this.agentOptions());
  }

  private agentOptions() {
    return { keepAlive: true, keepAliveMsecs: this.options.keepAliveMs ?? 30_000, maxSockets: this.options.connections ?? DEFAULT_CONNECTIONS, scheduling: 'lifo' as const };
  }

  private httpsAgentFor(): HttpsAgent {
    // node:https (and TLS with it) loads on the first https request: loopback runs never pay for it.
    this.httpsAgent ??= new (https().Agent)({ ...this.agentOptions(), ...(this.options.ca ? { ca: this.options.ca } : {}) });
    return this.httpsAgent;
  }

  request(request: TransportRequest): Promise<TransportResponse> {
    if (this.leanAllowed && request.body === undefined && (request.method === 'GET' || request.method === 'HEAD')) return this.leanRequest(request, request.method);
    const url = new URL(request.origin);
    const secure = url.protocol === 'https:';
    const send = secure ? https().request : http.request;
    const describe = `${request.method} ${url.host}${request.path.split('?')[0]}`;
    return new Promise<TransportResponse>((resolve, reject) => {
      let bodyError: unknown;
      let response: IncomingMessage | undefined;
      const req = send({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (secure ? 443 : 80),
        method: request.method,
        path: request.path,
        headers: request.headers ?? {},
        agent: secure ? this.httpsAgentFor() : this.httpAgent,
        timeout: this.stall.idleTimeoutMs,
        ...(request.signal ? { signal: request.signal } : {}),
      });
      req.once('timeout', () => {
        const error = new StalledError(url.host, describe, `${url.host} sent nothing for ${this.stall.idleTimeoutMs / 1000} s (stalled); try again later`);
        // Once the response has begun, its reader must see this, not a bare "aborted".
        if (response) response.destroy(error);
        else req.destroy(error);
      });
      req.once('socket', (socket: Socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(new StalledError(url.host, undefined, `cannot connect to ${url.host} within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('secureConnect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.once('response', (message) => {
        response = message;
        const socket = message.socket;
        if (socket) watchThroughput({ stream: message, bytesRead: () => socket.bytesRead, complete: () => message.complete }, this.stall, describe, url.host);
        resolve({ statusCode: message.statusCode ?? 0, headers: message.headers, body: withBodyHelpers(message) });
      });
      // A body stream that fails is the error the caller sees (its cause matters more than the socket's).
      req.once('error', (error) => reject(bodyError ?? error));
      const { body } = request;
      if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
        req.end(body);
        return;
      }
      body.once('error', (error) => {
        bodyError = error;
        req.destroy(error);
      });
      if (request.releaseBodyChunk) pumpReleasing(body, req, request.releaseBodyChunk);
      else body.pipe(req);
    });
  }

  /** A GET or HEAD without a request body, on bulk-get.ts's connections. */
  private async leanRequest(request: TransportRequest, method: 'GET' | 'HEAD'): Promise<TransportResponse> {
    const common = { connectTimeoutMs: CONNECT_TIMEOUT_MS, idleTimeoutMs: this.stall.idleTimeoutMs, ...(this.options.ca ? { ca: this.options.ca } : {}) };
    let getter: BulkGetter;
    if (request.bulk && method === 'GET') getter = this.bulkGetter ??= new BulkGetter(common);
    else {
      const connections = this.options.connections ?? DEFAULT_CONNECTIONS;
      getter = this.smallGetter ??= new BulkGetter({ ...common, copyBodies: true, maxConnectionsPerOrigin: connections, idlePerOrigin: connections });
    }
    const url = new URL(request.origin);
    const describe = `${method} ${url.host}${request.path.split('?')[0]}`;
    const response = await getter.get({ method, origin: request.origin, path: request.path, headers: request.headers ?? {}, describe, ...(request.signal ? { signal: request.signal } : {}) });
    const body = response.body;
    watchThroughput({ stream: body, bytesRead: () => body.received, complete: () => body.complete }, this.stall, describe, url.host);
    return { statusCode: response.statusCode, headers: response.headers, body: withBodyHelpers(body) };
  }

  async close(): Promise<void> {
    this.bulkGetter?.close();
    this.smallGetter?.close();
    this.httpAgent.destroy();
    this.httpsAgent?.destroy();
  }
}
