import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RegistryError } from '../../src/errors/registry-error.ts';
import { nextLink, pageParams, parseContentRange, parseRangeHeader, type RangeRequest } from '../../src/server/http-util.ts';

describe('parseContentRange', () => {
  const good: [string, number, number][] = [
    ['0-21', 0, 21],
    ['bytes 0-21/42', 0, 21],
    ['bytes 0-21/*', 0, 21],
    ['bytes=0-21', 0, 21],
    ['0-0', 0, 0],
    ['22-41', 22, 41],
    [' 5-9 ', 5, 9],
    ['999999999999999-999999999999999', 999999999999999, 999999999999999],
  ];
  for (const [header, start, end] of good) {
    test(`accepts ${JSON.stringify(header)}`, () => assert.deepEqual(parseContentRange(header), { start, end }));
  }

  test('absent header gives undefined', () => assert.equal(parseContentRange(undefined), undefined));

  const bad = ['21-0', 'abc', '-5', '1-', '-', '', ' ', '0-21-42', 'bytes=-5', 'bytes 0-21/', 'bytes 0-21/abc', '0 - 21', '1e3-2e3', '0x1-0x2', '1.5-3',
    '1234567890123456-1234567890123457', '0-99999999999999999999', 'items 0-21', '0-21,30-40'];
  for (const header of bad) {
    test(`rejects ${JSON.stringify(header)} with 416 BLOB_UPLOAD_INVALID`, () => {
      assert.throws(() => parseContentRange(header), (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.status, 416);
        assert.equal(e.code, 'BLOB_UPLOAD_INVALID');
        return true;
      });
    });
  }

  test('the error message never echoes more than 100 characters of a huge header', () => {
    const header = `x${'9'.repeat(100_000)}`;
    assert.throws(() => parseContentRange(header), (e: unknown) => e instanceof RegistryError && e.message.length < 300);
  });

  test('property: every start <= end round-trips, every end < start is 416', () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.nat({ max: 2 ** 40 }), (a, b) => {
        if (a <= b) assert.deepEqual(parseContentRange(`${a}-${b}`), { start: a, end: b });
        else assert.throws(() => parseContentRange(`${a}-${b}`), (e: unknown) => e instanceof RegistryError && e.status === 416);
      }),
    );
  });
});

describe('parseRangeHeader', () => {
  const range = (start: number, end: number): RangeRequest => ({ kind: 'range', range: { start, end } });
  const NONE: RangeRequest = { kind: 'none' };
  const UNSAT: RangeRequest = { kind: 'unsatisfiable' };
  const cases: [string | undefined, number, RangeRequest][] = [
    [undefined, 100, NONE],
    ['bytes=0-9', 100, range(0, 9)],
    ['bytes=5-', 100, range(5, 99)],
    ['bytes=-3', 100, range(97, 99)],
    ['bytes=-100', 100, range(0, 99)],
    ['bytes=-500', 100, range(0, 99)],
    ['bytes=0-0', 100, range(0, 0)],
    ['bytes=99-99', 100, range(99, 99)],
    ['bytes=50-1000', 100, range(50, 99)],
    ['bytes=0-99999999999999999999', 100, range(0, 99)],
    ['bytes=100-', 100, UNSAT],
    ['bytes=100-200', 100, UNSAT],
    ['bytes=500-', 100, UNSAT],
    ['bytes=99999999999999999999-', 100, UNSAT],
    ['bytes=-0', 100, UNSAT],
    ['bytes=0-', 0, UNSAT],
    ['bytes=-5', 0, UNSAT],
    ['bytes=0-9,20-29', 100, NONE],
    ['bytes=0-9, 20-29', 100, NONE],
    ['bytes=9-5', 100, NONE],
    ['bytes=-', 100, NONE],
    ['bytes=', 100, NONE],
    ['items=0-9', 100, NONE],
    ['0-9', 100, NONE],
    ['bytes=a-b', 100, NONE],
    ['', 100, NONE],
  ];
  for (const [header, size, expected] of cases) {
    test(`${JSON.stringify(header)} of ${size} bytes → ${expected.kind}`, () => assert.deepEqual(parseRangeHeader(header, size), expected));
  }

  test('property: a satisfiable range always lies inside the body', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10_000 }), fc.option(fc.nat({ max: 20_000 })), fc.option(fc.nat({ max: 20_000 })), (size, a, b) => {
        const header = `bytes=${a ?? ''}-${b ?? ''}`;
        const result = parseRangeHeader(header, size);
        if (result.kind === 'range') {
          assert.ok(result.range.start >= 0);
          assert.ok(result.range.start <= result.range.end);
          assert.ok(result.range.end <= size - 1);
        }
        if (a !== null && a >= size && (b === null || b >= a)) assert.equal(result.kind, 'unsatisfiable');
      }),
      { numRuns: 500 },
    );
  });
});

