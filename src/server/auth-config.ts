import { join } from 'node:path';
import type { Logger } from 'pino';
import { AccessPolicy } from '../auth/access-policy.ts';
import { Htpasswd } from '../auth/htpasswd.ts';
import { DEFAULT_LOGIN_LIMITS, MemoryLoginLimiter, type LoginLimiter, type LoginLimits } from '../auth/login-limiter.ts';
import { loadSigningKey } from '../auth/signing-key.ts';
import { TokenIssuer } from '../auth/token-issuer.ts';
import { TokenVerifier } from '../auth/token-verifier.ts';
import { TrustBundle } from '../auth/trust-bundle.ts';
import { AccessControl } from './access-control.ts';
import type { ServeConfig } from './config.ts';
import { parseDuration } from './units.ts';

/** `token:` — the built-in token service. */
export interface TokenServiceConfig {
  /** `service` of challenges and `aud` of tokens (default "skiff"). */
  service: string;
  /** `iss` of tokens (default "skiff"). */
  issuer: string;
  /** Access token lifetime in ms (default 5 minutes). */
  ttl: number;
  /** PEM private key file (EC or RSA); default `<data>/auth/token-key.pem`, made on first start. */
  key?: string;
  /** The realm URL in challenges; default `http(s)://<Host of the request>/token`. */
  realm?: string;
}

/** `externalToken:` — tokens from another issuer, the CNCF registry's `auth.token` way. */
export interface ExternalTokenConfig {
  realm: string;
  service: string;
  issuer: string;
  rootcertbundle: string;
}

/** The parts of the serve config that decide authentication. */
export type AuthSettings = Pick<ServeConfig, 'htpasswd' | 'authScheme' | 'anonymousPull' | 'token' | 'externalToken' | 'access' | 'failedLogins' | 'tlsCert'>;

type Parsed<T> = { value: T } | { problem: string };

export function authEnabled(settings: AuthSettings): boolean {
  return settings.htpasswd !== undefined || settings.externalToken !== undefined;
}

/**
 * Builds the server's access control from the config, or undefined when authentication is off
 * (no htpasswd, no external issuer). Problems that only show on reading files (a bad password
 * entry, an unreadable key or bundle) throw ConfigError, so the server refuses to start.
 */
export async function openAccessControl(
  settings: AuthSettings,
  dataDir: string,
  policyName: (name: string) => string,
  log: Logger,
  /** Where failed logins are counted: replicas share one (Redis); this process's own by default. */
  sharedLimiter?: (limits: LoginLimits) => LoginLimiter,
): Promise<AccessControl | undefined> {
  if (!authEnabled(settings)) {
    if (settings.access || settings.anonymousPull || settings.token) log.warn('access:, anonymousPull and token: take effect only with htpasswd or externalToken; every request is allowed');
    return undefined;
  }
  const htpasswd = settings.htpasswd !== undefined ? await Htpasswd.load(settings.htpasswd) : undefined;
  const policy = new AccessPolicy(settings.access, { anonymousPull: settings.anonymousPull ?? false });
  if (htpasswd) {
    const unknown = policy.namedUsers().filter((user) => !htpasswd.has(user));
    if (unknown.length > 0) log.warn({ users: unknown, htpasswd: htpasswd.file }, 'access rules name users the password file does not have');
  }
  const limits = settings.failedLogins ?? DEFAULT_LOGIN_LIMITS;
  const limiter = sharedLimiter ? sharedLimiter(limits) : new MemoryLoginLimiter(limits);
  const tls = settings.tlsCert !== undefined;
  if (settings.externalToken) {
    const external = settings.externalToken;
    const bundle = await TrustBundle.load(external.rootcertbundle);
    const verifier = new TokenVerifier({ trust: { bundle }, issuer: external.issuer, service: external.service });
    log.info({ realm: external.realm, service: external.service, issuer: external.issuer, roots: bundle.roots.length }, 'auth: bearer tokens from an external issuer');
    return new AccessControl({ htpasswd, policy, scheme: 'token', verifier, issuer: undefined, realm: external.realm, service: external.service, limiter, tls, policyName });
  }
  const token = { service: 'skiff', issuer: 'skiff', ttl: 5 * 60_000, ...settings.token };
  const key = await loadSigningKey(token.key ?? join(dataDir, 'auth', 'token-key.pem'), { create: token.key === undefined });
  const issuer = new TokenIssuer({ key, issuer: token.issuer, service: token.service, ttlMs: token.ttl });
  const verifier = new TokenVerifier({ trust: { key }, issuer: token.issuer, service: token.service });
  const scheme = settings.authScheme ?? 'token';
  log.info({ scheme, htpasswd: settings.htpasswd, users: htpasswd?.names().length, service: token.service, kid: key.kid, anonymousPull: settings.anonymousPull ?? false, rules: settings.access?.rules.length }, 'auth: on');
  return new AccessControl({ htpasswd, policy, scheme, verifier, issuer, realm: token.realm, service: token.service, limiter, tls, policyName });
}

