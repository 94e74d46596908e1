import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../../src/digest/digest.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { makeImage, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { blobOf, expectError, raw } from './helpers.ts';

describe('read-only registry: startTestRegistry({ readOnly: true })', () => {
  let dataDir: string;
  let reg: TestRegistry;
  let image: TestImage;
  let uploadPath: string;
  const repo = 'readonly/app';
  const extra = blobOf('read-only extra blob');

  before(async () => {
    // Fill a data directory with a writable registry, then reopen it read-only.
    dataDir = await mkdtemp(join(tmpdir(), 'skiff-http-readonly-'));
    const writer = await startTestRegistry({ dataDir });
    try {
      image = await makeImage({ seed: 'readonly/app' });
      await pushImage(writer.url, repo, image, 'v1');
      await pushBlob(writer.url, repo, extra);
      const post = await fetch(`${writer.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
      assert.equal(post.status, 202);
      uploadPath = new URL(post.headers.get('location')!, writer.url).pathname;
    } finally {
      await writer.stop();
    }
    reg = await startTestRegistry({ dataDir, readOnly: true });
  });
  after(async () => {
    await reg.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('reads work', () => {
    test('GET /v2/ and /healthz', async () => {
      const ping = await fetch(`${reg.url}/v2/`);
      assert.equal(ping.status, 200);
      assert.equal(ping.headers.get('docker-distribution-api-version'), 'registry/2.0');
      await ping.arrayBuffer();
      const health = await fetch(`${reg.url}/healthz`);
      assert.equal(health.status, 200);
      await health.arrayBuffer();
    });

    test('GET and HEAD manifests by tag and digest', async () => {
      for (const reference of ['v1', image.manifest.descriptor.digest]) {
        const res = await fetch(`${reg.url}/v2/${repo}/manifests/${reference}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), MediaTypes.ociManifest);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
        const head = await raw(reg.url, 'HEAD', `/v2/${repo}/manifests/${reference}`);
        assert.equal(head.status, 200);
        assert.equal(head.headers['docker-content-digest'], image.manifest.descriptor.digest);
      }
    });

    test('GET blobs, with and without Range', async () => {
      for (const item of [...image.blobs, extra]) {
        const res = await fetch(`${reg.url}/v2/${repo}/blobs/${item.descriptor.digest}`);
        assert.equal(res.status, 200);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), item.data);
      }
      const ranged = await fetch(`${reg.url}/v2/${repo}/blobs/${extra.descriptor.digest}`, { headers: { Range: 'bytes=0-3' } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), extra.data.subarray(0, 4));
    });

    test('tags list, catalog and referrers', async () => {
      const tags = await fetch(`${reg.url}/v2/${repo}/tags/list`);
      assert.equal(tags.status, 200);
      assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['v1']);
      const catalog = await fetch(`${reg.url}/v2/_catalog`);
      assert.equal(catalog.status, 200);
      assert.ok(((await catalog.json()) as { repositories: string[] }).repositories.includes(repo));
      const referrers = await fetch(`${reg.url}/v2/${repo}/referrers/${image.manifest.descriptor.digest}`);
      assert.equal(referrers.status, 200);
      assert.deepEqual(((await referrers.json()) as { manifests: unknown[] }).manifests, []);
    });

    test('upload status of an existing session', async () => {
      const res = await fetch(`${reg.url}${uploadPath}`);
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('range'), '0-0');
    });
  });

  describe('every write is 405 UNSUPPORTED', () => {
    test('POST upload', async () => {
      await expectError(await fetch(`${reg.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' }), 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}/v2/readonly/new-repo/blobs/uploads/`, { method: 'POST' }), 405, 'UNSUPPORTED');
    });

    test('monolithic POST ?digest=', async () => {
      const data = Buffer.from('monolithic in read-only');
      const res = await fetch(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${digestOf(data)}`, { method: 'POST', body: data });
      await expectError(res, 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}/v2/${repo}/blobs/${digestOf(data)}`), 404, 'BLOB_UNKNOWN');
    });

    test('cross-repository mount', async () => {
      const res = await fetch(`${reg.url}/v2/readonly/mount-target/blobs/uploads/?mount=${extra.descriptor.digest}&from=${repo}`, { method: 'POST' });
      await expectError(res, 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}/v2/readonly/mount-target/blobs/${extra.descriptor.digest}`), 404, 'BLOB_UNKNOWN');
    });

    test('PATCH, PUT and DELETE on an upload session', async () => {
      const chunk = Buffer.from('chunk');
      const patch = await fetch(`${reg.url}${uploadPath}`, { method: 'PATCH', headers: { 'Content-Range': '0-4' }, body: chunk });
      await expectError(patch, 405, 'UNSUPPORTED');
      const put = await fetch(`${reg.url}${uploadPath}?digest=${digestOf(chunk)}`, { method: 'PUT', body: chunk });
      await expectError(put, 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}${uploadPath}`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
      // The session is untouched.
      const status = await fetch(`${reg.url}${uploadPath}`);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), '0-0');
    });

    test('PUT manifest by tag and by digest', async () => {
      const other = await makeImage({ seed: 'readonly/other' });
      const byTag = await fetch(`${reg.url}/v2/${repo}/manifests/v2`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body: image.manifest.data });
      await expectError(byTag, 405, 'UNSUPPORTED');
      const byDigest = await fetch(`${reg.url}/v2/${repo}/manifests/${other.manifest.descriptor.digest}`, {
        method: 'PUT',
        headers: { 'Content-Type': MediaTypes.ociManifest },
        body: other.manifest.data,
      });
      await expectError(byDigest, 405, 'UNSUPPORTED');
      const tags = (await (await fetch(`${reg.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ['v1']);
    });

    test('DELETE manifest (digest and tag) and DELETE blob', async () => {
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/${image.manifest.descriptor.digest}`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
      await expectError(await fetch(`${reg.url}/v2/${repo}/blobs/${extra.descriptor.digest}`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const blob = await fetch(`${reg.url}/v2/${repo}/blobs/${extra.descriptor.digest}`);
      assert.equal(blob.status, 200);
      await blob.arrayBuffer();
    });
  });
});
