import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeImage, makeIndex, writeOciLayout, type Blob } from '../../src/testing/images.ts';
import { peerSkipReason, skopeo, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const skip = await peerSkipReason('skopeo', 'docker-registry');
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Digests of everything in an OCI layout: the top manifest from index.json plus every blob file. */
async function layoutContents(dir: string): Promise<{ top: string; blobs: string[] }> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
  for (const digest of blobs) assert.equal(sha256(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)))), digest, `blob ${digest} intact`);
  return { top: index.manifests[0]!.digest, blobs };
}

/** skopeo's `dir:` transport: manifest.json plus blobs by hex; carries any manifest type unchanged. */
async function writeDirImage(dir: string, manifest: Blob, blobs: Blob[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  await writeFile(join(dir, 'manifest.json'), manifest.data);
  for (const item of blobs) await writeFile(join(dir, item.descriptor.digest.slice(7)), item.data);
}

describe('skopeo against skiff serve', { skip }, () => {
  let registry: TestRegistry;
  let cncf: Peer;
  let work: string;
  let host: string;

  before(async () => {
    registry = await startTestRegistry();
    host = registry.address;
    cncf = await startCncfRegistry();
    work = await mkdtemp(join(tmpdir(), 'skiff-interop-'));
  });
  after(async () => {
    await registry?.stop();
    await cncf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('OCI image round trip oci: → skiff → oci: keeps every digest', async () => {
    const image = await makeImage({ seed: 'oci-rt', layers: 3, layerSize: 64 * 1024 });
    const src = join(work, 'oci-src');
    await writeOciLayout(src, [...image.blobs, image.manifest], { v1: image.manifest });
    await skopeo(['copy', '--preserve-digests', ...TLS, `oci:${src}:v1`, `docker://${host}/interop/oci:v1`]);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/interop/oci:v1`]);
    assert.equal(sha256(Buffer.from(raw)), image.manifest.descriptor.digest, 'manifest bytes preserved');
    const dst = join(work, 'oci-dst');
    await skopeo(['copy', '--preserve-digests', ...TLS, `docker://${host}/interop/oci:v1`, `oci:${dst}:v1`]);
    const back = await layoutContents(dst);
    assert.equal(back.top, image.manifest.descriptor.digest);
    assert.deepEqual(back.blobs, [...image.blobs, image.manifest].map((b) => b.descriptor.digest).sort());
  });

  test('Docker schema2 image round trip keeps the manifest bytes and blobs', async () => {
    const image = await makeImage({ seed: 'docker-rt', layers: 2, format: 'docker' });
    const src = join(work, 'docker-src');
    await writeDirImage(src, image.manifest, image.blobs);
    await skopeo(['copy', '--preserve-digests', ...TLS, `dir:${src}`, `docker://${host}/interop/docker:v2`]);
    const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${host}/interop/docker:v2`])) as Record<string, unknown>;
    assert.equal(inspect.Digest, image.manifest.descriptor.digest);
    assert.equal(inspect.Architecture, 'amd64');
    const dst = join(work, 'docker-dst');
    await skopeo(['copy', '--preserve-digests', ...TLS, `docker://${host}/interop/docker:v2`, `dir:${dst}`]);
    assert.deepEqual(await readFile(join(dst, 'manifest.json')), image.manifest.data);
    for (const item of image.blobs) assert.deepEqual(await readFile(join(dst, item.descriptor.digest.slice(7))), item.data);
  });

  test('multi-arch index round trip with --all keeps the index and child digests', async () => {
    const amd64 = await makeImage({ seed: 'multi-amd64', platform: { os: 'linux', architecture: 'amd64' } });
    const arm64 = await makeImage({ seed: 'multi-arm64', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const index = makeIndex([amd64, arm64]);
    const src = join(work, 'multi-src');
    await writeOciLayout(src, [...amd64.blobs, amd64.manifest, ...arm64.blobs, arm64.manifest, index], { multi: index });
    await skopeo(['copy', '--all', '--preserve-digests', ...TLS, `oci:${src}:multi`, `docker://${host}/interop/multi:latest`]);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/interop/multi:latest`]);
    assert.equal(sha256(Buffer.from(raw)), index.descriptor.digest);
    const dst = join(work, 'multi-dst');
    await skopeo(['copy', '--all', '--preserve-digests', ...TLS, `docker://${host}/interop/multi:latest`, `oci:${dst}:multi`]);
    const back = await layoutContents(dst);
    assert.equal(back.top, index.descriptor.digest);
    for (const child of [amd64.manifest, arm64.manifest]) assert.ok(back.blobs.includes(child.descriptor.digest), `child ${child.descriptor.digest} copied`);
  });

  test('skopeo inspect, list-tags and delete', async () => {
    const image = await makeImage({ seed: 'tags' });
    const src = join(work, 'tags-src');
    await writeOciLayout(src, [...image.blobs, image.manifest], { v1: image.manifest });
    for (const tag of ['b', 'a', 'c']) await skopeo(['copy', '--preserve-digests', ...TLS, `oci:${src}:v1`, `docker://${host}/interop/tags:${tag}`]);
    const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', `docker://${host}/interop/tags`])) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['a', 'b', 'c']);
    const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${host}/interop/tags:a`])) as { Digest: string; Os: string; Layers: string[] };
    assert.equal(inspect.Digest, image.manifest.descriptor.digest);
    assert.equal(inspect.Os, 'linux');
    assert.deepEqual(inspect.Layers, image.layers.map((l) => l.descriptor.digest));
    await skopeo(['delete', '--tls-verify=false', `docker://${host}/interop/tags:a`]);
    // skopeo deletes by digest: the manifest and every tag on it are gone.
    await assert.rejects(skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/interop/tags:b`]), /manifest unknown|not found/i);
  });

  test('skopeo sync --src docker --dest docker between skiff repositories', async () => {
    const image = await makeImage({ seed: 'sync' });
    const src = join(work, 'sync-src');
    await writeOciLayout(src, [...image.blobs, image.manifest], { v1: image.manifest });
    for (const tag of ['1.0', '2.0']) await skopeo(['copy', '--preserve-digests', ...TLS, `oci:${src}:v1`, `docker://${host}/interop/syncsrc:${tag}`]);
    await skopeo(['sync', '--preserve-digests', '--src', 'docker', '--dest', 'docker', ...TLS, `${host}/interop/syncsrc`, `${host}/mirror`]);
    const tags = JSON.parse(await skopeo(['list-tags', '--tls-verify=false', `docker://${host}/mirror/syncsrc`])) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['1.0', '2.0']);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/mirror/syncsrc:2.0`]);
    assert.equal(sha256(Buffer.from(raw)), image.manifest.descriptor.digest);
  });

  test('CNCF registry → skiff → CNCF registry keeps digests (index and images)', async () => {
    const a = await makeImage({ seed: 'cncf-a', layers: 2, layerSize: 200 * 1024, platform: { os: 'linux', architecture: 'amd64' } });
    const b = await makeImage({ seed: 'cncf-b', layers: 2, layerSize: 200 * 1024, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    const index = makeIndex([a, b]);
    const src = join(work, 'cncf-src');
    await writeOciLayout(src, [...a.blobs, a.manifest, ...b.blobs, b.manifest, index], { multi: index });
    await skopeo(['copy', '--all', '--preserve-digests', ...TLS, `oci:${src}:multi`, `docker://${cncf.host}/origin/app:1`]);
    await skopeo(['copy', '--all', '--preserve-digests', ...TLS, `docker://${cncf.host}/origin/app:1`, `docker://${host}/via/app:1`]);
    await skopeo(['copy', '--all', '--preserve-digests', ...TLS, `docker://${host}/via/app:1`, `docker://${cncf.host}/back/app:1`]);
    for (const ref of [`${host}/via/app:1`, `${cncf.host}/back/app:1`]) {
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
      assert.equal(sha256(Buffer.from(raw)), index.descriptor.digest, `${ref} index digest`);
      const child = JSON.parse(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref.replace(/:1$/, '')}@${b.manifest.descriptor.digest}`])) as { layers: { digest: string }[] };
      assert.deepEqual(child.layers.map((l) => l.digest), b.layers.map((l) => l.descriptor.digest));
    }
  });
});
