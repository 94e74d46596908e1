import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug class: clobbering through a final-component symlink. A layer ships `passwd -> /outside/file`
 * and a later entry is a regular file (or hard link, or directory) at `passwd`; opening it for
 * writing without O_NOFOLLOW truncates the host file. skiff removes the link and creates the file
 * with O_EXCL|O_NOFOLLOW.
 */
describe('unpack: an entry replacing a symlink never writes through it', () => {
  let bench: UnpackBench;
  let hostFile: string;
  before(async () => {
    bench = await unpackBench();
    const outside = join(bench.dir, 'outside');
    await mkdir(outside);
    hostFile = join(await realpath(outside), 'precious');
    await writeFile(hostFile, 'original', { mode: 0o644 });
  });
  after(async () => {
    await bench.cleanup();
  });

  test('regular file over a symlink to a host file (across layers and within one)', async () => {
    for (const layers of [
      [[{ name: 'passwd', type: 'symlink' as const, linkname: hostFile }], [{ name: 'passwd', data: 'pwned', mode: 0o777 }]],
      [[{ name: 'passwd', type: 'symlink' as const, linkname: hostFile }, { name: 'passwd', data: 'pwned', mode: 0o777 }]],
    ]) {
      const { root } = await bench.unpackLayers(layers);
      assert.equal(await readFile(hostFile, 'utf8'), 'original');
      assert.equal((await stat(hostFile)).mode & 0o777, 0o644, 'host file mode untouched');
      assert.ok((await lstat(join(root, 'passwd'))).isFile());
      assert.equal(await readFile(join(root, 'passwd'), 'utf8'), 'pwned');
    }
  });

  test('directory entry over a symlink: replaces the link, does not chmod the target', async () => {
    const { root } = await bench.unpackLayers([[{ name: 'd', type: 'symlink', linkname: join(hostFile, '..') }], [{ name: 'd/', type: 'directory', mode: 0o777 }]]);
    assert.ok((await lstat(join(root, 'd'))).isDirectory());
    assert.notEqual((await stat(join(hostFile, '..'))).mode & 0o777, 0o777);
  });

  test('hard link entry over a symlink: the host file gains no link', async () => {
    const before = (await stat(hostFile)).nlink;
    const { root } = await bench.unpackLayers([
      [{ name: 'real', data: 'inside' }, { name: 'x', type: 'symlink', linkname: hostFile }],
      [{ name: 'x', type: 'link', linkname: 'real' }],
    ]);
    assert.equal((await stat(hostFile)).nlink, before);
    assert.equal(await readFile(join(root, 'x'), 'utf8'), 'inside');
  });
});
