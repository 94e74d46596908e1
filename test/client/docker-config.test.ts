import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DOCKER_HUB_CONFIG_KEY,
  DockerConfigError,
  configKeyFor,
  dockerConfigPath,
  helperFor,
  matchingKeys,
  readDockerConfig,
  removeStoredAuth,
  setHelperPlaceholder,
  setStoredAuth,
  storedAuth,
  updateDockerConfig,
  writeDockerConfig,
  type DockerConfigFile,
} from '../../src/client/docker-config.ts';
import { isValidRegistryHost, normalizeRegistryHost } from '../../src/client/registry-host.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('registry host normalization', () => {
  test('every Docker Hub alias is docker.io', () => {
    for (const alias of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/', 'http://INDEX.docker.io', 'Docker.IO']) {
      assert.equal(normalizeRegistryHost(alias), 'docker.io', alias);
    }
  });

  test('schemes and paths are dropped, ports kept, case folded', () => {
    assert.equal(normalizeRegistryHost('https://ghcr.io'), 'ghcr.io');
    assert.equal(normalizeRegistryHost('http://quay.io/v2/'), 'quay.io');
    assert.equal(normalizeRegistryHost(' localhost:5000 '), 'localhost:5000');
    assert.equal(normalizeRegistryHost('Registry.Example.com:443/path'), 'registry.example.com:443');
  });

  test('host validity', () => {
    for (const good of ['ghcr.io', 'localhost', 'localhost:5000', '127.0.0.1:5000', '[::1]:5000', 'my-registry.example.com']) assert.ok(isValidRegistryHost(good), good);
    for (const bad of ['', 'ghcr.io/x', 'https://ghcr.io', 'a b', '-bad.io', 'host:99999', 'host:']) assert.ok(!isValidRegistryHost(bad), bad);
  });
});

