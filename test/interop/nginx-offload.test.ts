/**
 * Blob offload (issue 11, "Blob offload"): with `xAccelRedirect`, a GET of a blob committed in the
 * store is answered with the registry's headers, `X-Accel-Redirect: <prefix>/<path under blobs/>`
 * and no body, and the nginx in front sends the file itself (Range included). HEADs, misses (a
 * mirror fill in progress) and ranges nginx would read differently are served by skiff as always.
 * The nginx tests run Debian's nginx on loopback ports with the configuration docs/serve.md gives.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../src/digest/digest.ts';
import { ConfigError } from '../../src/errors/config-error.ts';
import { resolveServeConfig } from '../../src/server/config.ts';
import { makeImage, writeOciLayout, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { nginxSkipReason, startNginxFront, type NginxFront } from '../../src/testing/nginx.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { pushBlob, pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const PREFIX = '/_skiff_blobs';
const MiB = 1024 * 1024;
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];
const sha256 = (data: Buffer): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}`;

const skip = (await nginxSkipReason()) || (await peerSkipReason('skopeo'));

interface Got {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  const res = await fetch(url, { method, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The skiff counters the tests read: body bytes it wrote, and responses it handed to nginx. */
async function skiffCounters(server: TestRegistry): Promise<{ sent: number; offloads: number }> {
  const text = await server.metrics.render();
  const offloads = Number(/^skiff_http_blob_offloads_total (\d+)/m.exec(text)?.[1]);
  return { sent: (await server.metrics.counts()).sentBytes, offloads };
}

/** The registry answers of a blob GET that must reach the client through nginx. */
function assertBlobHeaders(got: Got, digest: string): void {
  assert.equal(got.headers.get('docker-content-digest'), digest);
  assert.equal(got.headers.get('etag'), `"${digest}"`);
  assert.equal(got.headers.get('content-type'), 'application/octet-stream');
  assert.equal(got.headers.get('docker-distribution-api-version'), 'registry/2.0');
  // nginx's own on a 200, none on its 206 (skiff leaves its copy out: nginx would send both).
  assert.equal(got.headers.get('accept-ranges'), got.status === 200 ? 'bytes' : null);
  assert.equal(got.headers.get('x-accel-redirect'), null, 'nginx never shows the internal path');
}

describe('settings', () => {
  test('xAccelRedirect takes an absolute path, drops a trailing slash, and refuses the rest', async () => {
    assert.equal((await resolveServeConfig({ xAccelRedirect: '/_skiff_blobs/' })).xAccelRedirect, '/_skiff_blobs');
    assert.equal((await resolveServeConfig({ xAccelRedirect: '/internal/skiff-blobs' })).xAccelRedirect, '/internal/skiff-blobs');
    assert.equal((await resolveServeConfig({})).xAccelRedirect, undefined);
    for (const bad of ['_skiff_blobs', '/', '/a/../b', '/a b', '/blobs?x', '/v2', '/v2/blobs', 42]) {
      await assert.rejects(resolveServeConfig({ xAccelRedirect: bad }), (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^flags: xAccelRedirect: /);
        return true;
      });
    }
  });
});

