import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { repositoryName, resolveDefaultTarget } from '../../src/sync/default-target.ts';
import { parseImageRules, type ImageRule } from '../../src/sync/image-rule.ts';
import { expandRule } from '../../src/sync/planner.ts';
import type { SyncClients } from '../../src/sync/sync-clients.ts';
import { loadSyncConfig } from '../../src/sync/sync-config.ts';
import { taskKey } from '../../src/sync/sync-task.ts';

// image-syncer's README: `./image-syncer --proc=6 --auth=./auth.json --images=./images.json
// --namespace=ruohe --registry=registry.cn-beijing.aliyuncs.com --retries=3`, and its images.json
// comment: "When a destination is an empty string, source will be synchronized to
// default-registry/default-namespace with the same repository name and tags".
const REGISTRY = 'registry.cn-beijing.aliyuncs.com';
const NAMESPACE = 'ruohe';
const FILE = '/etc/sync/images.json';
const DIGEST = digestOf('kube-rbac-proxy manifest');

/** Each rule as `source -> registry/repository[:tags][@digest]`. */
function summary(rules: ImageRule[]): string[] {
  return rules.flatMap((rule) => rule.destinations.map((d) => `${rule.key} -> ${d.registry}/${d.repository}${d.tags ? `:${d.tags.join(',')}` : ''}${d.digest ? `@${d.digest}` : ''}`));
}

function refused(call: () => unknown, ...what: (string | RegExp)[]): string {
  let message = '';
  assert.throws(call, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    message = error.message;
    return true;
  });
  for (const part of what) {
    if (typeof part === 'string') assert.ok(message.includes(part), `message should name ${part}: ${message}`);
    else assert.match(message, part);
  }
  return message;
}

async function refusedAsync(call: () => Promise<unknown>, ...what: (string | RegExp)[]): Promise<string> {
  let message = '';
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    message = error.message;
    return true;
  });
  for (const part of what) {
    if (typeof part === 'string') assert.ok(message.includes(part), `message should name ${part}: ${message}`);
    else assert.match(message, part);
  }
  return message;
}

