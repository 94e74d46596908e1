import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../src/errors/config-error.ts';
import { AuthTable } from '../../src/sync/auth-table.ts';

const FILE = '/etc/skiff/auth.json';

/** image-syncer's example/auth.json, as the README shows it with docker.io. */
const EXAMPLE = {
  'quay.io': { username: 'xxx', password: 'xxxxxxxxx', insecure: true },
  'registry.cn-beijing.aliyuncs.com': { username: 'xxx', password: 'xxxxxxxxx' },
  'docker.io': { username: 'xxx', password: 'xxxxxxxxxx' },
  'quay.io/coreos': { username: 'abc', password: 'xxxxxxxxx', insecure: true },
};

function refused(document: Record<string, unknown>, key: string, what: RegExp): void {
  assert.throws(
    () => AuthTable.parse(document, FILE, {}),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      assert.ok(error.message.includes(FILE), `message should name the file: ${error.message}`);
      assert.ok(error.message.includes(JSON.stringify(key)), `message should name the key ${key}: ${error.message}`);
      assert.match(error.message, what);
      return true;
    },
  );
}

describe('auth table', () => {
  test('the longest prefix wins: quay.io/coreos over quay.io', () => {
    const auth = AuthTable.parse(EXAMPLE, FILE, {});
    assert.deepEqual(auth.credentials('quay.io', 'coreos/kube-rbac-proxy'), { username: 'abc', password: 'xxxxxxxxx' });
    assert.deepEqual(auth.credentials('quay.io', 'ruohe/kube-rbac-proxy'), { username: 'xxx', password: 'xxxxxxxxx' });
    assert.deepEqual(auth.credentials('registry.cn-beijing.aliyuncs.com', 'ns/app'), { username: 'xxx', password: 'xxxxxxxxx' });
    assert.deepEqual(auth.credentials('docker.io', 'library/nginx'), { username: 'xxx', password: 'xxxxxxxxxx' });
    assert.equal(auth.credentials('ghcr.io', 'owner/app'), undefined);
    assert.equal(auth.covers('ghcr.io', 'owner/app'), false);
  });

  test('the order of keys in the file does not matter', () => {
    const reversed = Object.fromEntries(Object.entries(EXAMPLE).reverse());
    const auth = AuthTable.parse(reversed, FILE, {});
    assert.equal(auth.credentials('quay.io', 'coreos/x')?.username, 'abc');
    assert.equal(auth.credentials('quay.io', 'other/x')?.username, 'xxx');
  });

  test('prefixes match on a path boundary: quay.io/coreos does not cover quay.io/coreosX/y', () => {
    const auth = AuthTable.parse(EXAMPLE, FILE, {});
    assert.equal(auth.credentials('quay.io', 'coreosX/y')?.username, 'xxx');
    assert.equal(auth.credentials('quay.io', 'coreos-extra/y')?.username, 'xxx');
    // A repository named exactly like the key is covered by it.
    assert.equal(auth.credentials('quay.io', 'coreos')?.username, 'abc');
    // quay.io does not cover quay.iox.
    assert.equal(auth.lookup('quay.iox', 'coreos/y'), undefined);
  });

  test('a key may name the whole repository', () => {
    const auth = AuthTable.parse({ 'a.io/team/app': { username: 'u', password: 'p' } }, FILE, {});
    assert.deepEqual(auth.credentials('a.io', 'team/app'), { username: 'u', password: 'p' });
    assert.equal(auth.credentials('a.io', 'team/app2'), undefined);
    assert.equal(auth.credentials('a.io', 'team'), undefined);
  });

  test('$VAR and ${VAR} are expanded in username and password', () => {
    const auth = AuthTable.parse(
      {
        'quay.io': { username: '$QUAY_USER', password: '${QUAY_PASS}' },
        'a.io': { username: 'robot$${SUFFIX}', password: 'pre-${QUAY_PASS}-post' },
      },
      FILE,
      { QUAY_USER: 'ruohe', QUAY_PASS: 'hunter2', SUFFIX: 'ci' },
    );
    assert.deepEqual(auth.credentials('quay.io', 'coreos/x'), { username: 'ruohe', password: 'hunter2' });
    assert.deepEqual(auth.credentials('a.io', 'x/y'), { username: 'robot$ci', password: 'pre-hunter2-post' });
  });

  test('credentials only when both are non-empty; otherwise anonymous, but still covered', () => {
    const auth = AuthTable.parse(
      {
        'a.io': { username: 'user' },
        'b.io': { password: 'pass' },
        'c.io': { username: '$UNSET_SKIFF_USER', password: '$UNSET_SKIFF_PASS' },
        'd.io': { username: '', password: 'p' },
        'e.io': { insecure: true },
      },
      FILE,
      {},
    );
    for (const registry of ['a.io', 'b.io', 'c.io', 'd.io', 'e.io']) {
      assert.equal(auth.credentials(registry, 'x/y'), undefined, registry);
      assert.equal(auth.covers(registry, 'x/y'), true, registry);
    }
  });

  test('insecure: per registry, from any entry of that registry', () => {
    const auth = AuthTable.parse(
      {
        'plain.local:5000': { insecure: true },
        'tls.io': { username: 'u', password: 'p', insecure: false },
        'mixed.io/team': { insecure: true },
      },
      FILE,
      {},
    );
    assert.equal(auth.insecure('plain.local:5000'), true);
    assert.equal(auth.insecure('tls.io'), false);
    assert.equal(auth.insecure('mixed.io'), true);
    assert.equal(auth.insecure('plain.local'), false);
    assert.equal(auth.insecure('nowhere.io'), false);
    assert.deepEqual(auth.lookup('tls.io', 'x/y'), { username: 'u', password: 'p', insecure: false });
  });

  test('Docker Hub aliases apply to docker.io', () => {
    for (const alias of ['registry.hub.docker.com', 'registry-1.docker.io', 'index.docker.io', 'hub.docker.com', 'https://index.docker.io/']) {
      const auth = AuthTable.parse({ [alias]: { username: 'hub', password: 'token' } }, FILE, {});
      assert.deepEqual(auth.credentials('docker.io', 'library/nginx'), { username: 'hub', password: 'token' }, alias);
      assert.equal(auth.credentials('quay.io', 'library/nginx'), undefined, alias);
    }
    const namespaced = AuthTable.parse({ 'registry.hub.docker.com/bitnami': { username: 'b', password: 'p' }, 'docker.io': { username: 'd', password: 'p' } }, FILE, {});
    assert.equal(namespaced.credentials('docker.io', 'bitnami/redis')?.username, 'b');
    assert.equal(namespaced.credentials('docker.io', 'library/redis')?.username, 'd');
  });

  test('a source written with a Docker Hub alias host finds the docker.io entry', () => {
    // images.yaml may say registry-1.docker.io/infrastlabs/x11-base, which stays that host.
    const auth = AuthTable.parse({ 'docker.io': { username: 'hub', password: 'token', insecure: false } }, FILE, {});
    assert.deepEqual(auth.credentials('registry-1.docker.io', 'infrastlabs/x11-base'), { username: 'hub', password: 'token' });
    const aliased = AuthTable.parse({ 'registry-1.docker.io': { username: 'hub', password: 'token', insecure: true } }, FILE, {});
    assert.deepEqual(aliased.credentials('registry-1.docker.io', 'infrastlabs/x11-base'), { username: 'hub', password: 'token' });
    assert.equal(aliased.insecure('registry-1.docker.io'), true);
    assert.equal(aliased.insecure('docker.io'), true);
  });

  test('null fields (YAML `username:` left empty) mean unset, as in image-syncer', () => {
    const auth = AuthTable.parse({ 'a.io': { username: null, password: null, insecure: null } }, FILE, {});
    assert.equal(auth.credentials('a.io', 'x/y'), undefined);
    assert.equal(auth.insecure('a.io'), false);
    assert.equal(auth.covers('a.io', 'x/y'), true);
    // An entry that is null altogether is an entry with nothing in it.
    assert.equal(AuthTable.parse({ 'b.io': null }, FILE, {}).covers('b.io', 'x/y'), true);
  });

  test('an empty table covers nothing', () => {
    const auth = new AuthTable();
    assert.equal(auth.lookup('quay.io', 'a/b'), undefined);
    assert.equal(auth.insecure('quay.io'), false);
  });

  describe('errors name the file and the key', () => {
    test('unknown fields', () => {
      refused({ 'quay.io': { username: 'u', password: 'p', email: 'u@example.com' } }, 'quay.io', /unknown field "email" \(expected username, password, insecure\)/);
      refused({ 'quay.io': { auth: 'dTpw' } }, 'quay.io', /unknown field "auth"/);
    });

    test('wrong types', () => {
      refused({ 'quay.io': { username: 'u', password: 42 } }, 'quay.io', /"password" must be a string/);
      refused({ 'quay.io': { username: ['u'] } }, 'quay.io', /"username" must be a string/);
      refused({ 'quay.io': { insecure: 'yes' } }, 'quay.io', /"insecure" must be true or false/);
      refused({ 'quay.io': 'user:pass' }, 'quay.io', /expected \{"username", "password", "insecure"\}/);
      refused({ 'quay.io': ['u', 'p'] }, 'quay.io', /expected \{"username", "password", "insecure"\}/);
    });

    test('an empty key', () => {
      refused({ '': { username: 'u', password: 'p' } }, '', /registry key is empty/);
    });
  });
});
