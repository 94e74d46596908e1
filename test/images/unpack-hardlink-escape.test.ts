import assert from 'node:assert/strict';
import { mkdir, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UnsafeEntryError } from '../../src/images/rootfs-path.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug class: hard links to files outside the root (docker CVE-2014-6407 family, node-tar
 * GHSA-9r2w-394v-53qc). A hard link's target is an archive path: it is resolved inside the
 * root like any entry, through planted symlinks too, and must already exist there.
 */
describe('unpack: hard links only ever point inside the root', () => {
  let bench: UnpackBench;
  let hostFile: string;
  before(async () => {
    bench = await unpackBench();
    await mkdir(join(bench.dir, 'outside'));
    hostFile = join(await realpath(join(bench.dir, 'outside')), 'secret');
    await writeFile(hostFile, 'host secret');
  });
  after(async () => {
    await bench.cleanup();
  });

  test('an absolute target outside names a path inside the root, which does not exist: refused', async () => {
    await assert.rejects(bench.unpackLayers([[{ name: 'grab', type: 'link', linkname: hostFile }]]), /hard link target .* is not in the layers unpacked so far/);
    assert.equal((await stat(hostFile)).nlink, 1);
  });

  test('a target reached through a planted directory symlink stays inside the root', async () => {
    await assert.rejects(
      bench.unpackLayers([[{ name: 'out', type: 'symlink', linkname: join(hostFile, '..') }], [{ name: 'grab', type: 'link', linkname: 'out/secret' }]]),
      /not in the layers unpacked so far/,
    );
    assert.equal((await stat(hostFile)).nlink, 1, 'no link was made to the host file');
  });

  test('with a same-named file inside the root, the link goes to that one', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: hostFile.slice(1), data: 'inside copy' },
        { name: 'grab', type: 'link', linkname: hostFile },
      ],
    ]);
    assert.equal(await readFile(join(root, 'grab'), 'utf8'), 'inside copy');
    assert.equal((await stat(hostFile)).nlink, 1);
  });

  test('`..` out of the root and hard links to directories are refused', async () => {
    await assert.rejects(bench.unpackLayers([[{ name: 'grab', type: 'link', linkname: '../../outside/secret' }]]), UnsafeEntryError);
    await assert.rejects(bench.unpackLayers([[{ name: 'dir/', type: 'directory' }, { name: 'grab', type: 'link', linkname: 'dir' }]]), /hard link to a directory/);
    assert.equal((await stat(hostFile)).nlink, 1);
  });

  test('a later file written at a hard link path does not change the other name', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'shared', data: 'original' },
        { name: 'alias', type: 'link', linkname: 'shared' },
      ],
      [{ name: 'alias', data: 'replaced' }],
    ]);
    assert.equal(await readFile(join(root, 'shared'), 'utf8'), 'original');
    assert.equal(await readFile(join(root, 'alias'), 'utf8'), 'replaced');
  });
});
