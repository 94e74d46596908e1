/**
 * The web UI's JSON API (/api/v1/…) and its page shell, over HTTP against in-process servers:
 * the same permissions as /v2/ (a repository the caller may not pull never appears), login through
 * the token service's password check, CSRF on every action, the security headers, paging and
 * sorting, manifest details, deletes, the GC dry run, the mirror view, and `ui: false`.
 * The real-browser tests are in test/ui/.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import type { AccessRule } from '../../../src/auth/access-policy.ts';
import { digestOf } from '../../../src/digest/digest.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import type { CachedTagPage, GcDryRun, ManifestDetail, MirrorView, RepositoryPage, SessionInfo, TagPage } from '../../../src/server/ui/api-types.ts';
import { makeImage, makeIndex } from '../../../src/testing/images.ts';
import { startTestMirror, upstream } from '../../../src/testing/mirror.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { ApiBrowser as Browser } from '../../../src/testing/api-browser.ts';

function rule(repositories: string[], actions: AccessRule['actions'], who: Partial<Pick<AccessRule, 'users' | 'anonymous'>>): AccessRule {
  return { repositories, actions, users: who.users ?? [], groups: [], anonymous: who.anonymous ?? false };
}

/** The status of a GET whose path is sent exactly as written. */
async function rawStatus(base: string, path: string): Promise<number> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(base, { path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Seeds a data directory through an open server: the repositories the permission tests need. */
async function seed(dataDir: string): Promise<void> {
  const open = await startTestRegistry({ dataDir });
  try {
    const amd = await makeImage({ seed: 'ui app amd64', layers: 2, layerSize: 2048, created: '2026-03-01T00:00:00Z', labels: { 'org.opencontainers.image.title': 'app' } });
    const arm = await makeImage({ seed: 'ui app arm64', layers: 1, layerSize: 1024, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, created: '2026-03-02T00:00:00Z' });
    await pushImage(open.url, 'team/app', amd, 'v1');
    await pushImage(open.url, 'team/app', arm, 'arm');
    const index = makeIndex([amd, arm]);
    await pushManifest(open.url, 'team/app', 'multi', index);
    const small = await makeImage({ seed: 'ui app small', layers: 1, layerSize: 64, created: '2025-01-01T00:00:00Z' });
    await pushImage(open.url, 'team/app', small, 'small');
    // An SBOM for v1: an artifact whose subject is the image.
    const sbomBody = Buffer.from('{"sbom":true}');
    const empty = Buffer.from('{}');
    await pushBlob(open.url, 'team/app', { descriptor: { mediaType: 'application/spdx+json', digest: digestOf(sbomBody), size: sbomBody.length }, data: sbomBody });
    await pushBlob(open.url, 'team/app', { descriptor: { mediaType: MediaTypes.ociEmpty, digest: digestOf(empty), size: empty.length }, data: empty });
    const sbom = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: MediaTypes.ociEmpty, digest: digestOf(empty), size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: digestOf(sbomBody), size: sbomBody.length }],
        subject: amd.manifest.descriptor,
        annotations: { 'org.opencontainers.image.created': '2026-03-03T00:00:00Z' },
      }),
    );
    await pushManifest(open.url, 'team/app', digestOf(sbom), { descriptor: { mediaType: MediaTypes.ociManifest, digest: digestOf(sbom), size: sbom.length }, data: sbom });
    for (const name of ['team/tools', 'secret/keys', 'public/hello']) await pushImage(open.url, name, await makeImage({ seed: `ui ${name}`, layers: 1, layerSize: 256 }), 'latest');
  } finally {
    await open.stop();
  }
}

