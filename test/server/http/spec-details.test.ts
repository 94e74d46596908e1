import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { seededBytes } from '../../../src/testing/images.ts';
import { pushBlob } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, blobOf, expectRawError, raw, unknownDigest } from './helpers.ts';

/** Smaller points of the distribution spec and RFC 9110 that clients depend on. */
describe('spec details', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  function putManifest(repo: string, reference: string, body: Buffer | string, contentType: string = MediaTypes.ociManifest) {
    return raw(reg.url, 'PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'Content-Type': contentType }, body });
  }

  /** An OCI manifest whose one layer is non-distributable: never pushed, fetched from `urls`. */
  function foreignManifest(urls: string[]): string {
    return JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociManifest,
      config: EMPTY_CONFIG.descriptor,
      layers: [{ mediaType: MediaTypes.ociLayerNondistributableGzip, digest: unknownDigest(`foreign ${urls.join()}`), size: 1234, urls }],
    });
  }

  describe('foreign layer URLs (PUT manifest)', () => {
    before(async () => {
      await pushBlob(reg.url, 'spec/foreign', EMPTY_CONFIG);
    });

    test('a layer whose url is not a URL is 400 MANIFEST_INVALID naming it, and nothing is stored', async () => {
      const res = await putManifest('spec/foreign', 'bad', foreignManifest(['not a url at all']));
      const error = expectRawError(res, 400, 'MANIFEST_INVALID');
      assert.match(error.message, /layers\[0\]\.urls\[0\] "not a url at all"/);
      const get = await raw(reg.url, 'GET', '/v2/spec/foreign/manifests/bad', { headers: { Accept: MediaTypes.ociManifest } });
      expectRawError(get, 404, 'MANIFEST_UNKNOWN');
    });

    test('other schemes, relative URLs and fragments are 400 MANIFEST_INVALID', async () => {
      for (const url of ['ftp://example.com/layer', 'file:///etc/passwd', '/v2/other/blobs/sha256:abc', '//example.com/layer', 'https://example.com/layer#frag']) {
        const res = await putManifest('spec/foreign', 'bad', foreignManifest(['https://example.com/fine', url]));
        const error = expectRawError(res, 400, 'MANIFEST_INVALID');
        assert.ok(error.message.includes(JSON.stringify(url)), `${url}: ${error.message}`);
      }
    });

    test('a Docker foreign layer with a bad url is refused too', async () => {
      const config = blobOf('{"architecture":"amd64","os":"windows"}', MediaTypes.dockerConfig);
      await pushBlob(reg.url, 'spec/foreign', config);
      const body = JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.dockerManifest,
        config: config.descriptor,
        layers: [{ mediaType: MediaTypes.dockerForeignLayerGzip, digest: unknownDigest('docker foreign'), size: 99, urls: ['mcr.microsoft.com/windows/layer'] }],
      });
      expectRawError(await putManifest('spec/foreign', 'docker', body, MediaTypes.dockerManifest), 400, 'MANIFEST_INVALID');
    });

    test('a 5 KB bad url is echoed bounded', async () => {
      const url = `javascript:${'a'.repeat(5000)}`;
      const error = expectRawError(await putManifest('spec/foreign', 'long', foreignManifest([url])), 400, 'MANIFEST_INVALID');
      assert.ok(error.message.length < 400, `message of ${error.message.length} characters`);
      assert.match(error.message, /"javascript:a+…"/);
    });

    test('absolute http and https URLs are accepted without the layer being pushed: 201', async () => {
      const res = await putManifest('spec/foreign', 'good', foreignManifest(['https://example.com/layer.tar.gz', 'http://mirror.example.com:8080/layer?sig=1']));
      assert.equal(res.status, 201, res.body.toString());
    });

    test('URLs excuse only foreign layer types: an ordinary layer with urls must still be pushed (400 MANIFEST_BLOB_UNKNOWN)', async () => {
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: EMPTY_CONFIG.descriptor,
        layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: unknownDigest('ordinary layer with urls'), size: 1234, urls: ['https://example.com/l.tar.gz'] }],
      });
      expectRawError(await putManifest('spec/foreign', 'ordinary', manifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    });
  });

  describe('byte-order mark (PUT manifest)', () => {
    test('a manifest starting with EF BB BF is 400 MANIFEST_INVALID (Go clients could never read it back)', async () => {
      await pushBlob(reg.url, 'spec/bom', EMPTY_CONFIG);
      const json = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] });
      const res = await putManifest('spec/bom', 'v1', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]));
      const error = expectRawError(res, 400, 'MANIFEST_INVALID');
      assert.match(error.message, /manifest starts with a UTF-8 byte-order mark/);
      expectRawError(await raw(reg.url, 'GET', '/v2/spec/bom/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
      // The same JSON without the mark is fine.
      assert.equal((await putManifest('spec/bom', 'v1', json)).status, 201);
    });
  });

  describe('If-Range on GET/HEAD blob (RFC 9110 §13.1.5)', () => {
    const blob = blobOf(seededBytes('spec/if-range', 1000));
    const path = `/v2/spec/if-range/blobs/${blob.descriptor.digest}`;
    const etag = `"${blob.descriptor.digest}"`;
    before(async () => {
      await pushBlob(reg.url, 'spec/if-range', blob);
    });

    test('the ETag the registry sends is the strong validator "<digest>"', async () => {
      const res = await raw(reg.url, 'HEAD', path);
      assert.equal(res.headers.etag, etag);
    });

    test('If-Range equal to the ETag: the Range is honoured (206)', async () => {
      const res = await raw(reg.url, 'GET', path, { headers: { Range: 'bytes=10-19', 'If-Range': etag } });
      assert.equal(res.status, 206);
      assert.equal(res.headers['content-range'], 'bytes 10-19/1000');
      assert.deepEqual(res.body, blob.data.subarray(10, 20));
    });

    test('If-Range with another tag, a weak tag or a date: the Range is ignored, 200 with the whole blob', async () => {
      const validators = [
        `"${unknownDigest('if-range other')}"`,
        `W/${etag}`,
        blob.descriptor.digest, // unquoted: not an entity tag at all
        new Date(Date.now() + 3_600_000).toUTCString(), // we send no Last-Modified, so no date matches
        `${etag}, "x"`,
      ];
      for (const validator of validators) {
        const res = await raw(reg.url, 'GET', path, { headers: { Range: 'bytes=10-19', 'If-Range': validator } });
        assert.equal(res.status, 200, `If-Range: ${validator}`);
        assert.equal(res.headers['content-range'], undefined);
        assert.equal(res.headers['content-length'], '1000');
        assert.deepEqual(res.body, blob.data, `If-Range: ${validator}`);
      }
    });

    test('a failed If-Range also ignores an unsatisfiable Range: 200, not 416', async () => {
      const res = await raw(reg.url, 'GET', path, { headers: { Range: 'bytes=5000-', 'If-Range': `W/${etag}` } });
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, blob.data);
    });

    test('HEAD follows the same rule', async () => {
      const ok = await raw(reg.url, 'HEAD', path, { headers: { Range: 'bytes=0-9', 'If-Range': etag } });
      assert.equal(ok.status, 206);
      assert.equal(ok.headers['content-length'], '10');
      const stale = await raw(reg.url, 'HEAD', path, { headers: { Range: 'bytes=0-9', 'If-Range': '"something else"' } });
      assert.equal(stale.status, 200);
      assert.equal(stale.headers['content-length'], '1000');
    });
  });

  describe('bounded echoes of request headers in error messages', () => {
    test('a 5 KB unsatisfiable Range comes back cut to about 100 characters in the 416', async () => {
      const blob = blobOf(seededBytes('spec/range-echo', 100));
      await pushBlob(reg.url, 'spec/range-echo', blob);
      const range = `bytes=${'0'.repeat(5000)}500-`;
      const res = await raw(reg.url, 'GET', `/v2/spec/range-echo/blobs/${blob.descriptor.digest}`, { headers: { Range: range } });
      const error = expectRawError(res, 416, 'RANGE_INVALID');
      assert.equal(res.headers['content-range'], 'bytes */100');
      assert.ok(error.message.length < 300, `message of ${error.message.length} characters`);
      assert.match(error.message, /^range "bytes=0+…" is outside the blob's 100 bytes$/);
    });

    test('a 5 KB Content-Type that disagrees with the manifest is echoed bounded', async () => {
      await pushBlob(reg.url, 'spec/ct-echo', EMPTY_CONFIG);
      const json = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] });
      const res = await putManifest('spec/ct-echo', 'v1', json, `application/vnd.${'x'.repeat(5000)}+json`);
      const error = expectRawError(res, 400, 'MANIFEST_INVALID');
      assert.ok(error.message.length < 400, `message of ${error.message.length} characters`);
    });

    test('a 5 KB invalid Content-Range on PATCH is echoed bounded', async () => {
      const post = await raw(reg.url, 'POST', '/v2/spec/cr-echo/blobs/uploads/');
      assert.equal(post.status, 202);
      const location = new URL(String(post.headers.location), reg.url);
      const res = await raw(reg.url, 'PATCH', location.pathname + location.search, {
        headers: { 'Content-Range': `0-${'9'.repeat(5000)}`, 'Content-Type': 'application/octet-stream' },
        body: 'abc',
      });
      const error = expectRawError(res, 416, 'BLOB_UPLOAD_INVALID');
      assert.ok(error.message.length < 300, `message of ${error.message.length} characters`);
    });
  });
});
