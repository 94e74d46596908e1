import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { Limiter } from '../graph/limiter.ts';
import { ChunkedDecoder } from './chunked-decoder.ts';
import { headEnd, MAX_HEAD_BYTES, parseResponseHead, requestHead, type BodyFraming } from './http1-head.ts';
import { StalledError } from './stalled-error.ts';

/**
 * Why this file exists (it is the one hand-written HTTP/1.1 client in skiff): node:http hands a
 * response body over in 64 KiB buffers, each freshly allocated, parsed by llhttp and pushed through
 * a stream, and a 200 MiB layer is then 3,200 of each. Measured on this 2-core VM, a GET of a
 * 200 MiB blob with a sha256 of it cost 400–500 ms of CPU through node:http against 170–220 ms
 * read straight off the socket into reused buffers (`onread`). A pull is CPU-bound on both cores, so
 * that difference is wall time. Small answers pay node:http's fixed cost instead: 40 manifest GETs
 * took 30–46 ms of CPU through it and 20–24 ms here, which is a third of a no-op `skiff sync`. So
 * every GET and HEAD without a request body comes here (the transport decides); requests with a
 * body (uploads, token POSTs) stay on node:http.
 *
 * Reads land in 1 MiB batch buffers, each filled once from start to end, so the body is handed
 * on as views of them without a copy. A view stays valid for as long as its reader keeps it,
 * unless the reader hands it back (`releaseBulkChunk`): once every view of a batch is back, the
 * batch takes new reads.
 */
const BATCH_BYTES = 1024 * 1024;
/** The read buffer of a connection whose bodies are copied out (`copyBodies`). */
const COPY_BUFFER_BYTES = 64 * 1024;
/** A read gets at least this much room: a batch with less left is retired. */
const MIN_READ_BYTES = 64 * 1024;
/**
 * Reads a reader may fall behind before the socket is paused: at most 4 MiB of 1 MiB reads (a
 * mirror filling many blobs at once from a fast upstream onto a slower disk holds this per fill). The
 * body is in object mode so that a reader gets each read's view as it is: in byte mode, a `for
 * await` (the mirror's fill) calls read(), which concatenates everything buffered into a new
 * buffer, and a mirror's cold pull cost 0.2 s more CPU than with node:http's small chunks.
 */
const BODY_HIGH_WATER = 4;
/** Idle connections kept per origin by default, and for how long. */
const IDLE_PER_ORIGIN = 8;
const IDLE_KEEP_MS = 15_000;

export interface BulkGetOptions {
  /** Certificate authorities for https (as the https agent gets them). */
  ca?: string[];
  connectTimeoutMs: number;
  /** No bytes either way for this long: stalled. */
  idleTimeoutMs: number;
  /**
   * Small answers (manifests, tokens, HEADs, error bodies): each body piece is copied out of the
   * connection's 64 KiB read buffer, which then takes the next read, so a body its reader keeps
   * (a manifest in a cache) never pins a buffer. Without it, bodies are views of 1 MiB batches.
   */
  copyBodies?: boolean;
  /** Connections in use per origin at most (node:http's maxSockets); more requests wait their turn. Default: no limit. */
  maxConnectionsPerOrigin?: number;
  /** Idle connections kept per origin (default 8). */
  idlePerOrigin?: number;
}

export interface BulkRequest {
  /** GET (the default) or HEAD. */
  method?: 'GET' | 'HEAD';
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** `GET host/path`, for messages. */
  describe: string;
  signal?: AbortSignal;
}

export interface BulkResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: BulkBody;
}

/** A batch's views in readers' hands, and whether reads have moved on to the next batch. */
interface BatchUse {
  batch: Buffer;
  outstanding: number;
  retired: boolean;
}

/** Batches kept for reuse once every view of them came back. */
const SPARE_BATCHES = 8;
const spareBatches: Buffer[] = [];
const batchUses = new WeakMap<ArrayBufferLike, BatchUse>();

function recycle(use: BatchUse): void {
  batchUses.delete(use.batch.buffer);
  if (spareBatches.length < SPARE_BATCHES) spareBatches.push(use.batch);
}

