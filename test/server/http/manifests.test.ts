import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { digestOf } from '../../../src/digest/digest.ts';
import { MediaTypes } from '../../../src/oci/media-types.ts';
import { makeImage, makeIndex, type TestImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { EMPTY_CONFIG, blobOf, expectError, expectRawError, manifestOf, raw, unknownDigest } from './helpers.ts';

const MAX = 4 * 1024 * 1024;

describe('manifests', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  async function putManifest(repo: string, reference: string, body: Buffer | string, contentType: string): Promise<Response> {
    return fetch(`${reg.url}/v2/${repo}/manifests/${reference}`, { method: 'PUT', headers: { 'Content-Type': contentType }, body });
  }

  async function pushBlobs(repo: string, image: TestImage): Promise<void> {
    for (const item of image.blobs) await pushBlob(reg.url, repo, item);
  }

  describe('PUT (end-7)', () => {
    test('by tag: 201 with Location and Docker-Content-Digest', async () => {
      const image = await makeImage({ seed: 'manifests/put-tag' });
      await pushBlobs('manifests/put-tag', image);
      const res = await putManifest('manifests/put-tag', 'v1', image.manifest.data, MediaTypes.ociManifest);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
      assert.equal(res.headers.get('location'), `/v2/manifests/put-tag/manifests/${image.manifest.descriptor.digest}`);
      assert.equal(res.headers.get('oci-subject'), null);
    });

    test('by digest: 201 with Location and Docker-Content-Digest', async () => {
      const image = await makeImage({ seed: 'manifests/put-digest' });
      await pushBlobs('manifests/put-digest', image);
      const digest = image.manifest.descriptor.digest;
      const res = await putManifest('manifests/put-digest', digest, image.manifest.data, MediaTypes.ociManifest);
      assert.equal(res.status, 201);
      assert.equal(res.headers.get('docker-content-digest'), digest);
      assert.equal(res.headers.get('location'), `/v2/manifests/put-digest/manifests/${digest}`);
    });

    test('pushing the same manifest twice is idempotent', async () => {
      const image = await makeImage({ seed: 'manifests/twice' });
      await pushImage(reg.url, 'manifests/twice', image, 'a');
      const again = await putManifest('manifests/twice', 'a', image.manifest.data, MediaTypes.ociManifest);
      assert.equal(again.status, 201);
      assert.equal(again.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
    });

    test('re-pushing a tag moves it to the new manifest', async () => {
      const one = await makeImage({ seed: 'manifests/retag-1' });
      const two = await makeImage({ seed: 'manifests/retag-2' });
      await pushImage(reg.url, 'manifests/retag', one, 'latest');
      await pushImage(reg.url, 'manifests/retag', two, 'latest');
      const res = await fetch(`${reg.url}/v2/manifests/retag/manifests/latest`);
      assert.equal(res.headers.get('docker-content-digest'), two.manifest.descriptor.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), two.manifest.data);
      const old = await fetch(`${reg.url}/v2/manifests/retag/manifests/${one.manifest.descriptor.digest}`);
      assert.equal(old.status, 200);
      await old.arrayBuffer();
    });
  });

  describe('GET and HEAD (end-3)', () => {
    let image: TestImage;
    const repo = 'manifests/get';
    before(async () => {
      image = await makeImage({ seed: 'manifests/get' });
      await pushImage(reg.url, repo, image, 'v1');
    });

    for (const by of ['tag', 'digest'] as const) {
      test(`GET by ${by}: 200, byte-identical body, Content-Type and Docker-Content-Digest`, async () => {
        const reference = by === 'tag' ? 'v1' : image.manifest.descriptor.digest;
        const res = await fetch(`${reg.url}/v2/${repo}/manifests/${reference}`, { headers: { Accept: MediaTypes.ociManifest } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), MediaTypes.ociManifest);
        assert.equal(res.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
        assert.equal(res.headers.get('content-length'), String(image.manifest.data.length));
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
      });

      test(`HEAD by ${by}: 200 with Content-Type, Docker-Content-Digest, Content-Length and no body`, async () => {
        const reference = by === 'tag' ? 'v1' : image.manifest.descriptor.digest;
        const res = await raw(reg.url, 'HEAD', `/v2/${repo}/manifests/${reference}`);
        assert.equal(res.status, 200);
        assert.equal(res.headers['content-type'], MediaTypes.ociManifest);
        assert.equal(res.headers['docker-content-digest'], image.manifest.descriptor.digest);
        assert.equal(res.headers['content-length'], String(image.manifest.data.length));
        assert.equal(res.body.length, 0);
      });
    }

    test('GET of an unknown tag is 404 MANIFEST_UNKNOWN', async () => {
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/nope`), 404, 'MANIFEST_UNKNOWN');
    });

    test('GET of an unknown digest is 404 MANIFEST_UNKNOWN', async () => {
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/${unknownDigest('manifests/get')}`), 404, 'MANIFEST_UNKNOWN');
    });

    test('HEAD of an unknown tag is 404 with no body', async () => {
      const res = await raw(reg.url, 'HEAD', `/v2/${repo}/manifests/nope`);
      assert.equal(res.status, 404);
      assert.equal(res.body.length, 0);
    });

    test('GET of .INVALID_MANIFEST_NAME is 404', async () => {
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`);
      assert.equal(res.status, 404);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]?.code, 'MANIFEST_UNKNOWN');
    });

    test('GET in a repository that does not exist is 404', async () => {
      const res = await fetch(`${reg.url}/v2/manifests/no-such-repo/manifests/v1`);
      assert.equal(res.status, 404);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.ok(['MANIFEST_UNKNOWN', 'NAME_UNKNOWN'].includes(body.errors[0]?.code ?? ''));
    });

    test('a manifest is not visible from another repository', async () => {
      await expectError(await fetch(`${reg.url}/v2/manifests/other/manifests/${image.manifest.descriptor.digest}`), 404, 'MANIFEST_UNKNOWN');
    });

    test('GET with a malformed digest reference is a 4xx error, not a server error', async () => {
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/sha256:abc`);
      assert.ok(res.status === 400 || res.status === 404, `status ${res.status}`);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.ok(body.errors.length === 1);
    });
  });

  test('exact bytes are preserved: unusual whitespace, key order and unknown fields', async () => {
    const repo = 'manifests/exact';
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const layer = blobOf('layer bytes for exact', MediaTypes.ociLayer);
    await pushBlob(reg.url, repo, layer);
    const text =
      '{\n\t"layers"  : [ {"size": ' + layer.descriptor.size + ', "digest":"' + layer.descriptor.digest + '",\r\n "mediaType": "' + MediaTypes.ociLayer + '"} ],' +
      '  "x-unknown-field": {"nested": [1, 2.50, true, null]},\n' +
      '"config":{"digest":"' + EMPTY_CONFIG.descriptor.digest + '","mediaType":"' + MediaTypes.ociEmpty + '","size":2},' +
      ' "schemaVersion" :2 , "mediaType":"' + MediaTypes.ociManifest + '", "annotations": {"é": "ü \\u00e9"}   \n}\n\n';
    const bytes = Buffer.from(text);
    const digest = digestOf(bytes);
    const put = await putManifest(repo, 'odd', bytes, MediaTypes.ociManifest);
    assert.equal(put.status, 201, await put.text());
    assert.equal(put.headers.get('docker-content-digest'), digest);
    for (const reference of ['odd', digest]) {
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/${reference}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-content-digest'), digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
    }
  });

  test('a manifest without a mediaType field is served with the Content-Type it was pushed with', async () => {
    const repo = 'manifests/no-media-type';
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const manifest = manifestOf({ schemaVersion: 2, config: EMPTY_CONFIG.descriptor, layers: [] });
    const put = await putManifest(repo, 'v1', manifest.data, MediaTypes.ociManifest);
    assert.equal(put.status, 201);
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`);
    assert.equal(res.headers.get('content-type'), MediaTypes.ociManifest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest.data);
  });

  test('a PUT without Content-Type takes the media type from the mediaType field', async () => {
    const repo = 'manifests/no-content-type';
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const manifest = manifestOf({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] });
    const put = await raw(reg.url, 'PUT', `/v2/${repo}/manifests/v1`, { body: manifest.data });
    assert.equal(put.status, 201, put.body.toString());
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/v1`);
    assert.equal(res.headers.get('content-type'), MediaTypes.ociManifest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest.data);
  });

  test('PUT and GET by a sha512 digest', async () => {
    const repo = 'manifests/sha512';
    await pushBlob(reg.url, repo, EMPTY_CONFIG);
    const manifest = manifestOf({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [], annotations: { a: 'sha512' } });
    const digest = digestOf(manifest.data, 'sha512');
    const put = await putManifest(repo, digest, manifest.data, MediaTypes.ociManifest);
    assert.equal(put.status, 201, await put.text());
    assert.equal(put.headers.get('docker-content-digest'), digest);
    const res = await fetch(`${reg.url}/v2/${repo}/manifests/${digest}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest.data);
  });

  describe('Docker schema 2', () => {
    test('a Docker schema 2 manifest is accepted and served with its media type', async () => {
      const repo = 'manifests/docker';
      const image = await makeImage({ seed: 'manifests/docker', format: 'docker' });
      await pushImage(reg.url, repo, image, 'v2');
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/v2`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), MediaTypes.dockerManifest);
      assert.equal(res.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
    });

    test('a Docker manifest list is accepted and served with its media type', async () => {
      const repo = 'manifests/docker-list';
      const amd = await makeImage({ seed: 'manifests/docker-list/amd64', format: 'docker' });
      const arm = await makeImage({ seed: 'manifests/docker-list/arm64', format: 'docker', platform: { os: 'linux', architecture: 'arm64' } });
      await pushImage(reg.url, repo, amd);
      await pushImage(reg.url, repo, arm);
      const list = makeIndex([amd, arm], 'docker');
      const put = await putManifest(repo, 'multi', list.data, MediaTypes.dockerManifestList);
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('docker-content-digest'), list.descriptor.digest);
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/multi`);
      assert.equal(res.headers.get('content-type'), MediaTypes.dockerManifestList);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), list.data);
    });

    test('a foreign layer (with urls) need not be pushed', async () => {
      const repo = 'manifests/foreign';
      const image = await makeImage({ seed: 'manifests/foreign', format: 'docker', layers: 1 });
      await pushBlob(reg.url, repo, image.config);
      await pushBlob(reg.url, repo, image.layers[0]!);
      const foreign = { mediaType: MediaTypes.dockerForeignLayerGzip, digest: unknownDigest('foreign'), size: 1000, urls: ['https://example.invalid/layer'] };
      const manifest = manifestOf(
        { schemaVersion: 2, mediaType: MediaTypes.dockerManifest, config: image.config.descriptor, layers: [foreign, image.layers[0]!.descriptor] },
        MediaTypes.dockerManifest,
      );
      const res = await putManifest(repo, 'win', manifest.data, MediaTypes.dockerManifest);
      assert.equal(res.status, 201, await res.text());
    });
  });

  describe('OCI index', () => {
    test('an index whose child manifest is missing is 400 MANIFEST_BLOB_UNKNOWN; after pushing the children it is accepted', async () => {
      const repo = 'manifests/index';
      const amd = await makeImage({ seed: 'manifests/index/amd64' });
      const arm = await makeImage({ seed: 'manifests/index/arm64', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
      const index = makeIndex([amd, arm]);
      await pushImage(reg.url, repo, amd);
      await expectError(await putManifest(repo, 'multi', index.data, MediaTypes.ociIndex), 400, 'MANIFEST_BLOB_UNKNOWN');
      await pushImage(reg.url, repo, arm);
      const put = await putManifest(repo, 'multi', index.data, MediaTypes.ociIndex);
      assert.equal(put.status, 201);
      assert.equal(put.headers.get('docker-content-digest'), index.descriptor.digest);
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/multi`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), MediaTypes.ociIndex);
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), index.data);
    });
  });

  describe('rejections', () => {
    test('a missing config blob is 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const repo = 'manifests/missing-config';
      const image = await makeImage({ seed: 'manifests/missing-config' });
      for (const layer of image.layers) await pushBlob(reg.url, repo, layer);
      const entry = await expectError(await putManifest(repo, 'v1', image.manifest.data, MediaTypes.ociManifest), 400, 'MANIFEST_BLOB_UNKNOWN');
      assert.ok(entry.message.length > 0);
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
    });

    test('a missing layer blob is 400 MANIFEST_BLOB_UNKNOWN', async () => {
      const repo = 'manifests/missing-layer';
      const image = await makeImage({ seed: 'manifests/missing-layer', layers: 3 });
      await pushBlob(reg.url, repo, image.config);
      await pushBlob(reg.url, repo, image.layers[0]!);
      await pushBlob(reg.url, repo, image.layers[2]!);
      await expectError(await putManifest(repo, 'v1', image.manifest.data, MediaTypes.ociManifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    test('blobs present only in another repository do not count', async () => {
      const image = await makeImage({ seed: 'manifests/elsewhere' });
      await pushBlobs('manifests/elsewhere-a', image);
      await expectError(await putManifest('manifests/elsewhere-b', 'v1', image.manifest.data, MediaTypes.ociManifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    });

    test('malformed JSON is 400 MANIFEST_INVALID', async () => {
      for (const body of ['{"schemaVersion": 2,', 'not json at all', '[1,2,3]', '']) {
        await expectError(await putManifest('manifests/malformed', 'v1', body, MediaTypes.ociManifest), 400, 'MANIFEST_INVALID');
      }
    });

    test('bytes that are not UTF-8 are 400 MANIFEST_INVALID', async () => {
      const body = Buffer.concat([Buffer.from('{"schemaVersion":2,"x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
      await expectError(await putManifest('manifests/not-utf8', 'v1', body, MediaTypes.ociManifest), 400, 'MANIFEST_INVALID');
    });

    test('a structurally invalid manifest (bad descriptor) is 400 MANIFEST_INVALID', async () => {
      const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { mediaType: MediaTypes.ociEmpty, digest: 'sha256:nope', size: 2 }, layers: [] });
      await expectError(await putManifest('manifests/bad-descriptor', 'v1', body, MediaTypes.ociManifest), 400, 'MANIFEST_INVALID');
    });

    test('Docker schema 1 is 400 MANIFEST_INVALID with a message about schema 1', async () => {
      const schema1 = JSON.stringify({
        schemaVersion: 1,
        name: 'manifests/schema1',
        tag: 'v1',
        architecture: 'amd64',
        fsLayers: [{ blobSum: unknownDigest('schema1') }],
        history: [{ v1Compatibility: '{}' }],
      });
      for (const contentType of [MediaTypes.dockerSchema1Signed, MediaTypes.dockerSchema1, 'application/json']) {
        const entry = await expectError(await putManifest('manifests/schema1', 'v1', schema1, contentType), 400, 'MANIFEST_INVALID');
        assert.match(entry.message, /schema 1/i, contentType);
      }
    });

    test('an unknown manifest media type is 400 MANIFEST_INVALID', async () => {
      await pushBlob(reg.url, 'manifests/unknown-type', EMPTY_CONFIG);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json', config: EMPTY_CONFIG.descriptor, layers: [] });
      await expectError(await putManifest('manifests/unknown-type', 'v1', body, 'application/vnd.example.thing+json'), 400, 'MANIFEST_INVALID');
    });

    test('a Content-Type that contradicts the mediaType field is 400 MANIFEST_INVALID', async () => {
      await pushBlob(reg.url, 'manifests/contradiction', EMPTY_CONFIG);
      const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [] });
      await expectError(await putManifest('manifests/contradiction', 'v1', body, MediaTypes.ociIndex), 400, 'MANIFEST_INVALID');
    });

    test('PUT by a digest the body does not hash to is 400 DIGEST_INVALID', async () => {
      const image = await makeImage({ seed: 'manifests/wrong-digest' });
      await pushBlobs('manifests/wrong-digest', image);
      const wrong = unknownDigest('manifests/wrong-digest');
      await expectError(await putManifest('manifests/wrong-digest', wrong, image.manifest.data, MediaTypes.ociManifest), 400, 'DIGEST_INVALID');
      await expectError(await fetch(`${reg.url}/v2/manifests/wrong-digest/manifests/${wrong}`), 404, 'MANIFEST_UNKNOWN');
      await expectError(await fetch(`${reg.url}/v2/manifests/wrong-digest/manifests/${image.manifest.descriptor.digest}`), 404, 'MANIFEST_UNKNOWN');
    });

    test('an invalid tag is 400', async () => {
      const image = await makeImage({ seed: 'manifests/bad-tag' });
      await pushBlobs('manifests/bad-tag', image);
      for (const tag of ['-leading-dash', '.dot', 'x'.repeat(129)]) {
        const res = await putManifest('manifests/bad-tag', tag, image.manifest.data, MediaTypes.ociManifest);
        assert.equal(res.status, 400, tag);
        await res.arrayBuffer();
      }
    });
  });

  describe('size limit', () => {
    async function paddedManifest(total: number): Promise<Buffer> {
      const base = { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: EMPTY_CONFIG.descriptor, layers: [], annotations: { pad: '' } };
      const overhead = Buffer.byteLength(JSON.stringify(base));
      base.annotations.pad = 'p'.repeat(total - overhead);
      const bytes = Buffer.from(JSON.stringify(base));
      assert.equal(bytes.length, total);
      return bytes;
    }

    test('a manifest of exactly 4 MiB is accepted', async () => {
      await pushBlob(reg.url, 'manifests/big', EMPTY_CONFIG);
      const bytes = await paddedManifest(MAX);
      const res = await putManifest('manifests/big', 'four-mib', bytes, MediaTypes.ociManifest);
      assert.equal(res.status, 201, await res.text());
      const get = await fetch(`${reg.url}/v2/manifests/big/manifests/four-mib`);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), bytes);
    });

    test('a manifest over 4 MiB is 413 (declared Content-Length)', async () => {
      await pushBlob(reg.url, 'manifests/too-big', EMPTY_CONFIG);
      const bytes = await paddedManifest(MAX + 1);
      const res = await raw(reg.url, 'PUT', '/v2/manifests/too-big/manifests/huge', {
        headers: { 'Content-Type': MediaTypes.ociManifest, 'Content-Length': bytes.length },
        body: bytes,
      });
      assert.equal(res.status, 413);
      await expectError(await fetch(`${reg.url}/v2/manifests/too-big/manifests/huge`), 404, 'MANIFEST_UNKNOWN');
    });
  });

  describe('subject', () => {
    test('an artifact whose subject is missing is accepted: 201 with OCI-Subject', async () => {
      const repo = 'manifests/subject';
      await pushBlob(reg.url, repo, EMPTY_CONFIG);
      const subject = { mediaType: MediaTypes.ociManifest, digest: unknownDigest('manifests/subject'), size: 1234 };
      const artifact = manifestOf({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: 'application/vnd.example.signature',
        config: EMPTY_CONFIG.descriptor,
        layers: [EMPTY_CONFIG.descriptor],
        subject,
      });
      const res = await putManifest(repo, artifact.descriptor.digest, artifact.data, MediaTypes.ociManifest);
      assert.equal(res.status, 201, await res.text());
      assert.equal(res.headers.get('oci-subject'), subject.digest);
      assert.equal(res.headers.get('docker-content-digest'), artifact.descriptor.digest);
      const get = await fetch(`${reg.url}/v2/${repo}/manifests/${artifact.descriptor.digest}`);
      assert.equal(get.status, 200);
      assert.deepEqual(Buffer.from(await get.arrayBuffer()), artifact.data);
    });
  });

  describe('PUT by digest with ?tag=', () => {
    test('?tag=a&tag=b creates both tags and answers OCI-Tag headers', async () => {
      const repo = 'manifests/multi-tag';
      const image = await makeImage({ seed: 'manifests/multi-tag' });
      await pushBlobs(repo, image);
      const digest = image.manifest.descriptor.digest;
      const res = await raw(reg.url, 'PUT', `/v2/${repo}/manifests/${digest}?tag=a&tag=b`, {
        headers: { 'Content-Type': MediaTypes.ociManifest },
        body: image.manifest.data,
      });
      assert.equal(res.status, 201, res.body.toString());
      assert.equal(res.headers['docker-content-digest'], digest);
      const ociTags = (res.distinct['oci-tag'] ?? []).flatMap((value) => value.split(/,\s*/));
      assert.deepEqual([...ociTags].sort(), ['a', 'b']);
      const tags = (await (await fetch(`${reg.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ['a', 'b']);
      for (const tag of ['a', 'b']) {
        const get = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`);
        assert.equal(get.headers.get('docker-content-digest'), digest);
        await get.arrayBuffer();
      }
    });

    test('?tag= with a tag reference is 400', async () => {
      const repo = 'manifests/tag-on-tag';
      const image = await makeImage({ seed: 'manifests/tag-on-tag' });
      await pushBlobs(repo, image);
      const res = await fetch(`${reg.url}/v2/${repo}/manifests/latest?tag=other`, {
        method: 'PUT',
        headers: { 'Content-Type': MediaTypes.ociManifest },
        body: image.manifest.data,
      });
      assert.equal(res.status, 400);
      await res.arrayBuffer();
      const list = await fetch(`${reg.url}/v2/${repo}/tags/list`);
      if (list.status === 200) assert.deepEqual(((await list.json()) as { tags: string[] }).tags, []);
      else await expectError(list, 404, 'NAME_UNKNOWN');
    });

    test('an invalid ?tag= value is 400 and creates nothing', async () => {
      const repo = 'manifests/bad-extra-tag';
      const image = await makeImage({ seed: 'manifests/bad-extra-tag' });
      await pushBlobs(repo, image);
      const res = await raw(reg.url, 'PUT', `/v2/${repo}/manifests/${image.manifest.descriptor.digest}?tag=good&tag=-bad`, {
        headers: { 'Content-Type': MediaTypes.ociManifest },
        body: image.manifest.data,
      });
      expectRawError(res, 400, 'MANIFEST_INVALID');
      await expectError(await fetch(`${reg.url}/v2/${repo}/manifests/good`), 404, 'MANIFEST_UNKNOWN');
    });
  });

  test('pushManifest helper round trip: the same bytes under two repositories are independent', async () => {
    const image = await makeImage({ seed: 'manifests/two-repos' });
    await pushImage(reg.url, 'manifests/two-repos-a', image, 'x');
    await expectError(await fetch(`${reg.url}/v2/manifests/two-repos-b/manifests/x`), 404, 'MANIFEST_UNKNOWN');
    await pushBlobs('manifests/two-repos-b', image);
    const res = await pushManifest(reg.url, 'manifests/two-repos-b', 'y', image.manifest);
    assert.equal(res.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
    await expectError(await fetch(`${reg.url}/v2/manifests/two-repos-b/manifests/x`), 404, 'MANIFEST_UNKNOWN');
  });
});