describe('web UI API with access control', () => {
  let dir: string;
  let registry: TestRegistry;
  let htpasswd: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-ui-api-'));
    const dataDir = join(dir, 'data');
    await seed(dataDir);
    htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, ['alice', 'bob'].map((user) => `${user}:${bcrypt.hashSync(`${user}-pw`, 4)}\n`).join(''));
    const access = {
      groups: {},
      admins: ['alice'],
      rules: [rule(['team/*'], ['pull'], { users: ['bob'] }), rule(['public/*'], ['pull'], { anonymous: true })],
    };
    registry = await startTestRegistry({ dataDir, htpasswd, access });
  });
  after(async () => {
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the session says who is anonymous, what it may do, and sets an HttpOnly SameSite CSRF cookie', async () => {
    const browser = new Browser(registry.url);
    const answer = await browser.request('GET', '/api/v1/session');
    assert.equal(answer.status, 200);
    const session = answer.json as SessionInfo;
    assert.equal(session.user, null);
    assert.equal(session.auth, true);
    assert.equal(session.login, true);
    assert.equal(session.anonymousBrowse, true);
    assert.equal(session.admin, false);
    assert.equal(session.registryHost, new URL(registry.url).host);
    assert.match(session.csrf, /^[A-Za-z0-9_-]{32,}$/);
    const cookie = answer.headers.getSetCookie().find((line) => line.startsWith('skiff_csrf='));
    assert.ok(cookie, 'a CSRF cookie is set');
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    // The same browser keeps its token.
    assert.equal((await browser.session()).csrf, session.csrf);
  });

  test('anonymous sees only what anonymous may pull; other repositories are absent (401 to log in)', async () => {
    const browser = new Browser(registry.url);
    const list = await browser.request('GET', '/api/v1/repositories');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual((list.json as RepositoryPage).repositories.map((row) => row.name), ['public/hello']);
    assert.equal((list.json as RepositoryPage).total, 1);
    const hidden = await browser.request('GET', '/api/v1/repositories/secret/keys/tags');
    assert.equal(hidden.status, 401);
    assert.equal(hidden.headers.get('www-authenticate'), null, 'no challenge: a browser would open its own password dialog');
    assert.equal((await browser.request('GET', '/api/v1/repositories/public/hello/tags')).status, 200);
  });

  test('login: a wrong password is 401 without a challenge; a right one sets an HttpOnly session cookie', async () => {
    const browser = new Browser(registry.url);
    await browser.session();
    const wrong = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'nope' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), null);
    assert.match(wrong.text, /incorrect username or password/);
    const right = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'alice-pw' } });
    assert.equal(right.status, 200, right.text);
    assert.equal((right.json as SessionInfo).user, 'alice');
    assert.equal((right.json as SessionInfo).admin, true);
    const cookie = right.headers.getSetCookie().find((line) => line.startsWith('skiff_session='));
    assert.match(cookie ?? '', /HttpOnly; SameSite=Strict/);
    assert.ok(!right.text.includes(cookie!.split(';')[0]!.split('=')[1]!), 'the session token is never in a response body');
    assert.equal((await browser.session()).user, 'alice');
    const out = await browser.request('DELETE', '/api/v1/session');
    assert.equal(out.status, 200);
    assert.equal((await browser.session()).user, null);
  });

  test('every action needs the CSRF token and a same-origin request', async () => {
    const browser = new Browser(registry.url);
    await browser.session();
    const missing = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'alice-pw' }, csrf: false });
    assert.equal(missing.status, 403);
    assert.match(missing.text, /X-CSRF-Token/);
    const wrong = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'alice-pw' }, csrf: false, headers: { 'x-csrf-token': 'x'.repeat(43) } });
    assert.equal(wrong.status, 403);
    const crossOrigin = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'alice-pw' }, headers: { origin: 'http://evil.example' } });
    assert.equal(crossOrigin.status, 403);
    const crossSite = await browser.request('POST', '/api/v1/session', { body: { username: 'alice', password: 'alice-pw' }, headers: { 'sec-fetch-site': 'cross-site' } });
    assert.equal(crossSite.status, 403);
    await browser.login('alice', 'alice-pw');
    const deleteWithout = await browser.request('DELETE', '/api/v1/repositories/team/tools/tags/latest', { csrf: false });
    assert.equal(deleteWithout.status, 403);
    const still = await browser.request('GET', '/api/v1/repositories/team/tools/tags');
    assert.equal((still.json as TagPage).total, 1, 'the refused delete deleted nothing');
  });

  test('bob sees team/* only: the list, the filter, a direct URL and the mirror of /v2 permissions', async () => {
    const browser = new Browser(registry.url);
    await browser.login('bob', 'bob-pw');
    const list = (await browser.request('GET', '/api/v1/repositories')).json as RepositoryPage;
    // Rules for anonymous grant nothing to a logged-in user, in the UI as in /v2/.
    assert.deepEqual(list.repositories.map((row) => row.name), ['team/app', 'team/tools']);
    const filtered = (await browser.request('GET', '/api/v1/repositories?filter=sec')).json as RepositoryPage;
    assert.deepEqual(filtered.repositories, []);
    assert.equal(filtered.total, 0);
    for (const path of ['/api/v1/repositories/secret/keys/tags', '/api/v1/repositories/secret/keys/manifests/latest', '/api/v1/repositories/nothing/here/tags']) {
      const answer = await browser.request('GET', path);
      assert.equal(answer.status, 404, path);
      assert.equal((answer.json as { errors: { code: string }[] }).errors[0]!.code, 'NAME_UNKNOWN', 'a hidden repository looks exactly like an absent one');
    }
    const tags = (await browser.request('GET', '/api/v1/repositories/team/app/tags')).json as TagPage;
    assert.equal(tags.mayDelete, false);
    const refused = await browser.request('DELETE', '/api/v1/repositories/team/app/tags/small');
    assert.equal(refused.status, 403);
    assert.equal((await browser.session()).admin, false);
    assert.equal((await browser.request('POST', '/api/v1/gc/dry-run')).status, 403);
  });

  test('the repository list: figures, filter as you type, paging', async () => {
    const browser = new Browser(registry.url);
    await browser.login('alice', 'alice-pw');
    const all = (await browser.request('GET', '/api/v1/repositories')).json as RepositoryPage;
    assert.deepEqual(all.repositories.map((row) => row.name), ['public/hello', 'secret/keys', 'team/app', 'team/tools']);
    const app = all.repositories.find((row) => row.name === 'team/app')!;
    assert.equal(app.tags, 4);
    assert.ok(app.size > 4 * 1024, `team/app holds its layers: ${app.size}`);
    assert.ok(app.lastPush !== null && Date.now() - app.lastPush < 10 * 60_000);
    assert.equal(app.cached, false);
    const tea = (await browser.request('GET', '/api/v1/repositories?filter=TEA')).json as RepositoryPage;
    assert.deepEqual(tea.repositories.map((row) => row.name), ['team/app', 'team/tools'], 'the filter ignores case');
    const second = (await browser.request('GET', '/api/v1/repositories?offset=1&limit=2')).json as RepositoryPage;
    assert.deepEqual(second.repositories.map((row) => row.name), ['secret/keys', 'team/app']);
    assert.equal(second.total, 4);
    for (const bad of ['limit=0', 'limit=201', 'offset=-1', 'offset=x', `filter=${'a'.repeat(300)}`]) {
      assert.equal((await browser.request('GET', `/api/v1/repositories?${bad}`)).status, 400, bad);
    }
  });

  test('tags: newest first by default, sorted by size, name and created, with platforms', async () => {
    const browser = new Browser(registry.url);
    await browser.login('alice', 'alice-pw');
    const byDefault = (await browser.request('GET', '/api/v1/repositories/team/app/tags')).json as TagPage;
    assert.equal(byDefault.sort, 'pushed');
    assert.equal(byDefault.order, 'desc');
    assert.equal(byDefault.mayDelete, true);
    assert.deepEqual(byDefault.tags.map((tag) => tag.tag), ['small', 'multi', 'arm', 'v1'], 'the last pushed first');
    const multi = byDefault.tags.find((tag) => tag.tag === 'multi')!;
    assert.deepEqual(multi.platforms, ['linux/amd64', 'linux/arm64/v8']);
    assert.equal(multi.created, '2026-03-02T00:00:00Z', 'an index is as new as its newest image');
    const v1 = byDefault.tags.find((tag) => tag.tag === 'v1')!;
    const arm = byDefault.tags.find((tag) => tag.tag === 'arm')!;
    assert.ok(multi.size > v1.size + arm.size, 'an index counts its images');
    const bySize = (await browser.request('GET', '/api/v1/repositories/team/app/tags?sort=size&order=asc')).json as TagPage;
    assert.deepEqual(bySize.tags.map((tag) => tag.tag), ['small', 'arm', 'v1', 'multi']);
    const byName = (await browser.request('GET', '/api/v1/repositories/team/app/tags?sort=name')).json as TagPage;
    assert.deepEqual(byName.tags.map((tag) => tag.tag), ['arm', 'multi', 'small', 'v1']);
    const byCreated = (await browser.request('GET', '/api/v1/repositories/team/app/tags?sort=created&order=desc&limit=2')).json as TagPage;
    // arm and multi share the newest created time; the name breaks the tie, reversed with the order.
    assert.deepEqual(byCreated.tags.map((tag) => tag.tag), ['multi', 'arm']);
    assert.equal(byCreated.total, 4);
    const byPlatforms = (await browser.request('GET', '/api/v1/repositories/team/app/tags?sort=platforms')).json as TagPage;
    assert.equal(byPlatforms.order, 'asc');
    assert.deepEqual(byPlatforms.tags.map((tag) => tag.platforms.join(',')), ['linux/amd64', 'linux/amd64', 'linux/amd64,linux/arm64/v8', 'linux/arm64/v8']);
    assert.equal((await browser.request('GET', '/api/v1/repositories/team/app/tags?sort=bogus')).status, 400);
  });

  test('a manifest: layers, config, history, labels, referrers; an index: its platforms', async () => {
    const browser = new Browser(registry.url);
    await browser.login('alice', 'alice-pw');
    const image = (await browser.request('GET', '/api/v1/repositories/team/app/manifests/v1')).json as ManifestDetail;
    assert.equal(image.kind, 'image');
    assert.deepEqual(image.tags, ['v1']);
    assert.equal(image.layers.length, 2);
    assert.equal(image.layers[0]!.mediaType, MediaTypes.ociLayerGzip);
    assert.deepEqual(image.config?.env, ['PATH=/usr/bin:/bin']);
    assert.deepEqual(image.config?.cmd, ['/bin/sh']);
    assert.equal(image.config?.labels['org.opencontainers.image.title'], 'app');
    assert.equal(image.config?.history.length, 2);
    assert.equal(image.config?.history[0]?.createdBy, 'layer 0');
    assert.equal(image.referrers.length, 1);
    assert.equal(image.referrers[0]!.artifactType, 'application/vnd.example.sbom');
    assert.ok(image.raw.includes('\n  "config"'), 'the JSON is indented');
    const byDigest = (await browser.request('GET', `/api/v1/repositories/team/app/manifests/${image.digest}`)).json as ManifestDetail;
    assert.equal(byDigest.digest, image.digest);
    const index = (await browser.request('GET', '/api/v1/repositories/team/app/manifests/multi')).json as ManifestDetail;
    assert.equal(index.kind, 'index');
    assert.deepEqual(index.platforms.map((entry) => entry.platform), ['linux/amd64', 'linux/arm64/v8']);
    assert.equal(index.config, null);
    const sbom = (await browser.request('GET', `/api/v1/repositories/team/app/manifests/${image.referrers[0]!.digest}`)).json as ManifestDetail;
    assert.equal(sbom.kind, 'artifact');
    assert.equal(sbom.artifactType, 'application/vnd.example.sbom');
    assert.equal(sbom.subject, image.digest);
    const unknown = await browser.request('GET', '/api/v1/repositories/team/app/manifests/nope');
    assert.equal(unknown.status, 404);
    assert.equal((unknown.json as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_UNKNOWN');
  });

  test('alice deletes a tag and a manifest; /v2/ agrees; the GC dry run lists and deletes nothing', async () => {
    const browser = new Browser(registry.url);
    await browser.login('alice', 'alice-pw');
    const deleted = await browser.request('DELETE', '/api/v1/repositories/team/tools/tags/latest');
    assert.equal(deleted.status, 200, deleted.text);
    const tags = (await browser.request('GET', '/api/v1/repositories/team/tools/tags')).json as TagPage;
    assert.equal(tags.total, 0);
    const token = (await (await fetch(`${registry.url}/token?service=skiff&scope=repository:team/tools:pull`, { headers: { authorization: `Basic ${Buffer.from('alice:alice-pw').toString('base64')}` } })).json()) as { token: string };
    const listed = (await (await fetch(`${registry.url}/v2/team/tools/tags/list`, { headers: { authorization: `Bearer ${token.token}` } })).json()) as { tags: string[] };
    assert.deepEqual(listed.tags, []);
    const small = ((await browser.request('GET', '/api/v1/repositories/team/app/manifests/small')).json as ManifestDetail).digest;
    assert.equal((await browser.request('DELETE', `/api/v1/repositories/team/app/manifests/${small}`)).status, 200);
    assert.equal((await browser.request('GET', '/api/v1/repositories/team/app/manifests/small')).status, 404, 'the manifest and its tag are gone');
    assert.equal((await browser.request('DELETE', '/api/v1/repositories/team/app/manifests/small')).status, 400, 'a manifest is deleted by digest');
    const dryRun = await browser.request('POST', '/api/v1/gc/dry-run');
    assert.equal(dryRun.status, 200, dryRun.text);
    const report = dryRun.json as GcDryRun;
    assert.ok(report.reviewed >= 0 && Array.isArray(report.rows));
    // The default grace (24 h) keeps everything: a dry run now would delete nothing, and did.
    assert.equal(report.rows.filter((row) => row.kind === 'blob').length, 0);
    assert.equal((await browser.request('GET', '/api/v1/repositories/team/app/manifests/v1')).status, 200);
  });

  test('a changed password ends the UI session, as it ends refresh tokens', async () => {
    const browser = new Browser(registry.url);
    await browser.login('bob', 'bob-pw');
    assert.equal((await browser.session()).user, 'bob');
    await writeFile(htpasswd, ['alice', 'bob'].map((user) => `${user}:${bcrypt.hashSync(user === 'bob' ? 'new-pw' : `${user}-pw`, 4)}\n`).join(''));
    await registry.access!.options.htpasswd!.reload();
    assert.equal((await browser.session()).user, null);
  });

  test('hostile input: bad names, bad bodies, unknown endpoints', async () => {
    const browser = new Browser(registry.url);
    await browser.session();
    // Sent as is (fetch would resolve the dot segments before sending).
    assert.equal(await rawStatus(registry.url, '/api/v1/repositories/team/../secret/keys/tags'), 400);
    assert.equal(await rawStatus(registry.url, '/api/v1/repositories/team/%2E%2E/secret/keys/tags'), 400);
    assert.equal(await rawStatus(registry.url, '/api/v1/repositories/%zz/tags'), 400);
    assert.equal((await browser.request('POST', '/api/v1/session', { body: 'not json' })).status, 400);
    assert.equal((await browser.request('POST', '/api/v1/session', { body: { username: 'a', password: 'x'.repeat(20_000) } })).status, 413);
    assert.equal((await browser.request('GET', '/api/v1/nothing')).status, 404);
    assert.equal((await browser.request('PUT', '/api/v1/session')).status, 405);
    assert.equal((await browser.request('PUT', '/api/v1/repositories', { csrf: false })).status, 403, 'an action without its token is refused before anything else');
  });
});

