import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { BlobNotFoundError, type ByteRange } from '../content/store.ts';
import { StorageError, StorageFullError, storageError } from '../content/storage-errors.ts';
import { InvalidDigestError } from '../digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../digest/errors.ts';
import { excerpt } from '../errors/excerpt.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { BodyBudget } from './body-budget.ts';

/**
 * Reads a body we must hold whole to parse (a manifest), refusing more than `limit` bytes, and
 * holding at most what `budget` allows across all requests at once.
 */
export async function readBodyLimited(req: IncomingMessage, limit: number, budget?: BodyBudget): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) {
    throw new RegistryError('SIZE_INVALID', `body of ${declared} bytes exceeds the ${limit}-byte limit`, { status: 413 });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      if (total + chunk.length > limit) throw new RegistryError('SIZE_INVALID', `body exceeds the ${limit}-byte limit`, { status: 413 });
      budget?.claim(chunk.length);
      total += chunk.length;
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, total);
  } finally {
    // The caller's copy lives only while it parses and stores the manifest: brief, unbudgeted.
    budget?.release(total);
  }
}

/**
 * The request body as a stream the storage may abandon (on a full disk, a size overrun) without
 * destroying the request: what is left unread is then drained by the server's edge, so the
 * client reads the error instead of a connection reset. A client aborting still errors it.
 */
export function requestBody(req: IncomingMessage): Readable {
  // Not Readable.from(req.iterator(…)): destroying that wrapper throws an AbortError into the
  // iterator, which destroys the request after all.
  const detach = () => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('close', onClose);
    req.pause();
  };
  let attached = false;
  // Object mode: a reader gets the parser's own buffers one by one. In byte mode, the writer's
  // `for await` called read(), which concatenated whatever was buffered into a new buffer: a copy of
  // every uploaded byte, and its garbage (34 ms of copying and much of 131 ms of GC in a 200 MiB PATCH).
  const body = new Readable({
    objectMode: true,
    highWaterMark: 16,
    // Attached on the first read: a handler that fails before reading leaves the request alone.
    read: () => {
      if (!attached) {
        attached = true;
        req.on('data', onData);
        req.once('end', onEnd);
        req.once('error', onError);
        req.once('close', onClose);
        if (req.complete && req.readableEnded) body.push(null);
      }
      req.resume();
    },
    destroy: (error, callback) => {
      detach();
      callback(error);
    },
  });
  const onData = (chunk: Buffer) => {
    if (!body.push(chunk)) req.pause();
  };
  const onEnd = () => body.push(null);
  const onError = (error: Error) => body.destroy(error);
  const onClose = () => {
    if (!req.complete) body.destroy(new Error('the client closed the connection before the body was complete'));
  };
  return body;
}

export function contentLength(req: IncomingMessage): number | undefined {
  const header = req.headers['content-length'];
  if (header === undefined) return undefined;
  if (!/^\d{1,15}$/.test(header)) throw new RegistryError('SIZE_INVALID', `invalid Content-Length ${excerpt(header)}`);
  return Number(header);
}

/** True when the request carries a body (Content-Length > 0, or chunked). */
export function hasBody(req: IncomingMessage): boolean {
  const length = contentLength(req);
  return length !== undefined ? length > 0 : req.headers['transfer-encoding'] !== undefined;
}

const CONTENT_RANGE = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/;

/** Parses an upload chunk's `Content-Range: <start>-<end>` (inclusive). Undefined when absent. */
export function parseContentRange(header: string | undefined): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = CONTENT_RANGE.exec(header.trim());
  if (!match) throw new RegistryError('BLOB_UPLOAD_INVALID', `invalid Content-Range ${excerpt(header)}; expected <start>-<end>`, { status: 416 });
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) throw new RegistryError('BLOB_UPLOAD_INVALID', `invalid Content-Range ${excerpt(header)}: end before start`, { status: 416 });
  return { start, end };
}

export type RangeRequest = { kind: 'none' } | { kind: 'range'; range: ByteRange } | { kind: 'unsatisfiable' };

/** RFC 9110 `Range: bytes=…` for one range. Multiple ranges or other units are ignored (whole body). */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return { kind: 'none' };
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(match[1]);
  const end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (match[2] !== '' && Number(match[2]) < start) return { kind: 'none' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start, end } };
}

