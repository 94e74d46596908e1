import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** A host that accepts no connection within this long is down (undici's default, too). */
const CONNECT_TIMEOUT_MS = 10_000;
/** A request with no bytes moving either way for this long has stalled. */
const IDLE_TIMEOUT_MS = 60_000;

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ETIMEDOUT' });
}

export interface TransportRequest {
  /** `http://host:port` or `https://host:port`. */
  origin: string;
  /** Path and query. */
  path: string;
  method: string;
  headers?: Record<string, string>;
  body?: Buffer | string | Readable;
  signal?: AbortSignal;
}

/** A response body: a stream, plus the two ways the client finishes with one. */
export type ResponseBody = IncomingMessage & {
  /** Reads and discards the rest, so the connection can be reused. */
  dump(): Promise<void>;
  text(): Promise<string>;
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
}

function withBodyHelpers(message: IncomingMessage): ResponseBody {
  const body = message as ResponseBody;
  // The socket goes back to the pool only once the body has been read to its end, even an empty one.
  body.dump = () =>
    new Promise<void>((resolve) => {
      if (message.readableEnded || message.destroyed) return resolve();
      message.once('end', () => resolve());
      message.once('close', () => resolve());
      message.once('error', () => resolve());
      message.resume();
    });
  body.text = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of message) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  };
  return body;
}

/**
 * HTTP/1.1 over node:http and node:https keep-alive agents. Chosen over undici for the CLI: a
 * `skiff sync` that finds everything up to date is ~100 ms of work, and undici's module load and
 * its llhttp WebAssembly warm-up cost 70–100 ms of every cold process (measured: 40 manifest
 * requests took 95 ms wall with node:http against 156–197 ms with undici, process start included).
 */
export class NodeHttpTransport implements Transport {
  private readonly options: NodeTransportOptions;
  private readonly http: HttpAgent;
  private httpsAgent: HttpsAgent | undefined;

  constructor(options: NodeTransportOptions = {}) {
    this.options = options;
    this.http = new HttpAgent(this.agentOptions());
  }

  private agentOptions() {
    return { keepAlive: true, keepAliveMsecs: this.options.keepAliveMs ?? 30_000, maxSockets: this.options.connections ?? 16, scheduling: 'lifo' as const };
  }

  /** node:https (and TLS with it) loads on the first https request: loopback runs never pay for it. */
  private https(): typeof import('node:https') {
    return process.getBuiltinModule('node:https');
  }

  private httpsAgentFor(): HttpsAgent {
    this.httpsAgent ??= new (this.https().Agent)({ ...this.agentOptions(), ...(this.options.ca ? { ca: this.options.ca } : {}) });
    return this.httpsAgent;
  }

  request(request: TransportRequest): Promise<TransportResponse> {
    const url = new URL(request.origin);
    const secure = url.protocol === 'https:';
    const send = secure ? this.https().request : httpRequest;
    return new Promise<TransportResponse>((resolve, reject) => {
      let bodyError: unknown;
      const req = send({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || (secure ? 443 : 80),
        method: request.method,
        path: request.path,
        headers: request.headers ?? {},
        agent: secure ? this.httpsAgentFor() : this.http,
        timeout: IDLE_TIMEOUT_MS,
        ...(request.signal ? { signal: request.signal } : {}),
      });
      req.once('timeout', () => req.destroy(timeoutError(`${request.method} ${url.host}: no activity for ${IDLE_TIMEOUT_MS / 1000} s`)));
      req.once('socket', (socket: Socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(timeoutError(`cannot connect to ${url.host} within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('secureConnect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.once('response', (message) => resolve({ statusCode: message.statusCode ?? 0, headers: message.headers, body: withBodyHelpers(message) }));
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
      body.pipe(req);
    });
  }

  async close(): Promise<void> {
    this.http.destroy();
    this.httpsAgent?.destroy();
  }
}
