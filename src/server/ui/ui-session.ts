import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RegistryError } from '../../errors/registry-error.ts';
import type { AccessControl } from '../access-control.ts';

const SESSION_COOKIE = 'skiff_session';
const CSRF_COOKIE = 'skiff_csrf';

/** Who the browser is, as the UI's API decides it for every request. */
export interface UiCaller {
  user: string | undefined;
  mayPull(repository: string): boolean;
  mayDelete(repository: string): boolean;
  /** Registry-wide operations (the GC dry run). */
  admin: boolean;
}

/**
 * The UI's login, kept in cookies and checked by the registry's own token service:
 *
 * - A login checks the password exactly as `docker login` does (the same password file, the same
 *   failed-login limits), and the session cookie holds a refresh token the token service signs.
 *   So a changed password or a removed user ends UI sessions as it ends `docker login`s, and any
 *   replica that shares the token key reads the cookie; the server keeps no session table.
 * - The cookie is HttpOnly (no script reads it: no secret in the page), SameSite=Strict and Secure
 *   under TLS.
 * - CSRF: every action (POST, DELETE) must carry `X-CSRF-Token` equal to the `skiff_csrf` cookie
 *   (double submit: another site can neither read the cookie nor set the header without CORS,
 *   which this server never allows), and a cross-site `Origin` or `Sec-Fetch-Site` is refused.
 */
export class UiSessions {
  private readonly access: AccessControl | undefined;
  private readonly tls: boolean;

  constructor(access: AccessControl | undefined, tls: boolean) {
    this.access = access;
    this.tls = tls;
  }

  /** The session cookie can be issued: authentication is on with this server's token service. */
  get canLogin(): boolean {
    return this.access?.options.issuer !== undefined && this.access.options.htpasswd !== undefined;
  }

  /** May run registry-wide operations: everyone with authentication off. */
  isAdmin(user: string | undefined): boolean {
    return this.access === undefined || this.access.options.policy.isAdmin(user);
  }

  /** The caller of a UI request: the session's user (an invalid or ended session is anonymous). */
  async caller(req: IncomingMessage, deleteEnabled: boolean): Promise<UiCaller> {
    const access = this.access;
    if (!access) return { user: undefined, mayPull: () => true, mayDelete: () => deleteEnabled, admin: true };
    const user = await this.sessionUser(req);
    const policy = access.options.policy;
    return {
      user,
      mayPull: (repository) => policy.allows(user, repository, 'pull'),
      mayDelete: (repository) => deleteEnabled && policy.allows(user, repository, 'delete'),
      admin: this.isAdmin(user),
    };
  }

  private async sessionUser(req: IncomingMessage): Promise<string | undefined> {
    const token = cookies(req).get(SESSION_COOKIE);
    const issuer = this.access?.options.issuer;
    if (!token || !issuer) return undefined;
    const claims = await issuer.readRefreshToken(token);
    // A changed password or a removed user ends the session, as it ends refresh tokens.
    if (!claims || (await this.access!.options.htpasswd?.entryOf(claims.subject)) !== claims.entry) return undefined;
    return claims.subject;
  }

  /** The CSRF token of this browser, set as a cookie when it has none yet. */
  csrfToken(req: IncomingMessage, res: ServerResponse): string {
    const existing = cookies(req).get(CSRF_COOKIE);
    if (existing && /^[A-Za-z0-9_-]{32,64}$/.test(existing)) return existing;
    const token = randomBytes(32).toString('base64url');
    this.setCookie(res, CSRF_COOKIE, token, undefined);
    return token;
  }

  /** Refuses an action that is not this browser's own page asking. */
  checkAction(req: IncomingMessage): void {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') throw forbidden('cross-site request refused');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let host: string;
      try {
        host = new URL(origin).host;
      } catch {
        throw forbidden('invalid Origin header');
      }
      if (host !== req.headers.host) throw forbidden(`cross-origin request from ${origin.slice(0, 100)} refused`);
    } else if (origin === 'null') throw forbidden('opaque-origin request refused');
    const expected = cookies(req).get(CSRF_COOKIE);
    const sent = req.headers['x-csrf-token'];
    if (!expected || typeof sent !== 'string' || !sameText(expected, sent)) throw forbidden('missing or wrong X-CSRF-Token: reload the page and try again');
  }

  /** Checks the password (with the failed-login limits) and sets the session cookie. */
  async login(req: IncomingMessage, res: ServerResponse, username: string, password: string): Promise<string> {
    const access = this.access;
    if (!access || !this.canLogin) throw new RegistryError('UNSUPPORTED', 'this registry has no login of its own (authentication is off, or tokens come from an external issuer)', { status: 404 });
    let verified;
    try {
      verified = await access.checkPassword(req, username, password);
    } catch (error) {
      // Not the registry's Bearer challenge: a browser must not pop up its own password dialog.
      if (error instanceof RegistryError && error.code === 'UNAUTHORIZED') throw new RegistryError('UNAUTHORIZED', 'incorrect username or password');
      throw error;
    }
    const token = await access.options.issuer!.refreshToken(verified.name, verified.entry);
    // A session as long as a browser session: no Max-Age, so closing the browser logs out.
    this.setCookie(res, SESSION_COOKIE, token, undefined);
    return verified.name;
  }

  logout(res: ServerResponse): void {
    this.setCookie(res, SESSION_COOKIE, '', 0);
  }

  private setCookie(res: ServerResponse, name: string, value: string, maxAge: number | undefined): void {
    const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
    if (this.tls) parts.push('Secure');
    if (maxAge !== undefined) parts.push(`Max-Age=${maxAge}`);
    const previous = res.getHeader('Set-Cookie');
    const list = Array.isArray(previous) ? previous : previous === undefined ? [] : [String(previous)];
    res.setHeader('Set-Cookie', [...list, parts.join('; ')]);
  }
}

function forbidden(message: string): RegistryError {
  return new RegistryError('DENIED', message);
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function cookies(req: IncomingMessage): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const equals = part.indexOf('=');
    if (equals <= 0) continue;
    const name = part.slice(0, equals).trim();
    // The first of duplicates wins, as browsers send the most specific path first.
    if (!found.has(name)) found.set(name, part.slice(equals + 1).trim());
  }
  return found;
}
