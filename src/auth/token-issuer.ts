import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import type { AccessEntry } from './access-token.ts';
import { REFRESH_USE } from './access-token.ts';
import type { SigningKey } from './signing-key.ts';

export interface TokenIssuerOptions {
  key: SigningKey;
  /** `iss` of every token. */
  issuer: string;
  /** `aud`: the registry's service name, as its challenge's `service` says. */
  service: string;
  /** Access token lifetime (default 5 minutes, Docker Hub's). */
  ttlMs?: number;
  /** Refresh token lifetime (default 30 days). */
  refreshTtlMs?: number;
}

export interface IssuedToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
  issuedAt: Date;
}

/**
 * Signs the built-in token service's JWTs in the docker token format (`access` claim with type,
 * name and actions), so that any registry that trusts the key could read them, and the `kid`
 * header in libtrust form. Refresh tokens carry the user's password-entry fingerprint: a new
 * password, or a removed user, ends them.
 */
export class TokenIssuer {
  readonly service: string;
  readonly issuer: string;
  private readonly key: SigningKey;
  private readonly ttlMs: number;
  private readonly refreshTtlMs: number;

  constructor(options: TokenIssuerOptions) {
    this.key = options.key;
    this.issuer = options.issuer;
    this.service = options.service;
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.refreshTtlMs = options.refreshTtlMs ?? 30 * 24 * 3600_000;
  }

  async accessToken(subject: string | undefined, access: AccessEntry[]): Promise<IssuedToken> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const seconds = Math.max(1, Math.round(this.ttlMs / 1000));
    const token = await this.sign({ access }, subject, issuedAt, seconds);
    return { token, expiresIn: seconds, issuedAt };
  }

  async refreshToken(subject: string, entry: string): Promise<string> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    return this.sign({ token_use: REFRESH_USE, entry }, subject, issuedAt, Math.round(this.refreshTtlMs / 1000));
  }

  /** The subject and entry fingerprint of a refresh token this service signed, or undefined. */
  async readRefreshToken(token: string): Promise<{ subject: string; entry: string } | undefined> {
    try {
      const { payload } = await jwtVerify(token, this.key.publicKey, { issuer: this.issuer, audience: this.service, algorithms: [this.key.alg], requiredClaims: ['exp', 'sub'] });
      if (payload.token_use !== REFRESH_USE || typeof payload.entry !== 'string' || typeof payload.sub !== 'string') return undefined;
      return { subject: payload.sub, entry: payload.entry };
    } catch {
      return undefined;
    }
  }

  private sign(claims: Record<string, unknown>, subject: string | undefined, issuedAt: Date, seconds: number): Promise<string> {
    const now = issuedAt.getTime() / 1000;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: this.key.alg, typ: 'JWT', kid: this.key.kid })
      .setIssuer(this.issuer)
      .setSubject(subject ?? '')
      .setAudience(this.service)
      .setIssuedAt(now)
      // A little slack for clocks behind ours, as the CNCF token servers give.
      .setNotBefore(now - 10)
      .setExpirationTime(now + seconds)
      .setJti(randomUUID())
      .sign(this.key.privateKey);
  }
}
