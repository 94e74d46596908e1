import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_NAME_LENGTH, isValidRepositoryName, isValidTag, nameProblem } from '../../src/reference/name.ts';

describe('repository names: accepted', () => {
  const good = [
    'a',
    '0',
    'alpine',
    'library/alpine',
    'a/b/c/d/e',
    'a.b',
    'a_b',
    'a__b',
    'a-b',
    'a--b',
    'a----b',
    'a.b_c__d-e--f',
    'my-org/my.app_v2',
    '9/8/7',
    'a'.repeat(MAX_NAME_LENGTH),
    `${'a/'.repeat(127)}a`, // 255 characters of single-letter components
  ];
  for (const name of good) {
    test(JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…(${name.length})` : name), () => {
      assert.equal(nameProblem(name), undefined);
      assert.equal(isValidRepositoryName(name), true);
    });
  }
});

describe('repository names: hostile or malformed', () => {
  const bad: [string, string][] = [
    ['empty', ''],
    ['dot-dot', '..'],
    ['single dot', '.'],
    ['dot-dot component', 'a/../b'],
    ['dot component', 'a/./b'],
    ['path traversal prefix', '../etc/passwd'],
    ['uppercase', 'Alpine'],
    ['uppercase in a later component', 'library/Alpine'],
    ['256 characters', 'a'.repeat(256)],
    ['very long', 'a'.repeat(100_000)],
    ['empty component', 'a//b'],
    ['leading slash', '/a'],
    ['trailing slash', 'a/'],
    ['only a slash', '/'],
    ['leading dot', '.a'],
    ['trailing dot', 'a.'],
    ['leading dash', '-a'],
    ['trailing dash', 'a-'],
    ['leading underscore', '_a'],
    ['trailing underscore', 'a_'],
    ['triple underscore', 'a___b'],
    ['double dot', 'a..b'],
    ['mixed separators', 'a.-b'],
    ['dot then underscore', 'a._b'],
    ['separator before slash', 'a-/b'],
    ['separator after slash', 'a/-b'],
    ['unicode letter', 'alpïne'],
    ['cyrillic look-alike', 'аlpine'],
    ['emoji', 'app🐳'],
    ['fullwidth solidus', 'a／b'],
    ['space', 'a b'],
    ['tab', 'a\tb'],
    ['trailing newline', 'a\n'],
    ['leading newline', '\na'],
    ['NUL byte', 'a\u0000b'],
    ['colon', 'a:b'],
    ['at sign', 'a@b'],
    ['backslash', 'a\\b'],
    ['percent-encoded slash', 'a%2fb'],
    ['question mark', 'a?b'],
    ['hash', 'a#b'],
    ['plus', 'a+b'],
  ];
  for (const [label, name] of bad) {
    test(label, () => {
      const problem = nameProblem(name);
      assert.equal(typeof problem, 'string');
      assert.ok(problem!.length > 0);
      assert.equal(isValidRepositoryName(name), false);
    });
  }

  test('the length problem is named as such', () => {
    assert.match(nameProblem('a'.repeat(256))!, /longer than 255/);
    assert.match(nameProblem('')!, /empty/);
  });

  test('a huge adversarial name is rejected in linear time', () => {
    const inputs = ['a-'.repeat(200_000), `${'a.'.repeat(100)}!`, `${'a-'.repeat(100)}-`, `${'a__'.repeat(80)}_`];
    for (const name of inputs) {
      const started = performance.now();
      assert.equal(isValidRepositoryName(name), false);
      assert.ok(performance.now() - started < 500);
    }
  });
});

describe('tags', () => {
  const good = ['latest', 'v1.2.3', '_', '_private', 'A', 'a-b_c.d', '1', 'x'.repeat(128), 'sha256-abc.sig'];
  const bad = ['', '.hidden', '-dash', 'x'.repeat(129), 'a/b', 'a:b', 'a@b', 'a b', 'a+b', 'ünïcode', 'a\n', '\na'];
  for (const tag of good) test(`accepts ${JSON.stringify(tag.length > 20 ? `${tag.slice(0, 20)}…` : tag)}`, () => assert.equal(isValidTag(tag), true));
  for (const tag of bad) test(`rejects ${JSON.stringify(tag.length > 20 ? `${tag.slice(0, 20)}…` : tag)}`, () => assert.equal(isValidTag(tag), false));
});

describe('properties', () => {
  const alnum = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789'), minLength: 1, maxLength: 8 });
  const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
  const component = fc.tuple(alnum, fc.array(fc.tuple(separator, alnum), { maxLength: 3 })).map(([head, rest]) => head + rest.map(([s, a]) => s + a).join(''));
  const name = fc.array(component, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));

  test('every name built from the grammar is valid', () => {
    fc.assert(fc.property(name, (n) => assert.equal(isValidRepositoryName(n), n.length <= MAX_NAME_LENGTH)), { numRuns: 300 });
  });

  test('an uppercase letter anywhere makes a name invalid', () => {
    fc.assert(
      fc.property(name, fc.nat(), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'), (n, at, upper) => {
        const i = at % n.length;
        assert.equal(isValidRepositoryName(n.slice(0, i) + upper + n.slice(i + 1)), false);
      }),
      { numRuns: 300 },
    );
  });

  test('joining valid names with an empty component is invalid', () => {
    fc.assert(fc.property(name, name, (a, b) => assert.equal(isValidRepositoryName(`${a}//${b}`), false)), { numRuns: 100 });
  });

  test('valid names never contain "..", "//", "___" or a non-ASCII character', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), (s) => {
        if (isValidRepositoryName(s)) assert.doesNotMatch(s, /\.\.|\/\/|___|[^\x21-\x7e]|^[./_-]|[./_-]$/);
      }),
      { numRuns: 1000 },
    );
  });

  test('valid tags are at most 128 characters of the tag alphabet', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 140 }), (s) => {
        if (isValidTag(s)) {
          assert.ok(s.length >= 1 && s.length <= 128);
          assert.match(s, /^[A-Za-z0-9_][A-Za-z0-9._-]*$/);
        }
      }),
      { numRuns: 500 },
    );
  });
});
