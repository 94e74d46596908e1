import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { readConfigDocument } from '../../src/sync/config-file.ts';
import { expandEnv } from '../../src/sync/env-expand.ts';
import type { ImageRule } from '../../src/sync/image-rule.ts';
import { loadSyncConfig, type SyncConfig } from '../../src/sync/sync-config.ts';

const DIGEST = digestOf('kube-rbac-proxy index');

// image-syncer's README and example/ directory, verbatim apart from the digest placeholder.
const IMAGES_JSON = `{
    "quay.io/coreos/kube-rbac-proxy": "quay.io/ruohe/kube-rbac-proxy",
    "quay.io/coreos/kube-rbac-proxy:v1.0": "quay.io/ruohe/kube-rbac-proxy",
    "quay.io/coreos/kube-rbac-proxy:v1.0,v2.0": "quay.io/ruohe/kube-rbac-proxy",
    "quay.io/coreos/kube-rbac-proxy:v1.1": [
        "quay.io/ruohe/kube-rbac-proxy1",
        "quay.io/ruohe/kube-rbac-proxy2"
    ],
    "quay.io/coreos/kube-rbac-proxy:/a+/": "quay.io/ruohe/kube-rbac-proxy",
    "quay.io/coreos/kube-rbac-proxy@${DIGEST}": "quay.io/ruohe/kube-rbac-proxy"
}
`;

const IMAGES_YAML = `quay.io/coreos/kube-rbac-proxy: quay.io/ruohe/kube-rbac-proxy

quay.io/coreos/kube-rbac-proxy:v1.0: quay.io/ruohe/kube-rbac-proxy

quay.io/coreos/kube-rbac-proxy:v1.0,v2.0: quay.io/ruohe/kube-rbac-proxy
quay.io/coreos/kube-rbac-proxy:v1.1:
  - quay.io/ruohe/kube-rbac-proxy1
  - quay.io/ruohe/kube-rbac-proxy2
quay.io/coreos/kube-rbac-proxy:/a+/: quay.io/ruohe/kube-rbac-proxy
quay.io/coreos/kube-rbac-proxy@${DIGEST}: quay.io/ruohe/kube-rbac-proxy
`;

const AUTH_JSON = `{
    "quay.io": {
        "username": "xxx",
        "password": "xxxxxxxxx",
        "insecure": true
    },
    "registry.cn-beijing.aliyuncs.com": {
        "username": "xxx",
        "password": "xxxxxxxxx"
    },
    "docker.io": {
        "username": "xxx",
        "password": "xxxxxxxxxx"
    },
    "quay.io/coreos": {
        "username": "abc",
        "password": "xxxxxxxxx",
        "insecure": true
    }
}
`;

const AUTH_YAML = `quay.io:
  username: xxx
  password: xxxxxxxxx
  insecure: true
registry.cn-beijing.aliyuncs.com:
  username: xxx
  password: xxxxxxxxx
docker.io:
  username: xxx
  password: xxxxxxxxxx
quay.io/coreos:
  username: abc
  password: xxxxxxxxx
  insecure: true
`;

// example/config.yaml (the deprecated combined file).
const CONFIG_YAML = `auth:
  quay.io:
    username: xxx
    password: xxxxxxxxx
    insecure: true
  registry.cn-beijing.aliyuncs.com:
    username: xxx
    password: xxxxxxxxx
  docker.io:
    username: xxx
    password: xxxxxxxxxx
  quay.io/coreos:
    username: abc
    password: xxxxxxxxx
    insecure: true
images:
  quay.io/coreos/kube-rbac-proxy: quay.io/ruohe/kube-rbac-proxy
  quay.io/coreos/kube-rbac-proxy:v1.0: quay.io/ruohe/kube-rbac-proxy
  quay.io/coreos/kube-rbac-proxy:v1.0,v2.0: quay.io/ruohe/kube-rbac-proxy`;

