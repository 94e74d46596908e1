/**
 * The web UI in a real browser (issue 16): headless Chromium (Debian's package) driven by
 * playwright-core against an in-process `skiff serve` with htpasswd users and access rules, using
 * the accessible names the UI promises (roles, labels, button names). Every page visited must pass
 * axe-core without serious violations and leave the console clean (no error, warning, uncaught
 * exception or unexpected failed request). With SKIFF_UI_SCREENSHOTS=<dir> the tests also save the
 * README's screenshots there (1280×800, light scheme).
 *
 * Fixture: alice is an admin; bob may pull team/* and delete nowhere; anonymous may pull public/*
 * only. Repositories team/app (six tags: images, a multi-arch index, an image with a full config
 * and an SBOM referrer), team/tools, secret/keys, public/hello. Tests run in order: the deletes come
 * after the sorting checks, and the GC dry run after the deletes that give it something to show.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import type { Locator, Page } from 'playwright-core';
import type { AccessRule } from '../../src/auth/access-policy.ts';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import type { Platform } from '../../src/oci/descriptor.ts';
import { MANIFEST_ACCEPT, MediaTypes } from '../../src/oci/media-types.ts';
import { registryLayout } from '../../src/server/storage/layout.ts';
import type { SessionInfo, TagPage } from '../../src/server/ui/api-types.ts';
import { assertCleanConsole, axeCheck, browserSkipReason, eventually, expectFailure, explainFailure, openBrowser, screenshot, type BrowserSession, type NewPageOptions } from '../../src/testing/browser.ts';
import { makeImage, makeIndex, type Blob, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { pushBlob, pushImage, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const PASSWORDS = { alice: 'alice-secret-pw', bob: 'bob-secret-pw' } as const;
type User = keyof typeof PASSWORDS;
const basic = (user: User) => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString('base64')}`;
const SBOM = 'application/vnd.example.sbom';
const ALL_REPOSITORIES = ['public/hello', 'secret/keys', 'team/app', 'team/tools'];

function rule(repositories: string[], actions: AccessRule['actions'], who: Partial<Pick<AccessRule, 'users' | 'anonymous'>>): AccessRule {
  return { repositories, actions, users: who.users ?? [], groups: [], anonymous: who.anonymous ?? false };
}

function blobOf(mediaType: string, data: Buffer, extra: { platform?: Platform } = {}): Blob {
  return { descriptor: { mediaType, digest: digestOf(data), size: data.length, ...extra }, data };
}

const short = (digest: string) => digest.slice(0, 'sha256:'.length + 12);

/** An image whose config has what the manifest page shows: entrypoint, env, ports, user, labels, a history with an empty layer. */
async function richImage(): Promise<TestImage> {
  const created = '2026-02-01T12:00:00Z';
  const base = await makeImage({ seed: 'ui team/app v2.0', layers: 2, layerSize: 5000, created });
  const configJson = {
    created,
    author: 'Team App <app@example.com>',
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: 'app',
      WorkingDir: '/srv/app',
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'APP_MODE=production'],
      Entrypoint: ['/usr/bin/app', '--serve'],
      Cmd: ['--port', '8080'],
      ExposedPorts: { '8080/tcp': {} },
      Labels: { 'org.opencontainers.image.title': 'app', 'org.opencontainers.image.version': '2.0.0' },
    },
    rootfs: { type: 'layers', diff_ids: base.diffIds },
    history: [
      { created, created_by: '/bin/sh -c #(nop) ADD file:base.tar in /' },
      { created, created_by: 'COPY app /usr/bin/app # buildkit', comment: 'buildkit.dockerfile.v0' },
      { created, created_by: 'ENTRYPOINT ["/usr/bin/app" "--serve"]', empty_layer: true },
    ],
  };
  const config = blobOf(MediaTypes.ociConfig, Buffer.from(JSON.stringify(configJson)));
  const platform = { os: 'linux', architecture: 'amd64' };
  const manifest = blobOf(
    MediaTypes.ociManifest,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: base.layers.map((l) => l.descriptor) })),
    { platform },
  );
  return { ...base, config, blobs: [config, ...base.layers], manifest };
}

/** An SBOM artifact whose subject is `subject`: what `oras attach --artifact-type` pushes. */
function sbomFor(subject: Blob): { blobs: Blob[]; manifest: Blob } {
  const empty = blobOf(MediaTypes.ociEmpty, Buffer.from('{}'));
  const sbom = blobOf('application/spdx+json', Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'team/app', packages: [] })));
  const { platform: _platform, ...subjectDescriptor } = subject.descriptor;
  const manifest = blobOf(
    MediaTypes.ociManifest,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: SBOM,
        config: empty.descriptor,
        layers: [sbom.descriptor],
        subject: subjectDescriptor,
        annotations: { 'org.opencontainers.image.created': '2026-03-01T00:00:00Z' },
      }),
    ),
  );
  return { blobs: [empty, sbom], manifest };
}

