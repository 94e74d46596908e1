import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { expandEnv } from '../../src/sync/env-expand.ts';
import { parseDestination, parseImageRules, parseSource, type ImageRule } from '../../src/sync/image-rule.ts';

const FILE = '/etc/skiff/images.json';
const DIGEST = digestOf('kube-rbac-proxy manifest');
const OTHER_DIGEST = digestOf('another manifest');

function rulesOf(document: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): ImageRule[] {
  return parseImageRules(document, FILE, env);
}

function only(document: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): ImageRule {
  const rules = rulesOf(document, env);
  assert.equal(rules.length, 1);
  return rules[0]!;
}

/** Asserts a ConfigError whose message names the file, the key, and matches `what`. */
function refused(document: Record<string, unknown>, key: string, what: RegExp, env: NodeJS.ProcessEnv = {}): string {
  let message = '';
  assert.throws(
    () => parseImageRules(document, FILE, env),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
      message = error.message;
      return true;
    },
  );
  assert.ok(message.includes(FILE), `message should name the file: ${message}`);
  assert.ok(message.includes(JSON.stringify(key)), `message should name the key ${JSON.stringify(key)}: ${message}`);
  assert.match(message, what);
  return message;
}

describe('image rules: source forms', () => {
  test('a bare repository takes all tags', () => {
    const rule = only({ 'quay.io/coreos/kube-rbac-proxy': 'quay.io/ruohe/kube-rbac-proxy' });
    assert.equal(rule.key, 'quay.io/coreos/kube-rbac-proxy');
    assert.deepEqual(rule.source, { registry: 'quay.io', repository: 'coreos/kube-rbac-proxy', select: { kind: 'all' } });
    assert.deepEqual(rule.destinations, [{ registry: 'quay.io', repository: 'ruohe/kube-rbac-proxy' }]);
  });

  test('one tag and a comma list (spaces trimmed, repeats dropped, order kept)', () => {
    assert.deepEqual(only({ 'quay.io/coreos/kube-rbac-proxy:v1.0': 'quay.io/ruohe/kube-rbac-proxy' }).source.select, { kind: 'list', tags: ['v1.0'] });
    assert.deepEqual(only({ 'quay.io/coreos/kube-rbac-proxy:v1.0,v2.0': 'quay.io/ruohe/kube-rbac-proxy' }).source.select, { kind: 'list', tags: ['v1.0', 'v2.0'] });
    assert.deepEqual(only({ 'a.io/x/y:v2, v1 ,v2': 'b.io/x/y' }).source.select, { kind: 'list', tags: ['v2', 'v1'] });
  });

  test('/regex/ is one unanchored regular expression, commas and all', () => {
    const { select } = only({ 'quay.io/coreos/kube-rbac-proxy:/a+/': 'quay.io/ruohe/kube-rbac-proxy' }).source;
    assert.equal(select.kind, 'regex');
    assert.ok(select.kind === 'regex');
    assert.equal(select.pattern.source, 'a+');
    assert.ok(select.pattern.test('v1.0-alpha'), 'unanchored: matches in the middle');
    assert.ok(!select.pattern.test('v1.0'));
    const counted = only({ 'a.io/x/y:/^v1\\.\\d{1,2}$/': 'b.io/x/y' }).source.select;
    assert.ok(counted.kind === 'regex');
    assert.ok(counted.pattern.test('v1.25'));
    assert.ok(!counted.pattern.test('v1.250'));
  });

  test('@digest selects one manifest', () => {
    const rule = only({ [`quay.io/coreos/kube-rbac-proxy@${DIGEST}`]: 'quay.io/ruohe/kube-rbac-proxy' });
    assert.deepEqual(rule.source.select, { kind: 'digest', digest: DIGEST });
    assert.deepEqual(rule.destinations, [{ registry: 'quay.io', repository: 'ruohe/kube-rbac-proxy' }]);
  });

  test('a registry with a port: 127.0.0.1:5000/a/b:v1', () => {
    const rule = only({ '127.0.0.1:5000/a/b:v1': 'localhost:5001/c/d:v1' });
    assert.deepEqual(rule.source, { registry: '127.0.0.1:5000', repository: 'a/b', select: { kind: 'list', tags: ['v1'] } });
    assert.deepEqual(rule.destinations, [{ registry: 'localhost:5001', repository: 'c/d', tags: ['v1'] }]);
  });

  test('Docker Hub short names get docker.io and library/', () => {
    assert.deepEqual(only({ 'nginx:1.25': 'registry.example.com/mirror/nginx' }).source, {
      registry: 'docker.io',
      repository: 'library/nginx',
      select: { kind: 'list', tags: ['1.25'] },
    });
    assert.deepEqual(parseSource('bitnami/redis', 'here'), { registry: 'docker.io', repository: 'bitnami/redis', select: { kind: 'all' } });
    assert.deepEqual(parseSource('index.docker.io/library/alpine:3', 'here'), { registry: 'docker.io', repository: 'library/alpine', select: { kind: 'list', tags: ['3'] } });
  });

  test('nginx:5000 is a tag, not a port', () => {
    assert.deepEqual(parseSource('nginx:5000', 'here'), { registry: 'docker.io', repository: 'library/nginx', select: { kind: 'list', tags: ['5000'] } });
    // With a path after it, the same text is a registry with a port.
    assert.deepEqual(parseSource('nginx:5000/app', 'here'), { registry: 'nginx:5000', repository: 'app', select: { kind: 'all' } });
  });
});