// example/config.json: note "registry.hub.docker.com" for Docker Hub, and a trailing space after true.
const CONFIG_JSON = `{
    "auth": {
        "quay.io": {
            "username": "xxx",
            "password": "xxxxxxxxx",
            "insecure": true
        },
        "registry.cn-beijing.aliyuncs.com": {
            "username": "xxx",
            "password": "xxxxxxxxx"
        },
        "registry.hub.docker.com": {
            "username": "xxx",
            "password": "xxxxxxxxxx"
        },
        "quay.io/coreos": {
            "username": "abc",
            "password": "xxxxxxxxx",
            "insecure": true  
        }
    },
    "images": {
        "quay.io/coreos/kube-rbac-proxy": "quay.io/ruohe/kube-rbac-proxy",

        "quay.io/coreos/kube-rbac-proxy:v1.0": "quay.io/ruohe/kube-rbac-proxy",

        "quay.io/coreos/kube-rbac-proxy:v1.0,v2.0": "quay.io/ruohe/kube-rbac-proxy"
    }
}
`;

/** The rules every full example above must produce, in file order. */
const FULL_RULES = [
  { key: 'quay.io/coreos/kube-rbac-proxy', select: { kind: 'all' }, to: ['ruohe/kube-rbac-proxy'] },
  { key: 'quay.io/coreos/kube-rbac-proxy:v1.0', select: { kind: 'list', tags: ['v1.0'] }, to: ['ruohe/kube-rbac-proxy'] },
  { key: 'quay.io/coreos/kube-rbac-proxy:v1.0,v2.0', select: { kind: 'list', tags: ['v1.0', 'v2.0'] }, to: ['ruohe/kube-rbac-proxy'] },
  { key: 'quay.io/coreos/kube-rbac-proxy:v1.1', select: { kind: 'list', tags: ['v1.1'] }, to: ['ruohe/kube-rbac-proxy1', 'ruohe/kube-rbac-proxy2'] },
  { key: 'quay.io/coreos/kube-rbac-proxy:/a+/', select: { kind: 'regex', pattern: 'a+' }, to: ['ruohe/kube-rbac-proxy'] },
  { key: `quay.io/coreos/kube-rbac-proxy@${DIGEST}`, select: { kind: 'digest', digest: DIGEST }, to: ['ruohe/kube-rbac-proxy'] },
];

/** Rules as plain data (a RegExp becomes its source) for deepEqual. */
function summary(rules: ImageRule[]): { key: string; select: unknown; to: string[] }[] {
  return rules.map((rule) => {
    assert.equal(rule.source.registry, 'quay.io');
    assert.equal(rule.source.repository, 'coreos/kube-rbac-proxy');
    for (const destination of rule.destinations) {
      assert.equal(destination.registry, 'quay.io');
      assert.equal(destination.tags, undefined);
      assert.equal(destination.digest, undefined);
    }
    const { select } = rule.source;
    return { key: rule.key, select: select.kind === 'regex' ? { kind: 'regex', pattern: select.pattern.source } : select, to: rule.destinations.map((d) => d.repository) };
  });
}

/** The auth example's effect, whatever the Docker Hub key is spelled as. */
function assertExampleAuth(config: SyncConfig): void {
  const { auth } = config;
  assert.deepEqual(auth.credentials('quay.io', 'coreos/kube-rbac-proxy'), { username: 'abc', password: 'xxxxxxxxx' });
  assert.deepEqual(auth.credentials('quay.io', 'ruohe/kube-rbac-proxy'), { username: 'xxx', password: 'xxxxxxxxx' });
  assert.deepEqual(auth.credentials('registry.cn-beijing.aliyuncs.com', 'ruohe/x'), { username: 'xxx', password: 'xxxxxxxxx' });
  assert.deepEqual(auth.credentials('docker.io', 'library/nginx'), { username: 'xxx', password: 'xxxxxxxxxx' });
  assert.equal(auth.insecure('quay.io'), true);
  assert.equal(auth.insecure('registry.cn-beijing.aliyuncs.com'), false);
  assert.equal(auth.insecure('docker.io'), false);
}

async function refused(load: () => Promise<unknown>, parts: string[], what: RegExp): Promise<string> {
  let message = '';
  await assert.rejects(load, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    message = error.message;
    return true;
  });
  for (const part of parts) assert.ok(message.includes(part), `message should mention ${part}: ${message}`);
  assert.match(message, what);
  return message;
}

