import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NoSuchImageError } from '../../src/images/resolve.ts';
import { unpack, UnpackTargetError } from '../../src/images/unpack.ts';
import { TEST_MTIME } from '../../src/testing/layers.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

const asRoot = process.getuid?.() === 0;

describe('unpack: applying layers into a root filesystem', () => {
  let bench: UnpackBench;
  before(async () => {
    bench = await unpackBench();
  });
  after(async () => {
    await bench.cleanup();
  });

  test('files, directories, modes and mtimes land as the layer says', async () => {
    const dirTime = new Date('2019-09-09T09:09:09Z');
    const { root } = await bench.unpackLayers([
      [
        { name: 'usr/', type: 'directory', mode: 0o755, mtime: dirTime },
        { name: 'usr/bin/', type: 'directory', mode: 0o750, mtime: dirTime },
        { name: 'usr/bin/tool', data: '#!/bin/sh\necho hi\n', mode: 0o755 },
        { name: 'usr/bin/secret', data: 'shh', mode: 0o600 },
        { name: 'usr/bin/setuid', data: 'x', mode: 0o4755 },
        { name: 'deep/implicit/parents/file.txt', data: 'made without dir entries' },
      ],
    ]);
    assert.equal(await readFile(join(root, 'usr/bin/tool'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal((await stat(join(root, 'usr/bin/tool'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(root, 'usr/bin/secret'))).mode & 0o7777, 0o600);
    assert.equal((await stat(join(root, 'usr/bin/setuid'))).mode & 0o7777, 0o4755);
    assert.equal((await stat(join(root, 'usr/bin'))).mode & 0o7777, 0o750);
    assert.equal((await stat(join(root, 'usr/bin/tool'))).mtime.getTime(), TEST_MTIME.getTime());
    // Directory mtimes are set after their children were written, so they stick.
    assert.equal((await stat(join(root, 'usr/bin'))).mtime.getTime(), dirTime.getTime());
    assert.equal((await stat(join(root, 'usr'))).mtime.getTime(), dirTime.getTime());
    assert.equal(await readFile(join(root, 'deep/implicit/parents/file.txt'), 'utf8'), 'made without dir entries');
  });

  test('symlinks are kept verbatim (never followed), hard links share the inode', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/os-release', data: 'ID=skiff\n' },
        { name: 'etc/mtab', type: 'symlink', linkname: '/proc/self/mounts' },
        { name: 'os-release', type: 'symlink', linkname: 'etc/os-release' },
        { name: 'etc/os-release.hard', type: 'link', linkname: 'etc/os-release' },
        { name: 'abs-hard', type: 'link', linkname: '/etc/os-release' },
      ],
    ]);
    assert.equal(await readlink(join(root, 'etc/mtab')), '/proc/self/mounts');
    assert.equal(await readlink(join(root, 'os-release')), 'etc/os-release');
    assert.equal(await readFile(join(root, 'os-release'), 'utf8'), 'ID=skiff\n');
    const original = await stat(join(root, 'etc/os-release'));
    assert.equal((await stat(join(root, 'etc/os-release.hard'))).ino, original.ino);
    assert.equal((await stat(join(root, 'abs-hard'))).ino, original.ino, 'an absolute hard link target is inside the root');
    assert.equal(original.nlink, 3);
  });

  test('uid/gid are kept when running as root (else the files belong to the caller)', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'home/', type: 'directory', uid: 1000, gid: 1000 },
        { name: 'home/user.txt', data: 'mine', uid: 1234, gid: 5678 },
        { name: 'home/link', type: 'symlink', linkname: 'user.txt', uid: 4321, gid: 8765 },
      ],
    ]);
    const file = await stat(join(root, 'home/user.txt'));
    const link = await lstat(join(root, 'home/link'));
    const dir = await stat(join(root, 'home'));
    if (asRoot) {
      assert.deepEqual([file.uid, file.gid], [1234, 5678]);
      assert.deepEqual([link.uid, link.gid], [4321, 8765]);
      assert.deepEqual([dir.uid, dir.gid], [1000, 1000]);
    } else {
      assert.deepEqual([file.uid, link.uid, dir.uid], [process.getuid!(), process.getuid!(), process.getuid!()]);
    }
  });

  test('a later layer replaces files, directories and links of earlier ones', async () => {
    const { root } = await bench.unpackLayers([
      [
        { name: 'was-file', data: 'file' },
        { name: 'was-dir/', type: 'directory' },
        { name: 'was-dir/child', data: 'child' },
        { name: 'was-link', type: 'symlink', linkname: 'was-file' },
        { name: 'target-file', data: 'target' },
        { name: 'link-to-target', type: 'symlink', linkname: 'target-file' },
        { name: 'kept-dir/', type: 'directory' },
        { name: 'kept-dir/lower', data: 'lower' },
      ],
      [
        { name: 'was-file/', type: 'directory' },
        { name: 'was-file/inside', data: 'now a dir' },
        { name: 'was-dir', data: 'now a file' },
        { name: 'was-link', data: 'now a file too' },
        { name: 'link-to-target', data: 'replaces the link' },
        { name: 'kept-dir/', type: 'directory', mode: 0o700 },
        { name: 'kept-dir/upper', data: 'upper' },
      ],
    ]);
    assert.equal(await readFile(join(root, 'was-file/inside'), 'utf8'), 'now a dir');
    assert.equal(await readFile(join(root, 'was-dir'), 'utf8'), 'now a file');
    assert.ok((await lstat(join(root, 'was-link'))).isFile());
    assert.equal(await readFile(join(root, 'link-to-target'), 'utf8'), 'replaces the link');
    assert.equal(await readFile(join(root, 'target-file'), 'utf8'), 'target', 'replacing the link did not write through it');
    assert.deepEqual((await readdir(join(root, 'kept-dir'))).sort(), ['lower', 'upper'], 'a re-declared directory merges');
    assert.equal((await stat(join(root, 'kept-dir'))).mode & 0o7777, 0o700);
  });

  test('device and FIFO entries are skipped and reported (Node cannot mknod)', async () => {
    const result = await bench.unpackLayers([
      [
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device' },
        { name: 'run/fifo', type: 'fifo' },
        { name: 'ok', data: 'ok' },
      ],
    ]);
    assert.deepEqual(result.skipped.map((s) => s.path).sort(), ['/dev/null', '/run/fifo']);
    assert.equal(await readFile(join(result.root, 'ok'), 'utf8'), 'ok');
    await assert.rejects(stat(join(result.root, 'dev/null')), { code: 'ENOENT' });
  });

  test('the image can be named by tag, ID or ID prefix; an unknown one is "No such image"', async () => {
    await bench.unpackLayers([[{ name: 'a', data: 'a' }]], 'by-tag');
    const [ref] = (await bench.store.refs()).filter((r) => r.name !== undefined).slice(-1);
    const record = (await bench.store.getRecord(ref!.manifest.digest))!;
    const byId = await unpack(bench.store, record.config.digest, join(bench.dir, 'by-id'));
    assert.equal(byId.record.manifest.digest, record.manifest.digest);
    const byPrefix = await unpack(bench.store, record.config.digest.slice(7, 19), join(bench.dir, 'by-prefix'));
    assert.equal(byPrefix.record.manifest.digest, record.manifest.digest);
    await assert.rejects(unpack(bench.store, 'nothing/here:1', join(bench.dir, 'none')), NoSuchImageError);
  });

  test('refuses a non-empty target directory, so whiteouts can only delete what unpack wrote', async () => {
    const target = join(bench.dir, 'occupied');
    await mkdir(target);
    await writeFile(join(target, 'precious'), 'keep me');
    await assert.rejects(bench.unpackLayers([[{ name: 'x', data: 'x' }]], 'occupied'), UnpackTargetError);
    assert.equal(await readFile(join(target, 'precious'), 'utf8'), 'keep me');
  });
});
