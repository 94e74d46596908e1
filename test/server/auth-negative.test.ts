/**
 * Access control, the refusals: every request here must be answered 401 or 403 (or, for names
 * the edge refuses, 400 NAME_INVALID) with the spec's JSON error body, and must change nothing:
 * after each attempt the catalog, tags, manifests, blob links, stored blobs and upload sessions
 * are read back (as an admin, and from the store) and compared with what they were before.
 *
 * Server: token mode (the default), htpasswd with admin/alice/bob, rules:
 *   team-a/**  alice pull,push,delete
 *   team-b/**  bob   pull,push,delete
 *   shared/**  alice pull; bob pull,push
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { SignJWT } from 'jose';
import { loadSigningKey, signingKeyOf, type SigningKey } from '../../src/auth/signing-key.ts';
import { TokenIssuer } from '../../src/auth/token-issuer.ts';
import type { Digest } from '../../src/digest/digest.ts';
import { makeImage, type Blob, type TestImage } from '../../src/testing/images.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { assertErrorBody, blobOf, captureEscapes, raw, sleep, unknownDigest, type RawResponse, expectRefusal, headerOf, jwtClaims } from './http/helpers.ts';

const PASSWORDS = { admin: 'admin-secret', alice: 'alice-secret', bob: 'bob-secret' } as const;
type User = keyof typeof PASSWORDS;

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
const as = (user: User): string => basic(user, PASSWORDS[user]);
const bearer = (token: string): string => `Bearer ${token}`;

/** 401 UNAUTHORIZED with a Bearer challenge naming `error`. */
function expectBadToken(res: RawResponse, what = ''): void {
  expectRefusal(res, 401, 'UNAUTHORIZED', what);
  assert.match(headerOf(res, 'www-authenticate') ?? '', /^Bearer realm="[^"]+",service="skiff".*,error="invalid_token"$/, `${what} challenge`);
}

