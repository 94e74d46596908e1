import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

/** Query parameters that carry secrets: tokens, passwords, S3 signatures, upload state. */
const SECRET_PARAMS = new Set([
  'access_token',
  'refresh_token',
  'token',
  'password',
  'client_secret',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'signature',
  '_state',
]);

/** The request target with secret-bearing query values replaced, for logs. */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const query = url
    .slice(queryStart + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const rawKey = eq === -1 ? pair : pair.slice(0, eq);
      let key = rawKey;
      try {
        key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      } catch {
        // keep the raw key
      }
      return SECRET_PARAMS.has(key.toLowerCase()) ? `${rawKey}=REDACTED` : pair;
    })
    .join('&');
  return `${url.slice(0, queryStart)}?${query}`;
}

/**
 * Paths polled by machines whose successful answers are logged at debug, not info: a Prometheus
 * scraping every 15 s would write 5,760 identical lines a day. Failures stay at info or warn.
 */
const QUIET_PATHS = new Set(['/metrics']);

function quiet(url: string, status: number): boolean {
  const queryStart = url.indexOf('?');
  return status < 400 && QUIET_PATHS.has(queryStart === -1 ? url : url.slice(0, queryStart));
}

/** Who each request was from, once access control decided: the audit trail of pushes and deletes. */
const users = new WeakMap<IncomingMessage, string>();

export function noteUser(req: IncomingMessage, user: string | undefined): void {
  if (user !== undefined) users.set(req, user);
}

/**
 * One log line per request, written when the response closes: at info when it completed (at
 * debug for a successful scrape of /metrics), at warn when the client left first
 * (complete: false), which is the only trace a disconnect leaves.
 */
export function logEachRequest(req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const started = process.hrtime.bigint();
  const remote = req.socket?.remoteAddress; // the socket may be gone by the time the response closes
  res.once('close', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const complete = res.writableFinished;
    const line = {
      method: req.method,
      path: redactUrl(req.url ?? ''),
      status: res.statusCode,
      bytes: Number(res.getHeader('content-length') ?? 0),
      ms: Math.round(ms * 100) / 100,
      remote,
      ...(users.has(req) ? { user: users.get(req) } : {}),
      complete,
      // The body is nginx's to send (--x-accel-redirect): `bytes` is this response's, 0.
      ...(res.hasHeader('x-accel-redirect') ? { offloaded: true } : {}),
    };
    if (complete && quiet(req.url ?? '', res.statusCode)) log.debug(line, 'request');
    else if (complete) log.info(line, 'request');
    else log.warn(line, 'request ended before the response was complete');
  });
}

/** True when the failure is the client having gone away, not something the registry did wrong. */
export function clientGone(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = res.socket ?? req.socket; // node nulls these as a connection is torn down
  return res.destroyed || !socket || socket.destroyed;
}