/** Total size as the UI counts it: the manifest, its config and layers (for an index, plus each image's). */
function imageSize(image: TestImage): number {
  return image.manifest.data.length + image.blobs.reduce((sum, b) => sum + b.data.length, 0);
}

interface Fixture {
  images: Record<string, TestImage>;
  index: Blob;
  sbom: Blob;
  /** team/app's tags and their sizes, and the order they were pushed in. */
  sizes: Record<string, number>;
  pushOrder: string[];
}

/** Seeds over HTTP with authentication off (push.ts's helpers), before the server restarts with it on. */
async function seed(base: string): Promise<Fixture> {
  const sleep = () => new Promise((resolve) => setTimeout(resolve, 15)); // distinct push times
  const images: Record<string, TestImage> = {
    'v1.0': await makeImage({ seed: 'ui team/app v1.0', layers: 1, layerSize: 30_000, created: '2026-01-10T08:00:00Z' }),
    'v2.0': await richImage(),
    amd64: await makeImage({ seed: 'ui team/app multi amd64', layers: 1, layerSize: 40_000, created: '2026-02-10T08:00:00Z' }),
    arm64: await makeImage({ seed: 'ui team/app multi arm64', layers: 1, layerSize: 40_000, created: '2026-02-10T08:00:00Z', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }),
    edge: await makeImage({ seed: 'ui team/app edge', layers: 1, layerSize: 1500, created: '2026-02-20T08:00:00Z' }),
    old: await makeImage({ seed: 'ui team/app old', layers: 1, layerSize: 3000, created: '2025-06-01T08:00:00Z' }),
    tmp: await makeImage({ seed: 'ui team/app tmp', layers: 1, layerSize: 4000, created: '2026-02-25T08:00:00Z' }),
  };
  const index = makeIndex([images.amd64!, images.arm64!]);
  const sizes: Record<string, number> = {};
  const pushOrder: string[] = [];
  for (const tag of ['v1.0', 'v2.0', 'multi', 'edge', 'old', 'tmp']) {
    if (tag === 'multi') {
      for (const image of [images.amd64!, images.arm64!]) await pushImage(base, 'team/app', image);
      await pushManifest(base, 'team/app', 'multi', index);
      sizes[tag] = index.data.length + imageSize(images.amd64!) + imageSize(images.arm64!);
    } else {
      await pushImage(base, 'team/app', images[tag]!, tag);
      sizes[tag] = imageSize(images[tag]!);
    }
    pushOrder.push(tag);
    await sleep();
  }
  const sbom = sbomFor(images['v2.0']!.manifest);
  for (const item of sbom.blobs) await pushBlob(base, 'team/app', item);
  await pushManifest(base, 'team/app', sbom.manifest.descriptor.digest, sbom.manifest);
  await pushImage(base, 'team/tools', await makeImage({ seed: 'ui team/tools', layers: 2, layerSize: 2048 }), '1.0');
  await pushImage(base, 'secret/keys', await makeImage({ seed: 'ui secret/keys', layers: 1, layerSize: 512 }), 'v1');
  await pushImage(base, 'public/hello', await makeImage({ seed: 'ui public/hello', layers: 1, layerSize: 1024 }), 'v1');
  return { images, index, sbom: sbom.manifest, sizes, pushOrder };
}

const skip = await browserSkipReason();

