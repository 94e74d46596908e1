import type { Transport, TransportRequest, TransportResponse } from './transport.ts';
import type { Challenge } from './challenge.ts';
import { ClientError, describeNetworkError } from './errors.ts';
import { ERROR_BODY_LIMIT, readBody } from './read-body.ts';
import type { Credentials } from './registry-client.ts';

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Docker's rule: a token lives `expires_in` seconds, and never less than 60. */
const MIN_LIFETIME_S = 60;
/** Renew a little early so a token never expires in flight. */
const EARLY_S = 10;
/**
 * Tokens kept, least recently used dropped first: a sync of thousands of repositories gets a token
 * per repository scope, and keeping all of them was most of its memory at 10,000 images.
 */
const MAX_TOKENS = 256;

/**
 * Bearer tokens per scope set, fetched from the challenge's realm: OAuth2 POST with an
 * identity token (falling back to GET on 400/401/404/405), else GET with Basic credentials
 * or anonymously.
 */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();

  private key(scopes: string[]): string {
    return [...scopes].sort().join(' ');
  }

  forget(scopes: string[]): void {
    this.tokens.delete(this.key(scopes));
  }

  /** `registry` is whose challenge this is, for messages: the realm may be any host. */
  async get(challenge: Challenge, scopes: string[], credentials: Credentials | undefined, options: TokenRequestOptions): Promise<string> {
    const key = this.key(scopes);
    const cached = this.tokens.get(key);
    if (cached) {
      this.tokens.delete(key);
      if (cached.expiresAt > Date.now()) {
        this.tokens.set(key, cached); // now the most recently used
        return cached.token;
      }
    }
    const realm = challenge.params.realm;
    if (!realm) throw new ClientError(`${options.registry} asked for a Bearer token but named no realm to get it from`, { status: 401, registry: options.registry });
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new ClientError(`${options.registry} names the token server ${JSON.stringify(realm)}, which is not a URL`, { status: 401, registry: options.registry });
    }
    if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') {
      throw new ClientError(`${options.registry} names the token server ${JSON.stringify(realm)}, which is not an http(s) URL`, { status: 401, registry: options.registry });
    }
    const where = `${realmUrl.host}${realmUrl.pathname}`;
    const service = challenge.params.service;
    // A challenge's own scope covers what the registry wants for this request.
    const allScopes = [...new Set([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])])];
    let method = 'POST';
    let response = credentials?.identityToken ? await this.postRefresh(realm, service, allScopes, credentials.identityToken, options) : undefined;
    if (!response || [400, 401, 404, 405].includes(response.statusCode)) {
      method = 'GET';
      await response?.body.dump();
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      for (const scope of allScopes) url.searchParams.append('scope', scope);
      const headers: Record<string, string> = { 'user-agent': options.userAgent };
      if (credentials?.username) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
      response = await request(options, { origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers }, `GET ${where}`);
    }
    const label = { what: `token request ${method} ${where} (the token server named by ${options.registry})`, registry: realmUrl.host, status: response.statusCode };
    if (response.statusCode !== 200) {
      // Only for the message: capped and cut, never read whole.
      const text = (await readBody(response.body, ERROR_BODY_LIMIT, label, false).catch(() => Buffer.alloc(0))).toString('utf8');
      throw new ClientError(`${label.what} failed with ${response.statusCode}${response.statusCode === 401 ? ' (wrong username or password? check skiff login)' : ''}${text ? `: ${printable(text)}` : ''}`, {
        status: response.statusCode,
        registry: realmUrl.host,
        ...(response.statusCode === 401 ? { code: 'UNAUTHORIZED' as const } : response.statusCode === 403 ? { code: 'DENIED' as const } : {}),
      });
    }
    const raw = await readBody(response.body, ERROR_BODY_LIMIT, { ...label, tooLargeAdvice: `a token response is a small JSON object: ${options.registry}'s challenge may name the wrong server` });
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(raw.toString('utf8')) as typeof body;
    } catch {
      throw new ClientError(`${label.what}: the response is not JSON (it begins ${JSON.stringify(printable(raw.toString('utf8')).slice(0, 60))}); is ${realmUrl.origin} a token server? Check ${options.registry}'s auth setup`, {
        status: 200,
        registry: realmUrl.host,
      });
    }
    const token = typeof body?.token === 'string' && body.token !== '' ? body.token : typeof body?.access_token === 'string' ? body.access_token : undefined;
    if (!token) throw new ClientError(`${label.what}: the response has neither "token" nor "access_token"; is ${realmUrl.origin} a token server?`, { status: 200, registry: realmUrl.host });
    const lifetime = Math.max(MIN_LIFETIME_S, Number(body.expires_in) || 0);
    this.tokens.set(key, { token, expiresAt: Date.now() + (lifetime - EARLY_S) * 1000 });
    if (this.tokens.size > MAX_TOKENS) this.tokens.delete(this.tokens.keys().next().value!); // the least recently used
    return token;
  }

  private async postRefresh(realm: string, service: string | undefined, scopes: string[], refreshToken: string, options: TokenRequestOptions) {
    const url = new URL(realm);
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'skiff', ...(service ? { service } : {}) });
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    return request(
      options,
      {
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': options.userAgent },
        body: form.toString(),
      },
      `POST ${url.host}${url.pathname}`,
    );
  }
}

export interface TokenRequestOptions {
  transport: Transport;
  userAgent: string;
  /** The registry whose challenge named the realm. */
  registry: string;
  signal?: AbortSignal;
}

/** One token request; a connection failure names the token server, not the registry. */
async function request(options: TokenRequestOptions, init: Omit<TransportRequest, 'signal'>, what: string): Promise<TransportResponse> {
  try {
    return await options.transport.request({ ...init, ...(options.signal ? { signal: options.signal } : {}) });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    const host = new URL(init.origin).host;
    throw new ClientError(`${what} (the token server named by ${options.registry}): ${describeNetworkError(error, host)}`, { status: 0, registry: host, cause: error });
  }
}

/** A server's text as one printable line, short. */
function printable(text: string): string {
  const line = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
