import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { registerArchive, type ArchiveIo } from '../../src/cli/archive.ts';
import { makeImage } from '../../src/testing/images.ts';
import { makeImageFromLayers } from '../../src/testing/layers.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { archiveBench, type ArchiveBench } from '../images/archive-fixtures.ts';

interface Run {
  stdout: Buffer;
  stderr: string;
}

/** Runs `skiff <args>` in-process with the archive commands and the given streams. */
async function skiff(args: string[], options: { stdin?: Readable & { isTTY?: boolean }; stdoutTTY?: boolean } = {}): Promise<Run> {
  const stdout = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (options.stdoutTTY) stdout.isTTY = true;
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const io: ArchiveIo = { stdin: options.stdin ?? Readable.from([]), stdout, stderr };
  const program = new Command('skiff').exitOverride();
  registerArchive(program, io);
  await program.parseAsync(args, { from: 'user' });
  return { stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() };
}

describe('skiff save / load / unpack (the CLI)', () => {
  let bench: ArchiveBench;
  let rootA: string;
  before(async () => {
    bench = await archiveBench();
    rootA = join(bench.dir, 'a');
    const store = await bench.newStore('a');
    await storeTestImage(store, await makeImage({ seed: 'cli', layers: 2 }), 'docker.io/library/alpine:3.20');
    const withDevice = await makeImageFromLayers([[{ name: 'hello', data: 'hi\n' }, { name: 'dev/null', type: 'character-device' }]], { seed: 'cli-dev' });
    await storeTestImage(store, withDevice, 'docker.io/library/devs:1');
  });
  after(async () => {
    await bench.cleanup();
  });

  test('save -o, load -i, unpack: docker\'s output lines and a root filesystem', async () => {
    const file = join(bench.dir, 'out.tar');
    const saved = await skiff(['save', '-o', file, '--root', rootA, 'alpine:3.20', 'devs:1']);
    assert.equal(saved.stdout.length, 0, 'nothing on stdout when writing a file');
    assert.ok((await stat(file)).size > 0);
    const rootB = join(bench.dir, 'b');
    const loaded = await skiff(['load', '-i', file, '--root', rootB]);
    assert.equal(loaded.stdout.toString(), 'Loaded image: alpine:3.20\nLoaded image: devs:1\n');
    const unpacked = await skiff(['unpack', '--root', rootB, 'devs:1', join(bench.dir, 'rootfs')]);
    assert.equal(await readFile(join(bench.dir, 'rootfs', 'hello'), 'utf8'), 'hi\n');
    assert.match(unpacked.stderr, /warning: skipped character-device \/dev\/null/);
  });

  test('save to stdout, load from stdin', async () => {
    const saved = await skiff(['save', '--root', rootA, 'alpine:3.20']);
    assert.ok(saved.stdout.length > 1024);
    const loaded = await skiff(['load', '--root', join(bench.dir, 'c')], { stdin: Readable.from([saved.stdout]) });
    assert.equal(loaded.stdout.toString(), 'Loaded image: alpine:3.20\n');
  });

  test('refuses to write an archive to a terminal or read one from it', async () => {
    await assert.rejects(skiff(['save', '--root', rootA, 'alpine:3.20'], { stdoutTTY: true }), /refusing to write an image archive to a terminal/);
    const tty = Object.assign(Readable.from([]), { isTTY: true });
    await assert.rejects(skiff(['load', '--root', rootA], { stdin: tty }), /stdin is a terminal/);
  });

  test('a failed save leaves no file behind (not even a partial one)', async () => {
    await skiff(['save', '-o', join(bench.dir, 'probe.tar'), '--root', rootA, 'alpine:3.20']);
    const before = await readdir(bench.dir);
    await assert.rejects(skiff(['save', '-o', join(bench.dir, 'never.tar'), '--root', rootA, 'alpine:3.20', 'missing:1']), /No such image: missing:1/);
    assert.deepEqual(await readdir(bench.dir), before, 'no never.tar and no temp file');
  });

  test('a failed unpack says the directory is incomplete; an unknown image does not', async () => {
    await assert.rejects(skiff(['unpack', '--root', rootA, 'nope:1', join(bench.dir, 'x')]), (error: Error) => !/incomplete/.test(error.message) && /No such image/.test(error.message));
    const store = await bench.newStore('d');
    const hostile = await makeImageFromLayers([[{ name: '../escape', data: 'x' }]], { seed: 'cli-hostile' });
    await storeTestImage(store, hostile, 'docker.io/library/hostile:1');
    await assert.rejects(skiff(['unpack', '--root', join(bench.dir, 'd'), 'hostile:1', join(bench.dir, 'hostile-rootfs')]), /climbs out of the root.*\n\(the tree in .* is incomplete; remove it before trying again\)/s);
  });
});
