import { createHash } from 'node:crypto';
import { request } from 'node:http';

/** What one request read: its status and headers, and its body's length and digest up to its end or its break. */
export interface FetchedBytes {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  digest: string;
  /** The body itself, with `keep`. */
  body?: Buffer;
  /** The body broke before its Content-Length, or the connection before any header. */
  cut: boolean;
}

/**
 * One request with node:http on a connection of its own, hashing the body to its end or its
 * break, which fetch() would turn into an exception: the mirror tests look at how a response
 * ended. `keep` keeps the body (manifests); `stopAfter` hangs up after that many bytes.
 */
export function fetchBytes(url: string, options: { method?: string; headers?: Record<string, string>; keep?: boolean; stopAfter?: number } = {}): Promise<FetchedBytes> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false }, (res) => {
      const hash = createHash('sha256');
      const chunks: Buffer[] = [];
      let bytes = 0;
      const done = (cut: boolean) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, digest: `sha256:${hash.digest('hex')}`, cut, ...(options.keep ? { body: Buffer.concat(chunks) } : {}) });
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        if (options.keep) chunks.push(chunk);
        bytes += chunk.length;
        if (options.stopAfter !== undefined && bytes >= options.stopAfter) {
          res.destroy();
          done(false);
        }
      });
      res.on('end', () => done(!res.complete));
      res.on('error', () => done(true));
      res.on('aborted', () => undefined);
    });
    // Cut before any header was sent (a one-byte range waits for the verified commit): a broken response too.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? resolve({ status: 0, headers: {}, bytes: 0, digest: '', cut: true }) : reject(error)));
    req.end();
  });
}
