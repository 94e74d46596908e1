import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, test } from 'node:test';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK } from 'jose';
import { REFRESH_USE } from '../../src/auth/access-token.ts';
import { signingKeyOf, type SigningKey } from '../../src/auth/signing-key.ts';
import { TokenIssuer } from '../../src/auth/token-issuer.ts';
import { TokenRejected, TokenVerifier } from '../../src/auth/token-verifier.ts';

const ISSUER = 'skiff-test-issuer';
const SERVICE = 'skiff-test';

const ecKey = (curve = 'P-256'): SigningKey => signingKeyOf(generateKeyPairSync('ec', { namedCurve: curve }).privateKey);
const KEY = ecKey();
const OTHER_KEY = ecKey();

const issuerWith = (options: Partial<ConstructorParameters<typeof TokenIssuer>[0]> = {}) => new TokenIssuer({ key: KEY, issuer: ISSUER, service: SERVICE, ...options });
const verifierWith = (options: Partial<ConstructorParameters<typeof TokenVerifier>[0]> = {}) => new TokenVerifier({ trust: { key: KEY }, issuer: ISSUER, service: SERVICE, ...options });

const now = () => Math.floor(Date.now() / 1000);
const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A JWT signed with `privateKey`, with the claims a good token has unless `claims` overrides them. */
async function craft(
  options: { key?: KeyObject | Uint8Array; alg?: string; header?: Record<string, unknown>; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const claims = { iss: ISSUER, aud: SERVICE, sub: 'alice', iat: now(), nbf: now() - 10, exp: now() + 300, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }], ...options.claims };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete (claims as Record<string, unknown>)[name];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? 'ES256', typ: 'JWT', kid: KEY.kid, ...options.header })
    .sign(options.key ?? KEY.privateKey);
}

/** The TokenRejected that verifying `token` throws; fails the test when it verifies. */
async function rejection(verifier: TokenVerifier, token: string): Promise<TokenRejected> {
  try {
    await verifier.verify(token);
  } catch (error) {
    assert.ok(error instanceof TokenRejected, `expected TokenRejected, got ${String(error)}`);
    assert.equal(error.name, 'TokenRejected');
    return error;
  }
  assert.fail('the token was accepted');
}

const grantOf = (repositories: ReadonlyMap<string, ReadonlySet<string>>) => Object.fromEntries([...repositories].map(([name, actions]) => [name, [...actions].sort()]));

describe('TokenIssuer', () => {
  test('access tokens are ES256 JWTs with typ JWT and the libtrust kid', async () => {
    const { token } = await issuerWith().accessToken('alice', []);
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'ES256', typ: 'JWT', kid: KEY.kid });
  });

  test('claims: iss, sub, aud, iat, nbf 10 s early, exp iat+ttl, a unique jti, the access list as given', async () => {
    const access = [
      { type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ];
    const issued = await issuerWith().accessToken('alice', access);
    const claims = decodeJwt(issued.token);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, SERVICE);
    assert.equal(claims.iat, issued.issuedAt.getTime() / 1000);
    assert.equal(claims.nbf, claims.iat! - 10);
    assert.equal(claims.exp, claims.iat! + 300);
    assert.deepEqual(claims.access, access);
    assert.equal(typeof claims.jti, 'string');
    assert.notEqual(decodeJwt((await issuerWith().accessToken('alice', access)).token).jti, claims.jti);
    assert.equal(claims.token_use, undefined);
  });

  test('expiresIn is the ttl in seconds (default 5 minutes); issuedAt is a whole second', async () => {
    const issued = await issuerWith().accessToken('alice', []);
    assert.equal(issued.expiresIn, 300);
    assert.equal(issued.issuedAt.getTime() % 1000, 0);
    assert.ok(Math.abs(issued.issuedAt.getTime() - Date.now()) < 2000);
    assert.equal((await issuerWith({ ttlMs: 60_000 }).accessToken('alice', [])).expiresIn, 60);
    assert.equal((await issuerWith({ ttlMs: 1000 }).accessToken('alice', [])).expiresIn, 1);
    assert.equal((await issuerWith({ ttlMs: 100 }).accessToken('alice', [])).expiresIn, 1, 'never less than a second');
  });

  test('an anonymous token has sub ""', async () => {
    const { token } = await issuerWith().accessToken(undefined, []);
    assert.equal(decodeJwt(token).sub, '');
  });

  test('an RSA key signs RS256', async () => {
    const rsa = signingKeyOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
    const { token } = await issuerWith({ key: rsa }).accessToken('alice', []);
    assert.equal(decodeProtectedHeader(token).alg, 'RS256');
    const grant = await verifierWith({ trust: { key: rsa } }).verify(token);
    assert.equal(grant.subject, 'alice');
  });

  test('refresh tokens carry token_use "refresh" and the entry; they last 30 days by default', async () => {
    const token = await issuerWith().refreshToken('alice', 'entry-fingerprint');
    const claims = decodeJwt(token);
    assert.equal(claims.token_use, REFRESH_USE);
    assert.equal(claims.entry, 'entry-fingerprint');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.access, undefined);
    assert.equal(claims.exp! - claims.iat!, 30 * 24 * 3600);
  });
});

