import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TokenGrant } from '../auth/access-token.ts';
import type { AccessPolicy } from '../auth/access-policy.ts';
import type { Action } from '../auth/actions.ts';
import type { Htpasswd, VerifiedUser } from '../auth/htpasswd.ts';
import type { LoginLimiter } from '../auth/login-limiter.ts';
import { formatScope } from '../auth/scope.ts';
import type { TokenIssuer } from '../auth/token-issuer.ts';
import { TokenRejected, type TokenVerifier } from '../auth/token-verifier.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { nameProblem } from '../reference/name.ts';
import { plainHost } from './http-util.ts';

/** What a request needs, derived from its route before any handler runs. */
export type Need =
  | { kind: 'base' }
  | { kind: 'catalog' }
  /** `name` as the request addressed it; `policyName` where its content lives (a mirror's canonical name). */
  | {
      kind: 'repository';
      name: string;
      policyName: string;
      actions: Action[];
      /** Scopes a challenge also asks for, without the request needing them: pull on a mount's `from`. */
      optional?: string[];
    };

/** The decision handed to handlers: who asked, and what else they may read (catalog, mounts). */
export interface Caller {
  /** The authenticated user; undefined when anonymous, or when authentication is off. */
  readonly user: string | undefined;
  /** May the caller pull the repository stored as `policyName` (addressed as `name`)? Cross-repository mounts ask this. */
  mayPull(policyName: string, name?: string): boolean;
  /** Does the catalog show the caller this repository? */
  mayList(policyName: string): boolean;
}

/** Authentication off: everyone may do everything, as before access control existed. */
export const OPEN_CALLER: Caller = { user: undefined, mayPull: () => true, mayList: () => true };

export interface AccessControlOptions {
  htpasswd: Htpasswd | undefined;
  policy: AccessPolicy;
  /** The challenge clients get: `token` points them at the token service, `basic` asks for a password. */
  scheme: 'basic' | 'token';
  /** Checks bearer tokens: the built-in service's, or an external issuer's. */
  verifier: TokenVerifier | undefined;
  /** The built-in token service, when this server issues tokens. */
  issuer: TokenIssuer | undefined;
  /** The token endpoint clients are sent to; derived from the request's Host when not configured. */
  realm: string | undefined;
  /** The `service` of challenges and the `aud` of tokens. */
  service: string;
  limiter: LoginLimiter;
  /** The server speaks TLS: derived realms are https. */
  tls: boolean;
  /** The stored name of a repository as addressed (a mirror route's canonical name, or itself). */
  policyName(name: string): string;
}

interface Credentials {
  kind: 'none' | 'basic' | 'bearer' | 'other';
  user?: string;
  password?: string;
  token?: string;
}

/** Verified Basic credentials are remembered this long, keyed by a hash of the header: bcrypt runs once per client, not per request. */
const BASIC_CACHE_MS = 5 * 60_000;
const BASIC_CACHE_SIZE = 10_000;

/**
 * One decision per request, before its handler (DESIGN.md §7): parse the credentials, check them
 * (bcrypt on a cache miss, a token's signature once per token), compare what the route needs with
 * what the caller holds, and either hand the handler a Caller or refuse with the spec's errors:
 * 401 + a challenge when more credentials could help, 403 DENIED when the policy says no to who
 * the caller is, 429 + Retry-After after too many wrong passwords.
 */
export class AccessControl {
  readonly options: AccessControlOptions;
  private readonly basicVerdicts = new Map<string, { user: VerifiedUser; version: number; until: number }>();

  constructor(options: AccessControlOptions) {
    this.options = options;
  }

  async authorize(req: IncomingMessage, need: Need): Promise<Caller> {
    const credentials = parseAuthorization(req.headers.authorization);
    switch (credentials.kind) {
      case 'none':
        return this.decideForUser(req, undefined, need, false);
      case 'basic': {
        const user = await this.checkPassword(req, credentials.user!, credentials.password!, need);
        return this.decideForUser(req, user.name, need, true);
      }
      case 'bearer':
        return this.decideForToken(req, await this.checkToken(req, credentials.token!, need), need);
      default:
        throw this.challenge(need, 'unsupported Authorization scheme; use Basic or Bearer', undefined, req);
    }
  }

  /**
   * Basic credentials against the password file, with the failed-login limits: a pair already
   * over its bound is refused before bcrypt runs (and without telling whether this password was right).
   */
  async checkPassword(req: IncomingMessage, user: string, password: string, need?: Need): Promise<VerifiedUser> {
    const htpasswd = this.options.htpasswd;
    const key = createHash('sha256').update(user).update('\u0000').update(password).digest('base64');
    const now = Date.now();
    const cached = this.basicVerdicts.get(key);
    if (cached && cached.until > now && htpasswd) {
      // A changed file (a new password, a removed user) ends the verdicts made under the old one.
      await htpasswd.refresh();
      if (cached.version === htpasswd.version) return cached.user;
    }
    const address = req.socket.remoteAddress ?? '';
    const wait = await this.options.limiter.retryAfter(user, address);
    if (wait !== undefined) {
      throw new RegistryError('TOOMANYREQUESTS', `too many failed logins for ${user} from this address; try again in ${wait} s`, { headers: { 'Retry-After': String(wait) } });
    }
    const verified = htpasswd ? await htpasswd.verify(user, password) : undefined;
    if (!verified) {
      await this.options.limiter.recordFailure(user, address);
      throw this.challenge(need ?? { kind: 'base' }, 'incorrect username or password', 'invalid_token', req);
    }
    if (this.basicVerdicts.size >= BASIC_CACHE_SIZE) this.basicVerdicts.clear();
    this.basicVerdicts.set(key, { user: verified, version: htpasswd!.version, until: now + BASIC_CACHE_MS });
    return verified;
  }