/** errno codes of a backend (S3, PostgreSQL, Redis) that cannot be reached right now. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);

/**
 * A scale-out backend that does not answer: PostgreSQL unreachable (MetadataConnectionError),
 * Redis away (ioredis gives up after its one retry), S3's endpoint refusing connections.
 */
function backendUnavailable(error: unknown): boolean {
  const e = error as { code?: unknown; name?: unknown; message?: unknown };
  if (e.code === 'METADATA_UNREACHABLE' || e.name === 'MaxRetriesPerRequestError') return true;
  // ioredis's commandTimeout: Redis went silent.
  if (e.name === 'Error' && e.message === 'Command timed out') return true;
  // S3's side: a refused or silent connection (the SDK's TimeoutError), or S3 saying it is busy (503: SlowDown, ServiceUnavailable).
  return error instanceof StorageError && error.kind !== 'full' && (UNREACHABLE.has(error.reason) || BUSY.has(error.reason));
}

/** S3 codes of a store that is there but cannot serve now. */
const BUSY = new Set(['TimeoutError', 'SlowDown', 'ServiceUnavailable', 'RequestTimeout']);

/**
 * The request's Host header when it is a plain `host[:port]` (a name, an IPv4 address or a
 * bracketed IPv6 one), else undefined. Only such a value may be echoed back into what clients
 * follow (a challenge's realm, the web UI's pull lines): the header is the client's to write.
 */
export function plainHost(req: IncomingMessage | undefined): string | undefined {
  const host = req?.headers.host;
  return host !== undefined && /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? host : undefined;
}

/** Maps any failure to the spec's error body. Unknown errors become 500 UNKNOWN. */
export function toRegistryError(error: unknown): RegistryError {
  if (error instanceof RegistryError) return error;
  // 503 with Retry-After: clients (docker, skopeo, containerd) retry it, and a load balancer may try another replica.
  if (backendUnavailable(error)) return new RegistryError('UNAVAILABLE', 'the registry cannot reach its storage right now; retry shortly', { status: 503, headers: { 'Retry-After': '5' }, cause: error });
  if (error instanceof InvalidDigestError) return new RegistryError('DIGEST_INVALID', error.message);
  if (error instanceof DigestMismatchError) return new RegistryError('DIGEST_INVALID', error.message);
  if (error instanceof SizeMismatchError) return new RegistryError('SIZE_INVALID', error.message);
  if (error instanceof BlobNotFoundError) return new RegistryError('BLOB_UNKNOWN', error.message);
  // Full disk: 507 Insufficient Storage (RFC 4918), so clients stop instead of retrying into it.
  const storage = storageError(error, 'handling the request', { anyErrno: false });
  if (storage instanceof StorageFullError) return new RegistryError('UNKNOWN', storage.publicMessage, { status: 507, cause: error });
  if (storage instanceof StorageError) return new RegistryError('UNKNOWN', storage.publicMessage, { status: 500, cause: error });
  return new RegistryError('UNKNOWN', 'internal server error', { cause: error });
}

export function sendError(req: IncomingMessage, res: ServerResponse, error: RegistryError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(error.toBody());
  res.writeHead(error.status, {
    ...error.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Docker-Distribution-API-Version': 'registry/2.0',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}, contentType = 'application/json; charset=utf-8'): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, 'Content-Length': '0' });
  res.end();
}

/** `n` and `last` of tags/list and _catalog. */
export function pageParams(query: URLSearchParams): { limit: number | undefined; after: string | undefined } {
  const n = query.get('n');
  let limit: number | undefined;
  if (n !== null && n !== '') {
    if (!/^\d{1,9}$/.test(n)) throw new RegistryError('UNSUPPORTED', `invalid page size n=${JSON.stringify(n.slice(0, 20))}`, { status: 400 });
    limit = Number(n);
  }
  const last = query.get('last') ?? undefined;
  return { limit, after: last === '' ? undefined : last };
}

/** `Link: </v2/…?n=2&last=b>; rel="next"` */
export function nextLink(path: string, limit: number, last: string): string {
  return `<${path}?n=${limit}&last=${encodeURIComponent(last)}>; rel="next"`;
}