describe('skiff with xAccelRedirect, asked directly', () => {
  let registry: TestRegistry;
  let plain: TestRegistry;
  const data = Buffer.alloc(100_000, 7);
  const digest = sha256(data);
  const item = { descriptor: { mediaType: 'application/octet-stream', digest, size: data.length }, data };

  before(async () => {
    registry = await startTestRegistry({ xAccelRedirect: PREFIX });
    plain = await startTestRegistry();
    await pushBlob(registry.url, 'direct/app', item);
    await pushBlob(plain.url, 'direct/app', item);
  });
  after(async () => {
    await registry?.stop();
    await plain?.stop();
  });

  test('a GET of a stored blob is the registry headers, X-Accel-Redirect to its file, and no body', async () => {
    const got = await get(`${registry.url}/v2/direct/app/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.equal(got.body.length, 0);
    assert.equal(got.headers.get('content-length'), '0', 'the length of this response, not of the file');
    const hex = digest.slice('sha256:'.length);
    assert.equal(got.headers.get('x-accel-redirect'), `${PREFIX}/sha256/${hex.slice(0, 2)}/${hex}`);
    assert.equal((await stat(join(registry.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex))).size, data.length, 'the path is under <data>/blobs/');
    assert.equal(got.headers.get('docker-content-digest'), digest);
    assert.equal(got.headers.get('etag'), `"${digest}"`);
    assert.equal(got.headers.get('content-type'), 'application/octet-stream');
    assert.equal(got.headers.get('accept-ranges'), null, 'nginx adds its own');
    assert.equal(got.headers.get('content-range'), null);
  });

  test('a Range skiff would honour is left to nginx; an unsatisfiable one is answered here', async () => {
    const ranged = await get(`${registry.url}/v2/direct/app/blobs/${digest}`, { range: 'bytes=10-19' });
    assert.equal(ranged.status, 200);
    assert.equal(ranged.body.length, 0);
    assert.ok(ranged.headers.get('x-accel-redirect'));
    assert.equal(ranged.headers.get('content-range'), null);
    const beyond = await get(`${registry.url}/v2/direct/app/blobs/${digest}`, { range: `bytes=${data.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${data.length}`);
    assert.equal(beyond.headers.get('x-accel-redirect'), null);
  });

  test('ranges nginx would read differently (several, or an If-Range that does not match) are served whole by skiff', async () => {
    const cases: Record<string, string>[] = [{ range: 'bytes=0-9,20-29' }, { range: 'bytes=10-19', 'if-range': '"sha256:other"' }, { range: 'bytes=9-3' }];
    for (const headers of cases) {
      const got = await get(`${registry.url}/v2/direct/app/blobs/${digest}`, headers);
      assert.equal(got.status, 200, JSON.stringify(headers));
      assert.equal(got.headers.get('x-accel-redirect'), null);
      assert.deepEqual(got.body, data);
    }
  });

  test('HEAD, a missing blob and a server without the setting are answered as always', async () => {
    const head = await get(`${registry.url}/v2/direct/app/blobs/${digest}`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(data.length));
    assert.equal(head.headers.get('x-accel-redirect'), null);
    const missing = await get(`${registry.url}/v2/direct/app/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-accel-redirect'), null);
    const other = await get(`${registry.url}/v2/other/blobs/${digest}`);
    assert.equal(other.status, 404, 'the link is checked before any redirect');
    const off = await get(`${plain.url}/v2/direct/app/blobs/${digest}`);
    assert.equal(off.headers.get('x-accel-redirect'), null);
    assert.deepEqual(off.body, data);
  });
});

describe('Debian nginx in front of skiff serve --x-accel-redirect', { skip }, () => {
  let registry: TestMirror;
  let front: NginxFront;
  let work: string;
  let image: TestImage;

  before(async () => {
    // A registry with its log captured: the request lines show which answers skiff sent bodies for.
    registry = await startTestMirror({ xAccelRedirect: PREFIX });
    front = await startNginxFront({ skiff: registry.address, dataDir: registry.dataDir });
    work = await mkdtemp(join(tmpdir(), 'skiff-offload-'));
    image = await makeImage({ seed: 'offload', layers: 2, layerSize: 4 * MiB });
  });
  after(async () => {
    await front?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('skopeo pushes through nginx (streamed uploads) and pulls back every digest, the blob bodies sent by nginx', async () => {
    const src = join(work, 'src');
    await writeOciLayout(src, [...image.blobs, image.manifest], { v1: image.manifest });
    await skopeo(['copy', '--preserve-digests', ...TLS, `oci:${src}:v1`, `docker://${front.host}/offload/app:v1`]);

    const before = await skiffCounters(registry);
    const dst = join(work, 'dst');
    await skopeo(['copy', '--preserve-digests', ...TLS, `docker://${front.host}/offload/app:v1`, `oci:${dst}:v1`]);
    const after = await skiffCounters(registry);

    const index = JSON.parse(await readFile(join(dst, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifest.descriptor.digest);
    const pulled = (await readdir(join(dst, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
    assert.deepEqual(pulled, [...image.blobs, image.manifest].map((b) => b.descriptor.digest).sort());
    for (const digest of pulled) assert.equal(sha256(await readFile(join(dst, 'blobs', 'sha256', digest.slice(7)))), digest);

    const blobBytes = image.blobs.reduce((sum, b) => sum + b.data.length, 0);
    assert.ok(blobBytes > 8 * MiB);
    assert.equal(after.offloads - before.offloads, image.blobs.length, 'each blob GET went to nginx');
    assert.ok(after.sent - before.sent < 64 * 1024, `skiff wrote ${after.sent - before.sent} bytes for a pull of ${blobBytes} blob bytes`);
  });

  test('whole and Range GETs through nginx: the right bytes and the registry headers, no body from skiff', async () => {
    const layer = image.layers[0]!;
    const { digest } = layer.descriptor;
    const url = `${front.url}/v2/offload/app/blobs/${digest}`;
    const size = layer.data.length;
    const before = await skiffCounters(registry);

    const whole = await get(url);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('content-length'), String(size));
    assert.equal(sha256(whole.body), digest);
    assertBlobHeaders(whole, digest);

    const cases: [string, number, number][] = [
      ['bytes=0-0', 0, 0],
      ['bytes=1000-1999', 1000, 1999],
      [`bytes=${size - 100}-`, size - 100, size - 1],
      ['bytes=-4096', size - 4096, size - 1],
      [`bytes=${MiB}-${size + 5000}`, MiB, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const got = await get(url, { range });
      assert.equal(got.status, 206, range);
      assert.equal(got.headers.get('content-range'), `bytes ${start}-${end}/${size}`, range);
      assert.deepEqual(got.body, layer.data.subarray(start, end + 1), range);
      assertBlobHeaders(got, digest);
    }
    // Resuming with the registry's own validator keeps the range: nginx compares If-Range with skiff's ETag.
    const resumed = await get(url, { range: 'bytes=100-199', 'if-range': `"${digest}"` });
    assert.equal(resumed.status, 206);
    assert.deepEqual(resumed.body, layer.data.subarray(100, 200));

    const after = await skiffCounters(registry);
    assert.equal(after.offloads - before.offloads, cases.length + 2);
    assert.ok(after.sent - before.sent < 32 * 1024, `skiff wrote ${after.sent - before.sent} bytes`);
    const lines = registry.logs.filter((line) => line.msg === 'request' && line.path === `/v2/offload/app/blobs/${digest}`).slice(-(cases.length + 2));
    assert.ok(lines.every((line) => line.offloaded === true && line.bytes === 0 && line.status === 200));
    // nginx's access log: it sent the bytes.
    const sent = (await front.accessLog()).filter((line) => line.includes(`GET /v2/offload/app/blobs/${digest} `)).map((line) => Number(line.split(' ')[1]));
    assert.ok(sent.includes(size));
  });

  test('HEAD, an unsatisfiable range and errors come from skiff through nginx', async () => {
    const layer = image.layers[1]!;
    const url = `${front.url}/v2/offload/app/blobs/${layer.descriptor.digest}`;
    const before = await skiffCounters(registry);
    const head = await get(url, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.data.length));
    assert.equal(head.headers.get('docker-content-digest'), layer.descriptor.digest);
    const beyond = await get(url, { range: `bytes=${layer.data.length}-` });
    assert.equal(beyond.status, 416);
    assert.equal((JSON.parse(beyond.body.toString()) as { errors: { code: string }[] }).errors[0]!.code, 'RANGE_INVALID');
    const unknown = await get(`${front.url}/v2/offload/app/blobs/sha256:${'1'.repeat(64)}`);
    assert.equal(unknown.status, 404);
    assert.equal((JSON.parse(unknown.body.toString()) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UNKNOWN');
    assert.equal((await skiffCounters(registry)).offloads, before.offloads);
    // The internal location is reachable only through skiff's answer.
    const hex = layer.descriptor.digest.slice(7);
    assert.equal((await get(`${front.url}${PREFIX}/sha256/${hex.slice(0, 2)}/${hex}`)).status, 404);
  });

  test('a monolithic push through nginx is offloaded on the next GET', async () => {
    const data = Buffer.alloc(3 * MiB + 5, 0x5a);
    const item = { descriptor: { mediaType: 'application/octet-stream', digest: sha256(data), size: data.length }, data };
    await pushBlob(front.url, 'offload/mono', item);
    const before = await skiffCounters(registry);
    const got = await get(`${front.url}/v2/offload/mono/blobs/${item.descriptor.digest}`);
    assert.equal(got.status, 200);
    assert.equal(sha256(got.body), item.descriptor.digest);
    assert.equal(got.headers.get('docker-content-digest'), item.descriptor.digest);
    assert.equal((await skiffCounters(registry)).offloads, before.offloads + 1);
  });

  test("nginx's error log stays clean: every redirected file was found and readable", async () => {
    assert.doesNotMatch(await front.errorLog(), /\[(error|crit|alert|emerg)\]/);
  });
});

describe('Debian nginx in front of a skiff mirror with --x-accel-redirect', { skip }, () => {
  let origin: TestRegistry;
  let mirror: TestMirror;
  let front: NginxFront;
  let work: string;
  let image: TestImage;

  before(async () => {
    origin = await startTestRegistry();
    image = await makeImage({ seed: 'offload-mirror', layers: 3, layerSize: 3 * MiB });
    await pushImage(origin.url, 'team/app', image, 'v1');
    mirror = await startTestMirror({ xAccelRedirect: PREFIX, upstreams: [upstream({ host: 'upstream.test', url: origin.url, default: true })] });
    front = await startNginxFront({ skiff: mirror.address, dataDir: mirror.dataDir });
    work = await mkdtemp(join(tmpdir(), 'skiff-offload-mirror-'));
  });
  after(async () => {
    await front?.stop();
    await mirror?.stop();
    await origin?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('a miss is streamed by skiff from the fill; once cached, nginx sends the file', async () => {
    const [first, second] = image.layers as [TestImage['layers'][number], TestImage['layers'][number]];
    const url = (digest: string) => `${front.url}/v2/team/app/blobs/${digest}`;

    const before = await skiffCounters(mirror);
    const cold = await get(url(first.descriptor.digest));
    assert.equal(cold.status, 200);
    assert.equal(sha256(cold.body), first.descriptor.digest);
    // A Range on a miss: the fill answers it.
    const coldRange = await get(url(second.descriptor.digest), { range: 'bytes=2000-2999' });
    assert.equal(coldRange.status, 206);
    assert.deepEqual(coldRange.body, second.data.subarray(2000, 3000));
    const filled = await skiffCounters(mirror);
    assert.equal(filled.offloads, before.offloads, 'no fill in progress is offloaded');
    assert.ok(filled.sent - before.sent >= first.data.length, 'skiff sent the cold bytes');

    const warm = await get(url(first.descriptor.digest));
    assert.equal(warm.status, 200);
    assert.equal(sha256(warm.body), first.descriptor.digest);
    assertBlobHeaders(warm, first.descriptor.digest);
    const warmRange = await get(url(second.descriptor.digest), { range: 'bytes=-777' });
    assert.equal(warmRange.status, 206);
    assert.deepEqual(warmRange.body, second.data.subarray(second.data.length - 777));
    const warmed = await skiffCounters(mirror);
    assert.equal(warmed.offloads - filled.offloads, 2);
    assert.ok(warmed.sent - filled.sent < 16 * 1024, `skiff wrote ${warmed.sent - filled.sent} bytes for cached blobs`);
  });

  test('skopeo pulls through nginx and the mirror with every digest identical to the upstream', async () => {
    const dst = join(work, 'dst');
    await skopeo(['copy', '--preserve-digests', ...TLS, `docker://${front.host}/team/app:v1`, `oci:${dst}:v1`]);
    const index = JSON.parse(await readFile(join(dst, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifest.descriptor.digest);
    for (const item of image.blobs) assert.deepEqual(await readFile(join(dst, 'blobs', 'sha256', item.descriptor.digest.slice(7))), item.data);
  });
});