describe('image rules: destinations', () => {
  test('a string or an array; an array fans out and duplicates are removed', () => {
    const rule = only({
      'quay.io/coreos/kube-rbac-proxy:v1.1': ['quay.io/ruohe/kube-rbac-proxy1', 'quay.io/ruohe/kube-rbac-proxy2', 'quay.io/ruohe/kube-rbac-proxy1', ' quay.io/ruohe/kube-rbac-proxy2 '],
    });
    assert.deepEqual(rule.destinations, [
      { registry: 'quay.io', repository: 'ruohe/kube-rbac-proxy1' },
      { registry: 'quay.io', repository: 'ruohe/kube-rbac-proxy2' },
    ]);
  });

  test('duplicates that differ only after expansion are removed too', () => {
    const rule = only({ 'a.io/x/y:v1': ['$DST/x/y', '${DST}/x/y', 'b.io/x/y'] }, { DST: 'b.io' });
    assert.deepEqual(rule.destinations, [{ registry: 'b.io', repository: 'x/y' }]);
  });

  test('destination tags rename the source tags in order', () => {
    const rule = only({ 'a.io/x/y:v1,v2': 'b.io/x/y:one,two' });
    assert.deepEqual(rule.destinations, [{ registry: 'b.io', repository: 'x/y', tags: ['one', 'two'] }]);
    // One tag renamed; a digest source may be given a tag.
    assert.deepEqual(only({ 'a.io/x/y:v1': 'b.io/x/z:stable' }).destinations, [{ registry: 'b.io', repository: 'x/z', tags: ['stable'] }]);
    assert.deepEqual(only({ [`a.io/x/y@${DIGEST}`]: 'b.io/x/z:pinned' }).destinations, [{ registry: 'b.io', repository: 'x/z', tags: ['pinned'] }]);
  });

  test('an all-tags or regex source may name destination tags; the planner checks the count later', () => {
    assert.deepEqual(only({ 'a.io/x/y': 'b.io/x/y:latest' }).destinations, [{ registry: 'b.io', repository: 'x/y', tags: ['latest'] }]);
    assert.deepEqual(only({ 'a.io/x/y:/^v/': 'b.io/x/y:a,b' }).destinations, [{ registry: 'b.io', repository: 'x/y', tags: ['a', 'b'] }]);
  });

  test('a rename count mismatch is a ConfigError naming the file and key', () => {
    const message = refused({ 'a.io/x/y:v1,v2': 'b.io/x/y:one' }, 'a.io/x/y:v1,v2', /names 1 tag\(s\) but the source has 2/);
    assert.match(message, /rename in order/);
    refused({ 'a.io/x/y:v1': 'b.io/x/y:one,two' }, 'a.io/x/y:v1', /names 2 tag\(s\) but the source has 1/);
    refused({ [`a.io/x/y@${DIGEST}`]: 'b.io/x/y:one,two' }, `a.io/x/y@${DIGEST}`, /names 2 tag\(s\) but the source has 1/);
  });

  test('a destination digest must equal the source digest', () => {
    assert.deepEqual(only({ [`a.io/x/y@${DIGEST}`]: `b.io/x/y@${DIGEST}` }).destinations, [{ registry: 'b.io', repository: 'x/y', digest: DIGEST }]);
    refused({ [`a.io/x/y@${DIGEST}`]: `b.io/x/y@${OTHER_DIGEST}` }, `a.io/x/y@${DIGEST}`, /destination digest must equal the source digest/);
    refused({ 'a.io/x/y:v1': `b.io/x/y@${DIGEST}` }, 'a.io/x/y:v1', /destination digest must equal the source digest/);
    refused({ 'a.io/x/y': `b.io/x/y@${DIGEST}` }, 'a.io/x/y', /destination digest must equal the source digest/);
  });

  test('$VAR and ${VAR} are expanded in destinations', () => {
    const env = { DST: 'registry.cn-beijing.aliyuncs.com', NS: 'ruohe', TAG: 'v9' };
    const rule = only({ 'quay.io/coreos/kube-rbac-proxy:v1.0': ['$DST/$NS/kube-rbac-proxy', '${DST}/${NS}-mirror/kube-rbac-proxy:${TAG}'] }, env);
    assert.deepEqual(rule.destinations, [
      { registry: 'registry.cn-beijing.aliyuncs.com', repository: 'ruohe/kube-rbac-proxy' },
      { registry: 'registry.cn-beijing.aliyuncs.com', repository: 'ruohe-mirror/kube-rbac-proxy', tags: ['v9'] },
    ]);
  });

  test('an unset variable expands to nothing, as Go os.ExpandEnv does, and the result is checked', () => {
    refused({ 'a.io/x/y': '$UNSET_SKIFF_DST/x/y' }, 'a.io/x/y', /"\/x\/y" is not registry\/repository/);
  });

  test('parseDestination on its own: a registry with a port and a Hub short name', () => {
    const source = parseSource('a.io/x/y:v1', 'here');
    assert.deepEqual(parseDestination('127.0.0.1:5000/a/b:v1', source, 'here'), { registry: '127.0.0.1:5000', repository: 'a/b', tags: ['v1'] });
    assert.deepEqual(parseDestination('nginx:5000', source, 'here'), { registry: 'docker.io', repository: 'library/nginx', tags: ['5000'] });
  });
});

