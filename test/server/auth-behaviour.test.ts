/**
 * Access control, what clients see when things go right (and the exact words of the refusals that
 * steer them): challenges, the token service, the catalog per caller, failed-login limits, password
 * changes taking effect, an authenticated push end to end, and the mirror's permissions on
 * canonical names. Each server is an in-process `skiff serve` (startTestRegistry).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import type { AccessConfig, AccessRule } from '../../src/auth/access-policy.ts';
import { makeImage, type Blob, type TestImage } from '../../src/testing/images.ts';
import { upstream } from '../../src/testing/mirror.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { assertErrorBody, captureEscapes, raw, sleep, type RawResponse, expectRefusal, headerOf, jwtClaims } from './http/helpers.ts';

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}
const bearer = (token: string): string => `Bearer ${token}`;

function rule(repositories: string[], actions: AccessRule['actions'], who: Partial<Pick<AccessRule, 'users' | 'groups' | 'anonymous'>>): AccessRule {
  return { repositories, actions, users: who.users ?? [], groups: who.groups ?? [], anonymous: who.anonymous ?? false };
}

async function htpasswdText(users: Record<string, string>): Promise<string> {
  return Object.entries(users)
    .map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}\n`)
    .join('');
}

/**
 * Polls `check` every 300 ms until it returns true; the time it took, or fails after `limitMs`.
 * Not faster: each refused poll is a failed login, and ten in a minute lock the user out.
 */
async function within(limitMs: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(300);
  }
}

/** A request helper bound to one server: raw node:http, path sent as is, optional Authorization. */
function client(base: () => string) {
  return async (method: string, path: string, auth?: string, options: { body?: Buffer | string; headers?: Record<string, string | number> } = {}): Promise<RawResponse> => {
    const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
    if (auth !== undefined) headers.Authorization = auth;
    return raw(base(), method, path, { headers, ...(options.body !== undefined ? { body: options.body } : {}) });
  };
}

