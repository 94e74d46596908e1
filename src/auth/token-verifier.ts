import type { KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTHeaderParameters, type JWTPayload } from 'jose';
import { parseActions, type Action } from './actions.ts';
import { REFRESH_USE, type TokenGrant } from './access-token.ts';
import type { SigningKey } from './signing-key.ts';
import type { TrustBundle } from './trust-bundle.ts';

/** Why a bearer token was refused; the message is safe to send back (it names no secret). */
export class TokenRejected extends Error {
  override readonly name = 'TokenRejected';
}

export interface TokenVerifierOptions {
  /** The built-in service's key, or an external issuer's root bundle. */
  trust: { key: SigningKey } | { bundle: TrustBundle };
  issuer: string;
  /** The `aud` a token must name: this registry's service. */
  service: string;
  /** Verdicts kept (default 10,000): the cache that makes a bearer request cost a Map lookup. */
  cacheSize?: number;
}

/** Clock skew allowed between the issuer and this registry, in seconds. */
const CLOCK_TOLERANCE_S = 30;

const ASYMMETRIC = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'];

/**
 * Checks bearer tokens: signature (never `alg: none`, never an HMAC keyed with a public key),
 * issuer, audience, expiry and not-before, and that it is an access token rather than a refresh
 * token. A token that passed is remembered until it expires, so each is verified once, not once
 * per request; a refused one is not remembered (each costs a signature check, as cheap as a hash).
 */
export class TokenVerifier {
  private readonly options: TokenVerifierOptions;
  private readonly verdicts = new Map<string, TokenGrant>();
  private readonly cacheSize: number;

  constructor(options: TokenVerifierOptions) {
    this.options = options;
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  get builtin(): boolean {
    return 'key' in this.options.trust;
  }

  async verify(token: string): Promise<TokenGrant> {
    const now = Date.now();
    const known = this.verdicts.get(token);
    if (known !== undefined) {
      // The same tolerance jose gave the first check: a token does not expire early for having been cached.
      if (known.expiresAt + CLOCK_TOLERANCE_S * 1000 > now) return known;
      this.verdicts.delete(token);
      throw new TokenRejected('the token has expired');
    }
    const grant = await this.check(token);
    if (this.verdicts.size >= this.cacheSize) this.evictExpired(now);
    this.verdicts.set(token, grant);
    return grant;
  }

  private async check(token: string): Promise<TokenGrant> {
    const trust = this.options.trust;
    let payload: JWTPayload;
    try {
      const getKey = 'key' in trust ? trust.key.publicKey : (header: JWTHeaderParameters): KeyObject => trust.bundle.keyFor(header);
      const algorithms = 'key' in trust ? [trust.key.alg] : ASYMMETRIC;
      ({ payload } = await jwtVerify(token, getKey, { issuer: this.options.issuer, audience: this.options.service, algorithms, requiredClaims: ['exp'], clockTolerance: CLOCK_TOLERANCE_S }));
    } catch (error) {
      throw new TokenRejected(reason(error));
    }
    if (payload.token_use === REFRESH_USE) throw new TokenRejected('a refresh token is not an access token');
    const repositories = new Map<string, Set<Action>>();
    let catalog = false;
    for (const entry of Array.isArray(payload.access) ? payload.access : []) {
      if (typeof entry !== 'object' || entry === null) continue;
      const { type, name, actions } = entry as { type?: unknown; name?: unknown; actions?: unknown };
      if (typeof name !== 'string' || !Array.isArray(actions)) continue;
      const words = actions.filter((action): action is string => typeof action === 'string');
      if (type === 'registry' && name === 'catalog' && words.includes('*')) catalog = true;
      if (type !== 'repository') continue;
      const granted = repositories.get(name) ?? new Set();
      for (const action of parseActions(words.join(','))) granted.add(action);
      repositories.set(name, granted);
    }
    const subject = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : undefined;
    return { subject, repositories, catalog, expiresAt: payload.exp! * 1000, builtin: 'key' in trust };
  }

  private evictExpired(now: number): void {
    for (const [token, grant] of this.verdicts) if (grant.expiresAt + CLOCK_TOLERANCE_S * 1000 <= now) this.verdicts.delete(token);
    // Still full of live tokens: drop the oldest half rather than grow without bound.
    if (this.verdicts.size >= this.cacheSize) {
      let drop = Math.ceil(this.verdicts.size / 2);
      for (const token of this.verdicts.keys()) {
        if (drop-- <= 0) break;
        this.verdicts.delete(token);
      }
    }
  }
}

function reason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not valid here (${error.reason})`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token\'s signature does not verify';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token\'s signing algorithm is not accepted';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'the token is malformed';
  return `the token was refused: ${(error as Error).message}`;
}
