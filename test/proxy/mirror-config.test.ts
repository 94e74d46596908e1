/**
 * Mirror mode, issue 11 §Configuration: `--proxy`, `upstreams:` and their errors, the routing
 * table (path prefix, `?ns=`, the default upstream, allow/deny), pushes refused under cached
 * namespaces, and a start with an unreachable upstream.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/errors/config-error.ts';
import { globToRegExp, RepositoryFilter } from '../../src/reference/glob.ts';
import { Upstream } from '../../src/proxy/upstream.ts';
import { Upstreams } from '../../src/proxy/upstreams.ts';
import { resolveServeConfig } from '../../src/server/config.ts';
import { makeImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { freePort } from '../../src/testing/peers.ts';
import { pushImage } from '../../src/testing/push.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-mirror-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function yaml(text: string): Promise<string> {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(path, text);
  return path;
}

async function configProblems(flags: Record<string, unknown>, text?: string): Promise<string> {
  const file = text !== undefined ? await yaml(text) : undefined;
  let message = '';
  await assert.rejects(resolveServeConfig({ data: dir, ...flags }, file), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error));
    message = error.message.replace(file ?? '\0', 'FILE');
    return true;
  });
  return message;
}

describe('mirror configuration', () => {
  test('upstreams: every key, and the defaults (docker.io URL, 5m tagTTL, no lists)', async () => {
    const file = await yaml(`
upstreams:
  - host: docker.io
    default: true
    allow: [library/*]
  - host: GHCR.io
    url: https://ghcr-cache.internal:8443/
    username: bot
    password: s3cret
    tagTTL: 30s
    deny: "secret/**"
  - host: registry.local:5000
    url: http://10.0.0.5:5000
    tagTTL: 0
`);
    const config = await resolveServeConfig({ data: dir }, file);
    assert.deepEqual(config.upstreams, [
      { host: 'docker.io', url: 'https://registry-1.docker.io', tagTTL: 300_000, allow: ['library/*'], deny: [], default: true },
      { host: 'ghcr.io', url: 'https://ghcr-cache.internal:8443', tagTTL: 30_000, allow: [], deny: ['secret/**'], default: false, username: 'bot', password: 's3cret' },
      { host: 'registry.local:5000', url: 'http://10.0.0.5:5000', tagTTL: 0, allow: [], deny: [], default: false },
    ]);
  });

  test('an upstream password from a file (one trailing newline dropped) or from the environment', async () => {
    await writeFile(join(dir, 'ghcr-secret'), 's3cret from a file\n', { mode: 0o600 });
    process.env.SKIFF_TEST_QUAY_PASSWORD = 's3cret from the environment';
    try {
      const file = await yaml(`
upstreams:
  - host: ghcr.io
    username: bot
    passwordFile: ${join(dir, 'ghcr-secret')}
  - host: quay.io
    username: robot
    passwordEnv: SKIFF_TEST_QUAY_PASSWORD
`);
      const config = await resolveServeConfig({ data: dir }, file);
      assert.deepEqual(config.upstreams?.map((upstream) => [upstream.username, upstream.password]), [
        ['bot', 's3cret from a file'],
        ['robot', 's3cret from the environment'],
      ]);
    } finally {
      delete process.env.SKIFF_TEST_QUAY_PASSWORD;
    }
  });

  test('--proxy: the default upstream, named after its URL host (Docker Hub aliases → docker.io)', async () => {
    const config = await resolveServeConfig({ data: dir, proxy: 'https://registry-1.docker.io' });
    assert.equal(config.proxy, 'https://registry-1.docker.io');
    const { configuredUpstreams } = await import('../../src/server/upstream-config.ts');
    assert.deepEqual(configuredUpstreams(config), [{ host: 'docker.io', url: 'https://registry-1.docker.io', tagTTL: 300_000, allow: [], deny: [], default: true }]);
    assert.deepEqual(configuredUpstreams({ proxy: 'http://127.0.0.1:5001/' }).map((u) => [u.host, u.url, u.default]), [['127.0.0.1:5001', 'http://127.0.0.1:5001', true]]);
  });

  const bad: [string, Record<string, unknown>, string | undefined, RegExp][] = [
    ['unknown key, named with its entry', {}, 'upstreams:\n  - host: docker.io\n    ttl: 5m\n', /^FILE: upstreams\[0\]\.ttl: unknown setting \(known: host, url, username, password, passwordFile, passwordEnv, tagTTL, allow, deny, default\)$/m],
    ['missing host', {}, 'upstreams:\n  - url: https://x.io\n', /FILE: upstreams\[0\]\.host: required/],
    ['a host without dot or port', {}, 'upstreams:\n  - host: library\n', /FILE: upstreams\[0\]\.host: a registry host needs a dot or a port/],
    ['a bad URL', {}, 'upstreams:\n  - host: ghcr.io\n    url: ftp://ghcr.io\n', /FILE: upstreams\[0\]\.url: expected an http:\/\/ or https:\/\/ URL/],
    ['credentials in the URL', {}, 'upstreams:\n  - host: ghcr.io\n    url: https://u:p@ghcr.io\n', /upstreams\[0\]\.url: put credentials in username\/password/],
    ['username without password', {}, 'upstreams:\n  - host: ghcr.io\n    username: bot\n', /FILE: upstreams\[0\]: username and a password \(password, passwordFile or passwordEnv\) go together/],
    ['two password sources', {}, 'upstreams:\n  - host: ghcr.io\n    username: bot\n    password: a\n    passwordEnv: B\n', /upstreams\[0\]: give one of password, passwordFile, passwordEnv, not password and passwordEnv/],
    ['passwordEnv not set', {}, 'upstreams:\n  - host: ghcr.io\n    username: bot\n    passwordEnv: SKIFF_TEST_UNSET_VARIABLE\n', /upstreams\[0\]\.passwordEnv: the environment variable SKIFF_TEST_UNSET_VARIABLE is not set/],
    ['passwordFile missing', {}, 'upstreams:\n  - host: ghcr.io\n    username: bot\n    passwordFile: /nonexistent/skiff-secret\n', /upstreams\[0\]\.passwordFile: cannot read \/nonexistent\/skiff-secret: ENOENT/],
    ['a bad tagTTL', {}, 'upstreams:\n  - host: ghcr.io\n    tagTTL: soon\n', /FILE: upstreams\[0\]\.tagTTL: expected a duration/],
    ['a bad glob', {}, 'upstreams:\n  - host: ghcr.io\n    allow: ["Org/*"]\n', /FILE: upstreams\[0\]\.allow: pattern "Org\/\*" may hold only/],
    ['default not a boolean', {}, 'upstreams:\n  - host: ghcr.io\n    default: yes please\n', /FILE: upstreams\[0\]\.default: must be true or false/],
    ['not a list', {}, 'upstreams: docker.io\n', /FILE: upstreams: expected a list of upstreams/],
    ['two defaults', {}, 'upstreams:\n  - { host: a.io, default: true }\n  - { host: b.io, default: true }\n', /FILE: upstreams: only one upstream may be the default \(default: true on upstreams\[0\], upstreams\[1\]\)/],
    ['one host twice', {}, 'upstreams:\n  - { host: a.io }\n  - { host: A.io, url: https://m.a.io }\n', /FILE: upstreams\[1\]\.host: a\.io is configured twice \(also upstreams\[0\]\)/],
    ['--proxy and a default upstream', { proxy: 'https://b.io' }, 'upstreams:\n  - { host: a.io, default: true }\n', /flags: proxy: upstreams\[0\] is the default already/],
    ['--proxy with a bad URL', { proxy: 'registry-1.docker.io' }, undefined, /^flags: proxy: expected an http:\/\/ or https:\/\/ URL/],
  ];
  for (const [name, flags, text, expected] of bad) {
    test(`a config error names the key: ${name}`, async () => {
      assert.match(await configProblems(flags, text), expected);
    });
  }

  test('skiff serve with a bad upstream exits 2 naming the file and key', async () => {
    const file = await yaml('upstreams:\n  - host: ghcr.io\n    url: nope\n');
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, 'serve', '--data', join(dir, 'cli'), '--listen', '127.0.0.1:0', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 2, output);
    assert.ok(output.includes(`${file}: upstreams[0].url: expected an http:// or https:// URL`), output);
    assert.doesNotMatch(output, /listening/);
  });
});

describe('mirror routing', () => {
  const table = new Upstreams([
    upstream({ host: 'docker.io', url: 'https://registry-1.docker.io', default: true, deny: ['local/**', 'team/*'] }),
    upstream({ host: 'ghcr.io', url: 'https://ghcr.io', deny: ['secret/**'] }),
    upstream({ host: 'registry.local:5000', url: 'http://10.0.0.5:5000' }),
  ]);
  after(() => table.close());

  const cases: [string, string | undefined, [host: string, repository: string, canonical: string, via: string, allowed: boolean] | undefined][] = [
    // Docker's registry-mirrors: unprefixed names mean the default upstream; one component gets library/.
    ['library/alpine', undefined, ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'default', true]],
    ['alpine', undefined, ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'default', true]],
    // podman's registries.conf mirror with a prefix, and the cache's own names.
    ['docker.io/library/alpine', undefined, ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'prefix', true]],
    ['docker.io/alpine', undefined, ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'prefix', true]],
    ['ghcr.io/org/app', undefined, ['ghcr.io', 'org/app', 'ghcr.io/org/app', 'prefix', true]],
    ['ghcr.io/secret/x/y', undefined, ['ghcr.io', 'secret/x/y', 'ghcr.io/secret/x/y', 'prefix', false]],
    ['registry.local_5000/team/app', undefined, ['registry.local:5000', 'team/app', 'registry.local_5000/team/app', 'prefix', true]],
    ['registry.local:5000/team/app', undefined, ['registry.local:5000', 'team/app', 'registry.local_5000/team/app', 'prefix', true]],
    // containerd's hosts.toml: ?ns=<registry>, the name is the upstream's.
    ['library/alpine', 'docker.io', ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'ns', true]],
    ['alpine', 'index.docker.io', ['docker.io', 'library/alpine', 'docker.io/library/alpine', 'ns', true]],
    ['org/app', 'ghcr.io', ['ghcr.io', 'org/app', 'ghcr.io/org/app', 'ns', true]],
    ['team/app', 'registry.local:5000', ['registry.local:5000', 'team/app', 'registry.local_5000/team/app', 'ns', true]],
    // An ns naming no upstream is never sent to the default upstream.
    ['org/app', 'quay.io', undefined],
    // Names the default upstream does not allow stay local.
    ['team/app', undefined, undefined],
    ['local/a/b', undefined, undefined],
  ];
  for (const [name, ns, expected] of cases) {
    test(`${name}${ns ? `?ns=${ns}` : ''} → ${expected ? expected[2] : 'local'}`, () => {
      const route = table.route(name, ns);
      assert.deepEqual(route && [route.upstream.host, route.repository, route.canonical, route.via, route.allowed], expected);
    });
  }

  test('cached namespaces, and which upstreams are told ?ns=', () => {
    assert.equal(table.isCached('docker.io/library/alpine'), true);
    assert.equal(table.isCached('registry.local_5000/x'), true);
    assert.equal(table.isCached('team/app'), false);
    assert.equal(table.isCached('docker.io'), false);
    assert.equal(new Upstream(upstream({ host: 'docker.io', url: 'https://registry-1.docker.io' })).isOrigin, true);
    assert.equal(new Upstream(upstream({ host: 'ghcr.io', url: 'https://ghcr.io/' })).isOrigin, true);
    assert.equal(new Upstream(upstream({ host: 'docker.io', url: 'http://mirror.internal:5000' })).isOrigin, false);
    assert.equal(new Upstream(upstream({ host: 'ghcr.io', url: 'https://ghcr.io/prefix' })).isOrigin, false);
  });

  test('globs: * within a component, ** across, ? one character; deny beats allow', () => {
    const matches = (glob: string, name: string) => globToRegExp(glob).test(name);
    assert.equal(matches('library/*', 'library/alpine'), true);
    assert.equal(matches('library/*', 'library/a/b'), false);
    assert.equal(matches('org/**', 'org/a/b'), true);
    assert.equal(matches('org/**/app', 'org/app'), true);
    assert.equal(matches('org/**/app', 'org/x/y/app'), true);
    assert.equal(matches('app-?', 'app-1'), true);
    assert.equal(matches('app.v1', 'appxv1'), false);
    const filter = new RepositoryFilter(['library/*', 'org/**'], ['org/secret*']);
    assert.equal(filter.allows('library/alpine'), true);
    assert.equal(filter.allows('org/x/y'), true);
    assert.equal(filter.allows('org/secret-app'), false);
    assert.equal(filter.allows('other/app'), false);
    assert.equal(new RepositoryFilter([], []).allows('any/thing'), true);
  });
});