  /** The WWW-Authenticate challenge for `need`, as a 401 UNAUTHORIZED. */
  challenge(need: Need, message: string, error?: 'invalid_token' | 'insufficient_scope', req?: IncomingMessage): RegistryError {
    return new RegistryError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': this.challengeHeader(need, error, req) } });
  }

  /** The realm clients fetch tokens from: configured, or this server's own `/token` at the Host they used. */
  realmFor(req: IncomingMessage | undefined): string {
    if (this.options.realm) return this.options.realm;
    // Only a plain host[:port] is echoed back: the challenge is a header, and clients follow its URL.
    const safe = plainHost(req) ?? req?.socket.localAddress ?? 'localhost';
    return `${this.options.tls ? 'https' : 'http'}://${safe}/token`;
  }

  private challengeHeader(need: Need, error: string | undefined, req: IncomingMessage | undefined): string {
    if (this.options.scheme === 'basic') return 'Basic realm="skiff", charset="UTF-8"';
    const parts = [`realm="${this.realmFor(req)}"`, `service="${this.options.service}"`];
    // Only a valid name is echoed into the header: a path may carry quotes or control characters.
    if (need.kind === 'repository' && nameProblem(need.name) === undefined) parts.push(`scope="${[formatScope('repository', need.name, need.actions), ...(need.optional ?? [])].join(' ')}"`);
    if (need.kind === 'catalog') parts.push('scope="registry:catalog:*"');
    if (error) parts.push(`error="${error}"`);
    return `Bearer ${parts.join(',')}`;
  }

  private async checkToken(req: IncomingMessage, token: string, need: Need): Promise<TokenGrant> {
    if (!this.options.verifier) throw this.challenge(need, 'this registry takes Basic credentials, not bearer tokens', undefined, req);
    try {
      return await this.options.verifier.verify(token);
    } catch (error) {
      if (error instanceof TokenRejected) throw this.challenge(need, error.message, 'invalid_token', req);
      throw error;
    }
  }

  private decideForUser(req: IncomingMessage, user: string | undefined, need: Need, authenticated: boolean): Caller {
    const policy = this.options.policy;
    const mayPull = (policyName: string): boolean => policy.allows(user, policyName, 'pull');
    const caller: Caller = { user, mayPull, mayList: mayPull };
    // docker and podman login probe /v2/ and take a 200 as "these credentials work": anonymous
    // requests must be challenged there, whatever anonymous may pull.
    if (need.kind === 'base' || need.kind === 'catalog') {
      if (!authenticated) throw this.challenge(need, 'authentication required', undefined, req);
      return caller;
    }
    const allowed = policy.actionsFor(user, need.policyName);
    if (need.actions.every((action) => allowed.has(action))) return caller;
    if (!authenticated) throw this.challenge(need, `authentication required to ${need.actions.join(' and ')} ${need.name}`, undefined, req);
    throw denied(user!, need);
  }

  private decideForToken(req: IncomingMessage, grant: TokenGrant, need: Need): Caller {
    const policy = this.options.policy;
    const user = grant.subject;
    // A token from this server's service was granted by this policy; it is checked again so that
    // a rule tightened since, or a name that routes elsewhere via ?ns=, does not outlive its token.
    const policyAllows = (policyName: string, action: Action): boolean => !grant.builtin || policy.allows(user, policyName, action);
    const tokenAllows = (name: string, action: Action): boolean => grant.repositories.get(name)?.has(action) ?? false;
    const caller: Caller = {
      user,
      mayPull: (policyName, name = policyName) => tokenAllows(name, 'pull') && policyAllows(policyName, 'pull'),
      mayList: (policyName) => policyAllows(policyName, 'pull'),
    };
    // An anonymous token authenticates nobody: /v2/ (and /metrics) must still challenge it.
    if (need.kind === 'base') {
      if (user === undefined) throw this.challenge(need, 'authentication required', undefined, req);
      return caller;
    }
    if (need.kind === 'catalog') {
      if (!grant.catalog) throw this.challenge(need, 'the token does not grant registry:catalog:*', 'insufficient_scope', req);
      return caller;
    }
    const policyOk = need.actions.every((action) => policyAllows(need.policyName, action));
    if (policyOk && need.actions.every((action) => tokenAllows(need.name, action))) return caller;
    // The policy refuses this user outright: a new token would not help.
    if (!policyOk && user !== undefined) throw denied(user, need);
    const why = user === undefined ? `authentication required to ${need.actions.join(' and ')} ${need.name}` : `the token does not grant ${need.actions.join(',')} on ${need.name}`;
    throw this.challenge(need, why, 'insufficient_scope', req);
  }
}

function denied(user: string, need: Extract<Need, { kind: 'repository' }>): RegistryError {
  return new RegistryError('DENIED', `user ${user} may not ${need.actions.join(' or ')} ${need.name}`, { detail: { name: need.name, actions: need.actions } });
}

function parseAuthorization(header: string | undefined): Credentials {
  if (header === undefined || header === '') return { kind: 'none' };
  const space = header.indexOf(' ');
  const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
  const value = space === -1 ? '' : header.slice(space + 1).trim();
  if (scheme === 'bearer' && value !== '') return { kind: 'bearer', token: value };
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { kind: 'basic', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return { kind: 'other' };
}

export { parseAuthorization };