describe('access control refuses, and changes nothing', () => {
  let registry: TestRegistry;
  let base: string;
  let work: string;
  let serverKey: SigningKey;
  let escapes: ReturnType<typeof captureEscapes>;
  /** Images seeded as admin, by repository. */
  const seeded: Record<string, TestImage> = {};
  /** An image nobody pushed: what the attackers try to write. */
  let intruder: TestImage;
  /** A blob admin pushed to team-a/old and then deleted there: still in the store, linked nowhere. */
  let orphan: Blob;
  /** Every digest whose links the snapshot checks. */
  let knownDigests: Digest[];

  async function req(method: string, path: string, auth?: string, options: { body?: Buffer | string; headers?: Record<string, string | number> } = {}): Promise<RawResponse> {
    const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
    if (auth !== undefined) headers.Authorization = auth;
    return raw(base, method, path, { headers, ...(options.body !== undefined ? { body: options.body } : {}) });
  }

  async function token(user: User | undefined, scopes: string[], extra = ''): Promise<string> {
    const query = ['service=skiff', ...scopes.map((scope) => `scope=${encodeURIComponent(scope)}`)].join('&');
    const res = await req('GET', `/token?${query}${extra}`, user ? as(user) : undefined);
    assert.equal(res.status, 200, res.body.toString());
    return (JSON.parse(res.body.toString()) as { token: string }).token;
  }

  async function pushBlobAs(auth: string, repo: string, item: Blob): Promise<void> {
    const res = await req('POST', `/v2/${repo}/blobs/uploads/?digest=${item.descriptor.digest}`, auth, { body: item.data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(res.status, 201, `push ${item.descriptor.digest} to ${repo}: ${res.body.toString()}`);
  }

  async function pushImageAs(auth: string, repo: string, image: TestImage, tag: string): Promise<void> {
    for (const item of image.blobs) await pushBlobAs(auth, repo, item);
    const res = await req('PUT', `/v2/${repo}/manifests/${tag}`, auth, { body: image.manifest.data, headers: { 'Content-Type': image.manifest.descriptor.mediaType } });
    assert.equal(res.status, 201, `push manifest ${repo}:${tag}: ${res.body.toString()}`);
  }

  /** Everything a refused request could have changed, read back as admin and from the store. */
  async function snapshot(): Promise<unknown> {
    const admin = as('admin');
    const catalog = await req('GET', '/v2/_catalog', admin);
    assert.equal(catalog.status, 200, catalog.body.toString());
    const repositories = (JSON.parse(catalog.body.toString()) as { repositories: string[] }).repositories;
    const state: Record<string, unknown> = { repositories };
    for (const repo of repositories) {
      const tags: Record<string, string | number> = {};
      const list = await req('GET', `/v2/${repo}/tags/list`, admin);
      for (const tag of list.status === 200 ? (JSON.parse(list.body.toString()) as { tags: string[] }).tags : []) {
        const head = await req('HEAD', `/v2/${repo}/manifests/${tag}`, admin);
        tags[tag] = head.status === 200 ? headerOf(head, 'docker-content-digest')! : head.status;
      }
      const blobs: Record<string, number> = {};
      for (const digest of knownDigests) blobs[digest] = (await req('HEAD', `/v2/${repo}/blobs/${digest}`, admin)).status;
      state[repo] = { tagsStatus: list.status, tags, blobs };
    }
    // Links to repositories that might have been created by an attack (not in the catalog then).
    const links: Record<string, boolean> = {};
    for (const repo of ['team-a/app', 'team-a/x', 'team-a/other', 'team-b/app', 'shared/app', 'team-ab/x']) {
      for (const digest of knownDigests) if (await registry.registry.metadata.isBlobLinked(repo, digest)) links[`${repo}@${digest}`] = true;
    }
    state.links = links;
    const stored: Record<string, boolean> = {};
    for (const item of [...intruder.blobs, intruder.manifest]) stored[item.descriptor.digest] = (await registry.registry.blobs.stat(item.descriptor.digest)) !== undefined;
    state.stored = stored;
    state.uploads = (await registry.registry.metadata.staleUploads(Number.MAX_SAFE_INTEGER, 10_000)).map((session) => session.id).sort();
    return state;
  }

  /** Runs `attempt`, then checks nothing changed. */
  async function unchanged(attempt: () => Promise<void>): Promise<void> {
    const before = await snapshot();
    await attempt();
    assert.deepEqual(await snapshot(), before, 'the refused requests changed stored data');
  }

  before(async () => {
    escapes = captureEscapes();
    work = await mkdtemp(join(tmpdir(), 'skiff-auth-neg-'));
    const htpasswd = join(work, 'htpasswd');
    await writeFile(htpasswd, Object.entries(PASSWORDS).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}\n`).join(''));
    registry = await startTestRegistry({
      htpasswd,
      access: {
        admins: ['admin'],
        groups: {},
        rules: [
          { repositories: ['team-a/**'], actions: ['pull', 'push', 'delete'], users: ['alice'], groups: [], anonymous: false },
          { repositories: ['team-b/**'], actions: ['pull', 'push', 'delete'], users: ['bob'], groups: [], anonymous: false },
          { repositories: ['shared/**'], actions: ['pull'], users: ['alice'], groups: [], anonymous: false },
          { repositories: ['shared/**'], actions: ['pull', 'push'], users: ['bob'], groups: [], anonymous: false },
        ],
      },
      // Many wrong passwords below: keep the limiter out of this file's way (auth-behaviour tests it).
      failedLogins: { perUser: 10_000, perAddress: 100_000, windowMs: 60_000 },
    });
    base = registry.url;
    serverKey = await loadSigningKey(join(registry.dataDir, 'auth', 'token-key.pem'));
    for (const repo of ['team-a/app', 'team-b/app', 'shared/app', 'team-ab/x']) {
      seeded[repo] = await makeImage({ seed: `auth-negative ${repo}`, layers: 1, layerSize: 512 });
      await pushImageAs(as('admin'), repo, seeded[repo], 'v1');
    }
    orphan = blobOf('auth-negative: an orphaned blob');
    await pushBlobAs(as('admin'), 'team-a/old', orphan);
    const unlink = await req('DELETE', `/v2/team-a/old/blobs/${orphan.descriptor.digest}`, as('admin'));
    assert.equal(unlink.status, 202, unlink.body.toString());
    intruder = await makeImage({ seed: 'auth-negative intruder', layers: 1, layerSize: 512 });
    knownDigests = [
      ...Object.values(seeded).flatMap((image) => [...image.blobs, image.manifest].map((item) => item.descriptor.digest)),
      ...[...intruder.blobs, intruder.manifest].map((item) => item.descriptor.digest),
      orphan.descriptor.digest,
    ];
  });

  after(async () => {
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
    const escaped = escapes.take();
    escapes.dispose();
    assert.deepEqual(escaped, [], 'errors escaped the server');
  });

  /** Every write an intruder might try against `repo`, with `auth`: each refused with `status`/`code`. */
  async function tryWrites(repo: string, auth: string | undefined, status: number, code: string): Promise<void> {
    const layer = intruder.layers[0]!;
    const manifest = intruder.manifest;
    expectRefusal(await req('POST', `/v2/${repo}/blobs/uploads/`, auth), status, code, `POST upload ${repo}`);
    expectRefusal(await req('POST', `/v2/${repo}/blobs/uploads/?digest=${layer.descriptor.digest}`, auth, { body: layer.data, headers: { 'Content-Type': 'application/octet-stream' } }), status, code, `monolithic POST ${repo}`);
    expectRefusal(await req('PUT', `/v2/${repo}/manifests/evil`, auth, { body: manifest.data, headers: { 'Content-Type': manifest.descriptor.mediaType } }), status, code, `PUT manifest ${repo}:evil`);
    expectRefusal(await req('PUT', `/v2/${repo}/manifests/v1`, auth, { body: manifest.data, headers: { 'Content-Type': manifest.descriptor.mediaType } }), status, code, `PUT manifest ${repo}:v1`);
    expectRefusal(await req('DELETE', `/v2/${repo}/manifests/v1`, auth), status, code, `DELETE manifest ${repo}:v1`);
  }

  describe('no credentials, or the wrong ones', () => {
    test('anonymous writes and reads, and an anonymous token: 401 UNAUTHORIZED', async () => {
      const anonymousToken = await token(undefined, ['repository:team-a/app:pull,push,delete']);
      assert.deepEqual(jwtClaims(anonymousToken).access, []);
      await unchanged(async () => {
        expectRefusal(await req('GET', '/v2/team-a/app/manifests/v1'), 401, 'UNAUTHORIZED', 'anonymous GET');
        await tryWrites('team-a/app', undefined, 401, 'UNAUTHORIZED');
        expectRefusal(await req('GET', '/v2/team-a/app/manifests/v1', bearer(anonymousToken)), 401, 'UNAUTHORIZED', 'anonymous token GET');
        await tryWrites('team-a/app', bearer(anonymousToken), 401, 'UNAUTHORIZED');
      });
    });

    test('Basic with a wrong password on /v2/, reads and writes: 401 UNAUTHORIZED', async () => {
      await unchanged(async () => {
        for (const auth of [basic('alice', 'wrong'), basic('alice', ''), basic('nobody', 'alice-secret'), basic('alice', `${PASSWORDS.alice} `)]) {
          const res = await req('GET', '/v2/', auth);
          expectRefusal(res, 401, 'UNAUTHORIZED', '/v2/');
          assert.ok(headerOf(res, 'www-authenticate'), 'a challenge');
          expectRefusal(await req('GET', '/v2/team-a/app/manifests/v1', auth), 401, 'UNAUTHORIZED', 'GET manifest');
          expectRefusal(await req('GET', '/v2/_catalog', auth), 401, 'UNAUTHORIZED', 'catalog');
          await tryWrites('team-a/app', auth, 401, 'UNAUTHORIZED');
        }
      });
    });

    test('GET /token with a wrong password: 401 and no token', async () => {
      await unchanged(async () => {
        for (const auth of [basic('alice', 'wrong'), basic('nobody', 'x')]) {
          const res = await req('GET', '/token?service=skiff&scope=repository:team-a/app:pull,push', auth);
          expectRefusal(res, 401, 'UNAUTHORIZED', 'GET /token');
          assert.ok(!res.body.toString().includes('"token"'), res.body.toString());
          const offline = await req('GET', '/token?service=skiff&scope=repository:team-a/app:pull&offline_token=true', auth);
          expectRefusal(offline, 401, 'UNAUTHORIZED', 'GET /token offline');
        }
      });
    });

    test('POST /token grant_type=password with a wrong password: 401 and no token', async () => {
      await unchanged(async () => {
        for (const [username, password] of [['alice', 'wrong'], ['nobody', 'x'], ['alice', '']]) {
          const form = new URLSearchParams({ grant_type: 'password', username: username!, password: password!, service: 'skiff', scope: 'repository:team-a/app:pull,push', access_type: 'offline', client_id: 'test' });
          const res = await req('POST', '/token', undefined, { body: form.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
          expectRefusal(res, 401, 'UNAUTHORIZED', 'POST /token');
          assert.ok(!res.body.toString().includes('token"'), res.body.toString());
        }
      });
    });
  });

  describe('bad tokens: 401 error="invalid_token"', () => {
    /** A token signed with `key`, with the server's claims unless overridden. */
    async function forge(key: SigningKey, payload: Record<string, unknown>, options: { kid?: string; iss?: string; aud?: string; exp?: number } = {}): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT(payload)
        .setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: options.kid ?? key.kid })
        .setIssuer(options.iss ?? 'skiff')
        .setSubject('alice')
        .setAudience(options.aud ?? 'skiff')
        .setIssuedAt(now - 600)
        .setNotBefore(now - 600)
        .setExpirationTime(options.exp ?? now + 300)
        .setJti(randomUUID())
        .sign(key.privateKey);
    }
    const ALICE_ON_TEAM_A = { access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }] };

    async function tryToken(tokenText: string): Promise<void> {
      expectBadToken(await req('GET', '/v2/team-a/app/manifests/v1', bearer(tokenText)), 'GET manifest');
      expectBadToken(await req('GET', '/v2/team-a/app/tags/list', bearer(tokenText)), 'GET tags');
      expectBadToken(await req('GET', '/v2/', bearer(tokenText)), 'GET /v2/');
      const layer = intruder.layers[0]!;
      expectBadToken(await req('POST', `/v2/team-a/app/blobs/uploads/?digest=${layer.descriptor.digest}`, bearer(tokenText), { body: layer.data }), 'POST upload');
      expectBadToken(await req('PUT', '/v2/team-a/app/manifests/evil', bearer(tokenText), { body: intruder.manifest.data, headers: { 'Content-Type': intruder.manifest.descriptor.mediaType } }), 'PUT manifest');
      expectBadToken(await req('DELETE', '/v2/team-a/app/manifests/v1', bearer(tokenText)), 'DELETE manifest');
    }

    test('control: a forged token with the server key and good claims works (so the refusals below are about the one claim changed)', async () => {
      const good = await forge(serverKey, ALICE_ON_TEAM_A);
      const res = await req('GET', '/v2/team-a/app/manifests/v1', bearer(good));
      assert.equal(res.status, 200, res.body.toString());
    });

    test('expired long ago (signed by the server key, exp 2 minutes past)', async () => {
      const expired = await forge(serverKey, ALICE_ON_TEAM_A, { exp: Math.floor(Date.now() / 1000) - 120 });
      await unchanged(() => tryToken(expired));
    });

    test('expired just past the 30 s clock tolerance (exp 35 s ago)', async () => {
      const expired = await forge(serverKey, ALICE_ON_TEAM_A, { exp: Math.floor(Date.now() / 1000) - 35 });
      await unchanged(() => tryToken(expired));
    });

    test('within the clock tolerance (a 1 s ttl, 1.5 s later) a token is still accepted, whether used before or not, on every request', async () => {
      // Not a refusal: the verifier allows 30 s of clock skew (src/auth/token-verifier.ts CLOCK_TOLERANCE_S),
      // as the CNCF registry allows a leeway. What matters is that the verdict does not flip between requests.
      const issuer = new TokenIssuer({ key: serverKey, issuer: 'skiff', service: 'skiff', ttlMs: 1000 });
      const used = (await issuer.accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      assert.equal((await req('GET', '/v2/team-a/app/manifests/v1', bearer(used))).status, 200);
      const fresh = (await issuer.accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      const exp = (jwtClaims(used).exp as number) * 1000;
      await sleep(Math.max(0, exp - Date.now()) + 1500);
      for (const tokenText of [used, fresh]) {
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++) statuses.push((await req('GET', '/v2/team-a/app/tags/list', bearer(tokenText))).status);
        assert.deepEqual(statuses, [200, 200, 200, 200], tokenText === used ? 'the token used before' : 'the token never used');
      }
    });

    test('past exp + tolerance (the clock moved 2 minutes on): refused on every request, cached before or not', async (t) => {
      const issuer = new TokenIssuer({ key: serverKey, issuer: 'skiff', service: 'skiff', ttlMs: 10_000 });
      const used = (await issuer.accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      assert.equal((await req('GET', '/v2/team-a/app/manifests/v1', bearer(used))).status, 200);
      const fresh = (await issuer.accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      const before = await snapshot();
      // The server runs in this process: mocking Date moves its clock (Date.now and new Date(), which jose reads).
      t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 120_000 });
      try {
        await tryToken(used);
        await tryToken(used); // and again: a refused verdict must not be re-admitted by a second look
        await tryToken(fresh);
      } finally {
        t.mock.timers.reset();
      }
      assert.deepEqual(await snapshot(), before);
    });

    test('signed by another key (its own kid, and the server kid)', async () => {
      const other = signingKeyOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
      const ownKid = await forge(other, ALICE_ON_TEAM_A);
      const serverKid = await forge(other, ALICE_ON_TEAM_A, { kid: serverKey.kid });
      const viaIssuer = (await new TokenIssuer({ key: other, issuer: 'skiff', service: 'skiff' }).accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      await unchanged(async () => {
        await tryToken(ownKid);
        await tryToken(serverKid);
        await tryToken(viaIssuer);
      });
    });

    test('alg: none', async () => {
      const real = await token('alice', ['repository:team-a/app:pull,push,delete']);
      const payload = real.split('.')[1]!;
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const variants = [
        `${encode({ alg: 'none', typ: 'JWT' })}.${payload}.`,
        `${encode({ alg: 'none' })}.${payload}.`,
        `${encode({ alg: 'none', typ: 'JWT', kid: serverKey.kid })}.${payload}.${real.split('.')[2]}`,
        `${encode({ alg: 'HS256', typ: 'JWT' })}.${payload}.${real.split('.')[2]}`,
      ];
      await unchanged(async () => {
        for (const variant of variants) await tryToken(variant);
      });
    });

    test('a tampered payload (more access, another subject), signature kept', async () => {
      const real = await token('alice', ['repository:team-a/app:pull']);
      const [head, payload, signature] = real.split('.') as [string, string, string];
      const original = jwtClaims(real);
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const tampered = [
        { ...original, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }] },
        { ...original, sub: 'admin' },
        { ...original, exp: (original.exp as number) + 3600 },
      ].map((value) => `${head}.${encode(value)}.${signature}`);
      // One flipped character in the payload, too.
      const flipped = `${head}.${payload.slice(0, 10)}${payload[10] === 'A' ? 'B' : 'A'}${payload.slice(11)}.${signature}`;
      await unchanged(async () => {
        for (const variant of [...tampered, flipped]) await tryToken(variant);
      });
    });

    test('a refresh token used as a bearer token', async () => {
      const res = await req('GET', '/token?service=skiff&scope=repository:team-a/app:pull,push,delete&offline_token=true', as('alice'));
      assert.equal(res.status, 200, res.body.toString());
      const answer = JSON.parse(res.body.toString()) as { refresh_token?: string };
      assert.ok(answer.refresh_token, 'a refresh token was issued');
      await unchanged(() => tryToken(answer.refresh_token!));
    });

    test('a token for another audience (service) or from another issuer, signed by the server key', async () => {
      const otherAudience = await forge(serverKey, ALICE_ON_TEAM_A, { aud: 'another-registry' });
      const otherIssuer = await forge(serverKey, ALICE_ON_TEAM_A, { iss: 'someone-else' });
      const viaIssuer = (await new TokenIssuer({ key: serverKey, issuer: 'skiff', service: 'other-service' }).accessToken('alice', ALICE_ON_TEAM_A.access as never)).token;
      await unchanged(async () => {
        await tryToken(otherAudience);
        await tryToken(otherIssuer);
        await tryToken(viaIssuer);
      });
    });

    test('garbage bearer values', async () => {
      await unchanged(async () => {
        for (const value of ['x', 'a.b.c', 'e30.e30.', '....']) await tryToken(value);
      });
    });
  });

  describe('valid tokens, the wrong repository or action', () => {
    test('a token for team-a/app used on team-b/app: 403 DENIED (alice may never touch team-b)', async () => {
      const aliceToken = await token('alice', ['repository:team-a/app:pull,push,delete', 'repository:team-b/app:pull,push,delete']);
      assert.deepEqual(jwtClaims(aliceToken).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }]);
      await unchanged(async () => {
        expectRefusal(await req('GET', '/v2/team-b/app/manifests/v1', bearer(aliceToken)), 403, 'DENIED', 'GET team-b');
        expectRefusal(await req('GET', `/v2/team-b/app/blobs/${seeded['team-b/app']!.layers[0]!.descriptor.digest}`, bearer(aliceToken)), 403, 'DENIED', 'GET blob team-b');
        expectRefusal(await req('GET', '/v2/team-b/app/tags/list', bearer(aliceToken)), 403, 'DENIED', 'tags team-b');
        await tryWrites('team-b/app', bearer(aliceToken), 403, 'DENIED');
      });
    });

    test('a token for team-a/app used on team-a/other (allowed by policy, not by the token): 401 insufficient_scope', async () => {
      const aliceToken = await token('alice', ['repository:team-a/app:pull,push,delete']);
      await unchanged(async () => {
        const res = await req('GET', '/v2/team-a/other/manifests/v1', bearer(aliceToken));
        expectRefusal(res, 401, 'UNAUTHORIZED');
        assert.match(headerOf(res, 'www-authenticate') ?? '', /scope="repository:team-a\/other:pull",error="insufficient_scope"/);
        await tryWrites('team-a/other', bearer(aliceToken), 401, 'UNAUTHORIZED');
      });
    });

    test("an admin's token for team-a/app used on team-b/app: 401 insufficient_scope", async () => {
      const adminToken = await token('admin', ['repository:team-a/app:pull,push,delete']);
      await unchanged(async () => {
        const res = await req('GET', '/v2/team-b/app/manifests/v1', bearer(adminToken));
        expectRefusal(res, 401, 'UNAUTHORIZED');
        assert.match(headerOf(res, 'www-authenticate') ?? '', /error="insufficient_scope"/);
        await tryWrites('team-b/app', bearer(adminToken), 401, 'UNAUTHORIZED');
      });
    });

    test('push with a pull-only grant (token and Basic): 403 DENIED, including into a session someone else opened', async () => {
      const aliceToken = await token('alice', ['repository:shared/app:pull,push,delete']);
      assert.deepEqual(jwtClaims(aliceToken).access, [{ type: 'repository', name: 'shared/app', actions: ['pull'] }], 'the token grants pull only');
      assert.equal((await req('GET', '/v2/shared/app/manifests/v1', bearer(aliceToken))).status, 200, 'pull works');
      // bob (pull, push) opens a session; alice must not write into it.
      const opened = await req('POST', '/v2/shared/app/blobs/uploads/', as('bob'));
      assert.equal(opened.status, 202);
      const location = headerOf(opened, 'location')!;
      const layer = intruder.layers[0]!;
      await unchanged(async () => {
        for (const auth of [bearer(aliceToken), as('alice')]) {
          await tryWrites('shared/app', auth, 403, 'DENIED');
          expectRefusal(await req('PATCH', location, auth, { body: layer.data, headers: { 'Content-Type': 'application/octet-stream' } }), 403, 'DENIED', 'PATCH');
          expectRefusal(await req('PUT', `${location}?digest=${layer.descriptor.digest}`, auth, { body: layer.data, headers: { 'Content-Type': 'application/octet-stream' } }), 403, 'DENIED', 'PUT upload');
          expectRefusal(await req('GET', location, auth), 403, 'DENIED', 'upload status');
          expectRefusal(await req('DELETE', location, auth), 403, 'DENIED', 'cancel upload');
        }
      });
      assert.equal((await req('DELETE', location, as('bob'))).status, 204);
    });

    test('a pull-only token where the policy would allow push: 401 insufficient_scope', async () => {
      const aliceToken = await token('alice', ['repository:team-a/app:pull']);
      await unchanged(async () => {
        const res = await req('POST', '/v2/team-a/app/blobs/uploads/', bearer(aliceToken));
        expectRefusal(res, 401, 'UNAUTHORIZED');
        assert.match(headerOf(res, 'www-authenticate') ?? '', /scope="repository:team-a\/app:push",error="insufficient_scope"/);
        await tryWrites('team-a/app', bearer(aliceToken), 401, 'UNAUTHORIZED');
      });
    });

    test('DELETE with a pull+push grant (token and Basic): 403 DENIED', async () => {
      const bobToken = await token('bob', ['repository:shared/app:pull,push,delete']);
      assert.deepEqual(jwtClaims(bobToken).access, [{ type: 'repository', name: 'shared/app', actions: ['pull', 'push'] }]);
      const image = seeded['shared/app']!;
      await unchanged(async () => {
        for (const auth of [bearer(bobToken), as('bob')]) {
          expectRefusal(await req('DELETE', '/v2/shared/app/manifests/v1', auth), 403, 'DENIED', 'DELETE tag');
          expectRefusal(await req('DELETE', `/v2/shared/app/manifests/${image.manifest.descriptor.digest}`, auth), 403, 'DENIED', 'DELETE manifest');
          expectRefusal(await req('DELETE', `/v2/shared/app/blobs/${image.layers[0]!.descriptor.digest}`, auth), 403, 'DENIED', 'DELETE blob');
        }
      });
    });
  });

  describe('cross-repository mounts', () => {
    /** The parts of a 202 that must not differ between "exists elsewhere, unreadable" and "exists nowhere". */
    function sessionShape(res: RawResponse, repo: string): { status: number; headers: string[]; range: string | undefined; length: string | undefined } {
      assert.equal(res.status, 202, `mount answered ${res.status} ${res.body.toString()}`);
      const location = headerOf(res, 'location') ?? '';
      assert.match(location, new RegExp(`^/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`), 'an upload Location');
      assert.equal(headerOf(res, 'docker-upload-uuid'), location.split('/').at(-1));
      const skip = new Set(['date', 'location', 'docker-upload-uuid', 'keep-alive', 'connection']);
      return { status: res.status, headers: Object.keys(res.headers).filter((name) => !skip.has(name)).sort(), range: headerOf(res, 'range'), length: headerOf(res, 'content-length') };
    }

    async function cancel(res: RawResponse, auth: string): Promise<void> {
      const gone = await req('DELETE', headerOf(res, 'location')!, auth);
      assert.equal(gone.status, 204, gone.body.toString());
    }

    test('from a repository the caller cannot read: 202 upload session exactly like an unknown digest, never linked', async () => {
      const secret = seeded['team-b/app']!.layers[0]!.descriptor.digest;
      const nowhere = unknownDigest('auth-negative mount');
      const aliceToken = await token('alice', ['repository:team-a/app:pull,push', 'repository:team-b/app:pull']);
      assert.deepEqual(jwtClaims(aliceToken).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
      await unchanged(async () => {
        for (const auth of [as('alice'), bearer(aliceToken)]) {
          const first = await req('POST', `/v2/team-a/app/blobs/uploads/?mount=${nowhere}&from=team-b/app`, auth);
          const reference = sessionShape(first, 'team-a/app');
          await cancel(first, auth);
          const cases = [
            `mount=${secret}&from=team-b/app`,
            `mount=${secret}&from=team-b/app&ns=`,
            `mount=${secret}&from=team-a/../team-b/app`,
            `mount=${secret}&from=TEAM-B/app`,
            `mount=${secret}&from=team-b%2Fapp`,
            `mount=${nowhere}&from=team-a/app`,
          ];
          for (const query of cases) {
            const res = await req('POST', `/v2/team-a/app/blobs/uploads/?${query}`, auth);
            assert.deepEqual(sessionShape(res, 'team-a/app'), reference, query);
            await cancel(res, auth);
          }
          assert.equal(await registry.registry.metadata.isBlobLinked('team-a/app', secret), false);
          assert.equal((await req('HEAD', `/v2/team-a/app/blobs/${secret}`, as('admin'))).status, 404);
        }
      });
    });

    test('from a repository the policy lets the caller pull, but the token does not: 202, not linked', async () => {
      const shared = seeded['shared/app']!.layers[0]!.descriptor.digest;
      const aliceToken = await token('alice', ['repository:team-a/app:pull,push']);
      await unchanged(async () => {
        const res = await req('POST', `/v2/team-a/app/blobs/uploads/?mount=${shared}&from=shared/app`, bearer(aliceToken));
        sessionShape(res, 'team-a/app');
        await cancel(res, bearer(aliceToken));
      });
    });

    test('control: from a repository the caller may pull (token with its pull), the mount is a 201', async () => {
      const shared = seeded['shared/app']!.layers[0]!.descriptor.digest;
      const aliceToken = await token('alice', ['repository:team-a/x:pull,push', 'repository:shared/app:pull']);
      const res = await req('POST', `/v2/team-a/x/blobs/uploads/?mount=${shared}&from=shared/app`, bearer(aliceToken));
      assert.equal(res.status, 201, res.body.toString());
      assert.equal(headerOf(res, 'location'), `/v2/team-a/x/blobs/${shared}`);
      assert.equal(await registry.registry.metadata.isBlobLinked('team-a/x', shared), true);
      assert.equal((await req('DELETE', `/v2/team-a/x/blobs/${shared}`, as('admin'))).status, 202);
    });

    test('automatic mount (no from): only from a repository the caller may pull, never from an unlinked blob', async () => {
      const secret = seeded['team-b/app']!.layers[0]!.descriptor.digest;
      await unchanged(async () => {
        for (const digest of [secret, orphan.descriptor.digest, seeded['team-ab/x']!.layers[0]!.descriptor.digest]) {
          const res = await req('POST', `/v2/team-a/app/blobs/uploads/?mount=${digest}`, as('alice'));
          sessionShape(res, 'team-a/app');
          await cancel(res, as('alice'));
        }
        // Token: policy lets alice pull shared/app, but an automatic mount is checked against the token too.
        const aliceToken = await token('alice', ['repository:team-a/app:pull,push']);
        const res = await req('POST', `/v2/team-a/app/blobs/uploads/?mount=${seeded['shared/app']!.layers[0]!.descriptor.digest}`, bearer(aliceToken));
        sessionShape(res, 'team-a/app');
        await cancel(res, bearer(aliceToken));
      });
      // Control: a digest alice may pull (shared/app) is mounted.
      const shared = seeded['shared/app']!.layers[0]!.descriptor.digest;
      const res = await req('POST', `/v2/team-a/x/blobs/uploads/?mount=${shared}`, as('alice'));
      assert.equal(res.status, 201, res.body.toString());
      assert.equal((await req('DELETE', `/v2/team-a/x/blobs/${shared}`, as('admin'))).status, 202);
    });
  });

  describe('path tricks do not escape a glob rule (alice may only touch team-a/**)', () => {
    const manifestPut = () => ({ body: intruder.manifest.data, headers: { 'Content-Type': intruder.manifest.descriptor.mediaType } });

    test('dot segments, literal and percent-encoded: 400 NAME_INVALID before anything runs', async () => {
      const paths = [
        '/v2/team-a/../team-b/app/manifests/v1',
        '/v2/team-a/%2e%2e/team-b/app/manifests/v1',
        '/v2/team-a/%2E%2E/team-b/app/manifests/v1',
        '/v2/team-a/.%2e/team-b/app/manifests/v1',
        '/v2/team-a/app/../../team-b/app/manifests/v1',
        '/v2/team-a/./../team-b/app/manifests/v1',
        '/v2/team-a//../team-b/app/manifests/v1',
        '/v2/team-a/%252e%252e/team-b/app/manifests/v1',
      ];
      await unchanged(async () => {
        for (const path of paths) {
          for (const auth of [as('alice'), bearer(await token('alice', ['repository:team-a/app:pull,push,delete']))]) {
            for (const [method, options] of [['GET', {}], ['PUT', manifestPut()], ['DELETE', {}]] as const) {
              const res = await req(method, path, auth, options);
              assert.ok(res.status === 400 || res.status === 403 || res.status === 401, `${method} ${path}: ${res.status}`);
              assertErrorBody(res.body, res.status === 400 ? 'NAME_INVALID' : res.status === 403 ? 'DENIED' : 'UNAUTHORIZED');
            }
          }
        }
        // Those the edge refuses by rule (dot segments after decoding).
        for (const path of paths.slice(0, 7)) expectRefusal(await req('GET', path, as('alice')), 400, 'NAME_INVALID', path);
      });
    });

    test('encoded slashes: 400 NAME_INVALID', async () => {
      const paths = ['/v2/team-a%2F..%2Fteam-b%2Fapp/manifests/v1', '/v2/team-a/..%2Fteam-b/app/manifests/v1', '/v2/team-b%2fapp/manifests/v1', '/v2/team-a/app/manifests/v1%2F..%2F..%2F..%2Fteam-b%2Fapp'];
      await unchanged(async () => {
        for (const path of paths) {
          expectRefusal(await req('GET', path, as('alice')), 400, 'NAME_INVALID', `GET ${path}`);
          expectRefusal(await req('PUT', path, as('alice'), manifestPut()), 400, 'NAME_INVALID', `PUT ${path}`);
        }
      });
    });

    test('an empty segment (team-a//x): refused, nothing written', async () => {
      await unchanged(async () => {
        for (const path of ['/v2/team-a//x/manifests/v1', '/v2/team-a//team-b/app/manifests/v1', '/v2/team-a/app//manifests/v1']) {
          const put = await req('PUT', path, as('alice'), manifestPut());
          assert.ok(put.status === 400 || put.status === 403 || put.status === 404, `PUT ${path}: ${put.status} ${put.body.toString()}`);
          const get = await req('GET', path, as('alice'));
          assert.ok(get.status === 400 || get.status === 403 || get.status === 404, `GET ${path}: ${get.status}`);
        }
        expectRefusal(await req('PUT', '/v2/team-a//x/manifests/v1', as('alice'), manifestPut()), 400, 'NAME_INVALID');
        expectRefusal(await req('POST', '/v2/team-a//x/blobs/uploads/', as('alice')), 400, 'NAME_INVALID');
      });
    });

    test('uppercase names: not matched by the lowercase glob (403), and never folded onto a stored repository', async () => {
      await unchanged(async () => {
        for (const name of ['TEAM-B/app', 'Team-B/app', 'team-b/APP', 'Team-A/app', 'TEAM-A/x']) {
          expectRefusal(await req('GET', `/v2/${name}/manifests/v1`, as('alice')), 403, 'DENIED', `GET ${name}`);
          await tryWrites(name, as('alice'), 403, 'DENIED');
        }
        // Even an admin cannot reach team-b/app by an uppercase spelling.
        expectRefusal(await req('GET', '/v2/TEAM-B/app/manifests/v1', as('admin')), 400, 'NAME_INVALID');
      });
    });

    test('names that merely share a prefix (team-ab/x, team-a-x, team-a): 403 DENIED', async () => {
      await unchanged(async () => {
        for (const name of ['team-ab/x', 'team-a-x', 'team-a', 'team-ab']) {
          expectRefusal(await req('GET', `/v2/${name}/manifests/v1`, as('alice')), 403, 'DENIED', `GET ${name}`);
          expectRefusal(await req('GET', `/v2/${name}/tags/list`, as('alice')), 403, 'DENIED', `tags ${name}`);
          await tryWrites(name, as('alice'), 403, 'DENIED');
        }
      });
    });

    test('the token service grants nothing for such names', async () => {
      const names = ['team-a/../team-b/app', 'team-a/%2e%2e/team-b/app', 'TEAM-B/app', 'team-a//x', 'team-ab/x', 'team-b/app', 'team-a%2Fx'];
      for (const name of names) {
        const res = await req('GET', `/token?service=skiff&scope=${encodeURIComponent(`repository:${name}:pull,push,delete`)}`, as('alice'));
        assert.equal(res.status, 200, res.body.toString());
        const answer = JSON.parse(res.body.toString()) as { token: string; scope: string };
        assert.equal(answer.scope, '', `${name}: ${answer.scope}`);
        assert.deepEqual(jwtClaims(answer.token).access, [], name);
      }
    });
  });
});