/**
 * Hands a body chunk back once its reader is done with it for good (written, hashed, copied): when
 * all of a batch's chunks are back, the batch takes the next reads. A fresh 1 MiB buffer costs 256
 * page faults on first touch; a 200 MiB pull had ~60,000 of them. Only a reader that is the chunk's
 * last holder may call this (the pull's ingest, after the chunk's write); a chunk never handed back
 * simply leaves its batch to the garbage collector.
 */
export function releaseBulkChunk(chunk: Buffer): void {
  const use = batchUses.get(chunk.buffer);
  if (!use) return;
  use.outstanding--;
  if (use.retired && use.outstanding === 0) recycle(use);
}

/** Batches waiting for reuse (for tests: that the pull hands its chunks back). */
export function spareBulkBatches(): number {
  return spareBatches.length;
}

/** Errors of the connection, as node:http names them, so retries and messages treat them alike. */
function connectionError(message: string, code = 'ECONNRESET'): Error {
  return Object.assign(new Error(message), { code });
}

/** A response body: views of the connection's batches, pushed as they are read. */
export class BulkBody extends Readable {
  /** Bytes of the body received so far (for the stall rules). */
  received = 0;
  /** True once the whole body (by its framing) arrived. */
  complete = false;
  /** Set when the reader asks for more; a push that fills the buffer pauses the socket only without such a call during it. */
  demanded = false;
  private readonly onDemand: () => void;
  private readonly onDestroy: (error: Error | null) => void;

  constructor(onDemand: () => void, onDestroy: (error: Error | null) => void) {
    super({ objectMode: true, highWaterMark: BODY_HIGH_WATER });
    this.onDemand = onDemand;
    this.onDestroy = onDestroy;
  }

  override _read(): void {
    this.demanded = true;
    this.onDemand();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.onDestroy(error);
    callback(error);
  }
}

type Phase = 'head' | 'body';

/** One request on a connection: its head being read, then its body. */
interface Exchange {
  method: 'GET' | 'HEAD';
  describe: string;
  phase: Phase;
  head: Buffer[];
  headLength: number;
  /** Bytes of this response received at all: a reused connection that closes before any is retried. */
  sawBytes: boolean;
  framing?: BodyFraming;
  remaining?: number;
  chunked?: ChunkedDecoder;
  reusable?: boolean;
  body?: BulkBody;
  resolve: (response: BulkResponse) => void;
  reject: (error: Error) => void;
}

/** One keep-alive connection to an origin, reading into batches. */
class BulkConnection {
  readonly origin: string;
  readonly socket: Socket;
  private readonly copyBodies: boolean;
  private batch: Buffer;
  private batchUse: BatchUse | undefined;
  private filled = 0;
  exchange: Exchange | undefined;
  /** Called when the connection can take another request, or is gone. */
  onIdle: ((connection: BulkConnection) => void) | undefined;
  reused = false;
  /** Reading stopped by a `false` from onRead (which `socket.isPaused()` does not show). */
  private readingStopped = false;
  /** Counted against its origin's limit (between `take` and the end of its exchange). */
  busy = false;