describe('image-syncer configuration files', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-sync-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `text` to a fresh file with this name (extension chooses the syntax). */
  async function file(name: string, text: string): Promise<string> {
    const sub = join(dir, String(++n));
    await mkdir(sub);
    const path = join(sub, name);
    await writeFile(path, text);
    return path;
  }

  describe('the examples parse unchanged', () => {
    test('images.json + auth.json', async () => {
      const config = await loadSyncConfig({ auth: await file('auth.json', AUTH_JSON), images: await file('images.json', IMAGES_JSON) }, {});
      assert.deepEqual(summary(config.rules), FULL_RULES);
      assertExampleAuth(config);
    });

    test('images.yaml + auth.yaml', async () => {
      const config = await loadSyncConfig({ auth: await file('auth.yaml', AUTH_YAML), images: await file('images.yaml', IMAGES_YAML) }, {});
      assert.deepEqual(summary(config.rules), FULL_RULES);
      assertExampleAuth(config);
    });

    test('.yml is YAML too, and the extension is case-insensitive', async () => {
      const config = await loadSyncConfig({ auth: await file('auth.YML', AUTH_YAML), images: await file('images.yml', IMAGES_YAML) }, {});
      assert.deepEqual(summary(config.rules), FULL_RULES);
      assertExampleAuth(config);
    });

    test('the README auth.json with registry.hub.docker.com for Docker Hub', async () => {
      const readme = AUTH_JSON.replace('"docker.io"', '"registry.hub.docker.com"');
      assert.notEqual(readme, AUTH_JSON);
      const config = await loadSyncConfig({ auth: await file('auth.json', readme), images: await file('images.json', IMAGES_JSON) }, {});
      assertExampleAuth(config);
    });

    test('--images without --auth: anonymous everywhere', async () => {
      const config = await loadSyncConfig({ images: await file('images.json', IMAGES_JSON) }, {});
      assert.equal(config.rules.length, 6);
      assert.equal(config.auth.covers('quay.io', 'coreos/kube-rbac-proxy'), false);
    });

    test('the combined config.yaml', async () => {
      const config = await loadSyncConfig({ config: await file('config.yaml', CONFIG_YAML) }, {});
      assert.deepEqual(summary(config.rules), FULL_RULES.slice(0, 3));
      assertExampleAuth(config);
    });

    test('the combined config.json', async () => {
      const config = await loadSyncConfig({ config: await file('config.json', CONFIG_JSON) }, {});
      assert.deepEqual(summary(config.rules), FULL_RULES.slice(0, 3));
      assertExampleAuth(config);
    });

    test('a combined file without "auth" is anonymous', async () => {
      const config = await loadSyncConfig({ config: await file('config.json', JSON.stringify({ images: { 'a.io/x/y': 'b.io/x/y' } })) }, {});
      assert.equal(config.rules.length, 1);
      assert.equal(config.auth.covers('a.io', 'x/y'), false);
    });
  });

  describe('a real-world shell-generated pair (heredoc with $src/$dst and credentials from the environment)', () => {
    // From a CI script that writes conf/auth.yaml and conf/images.yaml with `cat > … <<EOF`, then
    // runs image-syncer v1.5.5. The shell expands the variables; unset ones leave `username:` empty.
    const AUTH_TEMPLATE = `##auth-hub << toomanyrequests: You have reached your pull rate limit.
# You may increase the limit by authenticating and upgrading
registry-1.docker.io:
  username: $DOCKER_REGISTRY_USER_dockerhub
  password: $DOCKER_REGISTRY_PW_dockerhub
registry.cn-shenzhen.aliyuncs.com:
  username: $DOCKER_REGISTRY_USER_infrastSubUser2
  password: $DOCKER_REGISTRY_PW_infrastSubUser2
  insecure: true #or:在docker下导入ca证书;
ccr.ccs.tencentyun.com:
  username: $DOCKER_REGISTRY_TENCLOUD_USER
  password: $DOCKER_REGISTRY_TENCLOUD_PASS
dockerhub.qingcloud.com:
  username: $DOCKER_REGISTRY_QCLOUD_USER
  password: $DOCKER_REGISTRY_QCLOUD_PASS
`;
    const IMAGES_TEMPLATE = `# builder,compile
$src/infrastlabs/x11-base:alpine-builder-gtk224: $dst/infrastlabs/x11-base:alpine-builder-gtk224
$src/infrastlabs/x11-base:alpine-builder: $dst/infrastlabs/x11-base:alpine-builder
# distros:rfs,core,app
$src/infrastlabs/x11-base:rootfs: $dst/infrastlabs/x11-base:rootfs
$src/infrastlabs/x11-base:core-alpine: $dst/infrastlabs/x11-base:core-alpine
$src/infrastlabs/x11-base:core-busybox: $dst/infrastlabs/x11-base:core-busybox #oth-x4
#
$src/infrastlabs/x11-base:core-alpine-3.2: $dst/infrastlabs/x11-base:core-alpine-3.2 
$src/infrastlabs/x11-base:core-ubuntu-24.04: $dst/infrastlabs/x11-base:core-ubuntu-24.04
#app
$src/infrastlabs/x11-base:app-opensuse-15.5: $dst/infrastlabs/x11-base:app-opensuse-15.5
`;
    const TAGS = ['alpine-builder-gtk224', 'alpine-builder', 'rootfs', 'core-alpine', 'core-busybox', 'core-alpine-3.2', 'core-ubuntu-24.04', 'app-opensuse-15.5'];
    // What the shell had: Hub and Tencent credentials set (Tencent usernames are numeric account IDs), Aliyun's unset.
    const SHELL = {
      src: 'registry-1.docker.io',
      dst: 'ccr.ccs.tencentyun.com',
      DOCKER_REGISTRY_USER_dockerhub: 'infrastlabs',
      DOCKER_REGISTRY_PW_dockerhub: 'hub-token',
      DOCKER_REGISTRY_TENCLOUD_USER: '100012345678',
      DOCKER_REGISTRY_TENCLOUD_PASS: 'ten-pass',
      DOCKER_REGISTRY_QCLOUD_USER: 'qing',
      DOCKER_REGISTRY_QCLOUD_PASS: 'qing-pass',
    };

    test('after the shell expands it', async () => {
      const config = await loadSyncConfig({ auth: await file('auth.yaml', expandEnv(AUTH_TEMPLATE, SHELL)), images: await file('images.yaml', expandEnv(IMAGES_TEMPLATE, SHELL)) }, {});
      assert.deepEqual(
        config.rules.map((rule) => [rule.key, rule.source.registry, rule.source.repository, rule.source.select]),
        TAGS.map((tag) => [`registry-1.docker.io/infrastlabs/x11-base:${tag}`, 'registry-1.docker.io', 'infrastlabs/x11-base', { kind: 'list', tags: [tag] }]),
      );
      assert.deepEqual(
        config.rules.map((rule) => rule.destinations),
        TAGS.map((tag) => [{ registry: 'ccr.ccs.tencentyun.com', repository: 'infrastlabs/x11-base', tags: [tag] }]),
      );
      const { auth } = config;
      assert.deepEqual(auth.credentials('registry-1.docker.io', 'infrastlabs/x11-base'), { username: 'infrastlabs', password: 'hub-token' });
      assert.deepEqual(auth.credentials('docker.io', 'infrastlabs/x11-base'), { username: 'infrastlabs', password: 'hub-token' });
      // A numeric YAML scalar is read as its text, as image-syncer's Go decoder does for string fields.
      assert.deepEqual(auth.credentials('ccr.ccs.tencentyun.com', 'infrastlabs/x11-base'), { username: '100012345678', password: 'ten-pass' });
      // Unset variables left `username:` and `password:` empty: anonymous, but the entry (and insecure) stands.
      assert.equal(auth.credentials('registry.cn-shenzhen.aliyuncs.com', 'infrastlabs/x11-base'), undefined);
      assert.equal(auth.covers('registry.cn-shenzhen.aliyuncs.com', 'infrastlabs/x11-base'), true);
      assert.equal(auth.insecure('registry.cn-shenzhen.aliyuncs.com'), true);
      assert.equal(auth.insecure('ccr.ccs.tencentyun.com'), false);
    });

    test('quoted $VARs left for skiff: destinations and credentials expand, with both spellings', async () => {
      const images = `"registry.cn-shenzhen.aliyuncs.com/infrastlabs/x11-base:core-alpine": "$DST/infrastlabs/x11-base:core-alpine"
"registry.cn-shenzhen.aliyuncs.com/infrastlabs/x11-base:core-ubuntu": ["\${DST}/infrastlabs/x11-base:core-ubuntu", "$MIRROR/infrastlabs/x11-base"]
`;
      const auth = `ccr.ccs.tencentyun.com: {username: "\${TEN_USER}", password: $TEN_PASS}\n`;
      const env = { DST: 'ccr.ccs.tencentyun.com', MIRROR: 'dockerhub.qingcloud.com', TEN_USER: 'u1', TEN_PASS: 'p1' };
      const config = await loadSyncConfig({ auth: await file('auth.yaml', auth), images: await file('images.yaml', images) }, env);
      assert.deepEqual(
        config.rules.map((rule) => rule.destinations),
        [
          [{ registry: 'ccr.ccs.tencentyun.com', repository: 'infrastlabs/x11-base', tags: ['core-alpine'] }],
          [
            { registry: 'ccr.ccs.tencentyun.com', repository: 'infrastlabs/x11-base', tags: ['core-ubuntu'] },
            { registry: 'dockerhub.qingcloud.com', repository: 'infrastlabs/x11-base' },
          ],
        ],
      );
      assert.deepEqual(config.auth.credentials('ccr.ccs.tencentyun.com', 'infrastlabs/x11-base'), { username: 'u1', password: 'p1' });
    });

    test('like image-syncer, a $VAR in a source is not expanded, and the error names the key', async () => {
      const images = await file('images.yaml', '"$SRC/infrastlabs/x11-base:core-alpine": "$DST/infrastlabs/x11-base:core-alpine"\n');
      await refused(() => loadSyncConfig({ images }, { SRC: 'a.io', DST: 'b.io' }), [images, '"$SRC/infrastlabs/x11-base:core-alpine"'], /bad registry host "\$SRC"/);
    });
  });

  describe('YAML scalars keep their text where image-syncer reads strings', () => {
    test('numeric passwords and usernames, leading zeros and exponents included', async () => {
      const auth = await file('auth.yaml', 'a.io:\n  username: 0042\n  password: 1e3\nb.io:\n  username: 12345678901234567890\n  password: 0x1F\n');
      const config = await loadSyncConfig({ auth, images: await file('images.json', '{"a.io/x/y": "b.io/x/y"}') }, {});
      assert.deepEqual(config.auth.credentials('a.io', 'x/y'), { username: '0042', password: '1e3' });
      assert.deepEqual(config.auth.credentials('b.io', 'x/y'), { username: '12345678901234567890', password: '0x1F' });
    });

    test('a numeric password in JSON is still an error (Go json refuses it too)', async () => {
      const auth = await file('auth.json', '{"a.io": {"username": "u", "password": 1234}}');
      await refused(async () => loadSyncConfig({ auth, images: await file('images.json', '{"a.io/x/y": "b.io/x/y"}') }, {}), [auth, '"a.io"'], /"password" must be a string/);
    });

    test('readConfigDocument: YAML booleans and null stay what they are', async () => {
      const document = await readConfigDocument(await file('auth.yaml', 'a.io:\n  insecure: true\n  username:\n'));
      assert.deepEqual(document, { 'a.io': { insecure: true, username: null } });
    });
  });

  describe('errors name the file (and the key) and say what is wrong', () => {
    test('bad JSON', async () => {
      const images = await file('images.json', '{"a.io/x/y": "b.io/x/y",}');
      await refused(() => loadSyncConfig({ images }, {}), [images], /not valid JSON/);
      const auth = await file('auth.json', '{"quay.io": {"username": "u"');
      await refused(async () => loadSyncConfig({ auth, images: await file('images.json', '{"a.io/x/y": "b.io/x/y"}') }, {}), [auth], /not valid JSON/);
    });

    test('JSON with the README\'s // comments is not JSON', async () => {
      const images = await file('images.json', '{\n  // rules\n  "a.io/x/y": "b.io/x/y"\n}');
      await refused(() => loadSyncConfig({ images }, {}), [images], /not valid JSON/);
    });

    test('bad YAML', async () => {
      const images = await file('images.yaml', 'a.io/x/y: b.io/x/y\n  - broken: [\n');
      await refused(() => loadSyncConfig({ images }, {}), [images], /not valid YAML/);
      const duplicate = await file('images.yaml', 'a.io/x/y: b.io/x/y\na.io/x/y: c.io/x/y\n');
      await refused(() => loadSyncConfig({ images: duplicate }, {}), [duplicate], /not valid YAML/);
    });

    test('the top level is not a mapping', async () => {
      const list = await file('images.json', '["a.io/x/y", "b.io/x/y"]');
      await refused(() => loadSyncConfig({ images: list }, {}), [list], /top level must be a mapping/);
      const scalar = await file('images.yaml', 'just a string\n');
      await refused(() => loadSyncConfig({ images: scalar }, {}), [scalar], /top level must be a mapping/);
      const yamlList = await file('auth.yaml', '- quay.io\n');
      await refused(async () => loadSyncConfig({ auth: yamlList, images: await file('images.json', '{"a.io/x/y": "b.io/x/y"}') }, {}), [yamlList], /top level must be a mapping/);
    });

    test('an empty images file has no rules', async () => {
      const empty = await file('images.yaml', '# nothing yet\n');
      await refused(() => loadSyncConfig({ images: empty }, {}), [empty], /no image rules/);
      const emptyJson = await file('images.json', '{}');
      await refused(() => loadSyncConfig({ images: emptyJson }, {}), [emptyJson], /no image rules/);
    });

    test('a file that cannot be read', async () => {
      const missing = join(dir, 'does-not-exist.json');
      await refused(() => loadSyncConfig({ images: missing }, {}), [missing], /cannot read/);
    });

    test('rule errors name the file and the key', async () => {
      const images = await file('images.yaml', 'quay.io/coreos/kube-rbac-proxy:v1.0: quay.io/ruohe/kube-rbac-proxy\n"": quay.io/ruohe/x\n');
      await refused(() => loadSyncConfig({ images }, {}), [images, 'key ""'], /source is empty/);
      const regex = await file('images.json', '{"quay.io/coreos/kube-rbac-proxy:/(/": "quay.io/ruohe/kube-rbac-proxy"}');
      await refused(() => loadSyncConfig({ images: regex }, {}), [regex, '"quay.io/coreos/kube-rbac-proxy:/(/"'], /bad tag regular expression/);
    });

    test('auth errors name the file and the key', async () => {
      const auth = await file('auth.yaml', 'quay.io:\n  username: u\n  password: p\n  token: t\n');
      await refused(async () => loadSyncConfig({ auth, images: await file('images.json', '{"a.io/x/y": "b.io/x/y"}') }, {}), [auth, '"quay.io"'], /unknown field "token"/);
    });

    test('--config with an unknown top-level key', async () => {
      const config = await file('config.yaml', `${CONFIG_YAML}\nregistry: registry.cn-beijing.aliyuncs.com\n`);
      await refused(() => loadSyncConfig({ config }, {}), [config, '"registry"'], /unknown top-level key .*expected "auth" and "images"/);
    });

    test('--config whose "auth" or "images" is not a mapping', async () => {
      const badAuth = await file('config.json', JSON.stringify({ auth: ['quay.io'], images: { 'a.io/x/y': 'b.io/x/y' } }));
      await refused(() => loadSyncConfig({ config: badAuth }, {}), [badAuth, '"auth"'], /must be a mapping/);
      const badImages = await file('config.json', JSON.stringify({ images: 'a.io/x/y' }));
      await refused(() => loadSyncConfig({ config: badImages }, {}), [badImages, '"images"'], /must be a mapping/);
    });

    test('--config errors inside "images" and "auth" name the file, the section and the key', async () => {
      const config = await file('config.json', JSON.stringify({ images: { 'a.io/x/y:v1': 'b.io/x/y:/v/' } }));
      await refused(() => loadSyncConfig({ config }, {}), [config, '(images)', '"a.io/x/y:v1"'], /destination cannot use a regular expression/);
      const auth = await file('config.json', JSON.stringify({ auth: { 'a.io': { insecure: 'true' } }, images: { 'a.io/x/y': 'b.io/x/y' } }));
      await refused(() => loadSyncConfig({ config: auth }, {}), [auth, '(auth)', '"a.io"'], /"insecure" must be true or false/);
    });

    test('--config with no images', async () => {
      const config = await file('config.yaml', 'auth:\n  quay.io:\n    username: u\n    password: p\n');
      await refused(() => loadSyncConfig({ config }, {}), [config, '"images"'], /no rules/);
    });

    test('missing --images', async () => {
      await refused(() => loadSyncConfig({}, {}), ['--images', '--config'], /no image rules/);
      const auth = await file('auth.json', AUTH_JSON);
      await refused(() => loadSyncConfig({ auth }, {}), ['--images'], /no image rules/);
    });

    test('--config and --images together', async () => {
      const config = await file('config.json', CONFIG_JSON);
      const images = await file('images.json', IMAGES_JSON);
      await refused(() => loadSyncConfig({ config, images }, {}), ['--config', '--images'], /not both/);
    });
  });
});
