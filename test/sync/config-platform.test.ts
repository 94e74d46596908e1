import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import type { Descriptor, ImageIndex, Platform } from '../../src/oci/descriptor.ts';
import { describeFilter, filterIndex, isFilterEmpty, parsePlatformFilter, platformMatches } from '../../src/sync/platform-filter.ts';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

function child(name: string, platform?: Platform): Descriptor {
  return { mediaType: MANIFEST, digest: digestOf(name), size: 100 + name.length, ...(platform ? { platform } : {}) };
}

/** An index as a registry would serve it: compact JSON with an annotation, so re-serializing shows. */
function indexOf(children: Descriptor[]): { body: Buffer; index: ImageIndex } {
  const index: ImageIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: children, annotations: { 'org.opencontainers.image.ref.name': 'v1' } };
  return { body: Buffer.from(JSON.stringify(index)), index };
}

const AMD64 = child('amd64', { os: 'linux', architecture: 'amd64' });
const ARM64 = child('arm64', { os: 'linux', architecture: 'arm64' });
const ARM64_V8 = child('arm64-v8', { os: 'linux', architecture: 'arm64', variant: 'v8' });
const ARM_V7 = child('arm-v7', { os: 'linux', architecture: 'arm', variant: 'v7' });
const ARM_V6 = child('arm-v6', { os: 'linux', architecture: 'arm', variant: 'v6' });
const WINDOWS_1999 = child('windows-1999', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.17763.1999' });
const WINDOWS_OTHER = child('windows-other', { os: 'windows', architecture: 'amd64', 'os.version': '10.0.20348.2113' });
const ATTESTATION = child('attestation');

describe('platform filter (--os, --arch)', () => {
  test("parses image-syncer's example: os [linux, windows:10.0.17763.1999], arch [arm:v7, amd64]", () => {
    const filter = parsePlatformFilter(['linux', 'windows:10.0.17763.1999'], ['arm:v7', 'amd64']);
    assert.deepEqual(filter, {
      os: [{ os: 'linux' }, { os: 'windows', version: '10.0.17763.1999' }],
      arch: [{ architecture: 'arm', variant: 'v7' }, { architecture: 'amd64' }],
    });
    assert.equal(isFilterEmpty(filter), false);
    assert.equal(describeFilter(filter), 'os linux|windows:10.0.17763.1999, arch arm:v7|amd64');
  });

  test("matches the example's platforms", () => {
    const filter = parsePlatformFilter(['linux', 'windows:10.0.17763.1999'], ['arm:v7', 'amd64']);
    const kept = [AMD64, ARM64, ARM64_V8, ARM_V7, ARM_V6, WINDOWS_1999, WINDOWS_OTHER, ATTESTATION].filter((c) => platformMatches(filter, c.platform));
    assert.deepEqual(kept, [AMD64, ARM_V7, WINDOWS_1999]);
    // arm without a variant is arm/v7.
    assert.equal(platformMatches(filter, { os: 'linux', architecture: 'arm' }), true);
    // Aliases are normalized on the image side.
    assert.equal(platformMatches(filter, { os: 'linux', architecture: 'x86_64' }), true);
    assert.equal(platformMatches(filter, { os: 'darwin', architecture: 'amd64' }), false);
  });

  test('an entry without a version or variant matches every version or variant', () => {
    const filter = parsePlatformFilter(['windows'], ['arm']);
    assert.equal(platformMatches(filter, { os: 'windows', architecture: 'arm', variant: 'v6', 'os.version': '10.0.1' }), true);
    assert.equal(platformMatches(filter, { os: 'windows', architecture: 'arm64' }), false);
    assert.equal(platformMatches(parsePlatformFilter([], ['amd64']), WINDOWS_OTHER.platform), true);
    assert.equal(platformMatches(parsePlatformFilter(['linux'], []), ARM_V6.platform), true);
  });

  test('arm64 without a variant matches arm64:v8, and arm64:v8 images match a plain arm64', () => {
    const v8 = parsePlatformFilter([], ['arm64:v8']);
    assert.equal(platformMatches(v8, ARM64.platform), true);
    assert.equal(platformMatches(v8, ARM64_V8.platform), true);
    assert.equal(platformMatches(v8, { os: 'linux', architecture: 'aarch64' }), true);
    assert.equal(platformMatches(v8, { os: 'linux', architecture: 'arm64', variant: 'v9' }), false);
    const plain = parsePlatformFilter([], ['arm64']);
    assert.equal(platformMatches(plain, ARM64.platform), true);
    assert.equal(platformMatches(plain, ARM64_V8.platform), true);
  });

  test('flags are case-insensitive for os, arch and variant; os.version is exact', () => {
    const filter = parsePlatformFilter(['Linux', 'WINDOWS:10.0.17763.1999'], ['ARM:V7']);
    assert.equal(platformMatches(filter, ARM_V7.platform), true);
    assert.equal(platformMatches(filter, { os: 'windows', architecture: 'arm', variant: 'v7', 'os.version': '10.0.17763.1999' }), true);
    assert.equal(platformMatches(filter, { os: 'windows', architecture: 'arm', variant: 'v7', 'os.version': '10.0.17763' }), false);
  });

  test('an empty filter matches everything, even a child without a platform', () => {
    const filter = parsePlatformFilter();
    assert.equal(isFilterEmpty(filter), true);
    assert.equal(describeFilter(filter), '');
    assert.equal(platformMatches(filter, undefined), true);
    assert.equal(platformMatches(filter, WINDOWS_OTHER.platform), true);
  });

  test('a spec with nothing before the colon is refused', () => {
    assert.throws(() => parsePlatformFilter([':10.0'], []), /--os ":10.0": expected os\[:osversion\]/);
    assert.throws(() => parsePlatformFilter([], [':v7']), /--arch ":v7": expected arch\[:variant\]/);
    assert.throws(() => parsePlatformFilter([''], []), /--os "": expected os\[:osversion\]/);
  });

  describe('filterIndex', () => {
    test('nothing dropped: the original bytes, so the digest stays the source digest', () => {
      const { body, index } = indexOf([AMD64, ARM_V7]);
      const result = filterIndex(body, index, parsePlatformFilter(['linux'], ['amd64', 'arm:v7']));
      assert.equal(result.changed, false);
      assert.equal(result.body, body, 'the very same buffer');
      assert.equal(digestOf(result.body), digestOf(body));
      assert.deepEqual(result.kept, [AMD64, ARM_V7]);
    });

    test('an empty filter keeps everything, including children without a platform', () => {
      const { body, index } = indexOf([AMD64, ATTESTATION]);
      const result = filterIndex(body, index, parsePlatformFilter());
      assert.equal(result.changed, false);
      assert.equal(result.body, body);
      assert.deepEqual(result.kept, [AMD64, ATTESTATION]);
    });

    test('something dropped: a re-serialized index (new digest) keeping the other fields', () => {
      const { body, index } = indexOf([AMD64, ARM64, ARM_V7, WINDOWS_1999]);
      const result = filterIndex(body, index, parsePlatformFilter(['linux'], ['amd64', 'arm64:v8']));
      assert.equal(result.changed, true);
      assert.deepEqual(result.kept, [AMD64, ARM64]);
      assert.notEqual(digestOf(result.body), digestOf(body));
      const rewritten = JSON.parse(result.body.toString('utf8')) as ImageIndex;
      assert.deepEqual(rewritten, { ...index, manifests: [AMD64, ARM64] });
    });

    test('with a filter set, children without a platform (attestations) are dropped', () => {
      const { body, index } = indexOf([AMD64, ATTESTATION]);
      const result = filterIndex(body, index, parsePlatformFilter([], ['amd64']));
      assert.equal(result.changed, true);
      assert.deepEqual(result.kept, [AMD64]);
      assert.deepEqual((JSON.parse(result.body.toString('utf8')) as ImageIndex).manifests, [AMD64]);
    });

    test('everything dropped: an empty manifests list, marked changed', () => {
      const { body, index } = indexOf([AMD64, ARM64]);
      const result = filterIndex(body, index, parsePlatformFilter(['windows'], []));
      assert.equal(result.changed, true);
      assert.deepEqual(result.kept, []);
      assert.deepEqual((JSON.parse(result.body.toString('utf8')) as ImageIndex).manifests, []);
    });

    test('unknown fields of the source index survive the rewrite', () => {
      const raw = { schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json', manifests: [AMD64, ARM_V6], 'x-vendor': { keep: true } };
      const body = Buffer.from(JSON.stringify(raw));
      const result = filterIndex(body, raw as unknown as ImageIndex, parsePlatformFilter([], ['amd64']));
      assert.deepEqual(JSON.parse(result.body.toString('utf8')), { ...raw, manifests: [AMD64] });
    });
  });
});
