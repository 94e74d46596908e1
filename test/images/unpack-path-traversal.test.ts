import assert from 'node:assert/strict';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UnsafeEntryError } from '../../src/images/rootfs-path.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug class: path traversal by entry name (node-tar GHSA-3jfq-g458-7qm9 and its kin): `../x`,
 * `a/../../x`, absolute names. `..` that climbs out is refused; a leading `/` is dropped, as docker does.
 */
describe('unpack: entry names cannot climb out of the root', () => {
  let bench: UnpackBench;
  before(async () => {
    bench = await unpackBench();
  });
  after(async () => {
    await bench.cleanup();
  });

  for (const name of ['../escaped', 'a/../../escaped', './../escaped', '/../escaped', 'a/b/../../../escaped']) {
    test(`refuses ${JSON.stringify(name)}`, async () => {
      await assert.rejects(bench.unpackLayers([[{ name: 'a/b/', type: 'directory' }, { name, data: 'x' }]]), (error: unknown) => {
        assert.ok(error instanceof UnsafeEntryError, String(error));
        assert.match(error.message, /climbs out of the root/);
        return true;
      });
      assert.equal(await lstat(join(bench.dir, 'escaped')).catch(() => undefined), undefined, 'nothing beside the rootfs');
    });
  }

  test('refuses `..` in a whiteout name and in a hard link target', async () => {
    await assert.rejects(bench.unpackLayers([[{ name: '../.wh.store' }]]), UnsafeEntryError);
    await assert.rejects(bench.unpackLayers([[{ name: 'x', type: 'link', linkname: '../../store/index.json' }]]), UnsafeEntryError);
    assert.ok((await lstat(join(bench.dir, 'store'))).isDirectory(), 'the whiteout did not delete the store beside the rootfs');
  });

  test('absolute names land inside the root; `..` that stays inside is resolved', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: '/etc/hostname', data: 'abs' },
        { name: 'usr/../var/file', data: 'inner dotdot' },
        { name: './opt//x', data: 'dot and double slash' },
      ],
    ]);
    assert.equal(await readFile(join(root, 'etc/hostname'), 'utf8'), 'abs');
    assert.equal(await readFile(join(root, 'var/file'), 'utf8'), 'inner dotdot');
    assert.equal(await readFile(join(root, 'opt/x'), 'utf8'), 'dot and double slash');
    assert.deepEqual((await readdir(root)).sort(), ['etc', 'opt', 'var']);
  });

  test('a symlink whose *target* has .. is stored as text (links are never followed outside)', async () => {
    const { root } = await bench.unpackLayers([[{ name: 'up', type: 'symlink', linkname: '../../../../etc/shadow' }]]);
    assert.ok((await lstat(join(root, 'up'))).isSymbolicLink());
  });
});
