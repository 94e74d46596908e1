import type { ServerResponse } from 'node:http';

/**
 * The Content-Security-Policy of a UI page. The page's own script and stylesheet are inline and
 * allowed by their SHA-256 (`'sha256-…'`, computed from the built page at start); nothing else
 * may run: no other inline code (so an injected `<script>` in a repository name or label cannot
 * run, and Preact writes such text as text anyway), no script from anywhere, no connection but to
 * this origin, and no framing (no clickjacking of the delete buttons).
 */
export function contentSecurityPolicy(inline: { scripts: string[]; styles: string[] }): string {
  const sources = (hashes: string[]) => (hashes.length === 0 ? "'none'" : hashes.map((hash) => `'${hash}'`).join(' '));
  return [
    "default-src 'none'",
    `script-src ${sources(inline.scripts)}`,
    `style-src ${sources(inline.styles)}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** For responses that are not a page (an asset, a 503): nothing may run in them. */
export const CLOSED_POLICY = contentSecurityPolicy({ scripts: [], styles: [] });

export function setPageHeaders(res: ServerResponse, policy: string = CLOSED_POLICY): void {
  res.setHeader('Content-Security-Policy', policy);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}
