import assert from 'node:assert/strict';
import { lstat, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

describe('unpack: whiteouts and opaque directories', () => {
  let bench: UnpackBench;
  before(async () => {
    bench = await unpackBench();
  });
  after(async () => {
    await bench.cleanup();
  });

  test('.wh.<name> deletes a file, a link or a whole directory of a lower layer, and is not itself created', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/gone.conf', data: 'x' },
        { name: 'etc/kept.conf', data: 'y' },
        { name: 'var/cache/apt/archives/a.deb', data: 'deb' },
        { name: 'link', type: 'symlink', linkname: 'etc/kept.conf' },
      ],
      [
        { name: 'etc/.wh.gone.conf' },
        { name: 'var/cache/.wh.apt' },
        { name: '.wh.link' },
      ],
    ]);
    assert.equal(await exists(join(root, 'etc/gone.conf')), false);
    assert.equal(await exists(join(root, 'var/cache/apt')), false);
    assert.equal(await exists(join(root, 'link')), false);
    assert.equal(await readFile(join(root, 'etc/kept.conf'), 'utf8'), 'y', 'deleting the link left its target alone');
    assert.deepEqual(await readdir(join(root, 'etc')), ['kept.conf'], 'no .wh. file materialized');
    assert.deepEqual(await readdir(join(root, 'var/cache')), []);
  });

  test('a whiteout for something absent, or under a missing directory, is harmless', async () => {
    const { root } = await bench.unpackLayers([[{ name: 'a', data: 'a' }], [{ name: '.wh.never' }, { name: 'no/such/dir/.wh.file' }]]);
    assert.deepEqual(await readdir(root), ['a']);
  });

  test('.wh..wh..opq empties the directory of lower content but keeps what its own layer adds', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'app/', type: 'directory' },
        { name: 'app/old1', data: 'old' },
        { name: 'app/sub/old2', data: 'old' },
        { name: 'app/sub/deeper/old3', data: 'old' },
        { name: 'beside', data: 'untouched' },
      ],
      [
        { name: 'app/', type: 'directory', mode: 0o750 },
        { name: 'app/.wh..wh..opq' },
        { name: 'app/new', data: 'new' },
      ],
    ]);
    assert.deepEqual(await readdir(join(root, 'app')), ['new']);
    assert.equal((await stat(join(root, 'app'))).mode & 0o7777, 0o750);
    assert.equal(await readFile(join(root, 'beside'), 'utf8'), 'untouched');
  });

  test('the opaque marker works wherever it sits in the layer: entries before it survive, lower ones do not', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'app/old', data: 'old' },
        { name: 'app/sub/old', data: 'old' },
        { name: 'app/sub/keep-name', data: 'old version' },
      ],
      [
        { name: 'app/sub/keep-name', data: 'new version' },
        { name: 'app/fresh/file', data: 'fresh' },
        { name: 'app/.wh..wh..opq' },
      ],
    ]);
    assert.deepEqual((await readdir(join(root, 'app'))).sort(), ['fresh', 'sub']);
    assert.deepEqual(await readdir(join(root, 'app/sub')), ['keep-name'], 'the lower sibling in a kept directory is gone');
    assert.equal(await readFile(join(root, 'app/sub/keep-name'), 'utf8'), 'new version');
    assert.equal(await readFile(join(root, 'app/fresh/file'), 'utf8'), 'fresh');
  });

  test('whiteouts then re-creation across three layers', async () => {
    const { root } = await bench.unpackLayers([
      [{ name: 'x/one', data: '1' }],
      [{ name: '.wh.x' }],
      [{ name: 'x/', type: 'directory', mode: 0o711 }, { name: 'x/two', data: '2' }],
    ]);
    assert.deepEqual(await readdir(join(root, 'x')), ['two']);
    assert.equal((await stat(join(root, 'x'))).mode & 0o7777, 0o711);
  });

  test('a whiteout under a symlinked directory deletes inside the root, following the link as the container would', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'usr/lib/libold.so', data: 'old' },
        { name: 'lib', type: 'symlink', linkname: '/usr/lib' },
      ],
      [{ name: 'lib/.wh.libold.so' }],
    ]);
    assert.equal(await exists(join(root, 'usr/lib/libold.so')), false);
    assert.equal((await lstat(join(root, 'lib'))).isSymbolicLink(), true);
  });
});
