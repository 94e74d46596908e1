import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createdAt, createdSince, ellipsis, formatG, humanDuration, humanSize, rfc3339 } from '../../src/images/human.ts';

describe('formatG (Go %.Ng)', () => {
  const cases: [number, number, string][] = [
    [0, 3, '0'],
    [7.8, 3, '7.8'],
    [7.80123, 3, '7.8'],
    [5.617, 3, '5.62'],
    [100, 3, '100'],
    [999.4, 3, '999'],
    [999.999, 3, '1e+03'],
    [12.5, 3, '12.5'],
    [1.005, 4, '1.005'],
    [123456, 3, '1.23e+05'],
    [0.0001234, 3, '0.000123'],
    [0.00001234, 3, '1.23e-05'],
  ];
  for (const [value, precision, expected] of cases) {
    test(`%.${precision}g of ${value} = ${expected}`, () => assert.equal(formatG(value, precision), expected));
  }
});

describe('humanSize (go-units, decimal)', () => {
  const cases: [number, string][] = [
    [0, '0B'],
    [1, '1B'],
    [999, '999B'],
    [1000, '1kB'],
    [1024, '1.02kB'],
    [7_800_000, '7.8MB'],
    [7_812_345, '7.81MB'],
    [5_617_000, '5.62MB'],
    [123_456_789, '123MB'],
    [1_000_000_000, '1GB'],
    [2_500_000_000_000, '2.5TB'],
    [999_999, '1e+03kB'],
  ];
  for (const [bytes, expected] of cases) test(`${bytes} → ${expected}`, () => assert.equal(humanSize(bytes), expected));
  test('precision 4 is HumanSize (VirtualSize, reclaimed space)', () => {
    assert.equal(humanSize(5_617_000, 4), '5.617MB');
    assert.equal(humanSize(0, 4), '0B');
  });
});

describe('humanDuration (go-units)', () => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  const cases: [number, string][] = [
    [0, 'Less than a second'],
    [-5 * s, 'Less than a second'],
    [1 * s, '1 second'],
    [47 * s, '47 seconds'],
    [60 * s, 'About a minute'],
    [119 * s, 'About a minute'],
    [2 * m, '2 minutes'],
    [59 * m, '59 minutes'],
    [60 * m, 'About an hour'],
    [89 * m, 'About an hour'],
    [91 * m, '2 hours'],
    [2 * h, '2 hours'],
    [47 * h, '47 hours'],
    [48 * h, '2 days'],
    [13 * d, '13 days'],
    [14 * d, '2 weeks'],
    [59 * d, '8 weeks'],
    [60 * d, '2 months'],
    [729 * d, '24 months'],
    [730 * d, '2 years'],
    [3 * 365 * d + 10 * d, '3 years'],
  ];
  for (const [ms, expected] of cases) test(`${ms} ms → ${expected}`, () => assert.equal(humanDuration(ms), expected));
});

describe('times and text', () => {
  test('createdSince appends "ago"', () => {
    assert.equal(createdSince(new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T02:00:00Z')), '2 hours ago');
  });
  test('createdAt is Go time.String() in UTC', () => {
    assert.equal(createdAt(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02 03:04:05 +0000 UTC');
  });
  test('rfc3339', () => assert.equal(rfc3339(new Date('2026-01-02T03:04:05.678Z')), '2026-01-02T03:04:05Z'));
  test('ellipsis cuts to the width with …', () => {
    assert.equal(ellipsis('short', 45), 'short');
    assert.equal(ellipsis('x'.repeat(45), 45), 'x'.repeat(45));
    assert.equal(ellipsis('x'.repeat(46), 45), `${'x'.repeat(44)}…`);
    assert.equal([...ellipsis('é'.repeat(50), 45)].length, 45);
    assert.equal(ellipsis('abc', 1), 'a');
    assert.equal(ellipsis('abc', 0), '');
  });
});