describe('TokenIssuer.readRefreshToken', () => {
  test('returns the subject and entry of its own refresh token', async () => {
    const issuer = issuerWith();
    const token = await issuer.refreshToken('alice', 'abc123');
    assert.deepEqual(await issuer.readRefreshToken(token), { subject: 'alice', entry: 'abc123' });
  });

  test('refuses an access token', async () => {
    const issuer = issuerWith();
    const { token } = await issuer.accessToken('alice', []);
    assert.equal(await issuer.readRefreshToken(token), undefined);
  });

  test('refuses a refresh token signed by another key, for another service or from another issuer', async () => {
    const token = await issuerWith().refreshToken('alice', 'abc123');
    assert.equal(await issuerWith({ key: OTHER_KEY }).readRefreshToken(token), undefined);
    assert.equal(await issuerWith({ service: 'elsewhere' }).readRefreshToken(token), undefined);
    assert.equal(await issuerWith({ issuer: 'someone-else' }).readRefreshToken(token), undefined);
  });

  test('refuses an expired refresh token', async () => {
    const issuer = issuerWith({ refreshTtlMs: 1000 });
    const token = await issuer.refreshToken('alice', 'abc123');
    const crafted = await craft({ claims: { token_use: REFRESH_USE, entry: 'abc123', exp: now() - 5, access: undefined } });
    assert.equal(await issuer.readRefreshToken(crafted), undefined);
    assert.deepEqual(await issuer.readRefreshToken(token), { subject: 'alice', entry: 'abc123' }, 'the fresh one is fine');
  });

  test('refuses refresh-shaped tokens without an entry or a subject, and garbage', async () => {
    const issuer = issuerWith();
    assert.equal(await issuer.readRefreshToken(await craft({ claims: { token_use: REFRESH_USE, access: undefined } })), undefined);
    assert.equal(await issuer.readRefreshToken(await craft({ claims: { token_use: REFRESH_USE, entry: 42 } })), undefined);
    assert.equal(await issuer.readRefreshToken(await craft({ claims: { token_use: REFRESH_USE, entry: 'e', sub: undefined } })), undefined);
    for (const garbage of ['', 'x', 'a.b.c', `${b64url({ alg: 'none' })}.${b64url({ token_use: REFRESH_USE, entry: 'e', sub: 'alice' })}.`]) {
      assert.equal(await issuer.readRefreshToken(garbage), undefined, garbage);
    }
  });

  test('refuses an HS256 refresh token keyed with the public key', async () => {
    const pem = Buffer.from(KEY.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const forged = await craft({ alg: 'HS256', key: pem, claims: { token_use: REFRESH_USE, entry: 'e', sub: 'alice', iss: ISSUER, aud: SERVICE } });
    assert.equal(await issuerWith().readRefreshToken(forged), undefined);
  });
});

describe('TokenVerifier: accepting', () => {
  test('round trip: the issuer\'s token verifies into its grant', async () => {
    const issued = await issuerWith().accessToken('alice', [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
    const grant = await verifierWith().verify(issued.token);
    assert.equal(grant.subject, 'alice');
    assert.deepEqual(grantOf(grant.repositories), { 'team-a/app': ['pull', 'push'] });
    assert.equal(grant.catalog, false);
    assert.equal(grant.builtin, true);
    assert.equal(grant.expiresAt, issued.issuedAt.getTime() + issued.expiresIn * 1000);
  });

  test('builtin is true for key trust', () => {
    assert.equal(verifierWith().builtin, true);
  });

  test('grants are parsed into a map per repository: merged, * expanded, unknown actions and other types dropped', async () => {
    const token = await craft({
      claims: {
        access: [
          { type: 'repository', name: 'a', actions: ['pull'] },
          { type: 'repository', name: 'a', actions: ['push'] },
          { type: 'repository', name: 'b/c', actions: ['*'] },
          { type: 'repository', name: 'd', actions: ['pull', 'fly', 7] },
          { type: 'repository', name: 'e', actions: [] },
          { type: 'repository(plugin)', name: 'p', actions: ['pull'] },
          { type: 'registry', name: 'catalog', actions: ['pull'] },
        ],
      },
    });
    const grant = await verifierWith().verify(token);
    assert.deepEqual(grantOf(grant.repositories), { a: ['pull', 'push'], 'b/c': ['delete', 'pull', 'push'], d: ['pull'], e: [] });
    assert.equal(grant.catalog, false, 'registry:catalog:pull is not registry:catalog:*');
  });

  test('malformed access entries are skipped, the rest kept', async () => {
    const token = await craft({
      claims: {
        access: [null, 'repository:a:pull', 42, { type: 'repository', name: 7, actions: ['pull'] }, { type: 'repository', name: 'x', actions: 'pull' }, { type: 'repository', name: 'ok', actions: ['pull'] }],
      },
    });
    assert.deepEqual(grantOf((await verifierWith().verify(token)).repositories), { ok: ['pull'] });
  });

  test('an access claim that is not a list grants nothing but the token is valid', async () => {
    for (const access of [undefined, 'everything', { type: 'repository', name: 'a', actions: ['pull'] }]) {
      const grant = await verifierWith().verify(await craft({ claims: { access } }));
      assert.equal(grant.repositories.size, 0);
      assert.equal(grant.subject, 'alice');
    }
  });

  test('the catalog grant: registry:catalog:*', async () => {
    const issued = await issuerWith().accessToken('alice', [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const grant = await verifierWith().verify(issued.token);
    assert.equal(grant.catalog, true);
    assert.equal(grant.repositories.size, 0);
  });

  test('an anonymous token (sub "") has no subject', async () => {
    const { token } = await issuerWith().accessToken(undefined, [{ type: 'repository', name: 'public/x', actions: ['pull'] }]);
    const grant = await verifierWith().verify(token);
    assert.equal(grant.subject, undefined);
    assert.deepEqual(grantOf(grant.repositories), { 'public/x': ['pull'] });
    assert.equal((await verifierWith().verify(await craft({ claims: { sub: undefined } }))).subject, undefined);
  });

  test('a token expired less than 30 s ago is still accepted on first sight (clock tolerance)', async () => {
    const grant = await verifierWith().verify(await craft({ claims: { exp: now() - 10 } }));
    assert.equal(grant.subject, 'alice');
  });
});

describe('TokenVerifier: refusing', () => {
  test('an expired token (issued with ttlMs 1000, checked 40 s later) → TokenRejected "expired"', async (t) => {
    const { token } = await issuerWith({ ttlMs: 1000 }).accessToken('alice', []);
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 40_000 });
    const error = await rejection(verifierWith(), token);
    assert.match(error.message, /expired/);
  });

  test('a token whose exp is a minute past → TokenRejected "expired"', async () => {
    const error = await rejection(verifierWith(), await craft({ claims: { iat: now() - 400, nbf: now() - 410, exp: now() - 60 } }));
    assert.equal(error.message, 'the token has expired');
  });

  test('a token without exp is refused', async () => {
    const error = await rejection(verifierWith(), await craft({ claims: { exp: undefined } }));
    assert.match(error.message, /exp/);
  });

  test('a token not valid yet (nbf a minute ahead) is refused', async () => {
    const error = await rejection(verifierWith(), await craft({ claims: { nbf: now() + 60 } }));
    assert.match(error.message, /nbf/);
  });

  test('a token signed by another key is refused', async () => {
    const { token } = await issuerWith({ key: OTHER_KEY }).accessToken('alice', []);
    const error = await rejection(verifierWith(), token);
    assert.equal(error.message, 'the token\'s signature does not verify');
    // Claiming our kid does not help.
    await rejection(verifierWith(), await craft({ key: OTHER_KEY.privateKey }));
  });

  test('a token for another audience is refused, naming the aud claim', async () => {
    const { token } = await issuerWith({ service: 'other-registry' }).accessToken('alice', []);
    assert.match((await rejection(verifierWith(), token)).message, /aud/);
    await rejection(verifierWith(), await craft({ claims: { aud: undefined } }));
    await rejection(verifierWith(), await craft({ claims: { aud: [] } }));
  });

  test('a token from another issuer is refused, naming the iss claim', async () => {
    const { token } = await issuerWith({ issuer: 'mallory' }).accessToken('alice', []);
    assert.match((await rejection(verifierWith(), token)).message, /iss/);
    await rejection(verifierWith(), await craft({ claims: { iss: undefined } }));
  });

  test('alg "none" with an empty signature is refused', async () => {
    const payload = { iss: ISSUER, aud: SERVICE, sub: 'alice', exp: now() + 300, access: [{ type: 'repository', name: 'team-a/app', actions: ['*'] }] };
    for (const header of [{ alg: 'none' }, { alg: 'none', typ: 'JWT', kid: KEY.kid }, { alg: 'None' }, { alg: 'NONE' }]) {
      const token = `${b64url(header)}.${b64url(payload)}.`;
      await rejection(verifierWith(), token);
    }
    // …and with a leftover signature from a genuine token.
    const genuine = (await issuerWith().accessToken('alice', [])).token;
    await rejection(verifierWith(), `${b64url({ alg: 'none' })}.${b64url(payload)}.${genuine.split('.')[2]}`);
  });

  test('a tampered payload (access name changed, signature kept) is refused', async () => {
    const { token } = await issuerWith().accessToken('alice', [{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8'));
    claims.access[0].name = 'team-b/app';
    const error = await rejection(verifierWith(), `${header}.${b64url(claims)}.${signature}`);
    assert.equal(error.message, 'the token\'s signature does not verify');
    claims.access[0] = { type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] };
    await rejection(verifierWith(), `${header}.${b64url(claims)}.${signature}`);
  });

  test('a tampered header (kid changed) is refused', async () => {
    const { token } = await issuerWith().accessToken('alice', []);
    const [, payload, signature] = token.split('.');
    await rejection(verifierWith(), `${b64url({ alg: 'ES256', typ: 'JWT', kid: OTHER_KEY.kid })}.${payload}.${signature}`);
  });

  test('HS256 keyed with the public key\'s PEM (or DER) bytes is refused', async () => {
    const pem = Buffer.from(KEY.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    const der = KEY.publicKey.export({ type: 'spki', format: 'der' });
    for (const secret of [pem, der]) {
      const error = await rejection(verifierWith(), await craft({ alg: 'HS256', key: secret }));
      assert.match(error.message, /algorithm/);
    }
  });

  test('another asymmetric algorithm than the key\'s is refused (RS256 by an RSA key, ES384 by a P-384 key)', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    assert.match((await rejection(verifierWith(), await craft({ alg: 'RS256', key: rsa }))).message, /algorithm/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    assert.match((await rejection(verifierWith(), await craft({ alg: 'ES384', key: p384 }))).message, /algorithm/);
  });

  test('a key embedded in the header (jwk) is not trusted', async () => {
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = await exportJWK(attacker.publicKey);
    await rejection(verifierWith(), await craft({ key: attacker.privateKey, header: { jwk } }));
  });

  test('a refresh token presented as an access token is refused', async () => {
    const token = await issuerWith().refreshToken('alice', 'entry');
    const error = await rejection(verifierWith(), token);
    assert.match(error.message, /refresh token/);
  });

  test('malformed tokens are refused as TokenRejected, never a raw error', async () => {
    const good = (await issuerWith().accessToken('alice', [])).token;
    const [header, payload, signature] = good.split('.');
    for (const token of ['', 'x', 'a.b', 'a.b.c', '...', `${header}.${payload}`, `${header}.${payload}.${signature}.extra`, `${header}.!!!.${signature}`, `${b64url('not json')}.${payload}.${signature}`]) {
      await rejection(verifierWith(), token);
    }
  });

  test('a refused token is not remembered: it is refused again', async () => {
    const verifier = verifierWith();
    const token = await craft({ key: OTHER_KEY.privateKey });
    await rejection(verifier, token);
    await rejection(verifier, token);
  });
});

describe('TokenVerifier: the verdict cache', () => {
  test('the same token verified twice returns the same grant object', async () => {
    const verifier = verifierWith();
    const { token } = await issuerWith().accessToken('alice', [{ type: 'repository', name: 'a', actions: ['pull'] }]);
    const first = await verifier.verify(token);
    const second = await verifier.verify(token);
    assert.equal(second, first);
  });

  test('a cached token past its exp (and the 30 s clock tolerance) is refused, and stays refused', async (t) => {
    const verifier = verifierWith();
    const { token } = await issuerWith({ ttlMs: 60_000 }).accessToken('alice', []);
    const grant = await verifier.verify(token);
    t.mock.timers.enable({ apis: ['Date'], now: grant.expiresAt + 29_000 });
    assert.equal(await verifier.verify(token), grant, 'within the tolerance jose gave its first check');
    t.mock.timers.setTime(grant.expiresAt + 30_001);
    assert.equal((await rejection(verifier, token)).message, 'the token has expired');
    t.mock.timers.setTime(grant.expiresAt + 60_000);
    assert.equal((await rejection(verifier, token)).message, 'the token has expired');
  });

  test('a cached token is served right up to its exp', async (t) => {
    const verifier = verifierWith();
    const { token } = await issuerWith({ ttlMs: 60_000 }).accessToken('alice', []);
    const grant = await verifier.verify(token);
    t.mock.timers.enable({ apis: ['Date'], now: grant.expiresAt - 1 });
    assert.equal(await verifier.verify(token), grant);
  });

  test('a full cache makes room and keeps verifying', async () => {
    const verifier = verifierWith({ cacheSize: 3 });
    const issuer = issuerWith();
    const tokens = await Promise.all(Array.from({ length: 10 }, (_, i) => issuer.accessToken(`user${i}`, [])));
    for (const { token } of tokens) await verifier.verify(token);
    for (const [i, { token }] of tokens.entries()) assert.equal((await verifier.verify(token)).subject, `user${i}`);
    assert.ok(verifier['verdicts'].size <= 3, `cache held ${verifier['verdicts'].size}`);
  });

  test('a full cache drops expired verdicts first', async (t) => {
    const verifier = verifierWith({ cacheSize: 3 });
    const short = await issuerWith({ ttlMs: 10_000 }).accessToken('short', []);
    const long = await issuerWith({ ttlMs: 600_000 }).accessToken('long', []);
    const longGrant = await verifier.verify(long.token);
    await verifier.verify(short.token);
    await verifier.verify((await issuerWith({ ttlMs: 600_000 }).accessToken('other', [])).token);
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 45_000 }); // past 10 s plus the 30 s tolerance
    await verifier.verify((await issuerWith({ ttlMs: 600_000 }).accessToken('newest', [])).token);
    assert.equal(await verifier.verify(long.token), longGrant, 'the live, oldest verdict survived: only the expired one went');
  });
});