describe('a mirror whose upstream is down', () => {
  let mirror: TestMirror;
  let base: string;
  let deadUrl: string;

  before(async () => {
    deadUrl = `http://127.0.0.1:${await freePort()}`;
    mirror = await startTestMirror({
      upstreams: [upstream({ host: 'docker.io', url: deadUrl, default: true, deny: ['team/**'] }), upstream({ host: 'ghcr.io', url: deadUrl })],
    });
    base = mirror.url;
  });
  after(async () => {
    await mirror?.stop();
  });

  test('starts, and logs that the upstream is unreachable', async () => {
    // Each upstream is checked on its own; wait for the one this test reads, not whichever logs first.
    const ghcrLine = () => mirror.logs.find((l) => l.upstream === 'ghcr.io' && String(l.msg).includes('unreachable'));
    for (let i = 0; i < 100 && !ghcrLine(); i++) await new Promise((r) => setTimeout(r, 50));
    const line = ghcrLine();
    assert.ok(line, JSON.stringify(mirror.logs));
    assert.equal(line.level, 40);
    assert.match(String(line.msg), /serving what is cached until it is back/);
    assert.match(String(line.reason), /connection refused/);
    assert.equal((await fetch(`${base}/v2/`)).status, 200);
  });

  test('pushes to cached namespaces are 403 DENIED with a clear message; local names work', async () => {
    const image = await makeImage({ seed: 'mirror-config-push', layers: 1 });
    for (const [path, via] of [
      ['/v2/library/app/blobs/uploads/', /unprefixed names go to the default upstream docker\.io/],
      ['/v2/docker.io/library/app/blobs/uploads/', /names under docker\.io\/ \(or \?ns=docker\.io\) are cached from upstream docker\.io/],
      ['/v2/org/app/blobs/uploads/?ns=ghcr.io', /names under ghcr\.io\/ \(or \?ns=ghcr\.io\) are cached/],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method: 'POST' });
      assert.equal(res.status, 403, path);
      const body = (await res.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]!.code, 'DENIED');
      assert.match(body.errors[0]!.message, /is a read-only cache/);
      assert.match(body.errors[0]!.message, via);
    }
    const put = await fetch(`${base}/v2/docker.io/library/app/manifests/v1`, { method: 'PUT', headers: { 'content-type': image.manifest.descriptor.mediaType }, body: image.manifest.data });
    assert.equal(put.status, 403);
    const del = await fetch(`${base}/v2/ghcr.io/org/app/manifests/v1`, { method: 'DELETE' });
    assert.equal(del.status, 403);
    // team/** is denied to the default upstream: a local repository, as in any registry.
    await pushImage(base, 'team/app', image, 'v1');
    const got = await fetch(`${base}/v2/team/app/manifests/v1`);
    assert.equal(got.status, 200);
    assert.equal(got.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
  });

  test('an uncached image fails with a clear 503 naming the upstream; the server stays up', async () => {
    const res = await fetch(`${base}/v2/library/alpine/manifests/3.20`);
    assert.equal(res.status, 503);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
    assert.match(body.errors[0]!.message, new RegExp(`cannot get manifest library/alpine:3\\.20 from upstream docker\\.io \\(${deadUrl.replace(/[.]/g, '\\.')}\\), which is unavailable`));
    assert.match(body.errors[0]!.message, /connection refused/);
    const blob = await fetch(`${base}/v2/ghcr.io/org/app/blobs/sha256:${'a'.repeat(64)}`);
    assert.equal(blob.status, 503);
    assert.equal((await fetch(`${base}/v2/`)).status, 200);
  });

  test('a repository the upstream\'s lists refuse is 403 DENIED when asked by prefix', async () => {
    const res = await fetch(`${base}/v2/docker.io/team/app/manifests/v1`);
    assert.equal(res.status, 403);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    assert.match(body.errors[0]!.message, /repository team\/app of upstream docker\.io is not served by this mirror \(allow: \[\], deny: \[team\/\*\*\]\)/);
  });
});
