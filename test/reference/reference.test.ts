import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { digestOf } from '../../src/digest/digest.ts';
import {
  DEFAULT_TAG,
  DOCKER_HUB_API_HOST,
  DOCKER_HUB_DOMAIN,
  InvalidReferenceError,
  canonicalName,
  familiarName,
  fetchTarget,
  formatFamiliar,
  formatReference,
  parseReference,
  type Reference,
} from '../../src/reference/reference.ts';

const D = digestOf('reference test');
const HEX64 = D.slice('sha256:'.length);

describe('parseReference: Docker normalization', () => {
  const cases: [string, Reference][] = [
    ['alpine', { domain: 'docker.io', path: 'library/alpine', tag: 'latest' }],
    ['alpine:3.19', { domain: 'docker.io', path: 'library/alpine', tag: '3.19' }],
    ['user/app', { domain: 'docker.io', path: 'user/app', tag: 'latest' }],
    ['user/app/sub:v1', { domain: 'docker.io', path: 'user/app/sub', tag: 'v1' }],
    ['docker.io/alpine', { domain: 'docker.io', path: 'library/alpine', tag: 'latest' }],
    ['docker.io/library/alpine:edge', { domain: 'docker.io', path: 'library/alpine', tag: 'edge' }],
    ['index.docker.io/x', { domain: 'docker.io', path: 'library/x', tag: 'latest' }],
    ['index.docker.io/user/x:1', { domain: 'docker.io', path: 'user/x', tag: '1' }],
    ['localhost/x', { domain: 'localhost', path: 'x', tag: 'latest' }],
    ['localhost:5000/x', { domain: 'localhost:5000', path: 'x', tag: 'latest' }],
    ['localhost:5000/a/b:1.0', { domain: 'localhost:5000', path: 'a/b', tag: '1.0' }],
    [`example.com/a/b:tag@${D}`, { domain: 'example.com', path: 'a/b', tag: 'tag', digest: D }],
    [`example.com/a/b@${D}`, { domain: 'example.com', path: 'a/b', digest: D }],
    [`alpine@${D}`, { domain: 'docker.io', path: 'library/alpine', digest: D }],
    [`alpine:3@${D}`, { domain: 'docker.io', path: 'library/alpine', tag: '3', digest: D }],
    ['example.com:443/a', { domain: 'example.com:443', path: 'a', tag: 'latest' }],
    ['ghcr.io/o/app:v2', { domain: 'ghcr.io', path: 'o/app', tag: 'v2' }],
    ['Foo/bar', { domain: 'Foo', path: 'bar', tag: 'latest' }],
    ['REGISTRY/bar', { domain: 'REGISTRY', path: 'bar', tag: 'latest' }],
    ['myhost/bar', { domain: 'docker.io', path: 'myhost/bar', tag: 'latest' }],
    ['[::1]:5000/x', { domain: '[::1]:5000', path: 'x', tag: 'latest' }],
    ['localhost:5000', { domain: 'docker.io', path: 'library/localhost', tag: '5000' }],
    ['registry-1.docker.io/library/alpine', { domain: 'registry-1.docker.io', path: 'library/alpine', tag: 'latest' }],
    [`user/${HEX64}`, { domain: 'docker.io', path: `user/${HEX64}`, tag: 'latest' }],
    ['a__b/c--d.e_f', { domain: 'docker.io', path: 'a__b/c--d.e_f', tag: 'latest' }],
  ];
  for (const [input, expected] of cases) {
    test(input.length > 60 ? `${input.slice(0, 60)}…` : input, () => {
      assert.deepEqual(parseReference(input), expected);
    });
  }

  test('defaultTag: false leaves the tag unset', () => {
    assert.deepEqual(parseReference('alpine', { defaultTag: false }), { domain: 'docker.io', path: 'library/alpine' });
    assert.deepEqual(parseReference('alpine:3', { defaultTag: false }), { domain: 'docker.io', path: 'library/alpine', tag: '3' });
  });

  test('constants', () => {
    assert.equal(DOCKER_HUB_DOMAIN, 'docker.io');
    assert.equal(DOCKER_HUB_API_HOST, 'registry-1.docker.io');
    assert.equal(DEFAULT_TAG, 'latest');
  });
});