  constructor(origin: URL, options: BulkGetOptions) {
    this.origin = origin.origin;
    this.copyBodies = options.copyBodies === true;
    this.batch = this.newBatch();
    const host = origin.hostname.replace(/^\[|\]$/g, '');
    const secure = origin.protocol === 'https:';
    const port = Number(origin.port || (secure ? 443 : 80));
    const onread = { buffer: () => this.region(), callback: (bytes: number, view: Uint8Array) => this.onRead(bytes, view) };
    if (secure) {
      const tls = process.getBuiltinModule('node:tls');
      const net = process.getBuiltinModule('node:net');
      // `onread` works on TLS sockets too (each read is a decrypted record), though @types/node lists it for net only.
      const tlsOptions: import('node:tls').ConnectionOptions = { host, port, ...(net.isIP(host) ? {} : { servername: host }), ...(options.ca ? { ca: options.ca } : {}), ALPNProtocols: ['http/1.1'] };
      this.socket = tls.connect(Object.assign(tlsOptions, { onread }));
    } else {
      this.socket = process.getBuiltinModule('node:net').connect({ host, port, onread });
    }
    const socket = this.socket;
    socket.setNoDelay(true);
    const connectTimer = setTimeout(() => socket.destroy(new StalledError(origin.host, undefined, `cannot connect to ${origin.host} within ${options.connectTimeoutMs / 1000} s`)), options.connectTimeoutMs);
    const connected = () => clearTimeout(connectTimer);
    socket.once(secure ? 'secureConnect' : 'connect', connected);
    socket.setTimeout(options.idleTimeoutMs, () => this.fail(new StalledError(origin.host, this.exchange?.describe, `${origin.host} sent nothing for ${options.idleTimeoutMs / 1000} s (stalled); try again later`)));
    socket.on('error', (error) => this.fail(error));
    socket.on('end', () => this.onEnd());
    socket.on('close', () => {
      clearTimeout(connectTimer);
      this.fail(connectionError('socket hang up'));
      this.onIdle?.(this);
    });
  }