describe('--registry / --namespace and DEFAULT_REGISTRY / DEFAULT_NAMESPACE', () => {
  test('a flag wins over its variable, even an empty flag; the variable counts when the flag is absent', () => {
    const env = { DEFAULT_REGISTRY: 'env.example.com', DEFAULT_NAMESPACE: 'envns' };
    assert.deepEqual(resolveDefaultTarget({}, env), { registry: { value: 'env.example.com', from: 'DEFAULT_REGISTRY' }, namespace: { value: 'envns', from: 'DEFAULT_NAMESPACE' } });
    assert.deepEqual(resolveDefaultTarget({ registry: REGISTRY, namespace: NAMESPACE }, env), { registry: { value: REGISTRY, from: '--registry' }, namespace: { value: NAMESPACE, from: '--namespace' } });
    assert.deepEqual(resolveDefaultTarget({ namespace: NAMESPACE }, env), { registry: { value: 'env.example.com', from: 'DEFAULT_REGISTRY' }, namespace: { value: NAMESPACE, from: '--namespace' } });
    // cobra: `--registry=` sets the flag to "", and the environment's default is not used.
    assert.deepEqual(resolveDefaultTarget({ registry: '' }, env), { namespace: { value: 'envns', from: 'DEFAULT_NAMESPACE' } });
    assert.deepEqual(resolveDefaultTarget({}, { DEFAULT_REGISTRY: '', DEFAULT_NAMESPACE: '  ' }), {});
  });

  test("the repository name is what follows the registry and the source's first namespace component", () => {
    assert.equal(repositoryName('coreos/kube-rbac-proxy'), 'kube-rbac-proxy');
    assert.equal(repositoryName('library/nginx'), 'nginx');
    assert.equal(repositoryName('a/b/c'), 'b/c');
    assert.equal(repositoryName('app'), 'app');
  });

  test("the README's rule forms with an empty destination go to default-registry/default-namespace/<repository>, with their tags", () => {
    const defaults = resolveDefaultTarget({ registry: REGISTRY, namespace: NAMESPACE }, {});
    const rules = parseImageRules(
      {
        'quay.io/coreos/kube-rbac-proxy': '',
        'quay.io/coreos/kube-rbac-proxy:v1.0': '',
        'quay.io/coreos/kube-rbac-proxy:v1.0,v2.0': '',
        'quay.io/coreos/kube-rbac-proxy:/a+/': '',
        [`quay.io/coreos/kube-rbac-proxy@${DIGEST}`]: '',
        'quay.io/coreos/kube-rbac-proxy:v1.1': ['', 'quay.io/ruohe/kube-rbac-proxy2', `${REGISTRY}/${NAMESPACE}/kube-rbac-proxy`],
        'nginx:1.25': '',
        'bitnami/redis': '',
        'registry.example.com/a/b/c:v1': '',
        'quay.io/app:v1': '',
        'localhost:5000/team/app': '   ',
      },
      FILE,
      {},
      defaults,
    );
    assert.deepEqual(summary(rules), [
      `quay.io/coreos/kube-rbac-proxy -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      `quay.io/coreos/kube-rbac-proxy:v1.0 -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      `quay.io/coreos/kube-rbac-proxy:v1.0,v2.0 -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      `quay.io/coreos/kube-rbac-proxy:/a+/ -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      `quay.io/coreos/kube-rbac-proxy@${DIGEST} -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      // The empty destination and the one written out are the same: it is kept once.
      `quay.io/coreos/kube-rbac-proxy:v1.1 -> ${REGISTRY}/ruohe/kube-rbac-proxy`,
      'quay.io/coreos/kube-rbac-proxy:v1.1 -> quay.io/ruohe/kube-rbac-proxy2',
      `nginx:1.25 -> ${REGISTRY}/ruohe/nginx`,
      `bitnami/redis -> ${REGISTRY}/ruohe/redis`,
      `registry.example.com/a/b/c:v1 -> ${REGISTRY}/ruohe/b/c`,
      `quay.io/app:v1 -> ${REGISTRY}/ruohe/app`,
      `localhost:5000/team/app -> ${REGISTRY}/ruohe/app`,
    ]);
  });

  test('the source tags, tag list or digest carry over to the default destination', async () => {
    const defaults = resolveDefaultTarget({}, { DEFAULT_REGISTRY: REGISTRY, DEFAULT_NAMESPACE: NAMESPACE });
    const clients = { get: () => ({ listTags: async () => ['v1.0', 'v2.0', 'aaa'] }) } as unknown as SyncClients;
    const tasks = async (source: string) => (await expandRule(parseImageRules({ [source]: '' }, FILE, {}, defaults)[0]!, clients)).map(taskKey);
    const to = `${REGISTRY}/ruohe/kube-rbac-proxy`;
    assert.deepEqual(await tasks('quay.io/coreos/kube-rbac-proxy:v1.0,v2.0'), [`quay.io/coreos/kube-rbac-proxy:v1.0 -> ${to}:v1.0`, `quay.io/coreos/kube-rbac-proxy:v2.0 -> ${to}:v2.0`]);
    assert.deepEqual(await tasks('quay.io/coreos/kube-rbac-proxy'), ['v1.0', 'v2.0', 'aaa'].map((tag) => `quay.io/coreos/kube-rbac-proxy:${tag} -> ${to}:${tag}`));
    assert.deepEqual(await tasks(`quay.io/coreos/kube-rbac-proxy@${DIGEST}`), [`quay.io/coreos/kube-rbac-proxy@${DIGEST} -> ${to}@${DIGEST}`]);
  });

  test("a registry without a namespace keeps the source's whole path (image-syncer's later rule)", () => {
    const defaults = resolveDefaultTarget({ registry: REGISTRY }, {});
    const rules = parseImageRules({ 'quay.io/coreos/kube-rbac-proxy:v1.0': '', nginx: '' }, FILE, {}, defaults);
    assert.deepEqual(summary(rules), [`quay.io/coreos/kube-rbac-proxy:v1.0 -> ${REGISTRY}/coreos/kube-rbac-proxy`, `nginx -> ${REGISTRY}/library/nginx`]);
  });

  test('Docker Hub as the default registry is written docker.io', () => {
    const defaults = resolveDefaultTarget({ registry: 'index.docker.io', namespace: 'mirror' }, {});
    assert.deepEqual(summary(parseImageRules({ 'quay.io/coreos/etcd': '' }, FILE, {}, defaults)), ['quay.io/coreos/etcd -> docker.io/mirror/etcd']);
  });

  describe('errors name the file, the key, and where the defaults came from', () => {
    test('an empty destination with no defaults at all', () => {
      refused(() => parseImageRules({ 'quay.io/coreos/etcd': '' }, FILE, {}, {}), FILE, '"quay.io/coreos/etcd"', /destination is empty/, '--registry', 'DEFAULT_REGISTRY');
    });

    test('a namespace without a registry', () => {
      const defaults = resolveDefaultTarget({}, { DEFAULT_NAMESPACE: NAMESPACE });
      refused(() => parseImageRules({ 'quay.io/coreos/etcd': '' }, FILE, {}, defaults), FILE, /DEFAULT_NAMESPACE is set, but a namespace needs a registry/);
    });

    test('a default registry that is not a host, or carries a scheme or path', () => {
      for (const registry of ['myregistry', 'https://registry.example.com', 'registry.example.com/team']) {
        const defaults = resolveDefaultTarget({}, { DEFAULT_REGISTRY: registry, DEFAULT_NAMESPACE: NAMESPACE });
        refused(() => parseImageRules({ 'quay.io/coreos/etcd': '' }, FILE, {}, defaults), FILE, '"quay.io/coreos/etcd"', JSON.stringify(registry), 'from DEFAULT_REGISTRY', /is not a registry host/);
      }
    });

    test('a namespace that makes a bad repository name', () => {
      const defaults = resolveDefaultTarget({ registry: REGISTRY, namespace: 'RuoHe' }, {});
      refused(() => parseImageRules({ 'quay.io/coreos/etcd': '' }, FILE, {}, defaults), FILE, `"${REGISTRY}/RuoHe/etcd"`, 'from --registry and --namespace', /lowercase/);
    });

    test('a destination whose variables expand to nothing is not taken for an empty one', () => {
      const defaults = resolveDefaultTarget({ registry: REGISTRY, namespace: NAMESPACE }, {});
      refused(() => parseImageRules({ 'quay.io/coreos/etcd': '$MIRROR' }, FILE, {}, defaults), FILE, '"$MIRROR"', /empty once its variables are expanded/);
    });

    test('unused defaults are not checked', () => {
      const defaults = resolveDefaultTarget({ registry: 'not a host' }, {});
      assert.equal(parseImageRules({ 'quay.io/coreos/etcd': 'b.io/x/etcd' }, FILE, {}, defaults).length, 1);
    });
  });
});

describe("image-syncer's default files: ./images.json and ./auth.json", () => {
  let root: string;
  let n = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-sync-dropin-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A fresh working directory holding these files. */
  async function cwd(files: Record<string, string>): Promise<string> {
    const dir = join(root, String(++n));
    await mkdir(dir);
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return dir;
  }

  const IMAGES = JSON.stringify({ 'quay.io/coreos/kube-rbac-proxy:v1.0': 'quay.io/ruohe/kube-rbac-proxy' });
  const AUTH = JSON.stringify({ 'quay.io': { username: 'xxx', password: '$QUAY_PASSWORD' } });

  test('neither flag: ./images.json and ./auth.json are read', async () => {
    const dir = await cwd({ 'images.json': IMAGES, 'auth.json': AUTH });
    const config = await loadSyncConfig({}, { QUAY_PASSWORD: 'secret' }, { cwd: dir });
    assert.deepEqual(summary(config.rules), ['quay.io/coreos/kube-rbac-proxy:v1.0 -> quay.io/ruohe/kube-rbac-proxy']);
    assert.deepEqual(config.auth.credentials('quay.io', 'coreos/kube-rbac-proxy'), { username: 'xxx', password: 'secret' });
    assert.equal(config.auth.file, join(dir, 'auth.json'), 'the 401 hint names the file the credentials came from');
  });

  test('no ./auth.json is fine: anonymous (or docker config) access', async () => {
    const dir = await cwd({ 'images.json': IMAGES });
    const config = await loadSyncConfig({}, {}, { cwd: dir });
    assert.equal(config.rules.length, 1);
    assert.equal(config.auth.covers('quay.io', 'coreos/kube-rbac-proxy'), false);
    assert.equal(config.auth.file, undefined);
  });

  test('no ./images.json is an error that says where it looked', async () => {
    const dir = await cwd({ 'auth.json': AUTH });
    await refusedAsync(() => loadSyncConfig({}, {}, { cwd: dir }), /no image rules/, '--images', '--config', './images.json', dir);
  });

  test('--images given: ./auth.json is still the default for --auth', async () => {
    const dir = await cwd({ 'auth.json': AUTH });
    const other = await cwd({ 'rules.yaml': 'quay.io/coreos/etcd:v3: quay.io/ruohe/etcd\n' });
    const config = await loadSyncConfig({ images: join(other, 'rules.yaml') }, { QUAY_PASSWORD: 'p' }, { cwd: dir });
    assert.deepEqual(summary(config.rules), ['quay.io/coreos/etcd:v3 -> quay.io/ruohe/etcd']);
    assert.ok(config.auth.covers('quay.io', 'coreos/etcd'));
  });

  test('--auth given: it is read and ./auth.json is not', async () => {
    const dir = await cwd({ 'images.json': IMAGES, 'auth.json': AUTH });
    const other = await cwd({ 'creds.json': JSON.stringify({ 'quay.io/coreos': { username: 'abc', password: 'def' } }) });
    const config = await loadSyncConfig({ auth: join(other, 'creds.json') }, {}, { cwd: dir });
    assert.deepEqual(config.auth.credentials('quay.io', 'coreos/kube-rbac-proxy'), { username: 'abc', password: 'def' });
    assert.equal(config.auth.covers('quay.io', 'ruohe/kube-rbac-proxy'), false);
  });

  test('a named --auth or --images that is missing is still an error', async () => {
    const dir = await cwd({ 'images.json': IMAGES, 'auth.json': AUTH });
    await refusedAsync(() => loadSyncConfig({ auth: join(dir, 'nope.json') }, {}, { cwd: dir }), 'nope.json', /cannot read/);
    await refusedAsync(() => loadSyncConfig({ images: join(dir, 'nope.json') }, {}, { cwd: dir }), 'nope.json', /cannot read/);
  });

  test('a broken ./auth.json is reported, not skipped', async () => {
    const dir = await cwd({ 'images.json': IMAGES, 'auth.json': '{"quay.io": {"user": "x"}}' });
    await refusedAsync(() => loadSyncConfig({}, {}, { cwd: dir }), join(dir, 'auth.json'), '"quay.io"', /unknown field "user"/);
  });

  test('--config reads only that file, even with ./images.json and ./auth.json beside it', async () => {
    const dir = await cwd({ 'images.json': IMAGES, 'auth.json': AUTH });
    const combined = join(dir, 'config.json');
    await writeFile(combined, JSON.stringify({ auth: { 'b.io': { username: 'u', password: 'p' } }, images: { 'b.io/x/y:v1': 'c.io/x/y' } }));
    const config = await loadSyncConfig({ config: combined }, {}, { cwd: dir });
    assert.deepEqual(summary(config.rules), ['b.io/x/y:v1 -> c.io/x/y']);
    assert.equal(config.auth.covers('quay.io', 'coreos/kube-rbac-proxy'), false);
    assert.ok(config.auth.covers('b.io', 'x/y'));
  });

  test('empty destinations resolve in the combined --config file too', async () => {
    const dir = await cwd({});
    const combined = join(dir, 'config.yaml');
    await writeFile(combined, 'images:\n  quay.io/coreos/etcd:v3: ""\n');
    const config = await loadSyncConfig({ config: combined }, { DEFAULT_REGISTRY: REGISTRY, DEFAULT_NAMESPACE: NAMESPACE }, { cwd: dir });
    assert.deepEqual(summary(config.rules), [`quay.io/coreos/etcd:v3 -> ${REGISTRY}/ruohe/etcd`]);
  });

  test('without options.cwd (a library caller) nothing is read implicitly', async () => {
    await refusedAsync(() => loadSyncConfig({}, {}), /no image rules/);
  });
});
