import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { ArchiveError, load } from '../../src/images/load.ts';
import type { ImageStore } from '../../src/images/store.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, jsonOf, readTar, saveToBuffer, toTar, type ArchiveBench, type TarFile } from './archive-fixtures.ts';

const hex = (digest: string) => digest.slice('sha256:'.length);

/** Nothing half-loaded: no name, no index entry, no record, no ingest leftovers. */
async function assertNothingLoaded(store: ImageStore): Promise<void> {
  assert.deepEqual(await store.refs(), []);
  assert.deepEqual(await store.records(), []);
  assert.deepEqual(await readdir(join(store.root, '.skiff', 'ingest')), []);
}

describe('load: corrupt, truncated and hostile archives', () => {
  let bench: ArchiveBench;
  let source: ImageStore;
  let good: TestImage;
  let other: TestImage;
  let files: TarFile[];

  before(async () => {
    bench = await archiveBench();
    source = await bench.newStore();
    good = await makeImage({ seed: 'good', layers: 2, layerSize: 64 * 1024 });
    other = await makeImage({ seed: 'other', layers: 1 });
    await storeTestImage(source, good, 'docker.io/library/good:1');
    await storeTestImage(source, other, 'docker.io/library/other:1');
    files = await readTar((await saveToBuffer(source, ['other:1', 'good:1'])).tar);
  });
  after(async () => {
    await bench.cleanup();
  });

  async function loadFails(tar: Buffer, pattern: RegExp): Promise<ImageStore> {
    const store = await bench.newStore();
    await assert.rejects(load(store, Readable.from([tar])), (error: unknown) => {
      assert.ok(error instanceof ArchiveError, `ArchiveError expected, got ${String(error)}`);
      assert.match(error.message, pattern);
      return true;
    });
    await assertNothingLoaded(store);
    return store;
  }

  test('a blob whose bytes do not match its name', async () => {
    const name = `blobs/sha256/${hex(good.layers[1]!.descriptor.digest)}`;
    const tampered = files.map((f) => (f.name === name ? { ...f, data: Buffer.from(f.data).fill(0x41, 100, 200) } : f));
    await loadFails(await toTar(tampered), new RegExp(`archive entry ${name} is corrupt: its content hashes to sha256:[a-f0-9]{64}, not the digest its name promises`));
  });

  test('one bad image fails the whole load, including the good image before it', async () => {
    const name = `blobs/sha256/${hex(good.config.descriptor.digest)}`;
    // Drop good's config: the other image is complete, but must not be loaded alone.
    await loadFails(await toTar(files.filter((f) => f.name !== name)), /index\.json manifests\[1\] config: blob sha256:[a-f0-9]{64} is not in the archive/);
  });

  test('manifest.json pointing at a file that is not in the archive', async () => {
    const withoutIndex = files.filter((f) => f.name !== 'index.json');
    const manifest = jsonOf<{ Config: string; RepoTags: string[]; Layers: string[] }[]>(files, 'manifest.json');
    manifest[1]!.Layers[0] = 'abc/layer.tar';
    const broken = withoutIndex.map((f) => (f.name === 'manifest.json' ? { ...f, data: Buffer.from(JSON.stringify(manifest)) } : f));
    await loadFails(await toTar(broken), /manifest\.json\[1\] refers to layer "abc\/layer\.tar", which is not in the archive/);
    manifest[1]!.Layers[0] = files.find((f) => f.name.startsWith('blobs/sha256/') && f.type === 'file')!.name;
    manifest[0]!.Config = 'missing.json';
    const noConfig = withoutIndex.map((f) => (f.name === 'manifest.json' ? { ...f, data: Buffer.from(JSON.stringify(manifest)) } : f));
    await loadFails(await toTar(noConfig), /manifest\.json\[0\] refers to config "missing\.json", which is not in the archive/);
  });

  test('a truncated archive (cut inside a blob) is reported as truncated', async () => {
    const tar = await toTar(files);
    const big = files.find((f) => f.data.length > 60_000)!;
    let offset = 0;
    for (const f of files) {
      if (f === big) break;
      offset += 512 + Math.ceil(f.data.length / 512) * 512;
    }
    await loadFails(tar.subarray(0, offset + 512 + 1000), /the archive is truncated \(unexpected end of data\)/);
    await loadFails(tar.subarray(0, 700), /truncated/);
    const gzipped = gzipSync(tar);
    await loadFails(gzipped.subarray(0, gzipped.length - 100), /the archive is truncated \(unexpected end of file\)/);
  });

  test('an archive cut between entries, before its metadata, is not an image archive', async () => {
    await loadFails(await toTar(files.filter((f) => f.name.startsWith('blobs/'))), /not an image archive: it has neither index\.json .* nor manifest\.json/);
  });

  test('layers that do not match the config DiffIDs', async () => {
    // Swap the two layers in the docker manifest: every blob is intact, the order is wrong.
    const manifest = jsonOf<{ Config: string; RepoTags: string[]; Layers: string[] }[]>(files, 'manifest.json');
    manifest[1]!.Layers.reverse();
    const swapped = files.filter((f) => f.name !== 'index.json').map((f) => (f.name === 'manifest.json' ? { ...f, data: Buffer.from(JSON.stringify(manifest)) } : f));
    await loadFails(await toTar(swapped), /manifest\.json\[1\] \(good:1\): layers from manifest don't match image configuration: layer 0 unpacks to/);
  });

  test('not a tar at all, empty input, and broken JSON', async () => {
    await loadFails(Buffer.from('this is not a tar archive'.repeat(40)), /^not a tar archive \(nor a gzip- or zstd-compressed one\): its first 512 bytes are not a tar header/);
    // Bug: an 8-byte garbage file was "the archive is truncated".
    await loadFails(Buffer.from('garbage!'), /^not a tar archive \(nor a gzip- or zstd-compressed one\): it ends before its first tar header \(512 bytes\) is complete; load reads what skiff save, docker save or skopeo copy write$/);
    await loadFails(gzipSync(Buffer.from('garbage!')), /^not a tar archive/);
    await loadFails(Buffer.alloc(0), /not an image archive/);
    await loadFails(await toTar([{ name: 'index.json', type: 'file', data: Buffer.from('{"manifests": [') }]), /index\.json in the archive is not valid JSON/);
    await loadFails(await toTar([{ name: 'manifest.json', type: 'file', data: Buffer.from('{"Config": "x"}') }]), /manifest\.json is not a list of images/);
    await loadFails(await toTar([{ name: 'index.json', type: 'file', data: Buffer.from('{"schemaVersion": 2, "manifests": []}') }]), /holds no images/);
  });

  test('hostile entry names: `..` refuses the archive', async () => {
    for (const name of ['../../escape', 'blobs/../../../escape', '/../escape']) {
      await loadFails(await toTar([...files, { name, type: 'file', data: Buffer.from('x') }]), /refusing a hostile archive: entry .* has a "\.\." component/);
    }
    await assert.rejects(lstat(join(bench.dir, '..', 'escape')), { code: 'ENOENT' });
  });

  test('a missing input file is the system error, not a corrupt archive', async () => {
    await assert.rejects(load(await bench.newStore(), createReadStream(join(bench.dir, 'no-such.tar'))), { code: 'ENOENT' });
  });

  test('absolute entry names are only names: nothing is written at that path', async () => {
    const probe = join('/tmp', `skiff-load-probe-${randomUUID()}`);
    const store = await bench.newStore();
    const result = await load(store, Readable.from([await toTar([...files, { name: probe, type: 'file', data: Buffer.from('x') }])]));
    assert.equal(result.images.length, 2);
    await assert.rejects(lstat(probe), { code: 'ENOENT' });
  });

  test('a manifest.json path through a symlink to a host file is not followed outside the archive', async () => {
    const manifest = jsonOf<{ Config: string; RepoTags: string[]; Layers: string[] }[]>(files, 'manifest.json');
    manifest[0]!.Layers[0] = 'evil/layer.tar';
    const tar = await toTar([
      ...files.filter((f) => f.name !== 'index.json' && f.name !== 'manifest.json'),
      { name: 'evil/layer.tar', type: 'symlink', data: Buffer.alloc(0), linkname: '/etc/passwd' },
      { name: 'manifest.json', type: 'file', data: Buffer.from(JSON.stringify(manifest)) },
    ]);
    await loadFails(tar, /manifest\.json\[0\] refers to layer "evil\/layer\.tar", which is not in the archive/);
  });
});
