import type { Transport } from './transport.ts';
import type { Challenge } from './challenge.ts';
import { ClientError } from './errors.ts';
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

  async get(challenge: Challenge, scopes: string[], credentials: Credentials | undefined, options: { transport: Transport; userAgent: string; signal?: AbortSignal }): Promise<string> {
    const key = this.key(scopes);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.token;
    const realm = challenge.params.realm;
    if (!realm) throw new Error('the registry asked for a Bearer token but named no realm');
    const service = challenge.params.service;
    // A challenge's own scope covers what the registry wants for this request.
    const allScopes = [...new Set([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])])];
    let response = credentials?.identityToken ? await this.postRefresh(realm, service, allScopes, credentials.identityToken, options) : undefined;
    if (!response || [400, 401, 404, 405].includes(response.statusCode)) {
      await response?.body.dump();
      const url = new URL(realm);
      if (service) url.searchParams.set('service', service);
      for (const scope of allScopes) url.searchParams.append('scope', scope);
      const headers: Record<string, string> = { 'user-agent': options.userAgent };
      if (credentials?.username) headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password ?? ''}`).toString('base64')}`;
      response = await options.transport.request({ origin: url.origin, path: `${url.pathname}${url.search}`, method: 'GET', headers, ...(options.signal ? { signal: options.signal } : {}) });
    }
    const text = await response.body.text();
    if (response.statusCode !== 200) {
      throw new ClientError(`token request to ${realm} failed with ${response.statusCode}${response.statusCode === 401 ? ' (wrong username or password?)' : ''}: ${text.slice(0, 300)}`, {
        status: response.statusCode,
        registry: new URL(realm).host,
        ...(response.statusCode === 401 ? { code: 'UNAUTHORIZED' as const } : response.statusCode === 403 ? { code: 'DENIED' as const } : {}),
      });
    }
    const body = JSON.parse(text) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new Error(`token response from ${realm} had neither "token" nor "access_token"`);
    const lifetime = Math.max(MIN_LIFETIME_S, Number(body.expires_in) || 0);
    this.tokens.set(key, { token, expiresAt: Date.now() + (lifetime - EARLY_S) * 1000 });
    return token;
  }

  private async postRefresh(realm: string, service: string | undefined, scopes: string[], refreshToken: string, options: { transport: Transport; userAgent: string; signal?: AbortSignal }) {
    const url = new URL(realm);
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'skiff', ...(service ? { service } : {}) });
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    return options.transport.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': options.userAgent },
      body: form.toString(),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  }
}