describe('web UI in Chromium', { skip }, () => {
  let work: string;
  let registry: TestRegistry;
  let mirror: TestMirror | undefined;
  let browser: BrowserSession;
  let fixture: Fixture;
  let host: string;

  before(async () => {
    const ui = fileURLToPath(new URL('../../dist/ui/index.html', import.meta.url));
    if (!existsSync(ui)) throw new Error(`${ui} is missing: build the UI first (node scripts/build.ts)`);
    work = await mkdtemp(join(tmpdir(), 'skiff-ui-browser-'));
    const dataDir = join(work, 'data');
    const open = await startTestRegistry({ dataDir });
    try {
      fixture = await seed(open.url);
    } finally {
      await open.stop();
    }
    const htpasswd = join(work, 'htpasswd');
    await writeFile(htpasswd, Object.entries(PASSWORDS).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}\n`).join(''));
    registry = await startTestRegistry({
      dataDir,
      htpasswd,
      access: {
        admins: ['alice'],
        groups: {},
        rules: [rule(['team/*'], ['pull'], { users: ['bob'] }), rule(['public/*'], ['pull'], { users: ['*'], anonymous: true })],
      },
      // No background cycle, and no grace: the dry run has the deleted images' blobs to show.
      gc: { interval: 0, grace: 0 },
    });
    host = new URL(registry.url).host;
    browser = await openBrowser();
  });

  after(async () => {
    await browser?.close();
    await mirror?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  // ---- helpers ----

  /**
   * Runs `body` on a new page (its own context: one user), then requires a clean console; a
   * failure says what the page showed and logged. The context closes either way.
   */
  async function withPage(options: NewPageOptions & { base?: string }, body: (page: Page) => Promise<void>): Promise<void> {
    const page = await browser.newPage(options.base ?? registry.url, options);
    try {
      await body(page);
      assertCleanConsole(page);
    } catch (error) {
      throw await explainFailure(page, error);
    } finally {
      await page.context().close();
    }
  }

  /** Opens `path` and waits for its h1; then the page must pass axe. */
  async function visit(page: Page, path: string, heading: string | RegExp): Promise<void> {
    await page.goto(path);
    await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    await axeCheck(page, path);
  }

  async function logIn(page: Page, user: User): Promise<void> {
    await visit(page, '/login', 'Log in');
    await page.getByLabel('Username').fill(user);
    await page.getByLabel('Password').fill(PASSWORDS[user]);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText(`Signed in as ${user}`).waitFor();
  }

  /** The page's clipboard (navigator.clipboard: this project's types have no DOM). */
  function clipboardText(page: Page): Promise<string> {
    return page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
  }

  /** The first link of each body row: a repository's name, a tag. */
  function rowNames(table: Locator): Promise<string[]> {
    return table.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.querySelector('a')?.textContent?.trim() ?? ''));
  }

  async function expectRows(table: Locator, names: string[], what: string): Promise<void> {
    await eventually(async () => assert.deepEqual(await rowNames(table), names, what));
  }

  const repositories = (page: Page) => page.getByRole('table', { name: 'Repositories' });
  const tagsTable = (page: Page) => page.getByRole('table', { name: 'Tags' });
  const listStatus = (page: Page) => page.getByRole('status').filter({ hasText: /Showing|No repositories/ });

  /** Logs in through the API the way the page does (CSRF cookie first), for checks outside the browser. */
  async function apiSession(user: User): Promise<{ cookie: string; csrf: string }> {
    const first = await fetch(`${registry.url}/api/v1/session`);
    const info = (await first.json()) as SessionInfo;
    const jar = new Map<string, string>();
    const keep = (res: Response) => {
      for (const line of res.headers.getSetCookie()) {
        const [pair] = line.split(';');
        const equals = pair!.indexOf('=');
        jar.set(pair!.slice(0, equals), pair!.slice(equals + 1));
      }
    };
    keep(first);
    const cookieHeader = () => [...jar].map(([name, value]) => `${name}=${value}`).join('; ');
    const res = await fetch(`${registry.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': info.csrf, Cookie: cookieHeader() },
      body: JSON.stringify({ username: user, password: PASSWORDS[user] }),
    });
    assert.equal(res.status, 200, `API login as ${user}: ${await res.clone().text()}`);
    keep(res);
    const session = (await res.json()) as SessionInfo;
    assert.equal(session.user, user);
    return { cookie: cookieHeader(), csrf: session.csrf };
  }

  async function v2Tags(repo: string): Promise<string[]> {
    const res = await fetch(`${registry.url}/v2/${repo}/tags/list`, { headers: { Authorization: basic('alice') } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { tags: string[] }).tags;
  }

  // ---- tests ----

  test('anonymous: only public/hello, a "Log in" link, and no way into secret/keys', async () => {
    await withPage({}, async (page) => {
      const response = await page.goto('/');
      const csp = response?.headers()['content-security-policy'] ?? '';
      assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'(;|$)/, 'the page is served with a strict CSP: its own script, by hash, and nothing else');
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      await visit(page, '/', 'Repositories');
      await expectRows(repositories(page), ['public/hello'], 'anonymous list');
      await page.getByRole('link', { name: 'Log in' }).waitFor();
      for (const name of ['Garbage collection', 'Mirror']) assert.equal(await page.getByRole('link', { name }).count(), 0, `no "${name}" link`);
      assert.equal(await page.getByText('Signed in as').count(), 0);
      assert.match(await page.title(), /Repositories · skiff/);

      // The API answers for secret/keys are refusals; the browser logs them, and that is expected here.
      expectFailure(page, { url: '/api/v1/repositories/secret/keys' });
      for (const path of ['/r/secret/keys', '/r/secret/keys:v1']) {
        await page.goto(path);
        await page.getByRole('heading', { level: 1, name: 'Log in' }).or(page.getByRole('alert')).first().waitFor();
        assert.equal(await tagsTable(page).count(), 0, `${path}: no tags table`);
        assert.equal(await page.getByRole('link', { name: 'v1' }).count(), 0, `${path}: no tag link`);
        assert.equal(await page.getByText(/sha256:[0-9a-f]{12}/).count(), 0, `${path}: no digest`);
        await axeCheck(page, path);
      }
      for (const path of ['/api/v1/repositories/secret/keys/tags', '/api/v1/repositories/secret/keys/manifests/v1']) {
        const res = await fetch(`${registry.url}${path}`);
        assert.ok(res.status === 401 || res.status === 404, `${path} anonymous: ${res.status}`);
      }
      const list = await fetch(`${registry.url}/api/v1/repositories`);
      assert.deepEqual(((await list.json()) as { repositories: { name: string }[] }).repositories.map((r) => r.name), ['public/hello']);
    });
  });

  test('alice logs in with the form (after a wrong password) and sees every repository; filter as you type', async () => {
    await withPage({}, async (page) => {
      await visit(page, '/login', 'Log in');
      await screenshot(page, 'login');
      expectFailure(page, { url: '/api/v1/session', status: 401 });
      await page.getByLabel('Username').fill('alice');
      await page.getByLabel('Password').fill('not her password');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('alert').filter({ hasText: 'Incorrect username or password' }).waitFor();
      await axeCheck(page, 'login with an error');
      await page.getByLabel('Password').fill(PASSWORDS.alice);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByText('Signed in as alice').waitFor();
      await page.getByRole('heading', { level: 1, name: 'Repositories' }).waitFor();
      // No secret in the page: the session lives in an HttpOnly, SameSite=Strict cookie.
      const session = (await page.context().cookies()).find((cookie) => cookie.name === 'skiff_session');
      assert.ok(session?.value, 'a session cookie');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      assert.doesNotMatch(String(await page.evaluate('document.cookie')), /skiff_session/);
      await expectRows(repositories(page), ALL_REPOSITORIES, 'alice sees all four');
      await eventually(async () => assert.match((await listStatus(page).textContent()) ?? '', /Showing 1.4 of 4 repositories/));
      await page.getByRole('link', { name: 'Garbage collection' }).waitFor();
      await page.getByRole('button', { name: 'Log out' }).waitFor();
      await axeCheck(page, 'repositories as alice');
      await screenshot(page, 'repositories');

      const filter = page.getByLabel('Filter repositories');
      await filter.pressSequentially('tea', { delay: 40 });
      await expectRows(repositories(page), ['team/app', 'team/tools'], 'filter "tea"');
      await eventually(async () => assert.match((await listStatus(page).textContent()) ?? '', /Showing 1.2 of 2 repositories/));
      await eventually(() => assert.equal(new URL(page.url()).searchParams.get('q'), 'tea'));
      await axeCheck(page, 'filtered list');
      await filter.fill('');
      await filter.pressSequentially('zzz', { delay: 40 });
      await eventually(async () => assert.match((await listStatus(page).textContent()) ?? '', /No repositories match .zzz./));
      await expectRows(repositories(page), [], 'no match');
      await filter.fill('sec');
      await expectRows(repositories(page), ['secret/keys'], 'alice may see secret/keys');
    });
  });

  test('team/app: tags newest first, sorted by Size and by Tag (aria-sort), tag pages with layers, config, history, labels, platforms and referrers', async () => {
    await withPage({}, async (page) => {
      await logIn(page, 'alice');
      await page.getByRole('link', { name: 'team/app' }).click();
      await page.getByRole('heading', { level: 1, name: 'team/app' }).waitFor();
      const table = tagsTable(page);
      const newestFirst = [...fixture.pushOrder].reverse();
      await expectRows(table, newestFirst, 'default: pushed, newest first');
      assert.equal(await table.getByRole('columnheader', { name: /^Pushed/ }).getAttribute('aria-sort'), 'descending');
      await page.getByText(`docker pull ${host}/team/app`).first().waitFor();
      await axeCheck(page, '/r/team/app');
      await screenshot(page, 'tags');

      const bySize = [...fixture.pushOrder].sort((a, b) => fixture.sizes[a]! - fixture.sizes[b]!);
      const byName = [...fixture.pushOrder].sort();
      for (const [column, ascending] of [['Size', bySize], ['Tag', byName]] as const) {
        const header = table.getByRole('columnheader', { name: new RegExp(`^${column}`) });
        for (let click = 0; click < 2; click++) {
          const before = await header.getAttribute('aria-sort');
          await header.getByRole('button').click();
          await eventually(async () => assert.notEqual(await header.getAttribute('aria-sort'), before, `${column}: aria-sort changes on click ${click + 1}`));
          const sort = await header.getAttribute('aria-sort');
          assert.ok(sort === 'ascending' || sort === 'descending', `${column}: aria-sort ${sort}`);
          await expectRows(table, sort === 'ascending' ? ascending : [...ascending].reverse(), `sorted by ${column} ${sort}`);
          for (const other of await table.getByRole('columnheader').all()) {
            if ((await other.textContent())?.startsWith(column)) continue;
            assert.ok([null, 'none'].includes(await other.getAttribute('aria-sort')), `only ${column} is sorted`);
          }
        }
      }
      await axeCheck(page, '/r/team/app sorted');

      // An image with a full config and a referrer.
      const rich = fixture.images['v2.0']!;
      await table.getByRole('link', { name: 'v2.0', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'team/app:v2.0' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/r/team/app:v2.0');
      await page.getByText(rich.manifest.descriptor.digest).first().waitFor();
      const layers = page.getByRole('table', { name: 'Layers' });
      for (const layer of rich.layers) await layers.getByText(short(layer.descriptor.digest)).first().waitFor();
      await layers.getByText(MediaTypes.ociLayerGzip).first().waitFor();
      for (const text of ['/usr/bin/app', 'APP_MODE=production', '/srv/app', '8080/tcp']) await page.getByText(text).first().waitFor();
      const labels = page.getByRole('table', { name: 'Labels' });
      await labels.getByText('org.opencontainers.image.version').waitFor();
      await labels.getByText('2.0.0').waitFor();
      const history = page.getByRole('table', { name: 'History' });
      await history.getByText('COPY app /usr/bin/app # buildkit').waitFor();
      assert.equal(await history.locator('tbody tr').count(), 3);
      const referrers = page.getByRole('table', { name: 'Referrers' });
      await referrers.getByText(SBOM).waitFor();
      await referrers.getByText(short(fixture.sbom.descriptor.digest)).first().waitFor();
      await page.getByText('Show manifest JSON').waitFor();
      await axeCheck(page, '/r/team/app:v2.0');
      await screenshot(page, 'manifest-image');

      // The referrer's own page: an artifact with its type and subject.
      await referrers.getByRole('link').first().click();
      await page.getByRole('heading', { level: 1, name: `team/app@${short(fixture.sbom.descriptor.digest)}` }).waitFor();
      await page.getByText(SBOM).first().waitFor();
      await page.getByRole('link', { name: new RegExp(short(rich.manifest.descriptor.digest).slice(7)) }).first().waitFor();
      await axeCheck(page, 'the SBOM referrer');

      // The index: both platforms, each a link to its image.
      await visit(page, '/r/team/app:multi', 'team/app:multi');
      const platforms = page.getByRole('table', { name: 'Platforms' });
      await platforms.getByText('linux/amd64').waitFor();
      await platforms.getByText(/linux\/arm64/).waitFor();
      await page.getByRole('heading', { level: 2, name: 'Referrers' }).waitFor();
      await page.getByText('No referrers').waitFor();
      await screenshot(page, 'manifest-index');
      await platforms.getByRole('link', { name: /linux\/arm64/ }).click();
      const arm = fixture.images.arm64!.manifest.descriptor.digest;
      await page.getByRole('heading', { level: 1, name: `team/app@${short(arm)}` }).waitFor();
      assert.equal(decodeURIComponent(new URL(page.url()).pathname), `/r/team/app@${arm}`);
      await page.getByText(`docker pull ${host}/team/app@${arm}`).waitFor();
      await axeCheck(page, 'an index child by digest');
    });
  });

  test('copy the docker pull command to the clipboard', async () => {
    await withPage({ permissions: ['clipboard-read', 'clipboard-write'] }, async (page) => {
      await logIn(page, 'alice');
      await visit(page, '/r/team/app:v2.0', 'team/app:v2.0');
      for (const tool of ['docker', 'podman', 'skiff']) await page.getByText(`${tool} pull ${host}/team/app:v2.0`).waitFor();
      await page.getByRole('button', { name: 'Copy docker pull command' }).click();
      await page.getByRole('status').filter({ hasText: 'Copied' }).first().waitFor();
      assert.equal(await clipboardText(page), `docker pull ${host}/team/app:v2.0`);
      await page.getByRole('button', { name: 'Copy skiff pull command' }).click();
      await eventually(async () => assert.equal(await clipboardText(page), `skiff pull ${host}/team/app:v2.0`));
    });
  });

  test('alice deletes a tag (dialog, row gone, /v2/ agrees) and a manifest; actions need the CSRF token', async () => {
    const alice = await apiSession('alice');
    const noToken = await fetch(`${registry.url}/api/v1/repositories/team/app/tags/old`, { method: 'DELETE', headers: { Cookie: alice.cookie } });
    assert.equal(noToken.status, 403, 'DELETE without X-CSRF-Token');
    const wrongToken = await fetch(`${registry.url}/api/v1/repositories/team/app/tags/old`, { method: 'DELETE', headers: { Cookie: alice.cookie, 'X-CSRF-Token': 'x'.repeat(43) } });
    assert.equal(wrongToken.status, 403, 'DELETE with a wrong X-CSRF-Token');
    assert.ok((await v2Tags('team/app')).includes('old'), 'refused deletes deleted nothing');

    await withPage({}, async (page) => {
      await logIn(page, 'alice');
      await visit(page, '/r/team/app', 'team/app');
      const table = tagsTable(page);
      await expectRows(table, [...fixture.pushOrder].reverse(), 'before');

      // Cancel changes nothing.
      await page.getByRole('button', { name: 'Delete tag edge' }).click();
      const cancelDialog = page.getByRole('dialog', { name: 'Delete tag edge?' });
      await cancelDialog.waitFor();
      await cancelDialog.getByRole('button', { name: 'Cancel' }).click();
      await cancelDialog.waitFor({ state: 'hidden' });
      assert.ok((await rowNames(table)).includes('edge'));

      await page.getByRole('button', { name: 'Delete tag old' }).click();
      const dialog = page.getByRole('dialog', { name: 'Delete tag old?' });
      await dialog.waitFor();
      await axeCheck(page, 'the delete dialog');
      await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
      await dialog.waitFor({ state: 'hidden' });
      await page.getByRole('status').filter({ hasText: 'Deleted tag old' }).waitFor();
      await expectRows(table, [...fixture.pushOrder].reverse().filter((tag) => tag !== 'old'), 'old is gone');
      assert.ok(!(await v2Tags('team/app')).includes('old'), '/v2/ tags/list no longer lists old');
      await axeCheck(page, 'after the delete');

      // The manifest delete: from the manifest page, back to the repository.
      const tmp = fixture.images.tmp!.manifest.descriptor.digest;
      await visit(page, '/r/team/app:tmp', 'team/app:tmp');
      await page.getByRole('button', { name: 'Delete manifest' }).click();
      const manifestDialog = page.getByRole('dialog', { name: `Delete manifest ${short(tmp)}?` });
      await manifestDialog.waitFor();
      await manifestDialog.getByText(/tag/).first().waitFor(); // says that its tags go with it
      await manifestDialog.getByRole('button', { name: 'Delete', exact: true }).click();
      await page.waitForURL((url) => url.pathname === '/r/team/app');
      await expectRows(tagsTable(page), [...fixture.pushOrder].reverse().filter((tag) => tag !== 'old' && tag !== 'tmp'), 'tmp is gone');
      const gone = await fetch(`${registry.url}/v2/team/app/manifests/${tmp}`, { headers: { Authorization: basic('alice'), Accept: MANIFEST_ACCEPT } });
      assert.equal(gone.status, 404, 'the manifest is gone from /v2/');
      assert.ok(!(await v2Tags('team/app')).includes('tmp'));
    });
  });

  test('alice runs the GC dry run: the table appears and nothing is deleted', async () => {
    await withPage({}, async (page) => {
      await logIn(page, 'alice');
      await page.getByRole('link', { name: 'Garbage collection' }).click();
      await page.getByRole('heading', { level: 1, name: 'Garbage collection' }).waitFor();
      await axeCheck(page, '/gc');
      await page.getByRole('button', { name: 'Run dry run' }).click();
      const table = page.getByRole('table', { name: 'Would delete' });
      await table.waitFor();
      const text = (await table.textContent()) ?? '';
      // The deleted manifest (its body, config and layer) is unreferenced now, with no grace
      // period; the deleted tag's manifest stays, by digest, and keeps its blobs.
      const tmp = fixture.images.tmp!;
      const garbage = [tmp.manifest, ...tmp.blobs].map((b) => b.descriptor.digest);
      for (const digest of garbage) assert.ok(text.includes(digest.slice(7, 19)), `the dry run lists ${digest}: ${text}`);
      const keptLayer = fixture.images.old!.layers[0]!.descriptor.digest;
      assert.ok(!text.includes(keptLayer.slice(7, 19)), 'the untagged manifest keeps its layer');
      await axeCheck(page, '/gc with results');
      await screenshot(page, 'gc');
      // A dry run: every file is still there, and the blobs still pull.
      const blobs = new FsBlobStore(registryLayout(registry.dataDir).blobs);
      for (const digest of garbage) assert.ok(existsSync(blobs.blobPath(digest as Digest)), `${digest} still on disk`);
      for (const digest of tmp.blobs.map((b) => b.descriptor.digest)) {
        const res = await fetch(`${registry.url}/v2/team/app/blobs/${digest}`, { headers: { Authorization: basic('alice') } });
        await res.arrayBuffer();
        assert.equal(res.status, 200, `${digest} still pulls`);
      }
    });
  });

  test('bob never sees secret/keys (list, filter, direct URL, API) and gets no delete or GC controls', async () => {
    await withPage({}, async (page) => {
      await logIn(page, 'bob');
      await page.getByRole('heading', { level: 1, name: 'Repositories' }).waitFor();
      await expectRows(repositories(page), ['public/hello', 'team/app', 'team/tools'], 'bob list');
      assert.equal(await page.getByRole('link', { name: 'Garbage collection' }).count(), 0);
      await axeCheck(page, 'repositories as bob');
      await page.getByLabel('Filter repositories').pressSequentially('sec', { delay: 40 });
      await eventually(async () => assert.match((await listStatus(page).textContent()) ?? '', /No repositories match .sec./));
      await expectRows(repositories(page), [], 'bob filter "sec"');
      assert.equal(await page.getByText('secret/keys').count(), 0);

      await visit(page, '/r/team/app', 'team/app');
      const present = await v2Tags('team/app');
      await expectRows(tagsTable(page), [...fixture.pushOrder].reverse().filter((tag) => present.includes(tag)), 'bob sees team/app');
      assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0, 'no delete buttons on the tags page');
      await visit(page, '/r/team/app:v2.0', 'team/app:v2.0');
      assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0, 'no delete button on the manifest page');

      expectFailure(page, { url: '/api/v1/repositories/secret/keys', status: 404 });
      for (const path of ['/r/secret/keys', '/r/secret/keys:v1']) {
        await page.goto(path);
        await page.getByRole('alert').or(page.getByRole('heading', { level: 1, name: 'Not found' })).first().waitFor();
        assert.equal(await tagsTable(page).count(), 0, `${path}: no tags table`);
        assert.equal(await page.getByRole('link', { name: 'v1' }).count(), 0);
        assert.equal(await page.getByText(/sha256:[0-9a-f]{12}/).count(), 0, `${path}: no digest`);
        await axeCheck(page, `${path} as bob`);
      }
      // /gc by its URL: no button for bob, only the reason.
      await page.goto('/gc');
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      await page.getByText('Only administrators can run it.').waitFor();
      assert.equal(await page.getByRole('button', { name: 'Run dry run' }).count(), 0, 'no dry-run button for bob');
      assert.equal(await page.getByRole('table', { name: 'Would delete' }).count(), 0, 'no dry run for bob');
      await axeCheck(page, '/gc as bob');

      // The API applies the /v2/ permissions.
      const bob = await apiSession('bob');
      const api = (path: string, init: RequestInit = {}) => fetch(`${registry.url}/api/v1${path}`, { ...init, headers: { Cookie: bob.cookie, 'X-CSRF-Token': bob.csrf, ...(init.headers ?? {}) } });
      assert.equal((await api('/repositories/secret/keys/tags')).status, 404);
      assert.equal((await api('/repositories/secret/keys/manifests/v1')).status, 404);
      const filtered = (await (await api('/repositories?filter=sec')).json()) as { total: number };
      assert.equal(filtered.total, 0);
      const tags = (await (await api('/repositories/team/app/tags')).json()) as TagPage;
      assert.equal(tags.mayDelete, false);
      const v2 = await fetch(`${registry.url}/v2/secret/keys/tags/list`, { headers: { Authorization: basic('bob') } });
      assert.ok(v2.status === 403 || v2.status === 401 || v2.status === 404, `/v2/ refuses bob too: ${v2.status}`);
      const del = await api('/repositories/team/app/tags/edge', { method: 'DELETE' });
      assert.ok(del.status === 403 || del.status === 404, `bob's delete is refused: ${del.status}`);
      assert.ok((await v2Tags('team/app')).includes('edge'));
      const gc = await api('/gc/dry-run', { method: 'POST' });
      assert.equal(gc.status, 403, 'bob may not run the GC dry run');
    });
  });

  test('a mirror: after a pull through it, /mirror shows the upstream, its hit ratio and the cached tag with its last revalidation', async () => {
    mirror = await startTestMirror({ upstreams: [upstream({ host, url: registry.url })], logLevel: 'warn' });
    const prefix = host.replace(':', '_');
    for (let pull = 0; pull < 2; pull++) {
      const res = await fetch(`${mirror.url}/v2/${prefix}/public/hello/manifests/v1`, { headers: { Accept: MANIFEST_ACCEPT } });
      assert.equal(res.status, 200, `pull ${pull + 1} through the mirror: ${res.status}`);
      const manifest = (await res.json()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        const blob = await fetch(`${mirror.url}/v2/${prefix}/public/hello/blobs/${digest}`);
        await blob.arrayBuffer();
        assert.equal(blob.status, 200);
      }
    }
    await withPage({ base: mirror.url }, async (page) => {
      await visit(page, '/', 'Repositories');
      await expectRows(repositories(page), [`${prefix}/public/hello`], 'the cached repository');
      await repositories(page).getByText('cached').waitFor();
      await page.getByRole('link', { name: 'Mirror' }).click();
      await page.getByRole('heading', { level: 1, name: 'Mirror' }).waitFor();
      const upstreams = page.getByRole('table', { name: 'Upstreams' });
      const row = upstreams.locator('tbody tr').filter({ hasText: host });
      await row.waitFor();
      assert.match((await row.textContent()) ?? '', /\d+(\.\d+)?\s?%/, 'a hit ratio');
      await page.getByRole('heading', { level: 2, name: host }).waitFor();
      const cached = page.getByRole('table', { name: `Cached tags of ${host}` });
      const tag = cached.locator('tbody tr').filter({ hasText: 'public/hello:v1' });
      await tag.waitFor();
      assert.doesNotMatch((await tag.textContent()) ?? '', /never/, 'revalidated (fetched) once at least');
      await tag.locator('time').first().waitFor();
      await axeCheck(page, '/mirror');
      await screenshot(page, 'mirror');
      await page.getByLabel('Only stale tags').check();
      await eventually(async () => assert.equal(await cached.locator('tbody tr').filter({ hasText: 'public/hello:v1' }).count(), 0, 'a fresh tag is not stale'));
      await axeCheck(page, '/mirror stale only');
    });
  });

  test('dark scheme: the main pages pass axe (contrast included)', async () => {
    await withPage({ colorScheme: 'dark' }, async (page) => {
      await logIn(page, 'alice');
      await axeCheck(page, 'repositories, dark');
      for (const [path, heading] of [
        ['/r/team/app', 'team/app'],
        ['/r/team/app:v2.0', 'team/app:v2.0'],
        ['/r/team/app:multi', 'team/app:multi'],
        ['/gc', 'Garbage collection'],
      ] as const) {
        await visit(page, path, heading);
      }
      await page.getByRole('button', { name: 'Run dry run' }).click();
      await page.getByRole('table', { name: 'Would delete' }).waitFor();
      await axeCheck(page, '/gc results, dark');
      await visit(page, '/login', 'Log in');
    });
  });

  test('logging out returns to anonymous browsing', async () => {
    await withPage({}, async (page) => {
      await logIn(page, 'alice');
      await expectRows(repositories(page), ALL_REPOSITORIES, 'as alice');
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByRole('link', { name: 'Log in' }).waitFor();
      assert.equal(await page.getByText('Signed in as').count(), 0);
      await expectRows(repositories(page), ['public/hello'], 'anonymous again');
      assert.equal(await page.getByRole('link', { name: 'Garbage collection' }).count(), 0);
      await page.reload();
      await page.getByRole('heading', { level: 1, name: 'Repositories' }).waitFor();
      await expectRows(repositories(page), ['public/hello'], 'after a reload');
      const session = (await page.evaluate(async () => (await fetch('/api/v1/session')).json())) as SessionInfo;
      assert.equal(session.user, null);
      await axeCheck(page, 'after logout');
    });
  });
});