describe('parseReference: rejections', () => {
  const cases: [string, string][] = [
    ['empty', ''],
    ['uppercase single component', 'Alpine'],
    ['uppercase in path', 'user/App'],
    ['uppercase in path after domain', 'example.com/Foo'],
    ['64-hex name (looks like an image ID)', HEX64],
    ['empty tag', 'alpine:'],
    ['tag starting with "-"', 'alpine:-x'],
    ['tag starting with "."', 'alpine:.x'],
    ['tag with "+"', 'alpine:1+2'],
    ['tag of 129 characters', `alpine:${'a'.repeat(129)}`],
    ['short digest', 'alpine@sha256:abc'],
    ['empty digest', 'alpine@'],
    ['uppercase digest', `alpine@sha256:${HEX64.toUpperCase()}`],
    ['unknown digest algorithm', `alpine@md5:${'a'.repeat(32)}`],
    ['two "@"', `alpine@x@${D}`],
    ['digest only', `@${D}`],
    ['empty path after domain', 'example.com/'],
    ['leading slash', '/alpine'],
    ['double slash', 'a//b'],
    ['trailing slash', 'alpine/'],
    ['domain starting with "-"', '-bad.com/x'],
    ['non-numeric port', 'example.com:abc/x'],
    ['two tags', 'alpine:1:2'],
    ['whitespace', ' alpine'],
    ['unicode', 'alpïne'],
    ['path with ..', 'example.com/../x'],
  ];
  for (const [label, input] of cases) {
    test(label, () => {
      assert.throws(() => parseReference(input), (e: unknown) => {
        assert.ok(e instanceof InvalidReferenceError, `expected InvalidReferenceError, got ${String(e)}`);
        assert.equal(e.input, input);
        return true;
      });
    });
  }

  test('tag grammar: 128 characters is the maximum, "_" may start a tag, "." and "-" inside', () => {
    assert.equal(parseReference(`alpine:${'a'.repeat(128)}`).tag, 'a'.repeat(128));
    assert.equal(parseReference('alpine:_x').tag, '_x');
    assert.equal(parseReference('alpine:A.b-C_9').tag, 'A.b-C_9');
  });

  test('the whole normalized name is limited to 255 characters', () => {
    // example.com/ is 12 characters
    assert.equal(parseReference(`example.com/${'a'.repeat(243)}`).path.length, 243);
    assert.throws(() => parseReference(`example.com/${'a'.repeat(244)}`), InvalidReferenceError);
    // docker.io/library/ is 18 characters
    assert.equal(parseReference('a'.repeat(237)).path, `library/${'a'.repeat(237)}`);
    assert.throws(() => parseReference('a'.repeat(238)), InvalidReferenceError);
    assert.throws(() => parseReference(`${'a'.repeat(300)}:tag`), InvalidReferenceError);
  });
});

describe('familiar and canonical forms', () => {
  const cases: [string, string, string][] = [
    // input, familiarName, formatFamiliar
    ['alpine', 'alpine', 'alpine:latest'],
    ['docker.io/library/alpine:3', 'alpine', 'alpine:3'],
    ['user/app', 'user/app', 'user/app:latest'],
    ['docker.io/library/foo/bar', 'library/foo/bar', 'library/foo/bar:latest'],
    ['ghcr.io/o/app:v1', 'ghcr.io/o/app', 'ghcr.io/o/app:v1'],
    ['localhost:5000/x:1', 'localhost:5000/x', 'localhost:5000/x:1'],
    [`alpine@${D}`, 'alpine', `alpine@${D}`],
    [`alpine:3@${D}`, 'alpine', `alpine:3@${D}`],
  ];
  for (const [input, name, full] of cases) {
    test(input.length > 60 ? `${input.slice(0, 60)}…` : input, () => {
      const ref = parseReference(input);
      assert.equal(familiarName(ref), name);
      assert.equal(formatFamiliar(ref), full);
    });
  }

  test('canonicalName and formatReference', () => {
    const ref = parseReference('alpine');
    assert.equal(canonicalName(ref), 'docker.io/library/alpine');
    assert.equal(formatReference(ref), 'docker.io/library/alpine:latest');
    assert.equal(formatReference(parseReference(`example.com/a/b:tag@${D}`)), `example.com/a/b:tag@${D}`);
  });
});

describe('fetchTarget', () => {
  test('the digest wins over the tag', () => {
    assert.equal(fetchTarget(parseReference(`alpine:3@${D}`)), D);
    assert.equal(fetchTarget(parseReference(`alpine@${D}`)), D);
  });
  test('the tag when there is no digest', () => {
    assert.equal(fetchTarget(parseReference('alpine:3')), '3');
    assert.equal(fetchTarget(parseReference('alpine')), 'latest');
  });
  test('latest when neither is set', () => {
    assert.equal(fetchTarget(parseReference('alpine', { defaultTag: false })), 'latest');
  });
});

describe('properties', () => {
  const alnum = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 1, maxLength: 6 });
  const separator = fc.constantFrom('.', '_', '__', '-', '--');
  const component = (separators: fc.Arbitrary<string>) =>
    fc.tuple(alnum, fc.array(fc.tuple(separators, alnum), { maxLength: 2 })).map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
  // A first component with a "." would be read as a registry host in the familiar form (as in distribution/reference).
  const path = fc
    .tuple(component(fc.constantFrom('_', '__', '-', '--')), fc.array(component(separator), { maxLength: 3 }))
    .map(([first, rest]) => [first, ...rest].join('/'));
  const domain = fc.constantFrom('', 'docker.io/', 'index.docker.io/', 'ghcr.io/', 'localhost/', 'localhost:5000/', 'example.com:443/', 'Registry/', '[::1]:5000/');
  const tag = fc.option(fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}$/), { nil: undefined });
  const digest = fc.option(fc.uint8Array({ maxLength: 8 }).map((b) => digestOf(b)), { nil: undefined });
  const input = fc
    .tuple(domain, path, tag, digest)
    .map(([d, p, t, g]) => `${d}${p}${t !== undefined ? `:${t}` : ''}${g !== undefined ? `@${g}` : ''}`);

  test('formatReference and formatFamiliar both parse back to the same reference', () => {
    fc.assert(
      fc.property(input, (text) => {
        const ref = parseReference(text);
        assert.deepEqual(parseReference(formatReference(ref)), ref);
        assert.deepEqual(parseReference(formatFamiliar(ref)), ref);
        assert.ok(formatReference(ref).startsWith(`${ref.domain}/`));
      }),
      { numRuns: 300 },
    );
  });

  test('parsing never throws anything but InvalidReferenceError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (text) => {
        try {
          const ref = parseReference(text);
          assert.ok(ref.path.length > 0);
        } catch (error) {
          assert.ok(error instanceof InvalidReferenceError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