describe('web UI pages and API without authentication', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ gc: { interval: 0, grace: 0 } });
    await pushImage(registry.url, 'lib/one', await makeImage({ seed: 'ui open one', layers: 1, layerSize: 128 }), 'v1');
    await pushImage(registry.url, 'lib/gone', await makeImage({ seed: 'ui open gone', layers: 1, layerSize: 128 }), 'v1');
  });
  after(async () => {
    await registry?.stop();
  });

  test('the page shell: every client route gets the page, whose inline script and style alone the CSP allows, by hash; compressed and revalidated', async () => {
    const { createHash } = await import('node:crypto');
    const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    for (const path of ['/', '/login', '/mirror', '/gc', '/r/lib/one', '/r/lib/one:v1', '/r/lib/one@sha256:abc']) {
      const res = await fetch(`${registry.url}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      const html = await res.text();
      const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)].map((match) => match[1]!);
      const styles = [...html.matchAll(/<style\b[^>]*>([\s\S]*?)<\/style>/g)].map((match) => match[1]!);
      assert.equal(scripts.length, 1, `${path}: the app, inline`);
      assert.equal(styles.length, 1, `${path}: its stylesheet, inline`);
      assert.doesNotMatch(html, /<script[^>]*\bsrc=|\son[a-z]+=|\sstyle=/, `${path}: no script from elsewhere, no event-handler or style attribute`);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.equal(
        csp,
        `default-src 'none'; script-src ${sha256(scripts[0]!)}; style-src ${sha256(styles[0]!)}; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
        `${path}: exactly the page's own blocks may run, by hash`,
      );
    }
    // `/` also preloads the list's first page, with the very URL the app then fetches; other routes do not.
    const home = await (await fetch(`${registry.url}/`)).text();
    assert.match(home, /<link rel="preload" href="\/api\/v1\/session" as="fetch" crossorigin \/>/);
    assert.match(home, /<link rel="preload" href="\/api\/v1\/repositories\?offset=0&amp;limit=50" as="fetch" crossorigin \/>/);
    for (const path of ['/?q=lib', '/r/lib/one', '/mirror']) {
      const other = await (await fetch(`${registry.url}${path}`)).text();
      assert.doesNotMatch(other, /rel="preload" href="\/api\/v1\/repositories/, path);
      assert.match(other, /rel="preload" href="\/api\/v1\/session"/, path);
    }
    // The page goes out brotli-compressed (made at build time) and is revalidated by its ETag.
    const { request } = await import('node:http');
    const get = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; encoding: string | undefined; length: number; etag: string | undefined; cache: string | undefined }>((resolve, reject) => {
        request(`${registry.url}${path}`, { headers }, (res) => {
          let length = 0;
          res.on('data', (chunk: Buffer) => (length += chunk.length));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, encoding: res.headers['content-encoding'], length, etag: res.headers.etag, cache: res.headers['cache-control'] }));
        })
          .on('error', reject)
          .end();
      });
    const plain = await get('/', { 'accept-encoding': 'identity' });
    const compressed = await get('/', { 'accept-encoding': 'gzip, br' });
    assert.equal(plain.encoding, undefined);
    assert.equal(compressed.encoding, 'br');
    assert.ok(compressed.length < plain.length / 2, `brotli ${compressed.length} of ${plain.length}`);
    assert.equal((await get('/', { 'if-none-match': compressed.etag! })).status, 304);
    // The favicon, the one asset, has a hashed name and is immutable.
    const favicon = /href="(\/assets\/favicon-[^"]+\.svg)"/.exec(home)?.[1];
    assert.ok(favicon);
    const icon = await get(favicon, {});
    assert.equal(icon.status, 200);
    assert.equal(icon.cache, 'public, max-age=31536000, immutable');
    assert.equal((await fetch(`${registry.url}/assets/nothing.js`)).status, 404);
    assert.equal((await fetch(`${registry.url}/`, { method: 'POST' })).status, 405);
  });

  test('with authentication off everyone browses and may act, still with the CSRF token', async () => {
    const browser = new Browser(registry.url);
    const session = await browser.session();
    assert.equal(session.auth, false);
    assert.equal(session.login, false);
    assert.equal(session.admin, true);
    assert.equal(session.deleteEnabled, true);
    const list = (await browser.request('GET', '/api/v1/repositories')).json as RepositoryPage;
    assert.deepEqual(list.repositories.map((row) => row.name), ['lib/gone', 'lib/one']);
    assert.equal((await browser.request('POST', '/api/v1/session', { body: { username: 'a', password: 'b' } })).status, 404, 'no login without authentication');
    assert.equal((await browser.request('DELETE', '/api/v1/repositories/lib/gone/tags/v1', { csrf: false })).status, 403);
    assert.equal((await browser.request('DELETE', '/api/v1/repositories/lib/gone/tags/v1')).status, 200);
    // grace 0: the dry run now lists the deleted image's blobs once their manifest is gone.
    const digest = ((await browser.request('GET', '/api/v1/repositories/lib/gone/manifests/v1')).status);
    assert.equal(digest, 404);
  });

  test('/v2/ is untouched by the UI', async () => {
    const res = await fetch(`${registry.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-security-policy'), null);
    const unknown = await fetch(`${registry.url}/v2/lib/one/nothing`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { errors: { code: string }[] }).errors[0]!.code, 'UNSUPPORTED');
  });
});

describe('web UI turned off (ui: false, --no-ui)', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ ui: false });
  });
  after(async () => {
    await registry?.stop();
  });

  test('no page and no /api/v1/: both are unknown endpoints, and /v2/ answers', async () => {
    for (const path of ['/', '/api/v1/session', '/r/x']) {
      const res = await fetch(`${registry.url}${path}`);
      assert.equal(res.status, 404, path);
      assert.match(res.headers.get('content-type') ?? '', /json/);
    }
    assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
  });
});

describe('web UI mirror view', () => {
  let origin: TestRegistry;
  let mirror: TestRegistry;
  before(async () => {
    origin = await startTestRegistry();
    await pushImage(origin.url, 'team/app', await makeImage({ seed: 'ui mirror app', layers: 1, layerSize: 512 }), 'v1');
    await pushImage(origin.url, 'team/other', await makeImage({ seed: 'ui mirror other', layers: 1, layerSize: 512 }), 'v1');
    const host = new URL(origin.url).host;
    mirror = await startTestMirror({ upstreams: [upstream({ host, url: origin.url, tagTTL: 60_000 })], logLevel: 'silent' });
  });
  after(async () => {
    await mirror?.stop();
    await origin?.stop();
  });

  test('per upstream: cache size, hits and misses, and each cached tag with its last revalidation', async () => {
    const prefix = new URL(origin.url).host.replace(':', '_');
    const accept = { accept: MediaTypes.ociManifest };
    for (let round = 0; round < 2; round++) {
      const manifest = await fetch(`${mirror.url}/v2/${prefix}/team/app/manifests/v1`, { headers: accept });
      assert.equal(manifest.status, 200);
      const parsed = (await manifest.json()) as { layers: { digest: string }[] };
      const layer = await fetch(`${mirror.url}/v2/${prefix}/team/app/blobs/${parsed.layers[0]!.digest}`);
      assert.equal(layer.status, 200);
      await layer.arrayBuffer();
    }
    const browser = new Browser(mirror.url);
    const session = await browser.session();
    assert.equal(session.mirror, true);
    const view = (await browser.request('GET', '/api/v1/mirror')).json as MirrorView;
    assert.equal(view.upstreams.length, 1);
    const row = view.upstreams[0]!;
    assert.equal(row.prefix, prefix);
    assert.equal(row.tagTtl, 60_000);
    assert.equal(row.repositories, 1);
    assert.ok(row.cacheBytes > 512, `cache bytes ${row.cacheBytes}`);
    assert.equal(row.misses, 2, 'the first manifest and layer');
    assert.equal(row.hits, 2, 'the second round');
    assert.equal(row.hitRatio, 0.5);
    assert.equal(row.staleTags, 0);
    assert.ok(view.cacheBytes >= row.cacheBytes);
    const tags = (await browser.request('GET', `/api/v1/mirror/tags?upstream=${encodeURIComponent(row.host)}`)).json as CachedTagPage;
    assert.equal(tags.total, 1);
    assert.equal(tags.tags[0]!.repository, `${prefix}/team/app`);
    assert.equal(tags.tags[0]!.tag, 'v1');
    assert.equal(tags.tags[0]!.stale, false);
    assert.ok(tags.tags[0]!.checkedAt !== null && Date.now() - tags.tags[0]!.checkedAt < 60_000);
    const stale = (await browser.request('GET', `/api/v1/mirror/tags?upstream=${encodeURIComponent(row.host)}&stale=true`)).json as CachedTagPage;
    assert.equal(stale.total, 0);
    // The cached copy browses like any repository, read-only.
    const cachedTags = (await browser.request('GET', `/api/v1/repositories/${prefix}/team/app/tags`)).json as TagPage;
    assert.equal(cachedTags.cached, true);
    assert.equal(cachedTags.mayDelete, false);
    assert.equal((await browser.request('GET', '/api/v1/mirror/tags?upstream=nowhere')).status, 404);
  });
});

describe('web UI on a read-only registry, and under TLS', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-ui-modes-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('read-only: no delete buttons, no GC, and the actions answer 405', async () => {
    const dataDir = join(dir, 'read-only');
    const open = await startTestRegistry({ dataDir });
    await pushImage(open.url, 'lib/kept', await makeImage({ seed: 'ui read-only', layers: 1, layerSize: 64 }), 'v1');
    await open.stop();
    const registry = await startTestRegistry({ dataDir, readOnly: true });
    try {
      const browser = new Browser(registry.url);
      const session = await browser.session();
      assert.equal(session.deleteEnabled, false);
      assert.equal(session.admin, false, 'no collector runs on a read-only registry, so no dry run is offered');
      assert.equal(((await browser.request('GET', '/api/v1/repositories/lib/kept/tags')).json as TagPage).mayDelete, false);
      assert.equal((await browser.request('DELETE', '/api/v1/repositories/lib/kept/tags/v1')).status, 405);
      assert.equal((await browser.request('POST', '/api/v1/gc/dry-run')).status, 405);
      assert.equal(((await browser.request('GET', '/api/v1/repositories/lib/kept/tags')).json as TagPage).total, 1);
    } finally {
      await registry.stop();
    }
  });

  test('under TLS the session and CSRF cookies are Secure', async () => {
    const { makeTestCertificate } = await import('../../../src/testing/tls-cert.ts');
    const { request } = await import('node:https');
    const certificate = await makeTestCertificate(join(dir, 'tls'));
    const htpasswd = join(dir, 'tls-htpasswd');
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('alice-pw', 4)}\n`);
    const registry = await startTestRegistry({ htpasswd, tlsCert: certificate.certFile, tlsKey: certificate.keyFile });
    const call = (method: string, path: string, headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; cookies: string[]; json: { csrf?: string; user?: string | null } }>((resolve, reject) => {
        const req = request(`${registry.url}${path}`, { method, headers, ca: certificate.cert, agent: false }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cookies: res.headers['set-cookie'] ?? [], json: JSON.parse(text) as { csrf?: string } }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      assert.match(registry.url, /^https:/);
      const first = await call('GET', '/api/v1/session', {});
      const csrfCookie = first.cookies.find((line) => line.startsWith('skiff_csrf='))!;
      assert.match(csrfCookie, /; Secure/);
      const login = await call('POST', '/api/v1/session', { cookie: csrfCookie.split(';')[0]!, 'x-csrf-token': first.json.csrf!, 'content-type': 'application/json' }, JSON.stringify({ username: 'alice', password: 'alice-pw' }));
      assert.equal(login.status, 200);
      assert.equal(login.json.user, 'alice');
      assert.match(login.cookies.find((line) => line.startsWith('skiff_session=')) ?? '', /; HttpOnly; SameSite=Strict; Secure/);
    } finally {
      await registry.stop();
    }
  });
});