describe('where config.json lives', () => {
  test('configDir beats $DOCKER_CONFIG beats ~/.docker', () => {
    assert.equal(dockerConfigPath({ configDir: '/a', env: { DOCKER_CONFIG: '/b' } }), join('/a', 'config.json'));
    assert.equal(dockerConfigPath({ env: { DOCKER_CONFIG: '/b' } }), join('/b', 'config.json'));
    assert.equal(dockerConfigPath({ env: {} }), join(homedir(), '.docker', 'config.json'));
  });

  test('docker login stores Hub under its legacy URL and other registries under the bare host', () => {
    for (const hub of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/']) assert.equal(configKeyFor(hub), DOCKER_HUB_CONFIG_KEY);
    assert.equal(configKeyFor('https://ghcr.io/'), 'ghcr.io');
    assert.equal(configKeyFor('localhost:5000'), 'localhost:5000');
  });
});

describe('credential lookup in the config data', () => {
  const data: DockerConfigFile = {
    auths: {
      [DOCKER_HUB_CONFIG_KEY]: { auth: b64('hubuser:hubpass') },
      'https://ghcr.io': { auth: b64('octo:ghp_token:with:colons') },
      'http://quay.io': { auth: b64('q:qp') },
      'localhost:5000': { auth: b64('local:lp') },
      'tokens.example.com': { auth: b64('tu:tp'), identitytoken: 'refresh-123' },
      'onlytoken.example.com': { identitytoken: 'refresh-456' },
      'podman.example.com': { username: 'pu', password: 'pp' },
      'empty.example.com': {},
    },
  };

  test('Docker Hub credentials are found under every Hub alias', () => {
    for (const alias of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/']) {
      assert.deepEqual(storedAuth(data, alias), { key: DOCKER_HUB_CONFIG_KEY, username: 'hubuser', password: 'hubpass' }, alias);
    }
  });

  test('keys written as host, https://host or http://host all match the host', () => {
    assert.deepEqual(storedAuth(data, 'ghcr.io'), { key: 'https://ghcr.io', username: 'octo', password: 'ghp_token:with:colons' });
    assert.deepEqual(storedAuth(data, 'quay.io'), { key: 'http://quay.io', username: 'q', password: 'qp' });
    assert.deepEqual(storedAuth(data, 'localhost:5000'), { key: 'localhost:5000', username: 'local', password: 'lp' });
    assert.equal(storedAuth(data, 'localhost:5001'), undefined, 'the port is part of the host');
    assert.equal(storedAuth(data, 'gcr.io'), undefined);
  });

  test('identity tokens, clear-text fields, and empty entries', () => {
    assert.deepEqual(storedAuth(data, 'tokens.example.com'), { key: 'tokens.example.com', username: 'tu', password: 'tp', identityToken: 'refresh-123' });
    assert.deepEqual(storedAuth(data, 'onlytoken.example.com'), { key: 'onlytoken.example.com', identityToken: 'refresh-456' });
    assert.deepEqual(storedAuth(data, 'podman.example.com'), { key: 'podman.example.com', username: 'pu', password: 'pp' });
    assert.equal(storedAuth(data, 'empty.example.com'), undefined, 'an entry a helper placeholder left holds nothing');
  });

  test('the exact key wins over another spelling of the same host', () => {
    const both: DockerConfigFile = { auths: { 'https://ghcr.io': { auth: b64('old:o') }, 'ghcr.io': { auth: b64('new:n') }, 'docker.io': { auth: b64('stray:s') }, [DOCKER_HUB_CONFIG_KEY]: { auth: b64('hub:h') } } };
    assert.equal(storedAuth(both, 'ghcr.io')?.username, 'new');
    assert.equal(storedAuth(both, 'docker.io')?.username, 'hub');
    assert.deepEqual(matchingKeys(both.auths, 'ghcr.io'), ['ghcr.io', 'https://ghcr.io']);
  });

  test('an auth that is not base64 of user:pass is an error naming file and key', () => {
    assert.throws(() => storedAuth({ auths: { 'ghcr.io': { auth: b64('no-colon-here') } } }, 'ghcr.io', '/x/config.json'), (error: unknown) => {
      assert.ok(error instanceof DockerConfigError);
      assert.equal(error.message, '/x/config.json: auths["ghcr.io"].auth: not base64 of "username:password"');
      return true;
    });
  });

  test('credHelpers[host] beats credsStore, which beats auths', () => {
    const config: DockerConfigFile = { credsStore: 'desktop', credHelpers: { 'gcr.io': 'gcloud', 'https://123.dkr.ecr.us-east-1.amazonaws.com': 'ecr-login' }, auths: { 'gcr.io': { auth: b64('a:b') } } };
    assert.deepEqual(helperFor(config, 'gcr.io'), { helper: 'gcloud', via: 'credHelpers' });
    assert.deepEqual(helperFor(config, '123.dkr.ecr.us-east-1.amazonaws.com'), { helper: 'ecr-login', via: 'credHelpers' }, 'credHelpers keys are normalized too');
    assert.deepEqual(helperFor(config, 'ghcr.io'), { helper: 'desktop', via: 'credsStore' });
    assert.equal(helperFor({ auths: {} }, 'ghcr.io'), undefined);
    assert.deepEqual(helperFor({ credHelpers: { 'ghcr.io': '' }, credsStore: 'pass' }, 'ghcr.io'), { helper: 'pass', via: 'credsStore' }, 'an empty helper name means none');
  });

  test('setStoredAuth keeps other fields of the entry; setHelperPlaceholder drops every secret', () => {
    const config: DockerConfigFile = { auths: { 'ghcr.io': { auth: b64('x:y'), email: 'me@example.com', identitytoken: 'stale' } } };
    assert.equal(setStoredAuth(config, 'https://ghcr.io', { username: 'octo', password: 'p:w' }), 'ghcr.io');
    assert.deepEqual(config.auths?.['ghcr.io'], { email: 'me@example.com', auth: b64('octo:p:w') });
    assert.equal(setStoredAuth(config, 'docker.io', { username: 'u', password: 'p' }), DOCKER_HUB_CONFIG_KEY);
    assert.deepEqual(config.auths?.[DOCKER_HUB_CONFIG_KEY], { auth: b64('u:p') });
    setHelperPlaceholder(config, 'ghcr.io');
    assert.deepEqual(config.auths?.['ghcr.io'], { email: 'me@example.com' });
  });

  test('removeStoredAuth removes every spelling of the host and nothing else', () => {
    const config: DockerConfigFile = { auths: { 'ghcr.io': {}, 'https://ghcr.io': {}, 'http://ghcr.io/v2/': {}, 'ghcr.io.evil.com': {}, 'quay.io': {} } };
    assert.deepEqual(removeStoredAuth(config, 'ghcr.io').sort(), ['ghcr.io', 'http://ghcr.io/v2/', 'https://ghcr.io']);
    assert.deepEqual(Object.keys(config.auths ?? {}), ['ghcr.io.evil.com', 'quay.io']);
    assert.deepEqual(removeStoredAuth(config, 'gcr.io'), []);
  });
});

describe('reading and writing config.json', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-dockercfg-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a missing file is an empty config', async () => {
    const loaded = await readDockerConfig({ configDir: join(root, 'missing') });
    assert.deepEqual(loaded, { path: join(root, 'missing', 'config.json'), exists: false, data: {} });
  });

  test('$DOCKER_CONFIG from the env option is honoured', async () => {
    const dir = join(root, 'from-env');
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ credsStore: 'pass' }));
    const loaded = await readDockerConfig({ env: { DOCKER_CONFIG: dir } });
    assert.equal(loaded.exists, true);
    assert.equal(loaded.data.credsStore, 'pass');
  });

  test('broken JSON and wrong types are errors naming the file and the key', async () => {
    const dir = join(root, 'broken');
    await mkdir(dir);
    const path = join(dir, 'config.json');
    await writeFile(path, '{"auths": {');
    await assert.rejects(readDockerConfig({ configDir: dir }), (error: unknown) => error instanceof DockerConfigError && error.path === path && error.message.startsWith(`${path}: not valid JSON`));
    await writeFile(path, JSON.stringify({ auths: { 'ghcr.io': { auth: 42 } }, credsStore: ['x'], credHelpers: { 'gcr.io': true } }));
    await assert.rejects(readDockerConfig({ configDir: dir }), {
      message: `${path}: auths["ghcr.io"].auth: must be a string; credsStore: must be a string naming docker-credential-<name>; credHelpers["gcr.io"]: must be a string naming docker-credential-<name>`,
    });
    await writeFile(path, '[]');
    await assert.rejects(readDockerConfig({ configDir: dir }), { message: `${path}: expected a JSON object at the top level` });
  });

  test('writing creates the directory and a 0600 file, and keeps every other key', async () => {
    const dir = join(root, 'keep');
    await mkdir(dir);
    const original = {
      auths: { 'quay.io': { auth: b64('q:q'), email: 'q@example.com' } },
      currentContext: 'remote',
      proxies: { default: { httpProxy: 'http://proxy:3128', noProxy: '*.local' } },
      plugins: { buildx: { enabled: 'true' } },
      psFormat: 'table {{.ID}}',
      detachKeys: 'ctrl-e,e',
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify(original), { mode: 0o644 });
    const { path, result } = await updateDockerConfig({ configDir: dir }, (data) => setStoredAuth(data, 'ghcr.io', { username: 'octo', password: 'pw' }));
    assert.equal(result, 'ghcr.io');
    const written = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(written, { ...original, auths: { ...original.auths, 'ghcr.io': { auth: b64('octo:pw') } } });
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(dir), ['config.json'], 'no temporary file left behind');

    const fresh = join(root, 'new', 'nested');
    await writeDockerConfig({ auths: {} }, { configDir: fresh });
    assert.equal((await stat(join(fresh, 'config.json'))).mode & 0o777, 0o600);
  });

  test('the file is replaced by rename, never rewritten in place', async () => {
    const dir = join(root, 'atomic');
    await mkdir(dir);
    const path = join(dir, 'config.json');
    await writeFile(path, JSON.stringify({ credsStore: 'pass' }));
    const before = (await stat(path)).ino;
    await writeDockerConfig({ credsStore: 'pass', auths: {} }, { configDir: dir });
    assert.notEqual((await stat(path)).ino, before, 'a new inode: the old file was swapped, not truncated');
  });

  test('a failed write leaves the old file intact and no temporary file', async () => {
    const dir = join(root, 'failing');
    await mkdir(dir);
    const path = join(dir, 'config.json');
    await writeFile(path, '{"credsStore":"pass"}');
    const unserializable = { credsStore: 'pass', big: 10n } as unknown as DockerConfigFile;
    await assert.rejects(writeDockerConfig(unserializable, { configDir: dir }), (error: unknown) => error instanceof DockerConfigError && /cannot write/.test(error.message));
    assert.equal(await readFile(path, 'utf8'), '{"credsStore":"pass"}');
    assert.deepEqual(await readdir(dir), ['config.json']);
  });

  test('a symlinked config.json is written through, keeping the link', async () => {
    const dir = join(root, 'linked');
    const target = join(root, 'linked-target');
    await mkdir(dir);
    await mkdir(target);
    await writeFile(join(target, 'real.json'), '{}');
    await symlink(join(target, 'real.json'), join(dir, 'config.json'));
    await writeDockerConfig({ credsStore: 'pass' }, { configDir: dir });
    assert.deepEqual(JSON.parse(await readFile(join(target, 'real.json'), 'utf8')), { credsStore: 'pass' });
    assert.ok((await stat(join(dir, 'config.json'))).isFile());
    assert.ok((await lstat(join(dir, 'config.json'))).isSymbolicLink(), 'still a link');
  });
});
