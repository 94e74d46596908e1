import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BadPatternError, pathMatch, validatePattern } from '../../src/images/glob.ts';

// Go's path.Match test table (src/path/match_test.go), plus docker reference cases.
const BAD = 'bad';
const cases: [pattern: string, name: string, expected: boolean | typeof BAD][] = [
  ['abc', 'abc', true],
  ['*', 'abc', true],
  ['*c', 'abc', true],
  ['a*', 'a', true],
  ['a*', 'abc', true],
  ['a*', 'ab/c', false],
  ['a*/b', 'abc/b', true],
  ['a*/b', 'a/c/b', false],
  ['a*b*c*d*e*/f', 'axbxcxdxe/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/f', true],
  ['a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', false],
  ['a*b*c*d*e*/f', 'axbxcxdxexxx/fff', false],
  ['a*b?c*x', 'abxbbxdbxebxczzx', true],
  ['a*b?c*x', 'abxbbxdbxebxczzy', false],
  ['ab[c]', 'abc', true],
  ['ab[b-d]', 'abc', true],
  ['ab[e-g]', 'abc', false],
  ['ab[^c]', 'abc', false],
  ['ab[^b-d]', 'abc', false],
  ['ab[^e-g]', 'abc', true],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'ab', false],
  ['a?b', 'a☺b', true],
  ['a[^a]b', 'a☺b', true],
  ['a???b', 'a☺b', false],
  ['a[^a][^a][^a]b', 'a☺b', false],
  ['[a-ζ]*', 'α', true],
  ['*[a-ζ]', 'A', false],
  ['a?b', 'a/b', false],
  ['a*b', 'a/b', false],
  ['[\\]a]', ']', true],
  ['[\\-]', '-', true],
  ['[x\\-]', 'x', true],
  ['[x\\-]', '-', true],
  ['[x\\-]', 'z', false],
  ['[\\-x]', 'x', true],
  ['[\\-x]', '-', true],
  ['[\\-x]', 'a', false],
  ['[]a]', ']', BAD],
  ['[-]', '-', BAD],
  ['[x-]', 'x', BAD],
  ['[x-]', '-', BAD],
  ['[x-]', 'z', BAD],
  ['[-x]', 'x', BAD],
  ['[-x]', '-', BAD],
  ['[-x]', 'a', BAD],
  ['\\', 'a', BAD],
  ['[a-b-c]', 'a', BAD],
  ['[', 'a', BAD],
  ['[^', 'a', BAD],
  ['[^bc', 'a', BAD],
  ['a[', 'a', BAD],
  ['a[', 'ab', BAD],
  ['a[', 'x', BAD],
  ['a/b[', 'x', BAD],
  ['*x', 'xxx', true],
  // a character outside the BMP is one character for ? and classes
  ['a?b', 'a😀b', true],
  ['a??b', 'a😀b', false],
  ['a[😀]b', 'a😀b', true],
  // docker reference filters
  ['alpine', 'alpine', true],
  ['alpine*', 'alpine:3.20', true],
  ['alpine:3.*', 'alpine:3.20', true],
  ['alpine:3.*', 'alpine:edge', false],
  ['*', 'user/app', false],
  ['*/*', 'user/app', true],
  ['user/*', 'user/app', true],
  ['user/*', 'user/app/sub', false],
  ['docker.io/library/*', 'docker.io/library/alpine', true],
  ['ghcr.io/*/app', 'ghcr.io/o/app', true],
  ['*:latest', 'alpine:latest', true],
  ['*:latest', 'user/app:latest', false],
  ['', '', true],
  ['', 'a', false],
];

describe('pathMatch (Go path.Match)', () => {
  for (const [pattern, name, expected] of cases) {
    test(`${JSON.stringify(pattern)} ~ ${JSON.stringify(name)} → ${String(expected)}`, () => {
      if (expected === BAD) {
        assert.throws(() => pathMatch(pattern, name), (error: unknown) => error instanceof BadPatternError && error.pattern === pattern);
      } else {
        assert.equal(pathMatch(pattern, name), expected);
      }
    });
  }

  test('validatePattern reports a malformed pattern whatever it is matched against', () => {
    assert.throws(() => validatePattern('a*['), BadPatternError);
    assert.throws(() => validatePattern('[z-'), /syntax error in pattern/);
    assert.doesNotThrow(() => validatePattern('alpine:[0-9]*'));
    assert.doesNotThrow(() => validatePattern('*'));
  });
});