describe('pageParams', () => {
  const url = (query: string) => new URL(`http://registry.test/v2/x/tags/list${query}`).searchParams;

  test('no parameters', () => assert.deepEqual(pageParams(url('')), { limit: undefined, after: undefined }));
  test('n and last', () => assert.deepEqual(pageParams(url('?n=10&last=b')), { limit: 10, after: 'b' }));
  test('n=0', () => assert.deepEqual(pageParams(url('?n=0')), { limit: 0, after: undefined }));
  test('empty n and last are ignored', () => assert.deepEqual(pageParams(url('?n=&last=')), { limit: undefined, after: undefined }));
  test('last is URL-decoded', () => assert.deepEqual(pageParams(url('?last=a%2Fb%3Ac')), { limit: undefined, after: 'a/b:c' }));
  test('the largest accepted n', () => assert.equal(pageParams(url('?n=999999999')).limit, 999999999));

  for (const n of ['-1', 'abc', '1.5', '1e3', ' 5', '0x10', '10abc', '1234567890', '+5']) {
    test(`bad n=${JSON.stringify(n)} is a 400`, () => {
      assert.throws(() => pageParams(url(`?n=${encodeURIComponent(n)}`)), (e: unknown) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.status, 400);
        return true;
      });
    });
  }

  test('nextLink encodes last', () => {
    assert.equal(nextLink('/v2/x/tags/list', 2, 'a b&c'), '</v2/x/tags/list?n=2&last=a%20b%26c>; rel="next"');
  });
});

describe('toRegistryError: a scale-out backend that does not answer', () => {
  test('is 503 UNAVAILABLE with Retry-After, which clients retry; a full or broken store is not', async () => {
    const { toRegistryError } = await import('../../src/server/http-util.ts');
    const { MetadataConnectionError } = await import('../../src/server/storage/postgres-metadata.ts');
    const { s3StorageError } = await import('../../src/content/s3-errors.ts');
    const { StorageFailureError } = await import('../../src/content/storage-errors.ts');
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:7480'), { code: 'ECONNREFUSED' });
    const unavailable = [
      new MetadataConnectionError('METADATA_UNREACHABLE', 'postgresql://skiff@db/registry', 'PostgreSQL at postgresql://skiff@db/registry does not answer', refused),
      Object.assign(new Error('Reached the max retries per request limit (which is 1).'), { name: 'MaxRetriesPerRequestError' }),
      s3StorageError(refused, 'reading blob sha256:ab', 's3://skiff/blobs/sha256/ab/ab'),
      // The SDK's socket timeout (a silent endpoint), S3's own 503, and ioredis's command timeout (a silent Redis).
      s3StorageError(Object.assign(new Error('socket timed out'), { name: 'TimeoutError' }), 'reading blob sha256:ab', 's3://skiff/blobs/sha256/ab/ab'),
      s3StorageError(Object.assign(new Error('Please reduce your request rate.'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }), 'reading blob sha256:ab', 's3://skiff/blobs/sha256/ab/ab'),
      new Error('Command timed out'),
    ];
    for (const error of unavailable) {
      const mapped = toRegistryError(error);
      assert.equal(mapped.status, 503, String(error));
      assert.equal(mapped.code, 'UNAVAILABLE');
      assert.equal(mapped.headers['Retry-After'], '5');
    }
    const broken = toRegistryError(new StorageFailureError('EIO', 'reading blob sha256:ab', new Error('EIO')));
    assert.equal(broken.status, 500);
    assert.equal(toRegistryError(new MetadataConnectionError('METADATA_AUTH', 'u', 'refused the credentials', undefined)).status, 500);
  });
});