/** `key="value"` pairs of a challenge. */
function challengeParams(value: string): Record<string, string> {
  return Object.fromEntries([...value.matchAll(/(\w+)="([^"]*)"/g)].map((match) => [match[1]!, match[2]!]));
}

/**
 * What docker does, with fetch: send the request; on a Bearer challenge, fetch a token for the
 * challenge's scope from its realm with Basic credentials, and send the request again with it.
 * Tokens are kept per scope.
 */
class TokenClient {
  private readonly tokens = new Map<string, string>();
  readonly fetched: string[] = [];
  readonly base: string;
  private readonly user: string;
  private readonly password: string;
  constructor(base: string, user: string, password: string) {
    this.base = base;
    this.user = user;
    this.password = password;
  }

  async fetch(path: string, init: { method?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<Response> {
    const url = new URL(path, this.base);
    const send = (token?: string) =>
      fetch(url, { method: init.method ?? 'GET', headers: { ...(init.headers ?? {}), ...(token ? { Authorization: bearer(token) } : {}) }, ...(init.body ? { body: init.body } : {}) });
    const key = `${init.method ?? 'GET'} ${url.pathname.replace(/\/(manifests|blobs)\/.*$/, '/$1')}`;
    let res = await send(this.tokens.get(key));
    if (res.status !== 401) return res;
    const challenge = res.headers.get('www-authenticate') ?? '';
    await res.arrayBuffer();
    assert.match(challenge, /^Bearer /, `a Bearer challenge: ${challenge}`);
    const params = challengeParams(challenge);
    const tokenUrl = new URL(params.realm!);
    tokenUrl.searchParams.set('service', params.service!);
    for (const scope of (params.scope ?? '').split(' ').filter(Boolean)) tokenUrl.searchParams.append('scope', scope);
    const answer = await fetch(tokenUrl, { headers: { Authorization: basic(this.user, this.password) } });
    assert.equal(answer.status, 200, `token for ${params.scope}`);
    const { token } = (await answer.json()) as { token: string };
    this.fetched.push(params.scope ?? '');
    this.tokens.set(key, token);
    res = await send(token);
    return res;
  }
}

/** pushImage (src/testing/push.ts) through a TokenClient: blobs by POST ?digest= (or POST + PUT), then the manifest. */
async function pushImageWithTokens(tc: TokenClient, repo: string, image: TestImage, tag: string): Promise<void> {
  const pushBlob = async (item: Blob) => {
    let res = await tc.fetch(`/v2/${repo}/blobs/uploads/?digest=${item.descriptor.digest}`, { method: 'POST', body: item.data, headers: { 'Content-Type': 'application/octet-stream' } });
    if (res.status === 202) {
      await res.arrayBuffer();
      const location = new URL(res.headers.get('location') ?? '', tc.base);
      location.searchParams.set('digest', item.descriptor.digest);
      res = await tc.fetch(location.pathname + location.search, { method: 'PUT', body: item.data, headers: { 'Content-Type': 'application/octet-stream' } });
    }
    assert.equal(res.status, 201, `push blob ${item.descriptor.digest} to ${repo}: ${await res.text()}`);
  };
  for (const item of image.blobs) await pushBlob(item);
  const res = await tc.fetch(`/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: image.manifest.data, headers: { 'Content-Type': image.manifest.descriptor.mediaType } });
  assert.equal(res.status, 201, `push manifest ${repo}:${tag}: ${await res.text()}`);
}

/** Pushes with Basic credentials through node:http (for seeding). */
async function pushWithBasic(base: string, auth: string, repo: string, image: TestImage, tag: string): Promise<void> {
  const req = client(() => base);
  for (const item of image.blobs) {
    const res = await req('POST', `/v2/${repo}/blobs/uploads/?digest=${item.descriptor.digest}`, auth, { body: item.data, headers: { 'Content-Type': 'application/octet-stream' } });
    assert.equal(res.status, 201, `seed ${repo}: ${res.body.toString()}`);
  }
  const res = await req('PUT', `/v2/${repo}/manifests/${tag}`, auth, { body: image.manifest.data, headers: { 'Content-Type': image.manifest.descriptor.mediaType } });
  assert.equal(res.status, 201, `seed ${repo}:${tag}: ${res.body.toString()}`);
}

let work: string;
let escapes: ReturnType<typeof captureEscapes>;
before(async () => {
  escapes = captureEscapes();
  work = await mkdtemp(join(tmpdir(), 'skiff-auth-behaviour-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
  const escaped = escapes.take();
  escapes.dispose();
  assert.deepEqual(escaped, [], 'errors escaped the server');
});

describe('token mode', () => {
  const PASSWORDS = { admin: 'admin-pw', alice: 'alice-pw', bob: 'bob-pw', dave: 'dave-pw', erin: 'erin-pw' };
  const as = (user: keyof typeof PASSWORDS) => basic(user, PASSWORDS[user]);
  let registry: TestRegistry;
  let htpasswd: string;
  let port: string;
  const req = client(() => registry.url);
  /** The file's entries: a password change re-hashes that user only. */
  const hashes: Record<string, string> = {};
  const writeUsers = () => writeFile(htpasswd, Object.entries(hashes).map(([user, hash]) => `${user}:${hash}\n`).join(''));
  const setPassword = async (user: keyof typeof PASSWORDS, password: string) => {
    PASSWORDS[user] = password;
    hashes[user] = bcrypt.hashSync(password, 4);
    await writeUsers();
  };
  const access: AccessConfig = {
    admins: ['admin'],
    groups: { ops: ['dave', 'erin'] },
    rules: [
      rule(['team-a/**'], ['pull', 'push', 'delete'], { users: ['alice'] }),
      rule(['team-b/**'], ['pull', 'push', 'delete'], { users: ['bob'] }),
      rule(['public/**'], ['pull'], { users: ['*'], anonymous: true }),
      rule(['ops/**'], ['pull', 'push'], { groups: ['ops'] }),
    ],
  };

  async function token(auth: string | undefined, query: string): Promise<{ token: string; scope: string; refresh_token?: string; expires_in: number; issued_at: string; access_token: string }> {
    const res = await req('GET', `/token?${query}`, auth);
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(headerOf(res, 'cache-control'), 'no-store');
    return JSON.parse(res.body.toString()) as never;
  }

  async function postToken(form: Record<string, string>): Promise<RawResponse> {
    return req('POST', '/token', undefined, { body: new URLSearchParams(form).toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  }

  before(async () => {
    htpasswd = join(work, 'token-mode.htpasswd');
    for (const [user, password] of Object.entries(PASSWORDS)) hashes[user] = bcrypt.hashSync(password, 4);
    await writeUsers();
    registry = await startTestRegistry({ htpasswd, access });
    port = new URL(registry.url).port;
    for (const repo of ['team-a/app', 'team-b/app', 'public/x', 'ops/tool']) {
      await pushWithBasic(registry.url, as('admin'), repo, await makeImage({ seed: `behaviour ${repo}`, layers: 1, layerSize: 256 }), 'v1');
    }
  });
  after(async () => {
    await registry?.stop();
  });

  describe('challenges', () => {
    test('a read without credentials: 401 with Bearer realm, service and scope …:pull', async () => {
      for (const [method, path] of [
        ['GET', '/v2/team-a/app/manifests/v1'],
        ['HEAD', '/v2/team-a/app/manifests/v1'],
        ['GET', '/v2/team-a/app/tags/list'],
        ['GET', `/v2/team-a/app/blobs/sha256:${'0'.repeat(64)}`],
        ['GET', `/v2/team-a/app/referrers/sha256:${'0'.repeat(64)}`],
      ] as const) {
        const res = await req(method, path);
        assert.equal(res.status, 401, `${method} ${path}`);
        if (method !== 'HEAD') assertErrorBody(res.body, 'UNAUTHORIZED');
        assert.equal(headerOf(res, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:pull"`, `${method} ${path}`);
      }
    });

    test('a write without credentials: …:push; a delete: …:delete', async () => {
      for (const [method, path, action] of [
        ['POST', '/v2/team-a/app/blobs/uploads/', 'push'],
        ['PUT', '/v2/team-a/app/manifests/v2', 'push'],
        ['PATCH', '/v2/team-a/app/blobs/uploads/00000000-0000-0000-0000-000000000000', 'push'],
        ['DELETE', '/v2/team-a/app/manifests/v1', 'delete'],
        ['DELETE', `/v2/team-a/app/blobs/sha256:${'0'.repeat(64)}`, 'delete'],
      ] as const) {
        const res = await req(method, path, undefined, method === 'PUT' || method === 'PATCH' ? { body: '{}' } : {});
        expectRefusal(res, 401, 'UNAUTHORIZED', `${method} ${path}`);
        assert.equal(headerOf(res, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:${action}"`, `${method} ${path}`);
      }
    });

    test('the realm follows the Host the client used', async () => {
      const res = await req('GET', '/v2/team-a/app/manifests/v1', undefined, { headers: { Host: `localhost:${port}` } });
      assert.equal(headerOf(res, 'www-authenticate'), `Bearer realm="http://localhost:${port}/token",service="skiff",scope="repository:team-a/app:pull"`);
    });

    test('a valid token without the scope: error="insufficient_scope"; a bad token: error="invalid_token"', async () => {
      const { token: other } = await token(as('alice'), 'service=skiff&scope=repository:team-a/other:pull');
      const lacking = await req('GET', '/v2/team-a/app/manifests/v1', bearer(other));
      expectRefusal(lacking, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(lacking, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:pull",error="insufficient_scope"`);
      const push = await req('POST', '/v2/team-a/app/blobs/uploads/', bearer(other));
      assert.equal(headerOf(push, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:push",error="insufficient_scope"`);
      const bad = await req('GET', '/v2/team-a/app/manifests/v1', bearer(`${other.slice(0, -4)}AAAA`));
      expectRefusal(bad, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(bad, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:pull",error="invalid_token"`);
    });

    test('a mount challenge also names pull on its from', async () => {
      const res = await req('POST', `/v2/team-a/app/blobs/uploads/?mount=sha256:${'0'.repeat(64)}&from=public/x`);
      expectRefusal(res, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(res, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:team-a/app:push repository:public/x:pull"`);
    });

    test('/v2/: 401 without credentials (challenge without scope), 200 with Basic, 200 with a token', async () => {
      const anonymous = await req('GET', '/v2/');
      expectRefusal(anonymous, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(anonymous, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff"`);
      assert.equal((await req('GET', '/v2/', as('alice'))).status, 200);
      assert.equal((await req('GET', '/v2', as('bob'))).status, 200);
      const { token: aliceToken } = await token(as('alice'), 'service=skiff');
      assert.equal((await req('GET', '/v2/', bearer(aliceToken))).status, 200);
      expectRefusal(await req('GET', '/v2/', basic('alice', 'nope')), 401, 'UNAUTHORIZED');
    });

    test('/metrics needs an authenticated user; /healthz stays open', async () => {
      expectRefusal(await req('GET', '/metrics'), 401, 'UNAUTHORIZED');
      assert.equal((await req('GET', '/metrics', as('bob'))).status, 200);
      assert.equal((await req('GET', '/healthz')).status, 200);
    });

    test(
      'an anonymous token (fetched without credentials) does not open /v2/ or /metrics',
      async () => {
        const { token: anonymousToken } = await token(undefined, 'service=skiff');
        assert.equal(jwtClaims(anonymousToken).sub, '');
        expectRefusal(await req('GET', '/metrics', bearer(anonymousToken)), 401, 'UNAUTHORIZED', '/metrics');
        expectRefusal(await req('GET', '/v2/', bearer(anonymousToken)), 401, 'UNAUTHORIZED', '/v2/');
      },
    );

    test('an unsupported Authorization scheme: 401 with the challenge', async () => {
      const res = await req('GET', '/v2/team-a/app/manifests/v1', 'Digest username="alice"');
      expectRefusal(res, 401, 'UNAUTHORIZED');
      assert.match(headerOf(res, 'www-authenticate') ?? '', /^Bearer realm=/);
    });

    test('rules: anonymous pull on public/** is served without any token; its push is challenged', async () => {
      const res = await req('GET', '/v2/public/x/manifests/v1');
      assert.equal(res.status, 200, res.body.toString());
      const push = await req('POST', '/v2/public/x/blobs/uploads/');
      expectRefusal(push, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(push, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:public/x:push"`);
      // Authenticated users, by the users: ["*"] of the same rule.
      assert.equal((await req('GET', '/v2/public/x/manifests/v1', as('bob'))).status, 200);
    });
  });

  describe('the token service', () => {
    test('GET with scopes grants requested ∩ allowed, per repository', async () => {
      const answer = await token(
        as('alice'),
        ['service=skiff', 'scope=repository:team-a/app:pull,push,delete', 'scope=repository:team-b/app:pull,push', 'scope=repository:public/x:pull,push', `scope=${encodeURIComponent('repository:ops/tool:pull repository:team-a/lib:pull')}`].join('&'),
      );
      const payload = jwtClaims(answer.token);
      assert.deepEqual(payload.access, [
        { type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] },
        { type: 'repository', name: 'public/x', actions: ['pull'] },
        { type: 'repository', name: 'team-a/lib', actions: ['pull'] },
      ]);
      assert.equal(answer.scope, 'repository:team-a/app:pull,push,delete repository:public/x:pull repository:team-a/lib:pull');
      assert.equal(payload.sub, 'alice');
      assert.equal(payload.aud, 'skiff');
      assert.equal(payload.iss, 'skiff');
      assert.equal(answer.access_token, answer.token);
      assert.equal(answer.expires_in, 300);
      assert.ok(Math.abs(Date.parse(answer.issued_at) - Date.now()) < 5000, answer.issued_at);
      assert.equal(answer.refresh_token, undefined, 'no refresh token unless asked');
      // The token does what it says.
      assert.equal((await req('GET', '/v2/team-a/app/manifests/v1', bearer(answer.token))).status, 200);
      assert.equal((await req('GET', '/v2/public/x/manifests/v1', bearer(answer.token))).status, 200);
      const { token: adminToken } = await token(as('admin'), 'service=skiff&scope=repository:team-b/app:pull,push,delete,nonsense');
      assert.deepEqual(jwtClaims(adminToken).access, [{ type: 'repository', name: 'team-b/app', actions: ['pull', 'push', 'delete'] }]);
      // A group's grant.
      const { token: daveToken } = await token(as('dave'), 'service=skiff&scope=repository:ops/tool:pull,push,delete');
      assert.deepEqual(jwtClaims(daveToken).access, [{ type: 'repository', name: 'ops/tool', actions: ['pull', 'push'] }]);
    });

    test('anonymous token requests get what anonymous may do, and no refresh token', async () => {
      const answer = await token(undefined, 'service=skiff&scope=repository:public/x:pull,push&scope=repository:team-a/app:pull&scope=registry:catalog:*&offline_token=true');
      const payload = jwtClaims(answer.token);
      assert.deepEqual(payload.access, [{ type: 'repository', name: 'public/x', actions: ['pull'] }]);
      assert.equal(payload.sub, '');
      assert.equal(answer.scope, 'repository:public/x:pull');
      assert.equal(answer.refresh_token, undefined);
      assert.equal((await req('GET', '/v2/public/x/manifests/v1', bearer(answer.token))).status, 200);
      const denied = await req('GET', '/v2/team-a/app/manifests/v1', bearer(answer.token));
      expectRefusal(denied, 401, 'UNAUTHORIZED');
      assert.match(headerOf(denied, 'www-authenticate') ?? '', /error="insufficient_scope"/);
      // Without service (optional, as docker's token spec has it): the same service.
      const unnamed = await token(undefined, 'scope=repository:public/x:pull');
      assert.equal(jwtClaims(unnamed.token).aud, 'skiff');
    });

    test('offline_token=true returns a refresh token; POST grant_type=refresh_token turns it into access tokens', async () => {
      const answer = await token(as('alice'), 'service=skiff&scope=repository:team-a/app:pull&offline_token=true&client_id=test');
      assert.ok(answer.refresh_token, 'a refresh token');
      const refreshed = await postToken({ grant_type: 'refresh_token', refresh_token: answer.refresh_token, service: 'skiff', scope: 'repository:team-a/app:pull,push repository:team-b/app:pull', client_id: 'test' });
      assert.equal(refreshed.status, 200, refreshed.body.toString());
      assert.equal(headerOf(refreshed, 'cache-control'), 'no-store');
      const body = JSON.parse(refreshed.body.toString()) as { token: string; access_token: string; refresh_token: string; scope: string };
      assert.equal(body.access_token, body.token);
      assert.equal(body.refresh_token, answer.refresh_token);
      assert.deepEqual(jwtClaims(body.token).access, [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }]);
      assert.equal(jwtClaims(body.token).sub, 'alice');
      const start = await req('POST', '/v2/team-a/app/blobs/uploads/', bearer(body.access_token));
      assert.equal(start.status, 202, start.body.toString());
      assert.equal((await req('DELETE', headerOf(start, 'location')!, bearer(body.token))).status, 204);
    });

    test('POST grant_type=password works, with access_type=offline a refresh token', async () => {
      const res = await postToken({ grant_type: 'password', username: 'bob', password: PASSWORDS.bob, service: 'skiff', scope: 'repository:team-b/app:pull,delete', client_id: 'test', access_type: 'offline' });
      assert.equal(res.status, 200, res.body.toString());
      const body = JSON.parse(res.body.toString()) as { token: string; access_token: string; refresh_token?: string; scope: string };
      assert.deepEqual(jwtClaims(body.access_token).access, [{ type: 'repository', name: 'team-b/app', actions: ['pull', 'delete'] }]);
      assert.equal(body.scope, 'repository:team-b/app:pull,delete');
      assert.ok(body.refresh_token);
      assert.equal((await req('GET', '/v2/team-b/app/tags/list', bearer(body.token))).status, 200);
      const online = await postToken({ grant_type: 'password', username: 'bob', password: PASSWORDS.bob, service: 'skiff', scope: 'repository:team-b/app:pull' });
      assert.equal(online.status, 200);
      assert.equal((JSON.parse(online.body.toString()) as { refresh_token?: string }).refresh_token, undefined);
      const unknownGrant = await postToken({ grant_type: 'client_credentials', service: 'skiff' });
      assert.equal(unknownGrant.status, 400);
      const notAForm = await req('POST', '/token', undefined, { body: '{"grant_type":"password"}', headers: { 'Content-Type': 'application/json' } });
      assert.equal(notAForm.status, 400);
      assert.equal((await req('PUT', '/token')).status, 405);
    });

    test('a wrong service: 400 (GET and POST)', async () => {
      const get = await req('GET', '/token?service=another&scope=repository:team-a/app:pull', as('alice'));
      expectRefusal(get, 400, 'UNSUPPORTED');
      const anonymous = await req('GET', '/token?service=another');
      assert.equal(anonymous.status, 400);
      const post = await postToken({ grant_type: 'password', username: 'alice', password: PASSWORDS.alice, service: 'another' });
      assert.equal(post.status, 400);
      assertErrorBody(post.body, 'UNSUPPORTED');
    });

    test("a refresh token stops working once the user's htpasswd entry changes; another user's survives", async () => {
      const daveRefresh = (await token(as('dave'), 'service=skiff&offline_token=true')).refresh_token!;
      const bobRefresh = (await token(as('bob'), 'service=skiff&offline_token=true')).refresh_token!;
      const refresh = (refreshToken: string) => postToken({ grant_type: 'refresh_token', refresh_token: refreshToken, service: 'skiff', scope: 'repository:ops/tool:pull' });
      assert.equal((await refresh(daveRefresh)).status, 200);
      await sleep(20); // a distinct mtime
      await setPassword('dave', 'dave-pw-2');
      const took = await within(4000, 'the refresh token refused', async () => (await refresh(daveRefresh)).status === 401);
      assert.ok(took <= 3000, `took ${took} ms`);
      const refused = await refresh(daveRefresh);
      expectRefusal(refused, 401, 'UNAUTHORIZED');
      assert.ok(!refused.body.toString().includes('"token"'));
      assert.equal((await refresh(bobRefresh)).status, 200, "bob's entry did not change");
      // The old password is refused, the new one gives a working refresh token again.
      expectRefusal(await req('GET', '/token?service=skiff&offline_token=true', basic('dave', 'dave-pw')), 401, 'UNAUTHORIZED');
      const fresh = (await token(as('dave'), 'service=skiff&offline_token=true')).refresh_token!;
      assert.equal((await refresh(fresh)).status, 200);
    });

    test('a refresh token survives an unrelated edit of the file, and dies when its user is removed', async () => {
      const bobRefresh = (await token(as('bob'), 'service=skiff&offline_token=true')).refresh_token!;
      const refresh = () => postToken({ grant_type: 'refresh_token', refresh_token: bobRefresh, service: 'skiff' });
      assert.equal((await refresh()).status, 200);
      const text = await readFile(htpasswd, 'utf8');
      await sleep(1100);
      await writeFile(htpasswd, `# a comment\n${text}`);
      await sleep(1100);
      assert.equal((await refresh()).status, 200, "an unrelated edit keeps bob's refresh token");
      await writeFile(htpasswd, text.split('\n').filter((line) => !line.startsWith('bob:')).join('\n'));
      await within(3000, 'the refresh token of a removed user refused', async () => (await refresh()).status === 401);
      await writeFile(htpasswd, text);
      await within(3000, 'bob back', async () => (await refresh()).status === 200);
    });
  });

  describe('the catalog', () => {
    const list = async (auth: string): Promise<string[]> => {
      const res = await req('GET', '/v2/_catalog', auth);
      assert.equal(res.status, 200, res.body.toString());
      return (JSON.parse(res.body.toString()) as { repositories: string[] }).repositories;
    };

    test('lists only what the caller may pull (alice, bob, dave, admin), by Basic and by token', async () => {
      assert.deepEqual(await list(as('alice')), ['public/x', 'team-a/app']);
      assert.deepEqual(await list(as('bob')), ['public/x', 'team-b/app']);
      assert.deepEqual(await list(as('dave')), ['ops/tool', 'public/x']);
      assert.deepEqual(await list(as('admin')), ['ops/tool', 'public/x', 'team-a/app', 'team-b/app']);
      const { token: aliceToken, scope } = await token(as('alice'), 'service=skiff&scope=registry:catalog:*');
      assert.equal(scope, 'registry:catalog:*');
      assert.deepEqual(jwtClaims(aliceToken).access, [{ type: 'registry', name: 'catalog', actions: ['*'] }]);
      assert.deepEqual(await list(bearer(aliceToken)), ['public/x', 'team-a/app']);
      const { token: bobToken } = await token(as('bob'), 'service=skiff&scope=registry:catalog:*');
      assert.deepEqual(await list(bearer(bobToken)), ['public/x', 'team-b/app']);
    });

    test('paging counts only visible repositories', async () => {
      const first = await req('GET', '/v2/_catalog?n=1', as('alice'));
      assert.deepEqual((JSON.parse(first.body.toString()) as { repositories: string[] }).repositories, ['public/x']);
      assert.match(headerOf(first, 'link') ?? '', /last=public%2Fx|last=public\/x/);
      const second = await req('GET', '/v2/_catalog?n=1&last=public/x', as('alice'));
      assert.deepEqual((JSON.parse(second.body.toString()) as { repositories: string[] }).repositories, ['team-a/app']);
    });

    test('a token without registry:catalog:* gets 401 insufficient_scope; anonymous gets a challenge', async () => {
      const { token: aliceToken } = await token(as('alice'), 'service=skiff&scope=repository:team-a/app:pull');
      const res = await req('GET', '/v2/_catalog', bearer(aliceToken));
      expectRefusal(res, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(res, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="registry:catalog:*",error="insufficient_scope"`);
      const anonymous = await req('GET', '/v2/_catalog');
      expectRefusal(anonymous, 401, 'UNAUTHORIZED');
      assert.equal(headerOf(anonymous, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="registry:catalog:*"`);
      const { token: anonymousToken } = await token(undefined, 'service=skiff&scope=registry:catalog:*');
      assert.deepEqual(jwtClaims(anonymousToken).access, [], 'anonymous is never granted the catalog');
      expectRefusal(await req('GET', '/v2/_catalog', bearer(anonymousToken)), 401, 'UNAUTHORIZED');
    });
  });

  test(
    'cached Basic verdicts: after the password changes in the file, the old password stops working within ~2 s',
    async () => {
      const old = PASSWORDS.erin;
      assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status, 200);
      assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status, 200, 'cached');
      await sleep(1100); // past the once-a-second mtime check of the requests above
      await setPassword('erin', 'erin-pw-2');
      try {
        // Only erin's old password is presented: nothing else should be needed for the change to count.
        const took = await within(4000, "erin's old password refused", async () => (await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status === 401);
        assert.ok(took <= 3000, `took ${took} ms`);
        assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', PASSWORDS.erin))).status, 200);
      } finally {
        await setPassword('erin', old); // the next test starts from the old password
        await within(3000, 'erin reset', async () => (await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status === 200);
      }
    },
  );

  test('cached Basic verdicts: once a request re-reads the changed file, the old password is refused at once', async () => {
    const old = PASSWORDS.erin;
    assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status, 200);
    assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', old))).status, 200, 'cached');
    await sleep(1100);
    await setPassword('erin', 'erin-pw-3');
    await sleep(1100);
    // Any request that reaches the password file (here a new credential, so a bcrypt check) re-reads it.
    assert.equal((await req('GET', '/v2/ops/tool/tags/list', basic('erin', PASSWORDS.erin))).status, 200);
    expectRefusal(await req('GET', '/v2/ops/tool/tags/list', basic('erin', old)), 401, 'UNAUTHORIZED');
  });

  test('a push by an authorized user works end to end through the token flow (fetch), and reads back', async () => {
    const image = await makeImage({ seed: 'behaviour token push', layers: 2, layerSize: 2048 });
    const tc = new TokenClient(registry.url, 'alice', PASSWORDS.alice);
    await pushImageWithTokens(tc, 'team-a/pushed', image, 'v1');
    assert.ok(tc.fetched.includes('repository:team-a/pushed:push'), tc.fetched.join(' | '));
    const manifest = await tc.fetch('/v2/team-a/pushed/manifests/v1', { headers: { Accept: image.manifest.descriptor.mediaType } });
    assert.equal(manifest.status, 200);
    assert.deepEqual(Buffer.from(await manifest.arrayBuffer()), image.manifest.data);
    for (const item of image.blobs) {
      const blob = await tc.fetch(`/v2/team-a/pushed/blobs/${item.descriptor.digest}`);
      assert.equal(blob.status, 200);
      assert.deepEqual(Buffer.from(await blob.arrayBuffer()), item.data);
    }
    // bob may not read it; the admin may.
    expectRefusal(await req('GET', '/v2/team-a/pushed/manifests/v1', as('bob')), 403, 'DENIED');
    assert.equal((await req('GET', '/v2/team-a/pushed/manifests/v1', as('admin'))).status, 200);
    // bob through the token flow: the token service grants nothing, the retried request is refused.
    const bobClient = new TokenClient(registry.url, 'bob', PASSWORDS.bob);
    const refused = await bobClient.fetch('/v2/team-a/pushed/blobs/uploads/', { method: 'POST' });
    assert.equal(refused.status, 403, await refused.text());
  });
});

describe('basic mode', () => {
  let registry: TestRegistry;
  const req = client(() => registry.url);
  const alice = basic('alice', 'alice-pw');

  before(async () => {
    const htpasswd = join(work, 'basic-mode.htpasswd');
    await writeFile(htpasswd, await htpasswdText({ alice: 'alice-pw' }));
    registry = await startTestRegistry({ htpasswd, authScheme: 'basic' });
  });
  after(async () => {
    await registry?.stop();
  });

  test('challenges are Basic, everywhere', async () => {
    for (const [method, path] of [
      ['GET', '/v2/'],
      ['GET', '/v2/_catalog'],
      ['GET', '/v2/a/b/manifests/v1'],
      ['POST', '/v2/a/b/blobs/uploads/'],
      ['DELETE', '/v2/a/b/manifests/v1'],
    ] as const) {
      const res = await req(method, path);
      expectRefusal(res, 401, 'UNAUTHORIZED', `${method} ${path}`);
      assert.equal(headerOf(res, 'www-authenticate'), 'Basic realm="skiff", charset="UTF-8"', `${method} ${path}`);
    }
    const wrong = await req('GET', '/v2/', basic('alice', 'nope'));
    expectRefusal(wrong, 401, 'UNAUTHORIZED');
    assert.equal(headerOf(wrong, 'www-authenticate'), 'Basic realm="skiff", charset="UTF-8"');
  });

  test('Basic credentials: /v2/ 200, and a push and a pull work (no access: → everything)', async () => {
    assert.equal((await req('GET', '/v2/', alice)).status, 200);
    const image = await makeImage({ seed: 'behaviour basic', layers: 1, layerSize: 256 });
    await pushWithBasic(registry.url, alice, 'any/repo', image, 'v1');
    const res = await req('GET', '/v2/any/repo/manifests/v1', alice, { headers: { Accept: image.manifest.descriptor.mediaType } });
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, image.manifest.data);
    const catalog = await req('GET', '/v2/_catalog', alice);
    assert.deepEqual(JSON.parse(catalog.body.toString()), { repositories: ['any/repo'] });
    assert.equal((await req('DELETE', `/v2/any/repo/manifests/${image.manifest.descriptor.digest}`, alice)).status, 202);
  });
});

describe('anonymousPull', () => {
  let registry: TestRegistry;
  let image: TestImage;
  const req = client(() => registry.url);

  before(async () => {
    const htpasswd = join(work, 'anonymous.htpasswd');
    await writeFile(htpasswd, await htpasswdText({ alice: 'alice-pw' }));
    registry = await startTestRegistry({ htpasswd, anonymousPull: true });
    image = await makeImage({ seed: 'behaviour anonymous', layers: 1, layerSize: 256 });
    await pushWithBasic(registry.url, basic('alice', 'alice-pw'), 'lib/app', image, 'v1');
  });
  after(async () => {
    await registry?.stop();
  });

  test('anonymous reads are served without any token', async () => {
    const manifest = await req('GET', '/v2/lib/app/manifests/v1', undefined, { headers: { Accept: image.manifest.descriptor.mediaType } });
    assert.equal(manifest.status, 200, manifest.body.toString());
    assert.deepEqual(manifest.body, image.manifest.data);
    assert.equal((await req('HEAD', `/v2/lib/app/blobs/${image.layers[0]!.descriptor.digest}`)).status, 200);
    const tags = await req('GET', '/v2/lib/app/tags/list');
    assert.deepEqual(JSON.parse(tags.body.toString()), { name: 'lib/app', tags: ['v1'] });
  });

  test('anonymous pushes and deletes are challenged; /v2/ and the catalog still challenge anonymous', async () => {
    const port = new URL(registry.url).port;
    const push = await req('PUT', '/v2/lib/app/manifests/v2', undefined, { body: image.manifest.data, headers: { 'Content-Type': image.manifest.descriptor.mediaType } });
    expectRefusal(push, 401, 'UNAUTHORIZED');
    assert.equal(headerOf(push, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff",scope="repository:lib/app:push"`);
    expectRefusal(await req('POST', '/v2/lib/app/blobs/uploads/'), 401, 'UNAUTHORIZED');
    expectRefusal(await req('DELETE', '/v2/lib/app/manifests/v1'), 401, 'UNAUTHORIZED');
    const base = await req('GET', '/v2/');
    expectRefusal(base, 401, 'UNAUTHORIZED');
    assert.equal(headerOf(base, 'www-authenticate'), `Bearer realm="http://127.0.0.1:${port}/token",service="skiff"`);
    expectRefusal(await req('GET', '/v2/_catalog'), 401, 'UNAUTHORIZED');
    // An anonymous token grants pull only.
    const res = await req('GET', '/token?service=skiff&scope=repository:lib/app:pull,push,delete');
    assert.deepEqual(jwtClaims((JSON.parse(res.body.toString()) as { token: string }).token).access, [{ type: 'repository', name: 'lib/app', actions: ['pull'] }]);
    // alice (no access: section) may still do everything.
    assert.equal((await req('GET', '/v2/', basic('alice', 'alice-pw'))).status, 200);
  });
});

describe('failed logins', () => {
  let registry: TestRegistry;
  const req = client(() => registry.url);

  before(async () => {
    const htpasswd = join(work, 'limits.htpasswd');
    await writeFile(htpasswd, await htpasswdText({ carol: 'carol-pw', dan: 'dan-pw' }));
    registry = await startTestRegistry({ htpasswd }); // default limits: 10 per user and address a minute
  });
  after(async () => {
    await registry?.stop();
  });

  test('100 wrong passwords for one user: 429 + Retry-After after the 10th, even for the right password; another user keeps working', async () => {
    const statuses: number[] = [];
    let limited: RawResponse | undefined;
    for (let i = 0; i < 100; i++) {
      const res = await req('GET', '/v2/', basic('carol', `guess-${i}`));
      statuses.push(res.status);
      if (res.status === 429) limited = res;
      else expectRefusal(res, 401, 'UNAUTHORIZED');
    }
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401), statuses.join(' '));
    assert.deepEqual(statuses.slice(10), Array(90).fill(429), statuses.join(' '));
    expectRefusal(limited!, 429, 'TOOMANYREQUESTS');
    const retryAfter = Number(headerOf(limited!, 'retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${headerOf(limited!, 'retry-after')}`);
    // The right password while limited.
    const right = await req('GET', '/v2/', basic('carol', 'carol-pw'));
    expectRefusal(right, 429, 'TOOMANYREQUESTS');
    assert.ok(headerOf(right, 'retry-after'));
    // At the token service too.
    const viaToken = await req('GET', '/token?service=skiff&scope=repository:a/b:pull', basic('carol', 'carol-pw'));
    assert.equal(viaToken.status, 429, viaToken.body.toString());
    assert.ok(headerOf(viaToken, 'retry-after'));
    const viaPost = await req('POST', '/token', undefined, { body: new URLSearchParams({ grant_type: 'password', username: 'carol', password: 'carol-pw', service: 'skiff' }).toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.equal(viaPost.status, 429, viaPost.body.toString());
    // Another user from the same address.
    assert.equal((await req('GET', '/v2/', basic('dan', 'dan-pw'))).status, 200);
    assert.equal((await req('GET', '/token?service=skiff', basic('dan', 'dan-pw'))).status, 200);
  });
});

describe('mirror permissions', () => {
  let upstreamRegistry: TestRegistry;
  let mirror: TestRegistry;
  let prefix: string;
  let image: TestImage;
  const req = client(() => mirror.url);
  const PASSWORDS = { alice: 'alice-pw', bob: 'bob-pw', admin: 'admin-pw' };
  const as = (user: keyof typeof PASSWORDS) => basic(user, PASSWORDS[user]);

  before(async () => {
    upstreamRegistry = await startTestRegistry();
    image = await makeImage({ seed: 'behaviour mirror', layers: 1, layerSize: 512 });
    await pushImage(upstreamRegistry.url, 'library/x', image, 'latest');
    prefix = upstreamRegistry.address.replace(':', '_');
    const htpasswd = join(work, 'mirror.htpasswd');
    await writeFile(htpasswd, await htpasswdText(PASSWORDS));
    mirror = await startTestRegistry({
      // `proxy: <url>` would send every unprefixed name, local/app too, to the upstream (a read-only
      // cache); the same default upstream with local/** denied keeps local/** a local repository.
      upstreams: [upstream({ host: upstreamRegistry.address, url: upstreamRegistry.url, default: true, deny: ['local/**'] })],
      htpasswd,
      access: {
        admins: ['admin'],
        groups: {},
        rules: [rule([`${prefix}/**`], ['pull'], { users: ['alice'] }), rule(['local/**'], ['pull', 'push'], { users: ['bob'] })],
      },
    });
  });
  after(async () => {
    await mirror?.stop();
    await upstreamRegistry?.stop();
  });

  test('alice pulls library/x through the mirror (unprefixed, prefixed, ?ns=), by Basic and by token', async () => {
    const accept = { Accept: image.manifest.descriptor.mediaType };
    for (const path of ['/v2/library/x/manifests/latest', `/v2/${prefix}/library/x/manifests/latest`, `/v2/library/x/manifests/latest?ns=${upstreamRegistry.address}`]) {
      const res = await req('GET', path, as('alice'), { headers: accept });
      assert.equal(res.status, 200, `${path}: ${res.body.toString()}`);
      assert.deepEqual(res.body, image.manifest.data, path);
    }
    const blob = await req('GET', `/v2/library/x/blobs/${image.layers[0]!.descriptor.digest}`, as('alice'));
    assert.equal(blob.status, 200);
    assert.deepEqual(blob.body, image.layers[0]!.data);
    const tc = new TokenClient(mirror.url, 'alice', PASSWORDS.alice);
    const viaToken = await tc.fetch('/v2/library/x/manifests/latest', { headers: accept });
    assert.equal(viaToken.status, 200, await viaToken.text());
    assert.deepEqual(tc.fetched, ['repository:library/x:pull']);
    const { token } = JSON.parse((await req('GET', '/token?service=skiff&scope=repository:library/x:pull,push', as('alice'))).body.toString()) as { token: string };
    assert.deepEqual(jwtClaims(token).access, [{ type: 'repository', name: 'library/x', actions: ['pull'] }]);
  });

  test('bob (no rule on the cache) gets 403 on library/x in every spelling; anonymous gets 401', async () => {
    for (const path of ['/v2/library/x/manifests/latest', `/v2/${prefix}/library/x/manifests/latest`, `/v2/library/x/manifests/latest?ns=${upstreamRegistry.address}`, `/v2/library/x/blobs/${image.layers[0]!.descriptor.digest}`, '/v2/library/x/tags/list']) {
      expectRefusal(await req('GET', path, as('bob')), 403, 'DENIED', path);
      expectRefusal(await req('GET', path), 401, 'UNAUTHORIZED', path);
    }
    const { token } = JSON.parse((await req('GET', '/token?service=skiff&scope=repository:library/x:pull', as('bob'))).body.toString()) as { token: string };
    assert.deepEqual(jwtClaims(token).access, []);
  });

  test('bob pushes to local/app; alice pushing there gets 403', async () => {
    const local = await makeImage({ seed: 'behaviour mirror local', layers: 1, layerSize: 256 });
    const tc = new TokenClient(mirror.url, 'bob', PASSWORDS.bob);
    await pushImageWithTokens(tc, 'local/app', local, 'v1');
    const back = await req('GET', '/v2/local/app/manifests/v1', as('bob'), { headers: { Accept: local.manifest.descriptor.mediaType } });
    assert.equal(back.status, 200);
    assert.deepEqual(back.body, local.manifest.data);
    const other = await makeImage({ seed: 'behaviour mirror alice', layers: 1, layerSize: 256 });
    expectRefusal(await req('POST', `/v2/local/app/blobs/uploads/?digest=${other.layers[0]!.descriptor.digest}`, as('alice'), { body: other.layers[0]!.data }), 403, 'DENIED');
    expectRefusal(await req('PUT', '/v2/local/app/manifests/v2', as('alice'), { body: other.manifest.data, headers: { 'Content-Type': other.manifest.descriptor.mediaType } }), 403, 'DENIED');
    expectRefusal(await req('GET', '/v2/local/app/manifests/v1', as('alice')), 403, 'DENIED');
  });

  test('anyone pushing into the cached namespace gets DENIED (admin included)', async () => {
    const other = await makeImage({ seed: 'behaviour mirror intruder', layers: 1, layerSize: 256 });
    const layer = other.layers[0]!;
    for (const user of ['alice', 'bob', 'admin'] as const) {
      for (const name of ['library/x', `${prefix}/library/x`, 'library/new']) {
        expectRefusal(await req('POST', `/v2/${name}/blobs/uploads/`, as(user)), 403, 'DENIED', `${user} POST ${name}`);
        expectRefusal(await req('POST', `/v2/${name}/blobs/uploads/?digest=${layer.descriptor.digest}`, as(user), { body: layer.data }), 403, 'DENIED', `${user} POST ${name} ?digest`);
        expectRefusal(await req('PUT', `/v2/${name}/manifests/latest`, as(user), { body: other.manifest.data, headers: { 'Content-Type': other.manifest.descriptor.mediaType } }), 403, 'DENIED', `${user} PUT ${name}`);
      }
      expectRefusal(await req('POST', `/v2/library/x/blobs/uploads/?ns=${upstreamRegistry.address}`, as(user)), 403, 'DENIED', `${user} POST ?ns=`);
    }
    // Still the upstream's image.
    const res = await req('GET', '/v2/library/x/manifests/latest', as('alice'), { headers: { Accept: image.manifest.descriptor.mediaType } });
    assert.deepEqual(res.body, image.manifest.data);
  });

  test("the catalog shows each caller only what they may pull, by canonical name", async () => {
    const list = async (user: keyof typeof PASSWORDS) => (JSON.parse((await req('GET', '/v2/_catalog', as(user))).body.toString()) as { repositories: string[] }).repositories;
    assert.ok(!(await list('alice')).includes('local/app'));
    assert.ok((await list('bob')).includes('local/app'));
    assert.ok(!(await list('bob')).some((name) => name.startsWith(`${prefix}/`)), (await list('bob')).join(' '));
    for (const name of await list('alice')) assert.ok(name.startsWith(`${prefix}/`), name);
  });
});
