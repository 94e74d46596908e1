import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UnsafeEntryError } from '../../src/images/rootfs-path.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug class: writing through a symlink that a layer planted (CVE-2018-15664-like for docker cp,
 * node-tar GHSA-r628-mhmh-qjhw / CVE-2021-32803 for extraction). A layer creates `dir -> /outside`
 * and a later entry writes `dir/file`; a naive extractor follows the link onto the host.
 * skiff resolves parents inside the root, as the container itself would see them.
 */
describe('unpack: a planted directory symlink never leads outside the root', () => {
  let bench: UnpackBench;
  let outside: string;
  before(async () => {
    bench = await unpackBench();
    await mkdir(join(bench.dir, 'outside'));
    outside = await realpath(join(bench.dir, 'outside'));
  });
  after(async () => {
    await bench.cleanup();
  });

  test('absolute symlink in layer 1, write through it in layer 2: lands inside the root', async () => {
    const { root } = await bench.unpackLayers([
      [{ name: 'escape', type: 'symlink', linkname: outside }],
      [{ name: 'escape/pwned', data: 'gotcha' }],
    ]);
    assert.deepEqual(await readdir(outside), [], 'nothing written on the host');
    assert.equal(await readFile(join(root, outside, 'pwned'), 'utf8'), 'gotcha', 'the container sees it at the link target, inside the root');
    assert.equal((await lstat(join(root, 'escape'))).isSymbolicLink(), true, 'the link itself is kept');
  });

  test('the same trick inside a single layer', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'escape', type: 'symlink', linkname: outside },
        { name: 'escape/pwned', data: 'gotcha' },
      ],
    ]);
    assert.deepEqual(await readdir(outside), []);
    assert.equal(await readFile(join(root, outside, 'pwned'), 'utf8'), 'gotcha');
  });

  test('relative symlinks climbing with ../ stop at the root', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'a/b/up', type: 'symlink', linkname: '../../../../../../../../..' },
        { name: 'chain1', type: 'symlink', linkname: 'chain2' },
        { name: 'chain2', type: 'symlink', linkname: `../../../..${outside}` },
      ],
      [
        { name: 'a/b/up/tmp/dropped', data: 'x' },
        { name: 'chain1/chained', data: 'y' },
      ],
    ]);
    assert.deepEqual(await readdir(outside), []);
    assert.equal(await readFile(join(root, 'tmp/dropped'), 'utf8'), 'x');
    assert.equal(await readFile(join(root, outside, 'chained'), 'utf8'), 'y');
  });

  test('`etc -> /etc` then `etc/<file>`: refused (the link points at itself inside the root), host /etc untouched', async () => {
    // A unique name: should this ever regress, it leaves one harmless file (removed below), not a new /etc/passwd.
    const probe = `skiff-escape-probe-${randomUUID()}`;
    try {
      await assert.rejects(
        bench.unpackLayers([[{ name: 'etc', type: 'symlink', linkname: '/etc' }], [{ name: `etc/${probe}`, data: 'root::0:0::/:/bin/sh\n' }]]),
        UnsafeEntryError,
      );
      await assert.rejects(lstat(join('/etc', probe)), { code: 'ENOENT' });
    } finally {
      await rm(join('/etc', probe), { force: true });
    }
  });

  test('a whiteout through a planted symlink deletes inside the root only', async () => {
    const victim = join(outside, 'victim');
    await mkdir(victim);
    const { root } = await bench.unpackLayers([[{ name: 'escape', type: 'symlink', linkname: outside }], [{ name: 'escape/.wh.victim' }]]);
    assert.ok((await lstat(victim)).isDirectory(), 'the host directory survived');
    assert.ok((await lstat(join(root, 'escape'))).isSymbolicLink());
  });

  test('an opaque marker under a planted symlink empties only the in-root directory', async () => {
    const { root } = await bench.unpackLayers([[{ name: 'escape', type: 'symlink', linkname: outside }], [{ name: 'escape/.wh..wh..opq' }]]);
    assert.deepEqual(await readdir(outside), ['victim'], 'host content intact');
    assert.deepEqual(await readdir(join(root, outside)), []);
  });

  test('an endless symlink loop is refused, not followed forever', async () => {
    await assert.rejects(
      bench.unpackLayers([
        [
          { name: 'loop1', type: 'symlink', linkname: 'loop2' },
          { name: 'loop2', type: 'symlink', linkname: 'loop1' },
        ],
        [{ name: 'loop1/file', data: 'x' }],
      ]),
      /too many levels of symbolic links/,
    );
  });
});
