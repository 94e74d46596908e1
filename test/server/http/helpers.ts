/**
 * Shared helpers for the black-box HTTP tests of the registry. Not a test file itself.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { digestOf, type Digest } from '../../../src/digest/digest.ts';
import type { Blob } from '../../../src/testing/images.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** Every value of each header, lowercase names. */
  distinct: Record<string, string[]>;
  body: Buffer;
}

export interface RawOptions {
  headers?: Record<string, string | number>;
  /** Sent as is; with no body, Node frames the request with Content-Length: 0 (or nothing for GET/HEAD/DELETE). */
  body?: Buffer | string;
}

/**
 * One request through node:http, with the path sent byte for byte (no client-side
 * normalization of `..` or percent-encoding, unlike fetch).
 * Resolves on the response even if the server closes the connection while the body is still being sent.
 */
export function raw(base: string, method: string, path: string, options: RawOptions = {}): Promise<RawResponse> {
  const target = new URL(base);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      { host: target.hostname, port: target.port, method, path, headers: options.headers ?? {}, agent: false },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, distinct: res.headersDistinct as Record<string, string[]>, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    if (options.body !== undefined) req.end(options.body);
    else req.end();
  });
}

export interface ErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** Asserts the spec's error body `{"errors":[{code,message}]}` with the given code. */
export function assertErrorBody(text: string | Buffer, code: string): ErrorEntry {
  const parsed = JSON.parse(text.toString()) as { errors?: unknown };
  assert.ok(Array.isArray(parsed.errors), `errors array in ${text.toString()}`);
  assert.ok(parsed.errors.length >= 1);
  const entry = parsed.errors[0] as ErrorEntry;
  assert.equal(entry.code, code, `error code in ${text.toString()}`);
  assert.equal(typeof entry.message, 'string');
  return entry;
}

/** Asserts status and error code of a fetch response (consumes the body). */
export async function expectError(res: Response, status: number, code: string): Promise<ErrorEntry> {
  const text = await res.text();
  assert.equal(res.status, status, `status (body ${text})`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return assertErrorBody(text, code);
}

/** Same for a raw response. */
export function expectRawError(res: RawResponse, status: number, code: string): ErrorEntry {
  assert.equal(res.status, status, `status (body ${res.body.toString()})`);
  return assertErrorBody(res.body, code);
}

/** A blob with arbitrary bytes. */
export function blobOf(data: Buffer | string, mediaType = 'application/octet-stream'): Blob {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  return { descriptor: { mediaType, digest: digestOf(bytes), size: bytes.length }, data: bytes };
}

/** A JSON manifest (exact bytes of JSON.stringify) as a Blob. */
export function manifestOf(value: unknown, mediaType: string = MediaTypes.ociManifest): Blob {
  return blobOf(Buffer.from(JSON.stringify(value)), mediaType);
}

/** The empty config `{}` every artifact points at. */
export const EMPTY_CONFIG = blobOf('{}', MediaTypes.ociEmpty);

export const EMPTY_SHA256: Digest = digestOf(Buffer.alloc(0));

/** A syntactically valid digest of content that nobody has pushed. */
export function unknownDigest(seed: string): Digest {
  return digestOf(`never pushed: ${seed}`);
}

/** Starts an upload session, returns its absolute URL. */
export async function startUpload(base: string, repo: string): Promise<URL> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202, await res.text());
  const location = res.headers.get('location');
  assert.ok(location);
  return new URL(location, base);
}

/** `url` with `?digest=` (keeping any query the registry put there). */
export function withDigest(url: URL, digest: string): URL {
  const out = new URL(url);
  out.searchParams.set('digest', digest);
  return out;
}

/** Parses `Range: 0-<end>` into the end offset. */
export function rangeEnd(value: string | null | undefined): number {
  const match = /^0-(\d+)$/.exec(value ?? '');
  assert.ok(match, `Range header ${value}`);
  return Number(match[1]);
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Records exceptions and rejections the in-process server lets escape. In a real `skiff serve`
 * either one ends the process, so a test that provokes one must fail.
 */
export function captureEscapes(): { take(): string[]; dispose(): void } {
  const escaped: unknown[] = [];
  const onError = (error: unknown) => {
    escaped.push(error);
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  return {
    take: () => escaped.splice(0).map((e) => String((e as Error)?.stack ?? e).split('\n').slice(0, 2).join(' | ')),
    dispose() {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
    },
  };
}

/** A raw TCP connection to the registry: what was received, and when the server closed it. */
export interface RawConnection {
  socket: Socket;
  received(): string;
  closed: Promise<number>;
  /** Resolves with the first whole response (headers and Content-Length body), or what came before the close. */
  firstResponse(): Promise<string>;
}

export function open(url: string, payload?: string | Buffer): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    const started = Date.now();
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now() - started)));
    socket.once('connect', () => {
      if (payload !== undefined) socket.write(payload);
      const firstResponse = () =>
        new Promise<string>((done) => {
          const check = () => {
            const end = text.indexOf('\r\n\r\n');
            const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
            if (end !== -1 && text.length >= end + 4 + Number(length?.[1] ?? 0)) {
              socket.off('data', check);
              done(text.slice(0, end + 4 + Number(length?.[1] ?? 0)));
            }
          };
          socket.on('data', check);
          void closed.then(() => done(text));
          check();
        });
      resolve({ socket, received: () => text, closed, firstResponse });
    });
    socket.once('error', reject);
  });
}

export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

export function requestText(method: string, path: string, headers: Record<string, string | number> = {}, body = ''): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: registry', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (body !== '' || method === 'PUT' || method === 'PATCH' || method === 'POST') lines.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** The JWT payload, unverified (tests read what a token claims). */
export function jwtClaims(token: string): { sub?: string; aud?: string; iss?: string; exp?: number; access?: unknown; [claim: string]: unknown } {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub?: string };
}

export function headerOf(res: RawResponse, name: string): string | undefined {
  const value = res.headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** status, a JSON content type, and errors[0].code. */
export function expectRefusal(res: RawResponse, status: number, code: string, what = ''): void {
  assert.equal(res.status, status, `${what} status (body ${res.body.toString().slice(0, 300)})`);
  assert.match(headerOf(res, 'content-type') ?? '', /^application\/json/, `${what} content type`);
  assertErrorBody(res.body, code);
}