  /** A read buffer: a connection's own 64 KiB one when bodies are copied out, else a 1 MiB batch (a spare one first). */
  private newBatch(): Buffer {
    return this.copyBodies ? Buffer.allocUnsafeSlow(COPY_BUFFER_BYTES) : (spareBatches.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES));
  }

  /** Room for the next read: the rest of the batch, or a new batch. */
  private region(): Buffer {
    // Bodies copied out leave nothing in the buffer but a head still arriving (kept as views).
    if (this.copyBodies && !(this.exchange?.phase === 'head' && this.exchange.head.length > 0)) this.filled = 0;
    if (this.batch.length - this.filled < MIN_READ_BYTES) {
      const use = this.batchUse;
      if (use) {
        use.retired = true;
        if (use.outstanding === 0) recycle(use);
      }
      this.batchUse = undefined;
      this.batch = this.newBatch();
      this.filled = 0;
    }
    return this.batch.subarray(this.filled);
  }

  /** Counts a view of the current batch handed to a reader. */
  private lend(): void {
    if (!this.batchUse) {
      this.batchUse = { batch: this.batch, outstanding: 0, retired: false };
      batchUses.set(this.batch.buffer, this.batchUse);
    }
    this.batchUse.outstanding++;
  }

  send(exchange: Exchange, head: string): void {
    this.exchange = exchange;
    this.socket.ref();
    this.socket.write(head);
  }

  /** False pauses the socket until the body wants more. */
  private onRead(bytes: number, view: Uint8Array): boolean {
    // The view is the region handed out, at its start: this batch, from `filled`.
    const data = Buffer.from(view.buffer, view.byteOffset, bytes);
    this.filled += bytes;
    const exchange = this.exchange;
    if (!exchange) {
      // Bytes nobody asked for: the connection cannot be trusted with another request.
      this.socket.destroy();
      return false;
    }
    exchange.sawBytes = true;
    try {
      // A finished exchange leaves the socket reading: an idle connection must notice its close.
      const more = this.take(exchange, data) || this.exchange !== exchange;
      if (!more) this.readingStopped = true;
      return more;
    } catch (error) {
      this.socket.destroy();
      this.failExchange(exchange, error as Error);
      return false;
    }
  }

  private take(exchange: Exchange, data: Buffer): boolean {
    let rest = data;
    if (exchange.phase === 'head') {
      exchange.head.push(data);
      exchange.headLength += data.length;
      const all = exchange.head.length === 1 ? data : Buffer.concat(exchange.head, exchange.headLength);
      const end = headEnd(all);
      if (end < 0) {
        if (exchange.headLength > MAX_HEAD_BYTES) throw connectionError(`the response head is larger than ${MAX_HEAD_BYTES} bytes`, 'HPE_HEADER_OVERFLOW');
        return true;
      }
      const head = parseResponseHead(all.subarray(0, end), exchange.method);
      rest = all.subarray(end);
      if (head.statusCode < 200) {
        // 1xx: an interim answer; the real head follows.
        exchange.head = rest.length > 0 ? [rest] : [];
        exchange.headLength = rest.length;
        return rest.length > 0 ? this.take(exchange, Buffer.alloc(0)) : true;
      }
      exchange.phase = 'body';
      exchange.framing = head.framing;
      exchange.reusable = head.reusable;
      exchange.head = [];
      if (head.framing.kind === 'length') exchange.remaining = head.framing.length;
      if (head.framing.kind === 'chunked') exchange.chunked = new ChunkedDecoder();
      const body = new BulkBody(
        () => {
          if (this.exchange !== exchange || !this.readingStopped) return;
          this.readingStopped = false;
          this.socket.resume();
        },
        (error) => this.bodyDestroyed(exchange, error),
      );
      exchange.body = body;
      exchange.resolve({ statusCode: head.statusCode, headers: head.headers, body });
      if (head.framing.kind === 'none' || (head.framing.kind === 'length' && head.framing.length === 0)) {
        if (rest.length > 0) exchange.reusable = false;
        this.finishBody(exchange);
        return true;
      }
    }
    return this.takeBody(exchange, rest);
  }

  private takeBody(exchange: Exchange, data: Buffer): boolean {
    const body = exchange.body!;
    if (data.length === 0 || body.destroyed) return true;
    let wanted = true;
    const push = (piece: Buffer) => {
      if (piece.length === 0) return;
      body.received += piece.length;
      if (!this.copyBodies) this.lend();
      body.demanded = false;
      // A reader that asked for more while this push ran (its _read) has room: no pause then.
      wanted = body.push(this.copyBodies ? Buffer.from(piece) : piece) || body.demanded;
    };
    const framing = exchange.framing!;
    let used = data.length;
    let ended = false;
    if (framing.kind === 'length') {
      used = Math.min(exchange.remaining!, data.length);
      push(data.subarray(0, used));
      exchange.remaining! -= used;
      ended = exchange.remaining === 0;
    } else if (framing.kind === 'chunked') {
      used = exchange.chunked!.feed(data, push);
      ended = exchange.chunked!.done;
    } else {
      push(data);
    }
    // Bytes past the body's end: the server spoke out of turn; this connection is not reused.
    if (used < data.length) exchange.reusable = false;
    if (ended) this.finishBody(exchange);
    return wanted;
  }

  private finishBody(exchange: Exchange): void {
    const body = exchange.body!;
    body.complete = true;
    this.exchange = undefined;
    body.push(null);
    if (exchange.reusable && !this.socket.destroyed) {
      this.socket.unref();
      this.reused = true;
      this.onIdle?.(this);
    } else this.socket.destroy();
  }

  private onEnd(): void {
    const exchange = this.exchange;
    if (exchange?.phase === 'body' && exchange.framing?.kind === 'close') {
      exchange.reusable = false;
      this.finishBody(exchange);
      return;
    }
    this.fail(connectionError(exchange?.phase === 'body' ? 'aborted' : 'socket hang up'));
  }

  /** A body its reader destroyed before the end: the rest of it is never read. */
  private bodyDestroyed(exchange: Exchange, _error: Error | null): void {
    if (this.exchange !== exchange) return;
    this.exchange = undefined;
    this.socket.destroy();
  }

  private fail(error: Error): void {
    const exchange = this.exchange;
    this.exchange = undefined;
    if (!this.socket.destroyed) this.socket.destroy();
    if (exchange) this.failExchange(exchange, error);
  }

  private failExchange(exchange: Exchange, error: Error): void {
    if (exchange.phase === 'head') exchange.reject(Object.assign(error, { reusedConnection: this.reused && !exchange.sawBytes }));
    else if (!exchange.body!.destroyed) exchange.body!.destroy(error);
  }

  /** Aborts whatever is in flight with `error`. */
  abort(error: Error): void {
    this.fail(error);
  }
}

/**
 * GETs and HEADs over keep-alive HTTP/1.1 connections of their own: blob bodies as views of 1 MiB
 * batches, or (`copyBodies`) small answers copied out. A request that a reused connection fails
 * before any byte of the answer (the server had closed it while idle) is sent once more on a new
 * connection, as Go's transport does for idempotent requests.
 */
