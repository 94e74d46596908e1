import type { IncomingHttpHeaders } from 'node:http';

/** A response head bigger than this is refused (node:http's default limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

/** How the body after a head ends. */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

export interface ResponseHead {
  statusCode: number;
  headers: IncomingHttpHeaders;
  framing: BodyFraming;
  /** Whether the connection may carry another request once this body is read. */
  reusable: boolean;
}

/** A head that is not HTTP/1.x as RFC 9112 writes it. */
export class MalformedResponseError extends Error {
  readonly code = 'HPE_INVALID_RESPONSE';
  constructor(reason: string) {
    super(`malformed HTTP response: ${reason}`);
    this.name = 'MalformedResponseError';
  }
}

/**
 * Fields node:http keeps the first of when a response repeats them (its IncomingMessage rules).
 * Transfer-Encoding is one there too, but its codings are joined here: the framing reads the last.
 */
const DISCARD_REPEATS = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'date',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Where the head ends (the index after its blank line), or -1 when it has not all arrived. */
export function headEnd(bytes: Buffer): number {
  const at = bytes.indexOf('\r\n\r\n', 0, 'latin1');
  return at < 0 ? -1 : at + 4;
}

/**
 * Parses a response head (status line, header fields, the blank line) of a response to a GET or a
 * HEAD, and decides its body's framing as RFC 9112 §6.3 does: no body for a HEAD or for 1xx/204/304,
 * chunked when the last transfer coding is chunked, read-until-close for another transfer coding,
 * else Content-Length, else until close. Repeated fields are merged as node:http merges them, so
 * that callers see the same headers from either client: Set-Cookie a list, the single-valued
 * fields of DISCARD_REPEATS their first value, every other field joined with ", ".
 */
export function parseResponseHead(head: Buffer, method: 'GET' | 'HEAD' = 'GET'): ResponseHead {
  const lines = head.toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/.exec(lines[0] ?? '');
  if (!status) throw new MalformedResponseError(`status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const minor = status[1]!;
  const statusCode = Number(status[2]);
  const headers: IncomingHttpHeaders = {};
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw new MalformedResponseError(`header line ${JSON.stringify(line.slice(0, 80))}`);
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new MalformedResponseError(`header ${name} holds a control character`);
    const key = name.toLowerCase();
    const previous = headers[key];
    if (key === 'set-cookie') headers[key] = [...((previous as string[] | undefined) ?? []), value];
    else if (key === 'content-length' && previous !== undefined && previous !== value) throw new MalformedResponseError('two different Content-Length fields');
    else if (previous === undefined) headers[key] = value;
    else if (!DISCARD_REPEATS.has(key)) headers[key] = `${previous as string}, ${value}`;
  }
  const connection = String(headers.connection ?? '').toLowerCase();
  let reusable = minor === '1' ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
  let framing: BodyFraming;
  const codings = headers['transfer-encoding'];
  if (method === 'HEAD' || statusCode < 200 || statusCode === 204 || statusCode === 304) framing = { kind: 'none' };
  else if (codings !== undefined) {
    framing = /(?:^|,)\s*chunked\s*$/i.test(String(codings)) ? { kind: 'chunked' } : { kind: 'close' };
    // Both fields: a sign of request smuggling in between (RFC 9112 §6.3); this body ends the connection.
    if (headers['content-length'] !== undefined) reusable = false;
  } else if (headers['content-length'] !== undefined) {
    const text = String(headers['content-length']);
    if (!/^\d{1,16}$/.test(text)) throw new MalformedResponseError(`Content-Length ${JSON.stringify(text.slice(0, 40))}`);
    framing = { kind: 'length', length: Number(text) };
  } else framing = { kind: 'close' };
  if (framing.kind === 'close') reusable = false;
  return { statusCode, headers, framing, reusable };
}

/** Header names and values as they may be written into a request head: no injection. */
export function requestHead(method: string, path: string, host: string, headers: Record<string, string>): string {
  if (!/^\/[^\s]*$/.test(path)) throw new Error(`request path ${JSON.stringify(path.slice(0, 80))} is not an absolute path`);
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'host') continue;
    if (!TOKEN.test(name)) throw new TypeError(`invalid header name ${JSON.stringify(name)}`);
    if (/[\0\r\n]/.test(value)) throw new TypeError(`invalid character in header ${name}`);
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}
