import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ImageIndex } from '../../../src/oci/descriptor.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { makeImage, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, blobOf, expectError, manifestOf, unknownDigest } from './helpers.ts';

async function tagsOf(base: string, repo: string): Promise<string[]> {
  const res = await fetch(`${base}/v2/${repo}/tags/list`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { tags: string[] }).tags;
}

async function del(url: string): Promise<Response> {
  return fetch(url, { method: 'DELETE' });
}

describe('deletes (end-9, end-10)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  test('DELETE a manifest by digest: 202, then GET is 404 and its tags are gone', async () => {
    const repo = 'deletes/by-digest';
    const image = await makeImage({ seed: 'deletes/by-digest' });
    const keep = await makeImage({ seed: 'deletes/by-digest-keep' });
    await pushImage(reg.url, repo, image, 'v1');
    await pushManifest(reg.url, repo, 'v1-alias', image.manifest);
    await pushImage(reg.url, repo, keep, 'keep');
    const digest = image.manifest.descriptor.digest;

    const res = await del(`${reg.url}/v2/${repo}/manifests/${digest}`);
    assert.equal(res.status, 202);
    await res.arrayBuffer();

    await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`), 404, 'MANIFEST_UNKNOWN');
    const head = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/v1-alias`), 404, 'MANIFEST_UNKNOWN');
    assert.deepEqual(await tagsOf(reg.url, repo), ['keep']);
    // The other image is untouched.
    const other = await fetch(`${reg.url}/v2/${repo}/manifests/keep`);
    assert.equal(other.status, 200);
    await other.arrayBuffer();
    // Deleting again is 404.
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/${digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  test('a deleted manifest can be pushed again', async () => {
    const repo = 'deletes/repush';
    const image = await makeImage({ seed: 'deletes/repush' });
    await pushImage(reg.url, repo, image, 'v1');
    assert.equal((await del(`${reg.url}/v2/${repo}/manifests/${image.manifest.descriptor.digest}`)).status, 202);
    await pushManifest(reg.url, repo, 'v1', image.manifest);
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
  });

  test('DELETE by tag: 202, only untags; the digest is still fetchable', async () => {
    const repo = 'deletes/by-tag';
    const image = await makeImage({ seed: 'deletes/by-tag' });
    await pushImage(reg.url, repo, image, 'v1');
    await pushManifest(reg.url, repo, 'stable', image.manifest);
    const res = await del(`${reg.url}/v2/${repo}/manifests/v1`);
    assert.equal(res.status, 202);
    await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
    assert.deepEqual(await tagsOf(reg.url, repo), ['stable']);
    const byDigest = await fetch(`${reg.url}/v2/${repo}/manifests/${image.manifest.descriptor.digest}`);
    assert.equal(byDigest.status, 200);
    assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), image.manifest.data);
    const byOtherTag = await fetch(`${reg.url}/v2/${repo}/manifests/stable`);
    assert.equal(byOtherTag.status, 200);
    await byOtherTag.arrayBuffer();
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
  });

  test('DELETE of an unknown manifest digest or tag is 404 MANIFEST_UNKNOWN', async () => {
    const repo = 'deletes/unknown-manifest';
    const image = await makeImage({ seed: 'deletes/unknown-manifest' });
    await pushImage(reg.url, repo, image, 'v1');
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/${unknownDigest('deletes/unknown-manifest')}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/not-a-tag-here`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await del(`${reg.url}/v2/deletes/no-such-repo/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
  });

  test('DELETE a manifest with a malformed digest is 400', async () => {
    const res = await del(`${reg.url}/v2/deletes/bad-digest/manifests/sha256:123`);
    await expectError(res, 400, 'DIGEST_INVALID');
  });

  test('DELETE a blob: 202, then GET and HEAD are 404 BLOB_UNKNOWN', async () => {
    const repo = 'deletes/blob';
    const blob = blobOf('a blob to delete');
    await pushBlob(reg.url, repo, blob);
    const res = await del(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 202);
    await res.arrayBuffer();
    await expectError(await fetch(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`), 404, 'BLOB_UNKNOWN');
    const head = await fetch(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    await expectError(await del(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`), 404, 'BLOB_UNKNOWN');
  });

  test('a manifest referring to a deleted blob is refused with 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const repo = 'deletes/then-push';
    const image = await makeImage({ seed: 'deletes/then-push' });
    for (const item of image.blobs) await pushBlob(reg.url, repo, item);
    assert.equal((await del(`${reg.url}/v2/${repo}/blobs/${image.layers[0]!.descriptor.digest}`)).status, 202);
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body: image.manifest.data });
    await expectError(res, 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  test('deleting a blob in one repository leaves other repositories alone', async () => {
    const blob = blobOf('shared blob for deletes');
    await pushBlob(reg.url, 'deletes/shared-a', blob);
    await pushBlob(reg.url, 'deletes/shared-b', blob);
    assert.equal((await del(`${reg.url}/v2/deletes/shared-a/blobs/${blob.descriptor.digest}`)).status, 202);
    await expectError(await fetch(`${reg.url}/v2/deletes/shared-a/blobs/${blob.descriptor.digest}`), 404, 'BLOB_UNKNOWN');
    const res = await fetch(`${reg.url}/v2/deletes/shared-b/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  });

  test('DELETE of an unknown blob is 404 BLOB_UNKNOWN; a malformed digest is 400 DIGEST_INVALID', async () => {
    await expectError(await del(`${reg.url}/v2/deletes/unknown-blob/blobs/${unknownDigest('deletes/unknown-blob')}`), 404, 'BLOB_UNKNOWN');
    await expectError(await del(`${reg.url}/v2/deletes/unknown-blob/blobs/sha256:zz`), 400, 'DIGEST_INVALID');
  });

  test('deleting a referrer removes it from the referrers list', async () => {
    const repo = 'deletes/referrer';
    const image = await makeImage({ seed: 'deletes/referrer' });
    await pushImage(reg.url, repo, image, 'v1');
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const artifact = manifestOf({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      artifactType: 'application/vnd.example.sig',
      config: EMPTY_CONFIG.descriptor,
      layers: [EMPTY_CONFIG.descriptor],
      subject: { mediaType: MediaTypes.ociManifest, digest: image.manifest.descriptor.digest, size: image.manifest.descriptor.size },
    });
    await pushManifest(reg.url, repo, artifact.descriptor.digest, artifact);
    const before = (await (await fetch(`${reg.url}/v2/${repo}/referrers/${image.manifest.descriptor.digest}`)).json()) as ImageIndex;
    assert.equal(before.manifests.length, 1);
    assert.equal((await del(`${reg.url}/v2/${repo}/manifests/${artifact.descriptor.digest}`)).status, 202);
    const afterDelete = (await (await fetch(`${reg.url}/v2/${repo}/referrers/${image.manifest.descriptor.digest}`)).json()) as ImageIndex;
    assert.deepEqual(afterDelete.manifests, []);
  });
});

describe('deletes disabled: startTestRegistry({ delete: false })', () => {
  let reg: TestRegistry;
  const repo = 'nodelete/app';
  let image: TestImage;
  const blob = blobOf('nodelete blob');
  before(async () => {
    reg = await startTestRegistry({ delete: false });
    image = await makeImage({ seed: 'nodelete/app' });
    await pushImage(reg.url, repo, image, 'v1');
    await pushBlob(reg.url, repo, blob);
  });
  after(async () => {
    await reg.stop();
  });

  test('DELETE manifest by digest is 405 UNSUPPORTED and the manifest stays', async () => {
    const digest = image.manifest.descriptor.digest;
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/${digest}`), 405, 'UNSUPPORTED');
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  test('DELETE manifest by tag is 405 UNSUPPORTED and the tag stays', async () => {
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/v1`), 405, 'UNSUPPORTED');
    assert.deepEqual(await tagsOf(reg.url, repo), ['v1']);
  });

  test('DELETE blob is 405 UNSUPPORTED and the blob stays', async () => {
    await expectError(await del(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`), 405, 'UNSUPPORTED');
    const res = await fetch(`${reg.url}/v2/${repo}/blobs/${blob.descriptor.digest}`);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  });

  test('DELETE of unknown content is also 405 UNSUPPORTED', async () => {
    await expectError(await del(`${reg.url}/v2/${repo}/manifests/${unknownDigest('nodelete/m')}`), 405, 'UNSUPPORTED');
    await expectError(await del(`${reg.url}/v2/${repo}/blobs/${unknownDigest('nodelete/b')}`), 405, 'UNSUPPORTED');
  });

  test('pushes still work', async () => {
    const other = await makeImage({ seed: 'nodelete/other' });
    await pushImage(reg.url, 'nodelete/other', other, 'v2');
    assert.deepEqual(await tagsOf(reg.url, 'nodelete/other'), ['v2']);
  });
});
