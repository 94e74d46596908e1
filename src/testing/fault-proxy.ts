import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What to do to one proxied request; decided per request by the test. */
export interface Fault {
  /** Answer with this status (and optional Retry-After) instead of forwarding. */
  status?: number;
  retryAfter?: string;
  /** Forward, but cut the connection after this many response body bytes. */
  dropAfterBytes?: number;
  /** Forward, but flip one byte at this body offset. */
  corruptAt?: number;
  /** Forward the request body only this far, then cut both connections (a broken upload). */
  cutRequestAfterBytes?: number;
  /**
   * Like cutRequestAfterBytes, but stop reading the request body there too, so the client's
   * writes back up before the cut: an upload that breaks while its source is mid-stream.
   */
  stallRequestAfterBytes?: number;
  /** Forward this many response body bytes, then hang (the client is killed meanwhile). */
  stallAfterBytes?: number;
}

export interface ProxiedRequest {
  method: string;
  url: string;
  range: string | undefined;
}

/**
 * A small HTTP proxy for tests: counts and records requests, and injects faults (5xx, 429 +
 * Retry-After, a connection dropped mid-body, corrupted bytes) chosen by `decide`.
 */
export class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  decide: (req: ProxiedRequest, index: number) => Fault | undefined = () => undefined;
  private server: Server | undefined;
  private readonly target: URL;

  constructor(targetBaseUrl: string) {
    this.target = new URL(targetBaseUrl);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  count(predicate: (r: ProxiedRequest) => boolean): number {
    return this.requests.filter(predicate).length;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const info: ProxiedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', range: req.headers.range };
    this.requests.push(info);
    const fault = this.decide(info, this.requests.length - 1) ?? {};
    if (fault.status !== undefined) {
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json', ...(fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {}) });
      res.end(JSON.stringify({ errors: [{ code: fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE', message: 'injected fault' }] }));
      return;
    }
    const upstream = request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers: { ...req.headers, host: this.target.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        let sent = 0;
        up.on('data', (chunk: Buffer) => {
          let piece = chunk;
          if (fault.corruptAt !== undefined && fault.corruptAt >= sent && fault.corruptAt < sent + piece.length) {
            piece = Buffer.from(piece);
            piece[fault.corruptAt - sent] = piece[fault.corruptAt - sent]! ^ 0xff;
          }
          if (fault.stallAfterBytes !== undefined && sent + piece.length > fault.stallAfterBytes) {
            res.write(piece.subarray(0, Math.max(0, fault.stallAfterBytes - sent)));
            sent = fault.stallAfterBytes;
            up.pause();
            return;
          }
          if (fault.dropAfterBytes !== undefined && sent + piece.length > fault.dropAfterBytes) {
            res.write(piece.subarray(0, Math.max(0, fault.dropAfterBytes - sent)));
            up.destroy();
            setTimeout(() => res.socket?.destroy(), 10);
            return;
          }
          sent += piece.length;
          res.write(piece);
        });
        up.on('end', () => res.end());
        up.on('error', () => res.destroy());
      },
    );
    upstream.on('error', () => res.destroy());
    // A client that goes away (killed mid-stall) takes its upstream request along: left paused, it
    // would hold the registry's response open until that server's idle timeout.
    let complete = false;
    upstream.once('response', (up) => up.once('end', () => (complete = true)));
    res.once('close', () => {
      if (!complete) upstream.destroy();
    });
    const limit = fault.cutRequestAfterBytes ?? fault.stallRequestAfterBytes;
    if (limit === undefined) {
      req.pipe(upstream);
      return;
    }
    const stall = fault.cutRequestAfterBytes === undefined;
    let forwarded = 0;
    req.on('data', (chunk: Buffer) => {
      if (forwarded >= limit) return;
      const piece = chunk.subarray(0, limit - forwarded);
      forwarded += piece.length;
      upstream.write(piece);
      if (forwarded >= limit) {
        if (stall) req.pause();
        // Give the upstream a moment to take the bytes (and a stalled client's writes time to
        // back up), then break both sides.
        setTimeout(
          () => {
            upstream.destroy();
            req.socket.destroy();
          },
          stall ? 200 : 50,
        );
      }
    });
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