export class BulkGetter {
  private readonly options: BulkGetOptions;
  private readonly idle = new Map<string, { connection: BulkConnection; timer: NodeJS.Timeout }[]>();
  /** Connection slots per origin (with maxConnectionsPerOrigin): a freed one passes straight to the first waiter. */
  private readonly limits = new Map<string, Limiter>();
  private closed = false;

  constructor(options: BulkGetOptions) {
    this.options = options;
  }

  async get(request: BulkRequest): Promise<BulkResponse> {
    const url = new URL(request.origin);
    const method = request.method ?? 'GET';
    const head = requestHead(method, request.path, url.host, request.headers);
    const slots = this.slots(url.origin);
    for (;;) {
      await slots?.acquire(request.signal);
      let connection: BulkConnection;
      try {
        connection = this.take(url);
      } catch (error) {
        slots?.release();
        throw error;
      }
      try {
        return await this.exchange(connection, method, head, request.describe, request.signal);
      } catch (error) {
        if ((error as { reusedConnection?: boolean }).reusedConnection && !request.signal?.aborted) continue;
        throw error;
      }
    }
  }

  /** The origin's connection limit, with maxConnectionsPerOrigin. */
  private slots(origin: string): Limiter | undefined {
    const limit = this.options.maxConnectionsPerOrigin;
    if (limit === undefined) return undefined;
    let slots = this.limits.get(origin);
    if (!slots) this.limits.set(origin, (slots = new Limiter(limit)));
    return slots;
  }

  /** A connection's exchange ended (or it closed): its slot is free. */
  private release(connection: BulkConnection): void {
    if (!connection.busy) return;
    connection.busy = false;
    this.slots(connection.origin)?.release();
  }

  private exchange(connection: BulkConnection, method: 'GET' | 'HEAD', head: string, describe: string, signal: AbortSignal | undefined): Promise<BulkResponse> {
    return new Promise<BulkResponse>((resolve, reject) => {
      // Once the head is in, an abort ends this body only: the connection may carry another request by then.
      const onAbort = () => (exchange.body ? exchange.body.destroy(signal!.reason as Error) : connection.abort(signal!.reason as Error));
      const done = () => signal?.removeEventListener('abort', onAbort);
      const exchange: Exchange = {
        method,
        describe,
        phase: 'head',
        head: [],
        headLength: 0,
        sawBytes: false,
        resolve: (response) => {
          resolve(response);
          // The body's own life: an abort now ends it.
          response.body.once('close', done);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      if (signal?.aborted) return reject(signal.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      connection.send(exchange, head);
    });
  }

  private take(url: URL): BulkConnection {
    const connection = this.reuse(url.origin) ?? new BulkConnection(url, this.options);
    connection.onIdle = (c) => {
      this.release(c);
      this.park(c);
    };
    connection.busy = true;
    return connection;
  }

  private reuse(origin: string): BulkConnection | undefined {
    const list = this.idle.get(origin);
    while (list && list.length > 0) {
      const { connection, timer } = list.pop()!;
      clearTimeout(timer);
      if (!connection.socket.destroyed) return connection;
    }
    return undefined;
  }

  /** A connection whose exchange ended cleanly (or that closed): keep it for the next request, or drop it. */
  private park(connection: BulkConnection): void {
    const list = this.idle.get(connection.origin) ?? [];
    const at = list.findIndex((entry) => entry.connection === connection);
    if (connection.socket.destroyed || connection.exchange) {
      if (at >= 0) clearTimeout(list.splice(at, 1)[0]!.timer);
      return;
    }
    if (at >= 0 || this.closed || list.length >= (this.options.idlePerOrigin ?? IDLE_PER_ORIGIN)) {
      if (at < 0) connection.socket.destroy();
      return;
    }
    const timer = setTimeout(() => connection.socket.destroy(), IDLE_KEEP_MS);
    timer.unref();
    list.push({ connection, timer });
    this.idle.set(connection.origin, list);
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) {
      for (const { connection, timer } of list) {
        clearTimeout(timer);
        connection.socket.destroy();
      }
    }
    this.idle.clear();
  }
}
