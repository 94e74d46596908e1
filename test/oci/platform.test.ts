import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Platform } from '../../src/oci/descriptor.ts';
import { bestMatch, compatiblePlatforms, formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformRank } from '../../src/oci/platform.ts';

interface Entry {
  name: string;
  platform?: Platform;
}

const entry = (name: string, spec?: string): Entry => (spec === undefined ? { name } : { name, platform: parsePlatform(spec) });
/** Entries as an index would carry them: raw, not normalized. */
const raw = (name: string, os: string, architecture: string, variant?: string): Entry => ({
  name,
  platform: { os, architecture, ...(variant !== undefined ? { variant } : {}) },
});
const pick = (host: string, entries: Entry[]) => bestMatch(parsePlatform(host), entries)?.name;

describe('parsePlatform', () => {
  const cases: [string, Platform][] = [
    ['linux/amd64', { os: 'linux', architecture: 'amd64' }],
    ['linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm64/v8', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/arm', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['linux/arm/v6', { os: 'linux', architecture: 'arm', variant: 'v6' }],
    ['linux/x86_64', { os: 'linux', architecture: 'amd64' }],
    ['linux/aarch64', { os: 'linux', architecture: 'arm64', variant: 'v8' }],
    ['linux/i386', { os: 'linux', architecture: '386' }],
    ['linux/armhf', { os: 'linux', architecture: 'arm', variant: 'v7' }],
    ['Linux/AMD64', { os: 'linux', architecture: 'amd64' }],
    ['linux/amd64/v1', { os: 'linux', architecture: 'amd64' }],
    ['linux/amd64/v3', { os: 'linux', architecture: 'amd64', variant: 'v3' }],
    ['windows/amd64', { os: 'windows', architecture: 'amd64' }],
    ['linux/s390x', { os: 'linux', architecture: 's390x' }],
  ];
  for (const [spec, expected] of cases) {
    test(spec, () => assert.deepEqual(parsePlatform(spec), expected));
  }

  for (const bad of ['', 'linux', 'linux/', '/amd64', 'linux//v7', 'linux/arm/v7/extra', '//']) {
    test(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parsePlatform(bad), /invalid platform/));
  }

  test('formatPlatform round-trips', () => {
    for (const spec of ['linux/amd64', 'linux/arm64/v8', 'linux/arm/v6', 'windows/amd64']) assert.equal(formatPlatform(parsePlatform(spec)), spec);
  });

  test('normalizePlatform does not mutate its input', () => {
    const input: Platform = { os: 'linux', architecture: 'aarch64' };
    assert.deepEqual(normalizePlatform(input), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(input, { os: 'linux', architecture: 'aarch64' });
  });

  test('hostPlatform is normalized and well-formed', () => {
    const host = hostPlatform();
    assert.ok(host.os.length > 0 && host.architecture.length > 0);
    assert.deepEqual(normalizePlatform(host), host);
  });
});

describe('bestMatch', () => {
  test('arm/v7 host prefers v7, and accepts v6 then v5', () => {
    const all = [entry('v5', 'linux/arm/v5'), entry('v6', 'linux/arm/v6'), entry('v7', 'linux/arm/v7')];
    assert.equal(pick('linux/arm/v7', all), 'v7');
    assert.equal(pick('linux/arm/v7', [...all].reverse()), 'v7');
    assert.equal(pick('linux/arm/v7', [entry('v5', 'linux/arm/v5'), entry('v6', 'linux/arm/v6')]), 'v6');
    assert.equal(pick('linux/arm/v7', [entry('v5', 'linux/arm/v5')]), 'v5');
  });

  test('arm/v7 host does not run arm/v8 or arm64', () => {
    assert.equal(pick('linux/arm/v7', [entry('v8', 'linux/arm/v8'), entry('arm64', 'linux/arm64')]), undefined);
  });

  test('arm/v6 host does not run arm/v7', () => {
    assert.equal(pick('linux/arm/v6', [entry('v7', 'linux/arm/v7')]), undefined);
    assert.equal(pick('linux/arm/v6', [entry('v7', 'linux/arm/v7'), entry('v5', 'linux/arm/v5')]), 'v5');
  });

  test('an arm entry without variant counts as v7', () => {
    assert.equal(pick('linux/arm/v7', [raw('plain-arm', 'linux', 'arm')]), 'plain-arm');
    assert.equal(pick('linux/arm/v6', [raw('plain-arm', 'linux', 'arm')]), undefined);
  });

  test('arm64 defaults variant v8 on either side', () => {
    assert.deepEqual(parsePlatform('linux/arm64').variant, 'v8');
    assert.equal(pick('linux/arm64', [raw('no-variant', 'linux', 'arm64')]), 'no-variant');
    assert.equal(pick('linux/arm64/v8', [raw('no-variant', 'linux', 'arm64')]), 'no-variant');
    assert.equal(bestMatch({ os: 'linux', architecture: 'arm64' }, [raw('v8', 'linux', 'arm64', 'v8')])?.name, 'v8');
    assert.equal(bestMatch({ os: 'linux', architecture: 'aarch64' }, [raw('v8', 'linux', 'arm64', 'v8')])?.name, 'v8');
  });

  test('arm64 host prefers arm64 and falls back to 32-bit arm', () => {
    const entries = [entry('arm7', 'linux/arm/v7'), entry('arm64', 'linux/arm64')];
    assert.equal(pick('linux/arm64', entries), 'arm64');
    assert.equal(pick('linux/arm64', [entry('arm6', 'linux/arm/v6'), entry('arm7', 'linux/arm/v7')]), 'arm7');
  });

  test('amd64 accepts 386 as a fallback, but prefers amd64', () => {
    assert.equal(pick('linux/amd64', [entry('386', 'linux/386'), entry('amd64', 'linux/amd64')]), 'amd64');
    assert.equal(pick('linux/amd64', [entry('386', 'linux/386'), entry('arm64', 'linux/arm64')]), '386');
    assert.equal(pick('linux/386', [entry('amd64', 'linux/amd64')]), undefined);
  });

  test('raw architecture aliases in entries are understood', () => {
    assert.equal(pick('linux/amd64', [raw('x86', 'linux', 'x86_64')]), 'x86');
    assert.equal(pick('linux/amd64', [raw('v1', 'linux', 'amd64', 'v1')]), 'v1');
  });

  test('amd64/vN host prefers vN and accepts lower levels, including plain amd64 (containerd platforms.Only)', () => {
    const entries = [raw('plain', 'linux', 'amd64'), raw('v2', 'linux', 'amd64', 'v2'), raw('v3', 'linux', 'amd64', 'v3')];
    assert.equal(pick('linux/amd64/v3', entries), 'v3');
    assert.equal(pick('linux/amd64/v3', [raw('plain', 'linux', 'amd64'), raw('v2', 'linux', 'amd64', 'v2')]), 'v2');
    assert.equal(pick('linux/amd64/v3', [raw('plain', 'linux', 'amd64')]), 'plain');
    assert.equal(pick('linux/amd64/v2', [raw('v3', 'linux', 'amd64', 'v3')]), undefined);
  });

  test('an entry without platform matches anything, but last', () => {
    assert.equal(pick('linux/amd64', [entry('any'), entry('amd64', 'linux/amd64')]), 'amd64');
    assert.equal(pick('linux/amd64', [entry('any'), entry('386', 'linux/386')]), '386');
    assert.equal(pick('linux/amd64', [entry('any'), entry('s390x', 'linux/s390x')]), 'any');
    assert.equal(pick('linux/arm/v7', [entry('any'), entry('v5', 'linux/arm/v5')]), 'v5');
    assert.equal(pick('windows/amd64', [entry('any')]), 'any');
  });

  test('on equal rank the first entry wins', () => {
    assert.equal(pick('linux/amd64', [entry('first', 'linux/amd64'), entry('second', 'linux/amd64')]), 'first');
  });

  test('no match gives undefined', () => {
    assert.equal(pick('linux/amd64', []), undefined);
    assert.equal(pick('linux/amd64', [entry('arm64', 'linux/arm64'), entry('s390x', 'linux/s390x')]), undefined);
    assert.equal(pick('linux/amd64', [entry('win', 'windows/amd64')]), undefined);
    assert.equal(pick('windows/amd64', [entry('linux', 'linux/amd64')]), undefined);
  });

  test('platformRank orders the fallbacks', () => {
    const host = parsePlatform('linux/arm/v7');
    assert.equal(platformRank(host, parsePlatform('linux/arm/v7')), 0);
    assert.ok(platformRank(host, parsePlatform('linux/arm/v6'))! < platformRank(host, parsePlatform('linux/arm/v5'))!);
    assert.ok(platformRank(host, parsePlatform('linux/arm/v5'))! < platformRank(host, undefined)!);
    assert.equal(platformRank(host, parsePlatform('linux/amd64')), undefined);
    assert.deepEqual(compatiblePlatforms(parsePlatform('linux/amd64')).map(formatPlatform), ['linux/amd64', 'linux/386']);
  });
});