describe('env expansion', () => {
  test('$VAR, ${VAR}, unset, and a lone $ is kept', () => {
    const env = { USER_A: 'alice', PW: 's3cret' };
    assert.equal(expandEnv('$USER_A:${PW}', env), 'alice:s3cret');
    assert.equal(expandEnv('x${MISSING}y$MISSING', env), 'xy');
    assert.equal(expandEnv('price: 5$', env), 'price: 5$');
    assert.equal(expandEnv('a$-b', env), 'a$-b');
    assert.equal(expandEnv('no variables', env), 'no variables');
  });
});

describe('image rules: errors name the file and the key', () => {
  test('an empty source', () => {
    refused({ '': 'b.io/x/y' }, '', /source is empty/);
    refused({ '   ': 'b.io/x/y' }, '   ', /source is empty/);
  });

  test('an empty destination, as a string, in a list, or an empty list', () => {
    refused({ 'a.io/x/y': '' }, 'a.io/x/y', /destination is empty/);
    refused({ 'a.io/x/y': '  ' }, 'a.io/x/y', /destination is empty/);
    refused({ 'a.io/x/y': ['b.io/x/y', ''] }, 'a.io/x/y', /destination is empty/);
    refused({ 'a.io/x/y': [] }, 'a.io/x/y', /non-empty list of strings/);
  });

  test('a destination that is not a string or a list of strings', () => {
    refused({ 'a.io/x/y': 42 }, 'a.io/x/y', /must be a string or a non-empty list of strings, got 42/);
    refused({ 'a.io/x/y': null }, 'a.io/x/y', /must be a string or a non-empty list of strings, got null/);
    refused({ 'a.io/x/y': { to: 'b.io/x/y' } }, 'a.io/x/y', /must be a string or a non-empty list of strings/);
    refused({ 'a.io/x/y': ['b.io/x/y', 7] }, 'a.io/x/y', /must be a string or a non-empty list of strings/);
  });

  test('a bad tag, in the source or the destination', () => {
    refused({ 'a.io/x/y:-bad': 'b.io/x/y' }, 'a.io/x/y:-bad', /"-bad" is not a valid tag/);
    refused({ 'a.io/x/y:v1,': 'b.io/x/y' }, 'a.io/x/y:v1,', /"" is not a valid tag/);
    refused({ 'a.io/x/y:': 'b.io/x/y' }, 'a.io/x/y:', /"" is not a valid tag/);
    refused({ 'a.io/x/y:v1': 'b.io/x/y:bad!tag' }, 'a.io/x/y:v1', /"bad!tag" is not a valid tag/);
  });

  test('a bad regular expression', () => {
    refused({ 'a.io/x/y:/[unclosed/': 'b.io/x/y' }, 'a.io/x/y:/[unclosed/', /bad tag regular expression/);
  });

  test('a bad digest', () => {
    refused({ 'a.io/x/y@sha256:1234': 'b.io/x/y' }, 'a.io/x/y@sha256:1234', /"sha256:1234" is not a digest/);
    refused({ [`a.io/x/y@${DIGEST}`]: 'b.io/x/y@md5:abc' }, `a.io/x/y@${DIGEST}`, /"md5:abc" is not a digest/);
  });

  test('tags and a digest both', () => {
    refused({ [`a.io/x/y:v1@${DIGEST}`]: 'b.io/x/y' }, `a.io/x/y:v1@${DIGEST}`, /tags or a digest, not both/);
  });

  test('a regular expression in the destination', () => {
    refused({ 'a.io/x/y:/^v1/': 'b.io/x/y:/^v1/' }, 'a.io/x/y:/^v1/', /destination cannot use a regular expression/);
  });

  test('a bad repository name or registry host', () => {
    refused({ 'a.io/X Y': 'b.io/x/y' }, 'a.io/X Y', /invalid reference format/);
    refused({ 'a.io/x/y': 'b.io/UPPER/case' }, 'a.io/x/y', /invalid reference format/);
  });

  test('the first bad rule stops parsing, after the good ones', () => {
    refused({ 'a.io/x/y': 'b.io/x/y', 'a.io/x/z:/(/': 'b.io/x/z' }, 'a.io/x/z:/(/', /bad tag regular expression/);
  });
});