export function parseTokenService(v: unknown): Parsed<Partial<TokenServiceConfig>> {
  const fields = mapping(v, ['service', 'issuer', 'ttl', 'key', 'realm']);
  if ('problem' in fields) return fields;
  const out: Partial<TokenServiceConfig> = {};
  const problems: string[] = [];
  for (const key of ['service', 'issuer', 'key', 'realm'] as const) {
    const value = fields.value[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value === '') problems.push(`.${key}: must be a non-empty string`);
    else out[key] = value;
  }
  if (out.realm !== undefined && !/^https?:\/\/[^\s"]+$/.test(out.realm)) problems.push('.realm: must be an http:// or https:// URL');
  if (fields.value.ttl !== undefined) {
    const ttl = parseDuration(fields.value.ttl);
    if (ttl === undefined || ttl < 10_000 || ttl > 24 * 3600_000) problems.push('.ttl: expected a duration between 10s and 24h, such as 5m');
    else out.ttl = ttl;
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: out };
}

export function parseExternalToken(v: unknown): Parsed<ExternalTokenConfig> {
  const fields = mapping(v, ['realm', 'service', 'issuer', 'rootcertbundle']);
  if ('problem' in fields) return fields;
  const problems: string[] = [];
  for (const key of ['realm', 'service', 'issuer', 'rootcertbundle']) {
    const value = fields.value[key];
    if (typeof value !== 'string' || value === '') problems.push(`.${key}: required, a non-empty string`);
  }
  if (typeof fields.value.realm === 'string' && !/^https?:\/\/[^\s"]+$/.test(fields.value.realm)) problems.push('.realm: must be an http:// or https:// URL');
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: fields.value as unknown as ExternalTokenConfig };
}

export function parseFailedLogins(v: unknown): Parsed<LoginLimits> {
  const fields = mapping(v, ['perUser', 'perAddress', 'window']);
  if ('problem' in fields) return fields;
  const out: LoginLimits = { ...DEFAULT_LOGIN_LIMITS };
  const problems: string[] = [];
  for (const key of ['perUser', 'perAddress'] as const) {
    const value = fields.value[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) problems.push(`.${key}: must be a whole number, at least 1`);
    else out[key] = value;
  }
  if (fields.value.window !== undefined) {
    const window = parseDuration(fields.value.window);
    if (window === undefined || window < 1000) problems.push('.window: expected a duration of at least 1s, such as 1m');
    else out.windowMs = window;
  }
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: out };
}

function mapping(v: unknown, known: string[]): Parsed<Record<string, unknown>> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: `expected a mapping with ${known.join(', ')}` };
  const unknown = Object.keys(v).filter((key) => !known.includes(key));
  if (unknown.length > 0) return { problem: unknown.map((key) => `.${key}: unknown setting (known: ${known.join(', ')})`).join('\n') };
  return { value: v as Record<string, unknown> };
}
