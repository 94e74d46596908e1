import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Descriptor, ImageIndex } from '../../../src/oci/descriptor.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { makeImage, type Blob, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, blobOf, expectError, manifestOf, unknownDigest } from './helpers.ts';

const SBOM = 'application/vnd.example.sbom.v1+json';
const SIGNATURE = 'application/vnd.example.signature.v1';

describe('referrers (end-12a/b)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  async function referrers(repo: string, digest: string, query = ''): Promise<{ res: Response; index: ImageIndex }> {
    const res = await fetch(`${reg.url}/v2/${repo}/referrers/${digest}${query}`);
    assert.equal(res.status, 200);
    return { res, index: (await res.json()) as ImageIndex };
  }

  function subjectOf(image: TestImage): Descriptor {
    return { mediaType: image.manifest.descriptor.mediaType, digest: image.manifest.descriptor.digest, size: image.manifest.descriptor.size };
  }

  test('an unknown digest gives 200 and an empty OCI index', async () => {
    const { res, index } = await referrers('referrers/nothing', unknownDigest('referrers/nothing'));
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MediaTypes.ociIndex);
    assert.deepEqual(index.manifests, []);
    assert.equal(res.headers.get('oci-filters-applied'), null);
  });

  test('an invalid digest is 400', async () => {
    for (const digest of ['sha256:abc', 'nope', `sha256:${'Z'.repeat(64)}`]) {
      const res = await fetch(`${reg.url}/v2/referrers/invalid/referrers/${digest}`);
      assert.equal(res.status, 400, digest);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]?.code, 'DIGEST_INVALID');
    }
  });

  describe('with referrers pushed', () => {
    const repo = 'referrers/app';
    let image: TestImage;
    let sbom: Blob;
    let signature: Blob;
    let attestations: Blob;
    let sbomConfig: Blob;

    before(async () => {
      image = await makeImage({ seed: 'referrers/app' });
      await pushImage(reg.url, repo, image, 'v1');
      await pushBlob(reg.url, repo, EMPTY_CONFIG);
      const sbomLayer = blobOf('{"packages":[]}', 'application/spdx+json');
      await pushBlob(reg.url, repo, sbomLayer);
      // artifactType comes from config.mediaType when the manifest has none.
      sbomConfig = blobOf('{"tool":"x"}', SBOM);
      await pushBlob(reg.url, repo, sbomConfig);
      sbom = manifestOf({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: sbomConfig.descriptor,
        layers: [sbomLayer.descriptor],
        subject: subjectOf(image),
        annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z', 'org.example.kind': 'sbom' },
      });
      await pushManifest(reg.url, repo, sbom.descriptor.digest, sbom);
      signature = manifestOf({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: SIGNATURE,
        config: EMPTY_CONFIG.descriptor,
        layers: [EMPTY_CONFIG.descriptor],
        subject: subjectOf(image),
        annotations: { 'org.example.signer': 'alice' },
      });
      await pushManifest(reg.url, repo, signature.descriptor.digest, signature);
      // An index with a subject is a referrer too.
      attestations = manifestOf(
        {
          schemaVersion: 2,
          mediaType: MediaTypes.ociIndex,
          artifactType: 'application/vnd.example.attestations',
          manifests: [sbom.descriptor],
          subject: subjectOf(image),
          annotations: { 'org.example.bundle': 'yes' },
        },
        MediaTypes.ociIndex,
      );
      const put = await pushManifest(reg.url, repo, attestations.descriptor.digest, attestations);
      assert.equal(put.headers.get('oci-subject'), image.manifest.descriptor.digest);
      // A manifest without subject is not a referrer.
      await pushManifest(reg.url, repo, 'unrelated', manifestOf({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] }));
    });

    test('lists each referrer with mediaType, digest, size, artifactType and annotations', async () => {
      const { res, index } = await referrers(repo, image.manifest.descriptor.digest);
      assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      assert.equal(res.headers.get('oci-filters-applied'), null);
      assert.equal(index.schemaVersion, 2);
      assert.equal(index.mediaType, MediaTypes.ociIndex);
      assert.equal(index.manifests.length, 3);
      const byDigest = new Map(index.manifests.map((d) => [d.digest, d]));
      assert.deepEqual(byDigest.get(sbom.descriptor.digest), {
        mediaType: MediaTypes.ociManifest,
        digest: sbom.descriptor.digest,
        size: sbom.data.length,
        artifactType: SBOM,
        annotations: { 'org.opencontainers.image.created': '2026-01-01T00:00:00Z', 'org.example.kind': 'sbom' },
      });
      assert.deepEqual(byDigest.get(signature.descriptor.digest), {
        mediaType: MediaTypes.ociManifest,
        digest: signature.descriptor.digest,
        size: signature.data.length,
        artifactType: SIGNATURE,
        annotations: { 'org.example.signer': 'alice' },
      });
      assert.deepEqual(byDigest.get(attestations.descriptor.digest), {
        mediaType: MediaTypes.ociIndex,
        digest: attestations.descriptor.digest,
        size: attestations.data.length,
        artifactType: 'application/vnd.example.attestations',
        annotations: { 'org.example.bundle': 'yes' },
      });
    });

    test('?artifactType= filters and sets OCI-Filters-Applied: artifactType', async () => {
      const { res, index } = await referrers(repo, image.manifest.descriptor.digest, `?artifactType=${encodeURIComponent(SIGNATURE)}`);
      assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
      assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(
        index.manifests.map((d) => d.digest),
        [signature.descriptor.digest],
      );
      const byConfig = await referrers(repo, image.manifest.descriptor.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
      assert.deepEqual(
        byConfig.index.manifests.map((d) => d.digest),
        [sbom.descriptor.digest],
      );
    });

    test('a filter that matches nothing gives an empty index, still with OCI-Filters-Applied', async () => {
      const { res, index } = await referrers(repo, image.manifest.descriptor.digest, '?artifactType=application/vnd.example.none');
      assert.equal(res.headers.get('oci-filters-applied'), 'artifactType');
      assert.deepEqual(index.manifests, []);
    });

    test('referrers are per repository', async () => {
      const { index } = await referrers('referrers/other-repo', image.manifest.descriptor.digest);
      assert.deepEqual(index.manifests, []);
    });

    test('a referrer to a referrer is listed under its own subject only', async () => {
      const counter = manifestOf({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: 'application/vnd.example.countersignature',
        config: EMPTY_CONFIG.descriptor,
        layers: [EMPTY_CONFIG.descriptor],
        subject: { mediaType: MediaTypes.ociManifest, digest: signature.descriptor.digest, size: signature.data.length },
      });
      await pushManifest(reg.url, repo, counter.descriptor.digest, counter);
      const { index } = await referrers(repo, signature.descriptor.digest);
      assert.deepEqual(
        index.manifests.map((d) => d.digest),
        [counter.descriptor.digest],
      );
      assert.equal(index.manifests[0]?.artifactType, 'application/vnd.example.countersignature');
      const top = await referrers(repo, image.manifest.descriptor.digest);
      assert.ok(!top.index.manifests.some((d) => d.digest === counter.descriptor.digest));
    });
  });

  test('a referrer whose subject was never pushed is listed under that digest', async () => {
    const repo = 'referrers/dangling';
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const missing = unknownDigest('referrers/dangling');
    const artifact = manifestOf({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: SIGNATURE,
      config: EMPTY_CONFIG.descriptor,
      layers: [EMPTY_CONFIG.descriptor],
      subject: { mediaType: MediaTypes.ociManifest, digest: missing, size: 99 },
    });
    const put = await pushManifest(reg.url, repo, artifact.descriptor.digest, artifact);
    assert.equal(put.headers.get('oci-subject'), missing);
    const { index } = await referrers(repo, missing);
    assert.deepEqual(index.manifests, [{ mediaType: MediaTypes.ociManifest, digest: artifact.descriptor.digest, size: artifact.data.length, artifactType: SIGNATURE }]);
  });

  test('an invalid repository name is 400 NAME_INVALID', async () => {
    await expectError(await fetch(`${reg.url}/v2/Referrers/Bad/referrers/${unknownDigest('x')}`), 400, 'NAME_INVALID');
  });
});
