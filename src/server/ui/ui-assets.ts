import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLOSED_POLICY, contentSecurityPolicy, setPageHeaders } from './page-headers.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json; charset=utf-8',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

interface Asset {
  type: string;
  /** A page's Content-Security-Policy, allowing its own inline script and style by hash. */
  policy: string;
  etag: string;
  identity: Buffer;
  br?: Buffer;
  gzip?: Buffer;
}

/**
 * The built UI (dist/ui: index.html and index-home.html, whose script and style are inline, and
 * assets/ with hashed names; each file with .br and .gz made at build time), held in memory: a
 * few hundred KB, read once at start, so a page costs no disk read and no compression work per
 * request. Hashed assets are immutable; the pages are revalidated each time (ETag), so a new
 * build reaches browsers at once.
 */
export class UiAssets {
  private readonly files: Map<string, Asset>;

  private constructor(files: Map<string, Asset>) {
    this.files = files;
  }

  /** Loads `dir` (dist/ui); undefined when it holds no index.html (the UI was not built). */
  static async load(dir: string): Promise<UiAssets | undefined> {
    if (!existsSync(join(dir, 'index.html'))) return undefined;
    const files = new Map<string, Asset>();
    for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || /\.(br|gz|tmp)$/.test(entry.name)) continue;
      const path = join(entry.parentPath, entry.name);
      const name = path.slice(dir.length).replaceAll('\\', '/');
      const identity = await readFile(path);
      const type = TYPES[extname(name)] ?? 'application/octet-stream';
      const policy = type.startsWith('text/html') ? contentSecurityPolicy(inlineHashes(identity.toString('utf8'))) : CLOSED_POLICY;
      const asset: Asset = { type, policy, etag: `"${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}"`, identity };
      const br = await readFile(`${path}.br`).catch(() => undefined);
      const gzip = await readFile(`${path}.gz`).catch(() => undefined);
      if (br) asset.br = br;
      if (gzip) asset.gzip = gzip;
      files.set(name, asset);
    }
    return new UiAssets(files);
  }

  /** True when `path` is one of the built files under /assets/. */
  has(path: string): boolean {
    return path.startsWith('/assets/') && this.files.has(path);
  }

  /**
   * Sends the page shell (for every client-side route) or an asset. `/` without a query gets
   * index-home.html, which also preloads the repository list's first page.
   */
  send(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): void {
    let name = path.startsWith('/assets/') ? path : '/index.html';
    if (path === '/' && query.size === 0 && this.files.has('/index-home.html')) name = '/index-home.html';
    const asset = this.files.get(name)!;
    setPageHeaders(res, asset.policy);
    res.setHeader('Content-Type', asset.type);
    res.setHeader('ETag', asset.etag);
    res.setHeader('Vary', 'Accept-Encoding');
    res.setHeader('Cache-Control', path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
    if (req.headers['if-none-match'] === asset.etag) {
      res.writeHead(304).end();
      return;
    }
    const accepted = acceptedEncodings(req.headers['accept-encoding']);
    let body = asset.identity;
    if (asset.br && accepted.has('br')) {
      body = asset.br;
      res.setHeader('Content-Encoding', 'br');
    } else if (asset.gzip && accepted.has('gzip')) {
      body = asset.gzip;
      res.setHeader('Content-Encoding', 'gzip');
    }
    res.setHeader('Content-Length', body.length);
    res.writeHead(200);
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/**
 * The SHA-256 sources of a page's inline `<script>` and `<style>` blocks, as CSP writes them
 * (`sha256-<base64>` of the exact text between the tags).
 */
export function inlineHashes(html: string): { scripts: string[]; styles: string[] } {
  const hashes = (pattern: RegExp) => [...html.matchAll(pattern)].map((match) => `sha256-${createHash('sha256').update(match[1]!, 'utf8').digest('base64')}`);
  return { scripts: hashes(/<script\b[^>]*>([\s\S]*?)<\/script>/gi), styles: hashes(/<style\b[^>]*>([\s\S]*?)<\/style>/gi) };
}

/** Codings the client accepts (a `;q=0` refuses one). */
function acceptedEncodings(header: string | undefined): Set<string> {
  const accepted = new Set<string>();
  for (const part of (header ?? '').split(',')) {
    const [coding = '', ...params] = part.trim().toLowerCase().split(';');
    if (params.some((param) => /^\s*q=0(\.0*)?\s*$/.test(param))) continue;
    if (coding) accepted.add(coding);
  }
  return accepted;
}

/**
 * dist/ui of this installation: found from this module upwards, since it runs from src/ (tests)
 * or from a bundle chunk in dist/.
 */
export function builtUiDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'dist', 'ui');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    // dist/ itself (this module bundled into dist/chunks/): not src/, which holds the template.
    if (existsSync(join(dir, 'ui', 'index.html')) && existsSync(join(dir, 'cli', 'main.js'))) return join(dir, 'ui');
    const parent = dirname(dir);
    if (parent === dir) return join(dirname(fileURLToPath(import.meta.url)), 'dist', 'ui');
    dir = parent;
  }
}
