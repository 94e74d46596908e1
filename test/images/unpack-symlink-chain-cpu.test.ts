import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { LayerApplier, LayerApplyError } from '../../src/images/layer-apply.ts';
import { MAX_RESOLVE_STEPS, UnsafeEntryError } from '../../src/images/rootfs-path.ts';
import { layerTar, type LayerEntry } from '../../src/testing/layers.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug: unpack CPU blow-up. Each entry's parent was resolved from scratch through up to 255
 * symlink hops: 100 chained symlinks with long `d/../` targets plus 5 files took 22.6 s (about
 * 80,000 lstat calls per entry). Resolutions are now cached within a layer, and the work per
 * entry is bounded. These tests count filesystem calls, not seconds.
 */
describe('unpack: symlink chains cost bounded work', () => {
  let dir: string;
  let bench: UnpackBench;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-chain-'));
    bench = await unpackBench();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await bench.cleanup();
  });

  let rootCount = 0;
  async function apply(entries: LayerEntry[]): Promise<{ applier: LayerApplier; root: string; error?: unknown }> {
    const root = await realpath(await mkdtemp(join(dir, `root-${++rootCount}-`)));
    const applier = new LayerApplier(root);
    try {
      await applier.apply(Readable.from([await layerTar(entries)]), 'layer 0');
      await applier.finish();
      return { applier, root };
    } catch (error) {
      return { applier, root, error };
    }
  }

  test('the hostile layer (100 chained links with long d/../ targets, then 5 files) is refused at once, with few filesystem calls', async () => {
    const detour = 'd/../'.repeat(400); // 2,000 bytes, 800 components per link
    const entries: LayerEntry[] = [{ name: 'd', type: 'directory' }, { name: 'l0', type: 'symlink', linkname: 'd' }];
    for (let i = 1; i <= 100; i++) entries.push({ name: `l${i}`, type: 'symlink', linkname: `${detour}l${i - 1}` });
    for (let i = 0; i < 5; i++) entries.push({ name: `l100/f${i}`, data: `file ${i}` });
    const { applier, error } = await apply(entries);
    assert.ok(error instanceof UnsafeEntryError, `refused as hostile, got ${String(error)}`);
    assert.match(error.message, new RegExp(`refusing layer entry "l100/f0": resolving its directory visits more than ${MAX_RESOLVE_STEPS} path components through symbolic links; .* \\(layer 0\\)`));
    // Before: ~80,000 lstat calls for each of the 5 files.
    assert.ok(applier.resolveOperations < 500, `${applier.resolveOperations} filesystem calls to resolve paths`);
  });

  test('a legitimate chain is resolved once per layer: 500 files under a 20-link chain cost a few dozen calls', async () => {
    const entries: LayerEntry[] = [{ name: 'real/deep/dir', type: 'directory' }, { name: 'c0', type: 'symlink', linkname: 'real/deep/dir' }];
    for (let i = 1; i <= 20; i++) entries.push({ name: `c${i}`, type: 'symlink', linkname: `./real/../c${i - 1}` });
    for (let i = 0; i < 500; i++) entries.push({ name: `c20/f${i}`, data: String(i) });
    const { applier, root, error } = await apply(entries);
    assert.equal(error, undefined);
    assert.equal((await readdir(join(root, 'real/deep/dir'))).length, 500);
    assert.equal(await readFile(join(root, 'real/deep/dir/f499'), 'utf8'), '499');
    assert.ok(applier.resolveOperations < 200, `${applier.resolveOperations} filesystem calls to resolve paths (uncached: ~500 × 45)`);
  });

  test('the cache forgets what the layer replaces: a link re-pointed, a directory turned into a link', async () => {
    const { root, error } = await apply([
      { name: 'x', type: 'directory' },
      { name: 'y', type: 'directory' },
      { name: 'z', type: 'directory' },
      { name: 'a', type: 'symlink', linkname: 'x' },
      { name: 'a/f1', data: '1' },
      { name: 'a', type: 'symlink', linkname: 'y' }, // re-pointed
      { name: 'a/f2', data: '2' },
      { name: 'y', type: 'symlink', linkname: '/z' }, // a directory on a's path becomes a link
      { name: 'a/f3', data: '3' },
    ]);
    assert.equal(error, undefined);
    assert.deepEqual(await readdir(join(root, 'x')), ['f1']);
    assert.deepEqual(await readdir(join(root, 'z')), ['f3']);
    assert.equal(await readFile(join(root, 'z/f3'), 'utf8'), '3');
  });

  test('a replaced link still cannot lead outside: re-pointed at /etc-like targets it stays inside the root', async () => {
    const outside = await mkdtemp(join(dir, 'outside-'));
    const { root, error } = await apply([
      { name: 'x', type: 'directory' },
      { name: 'a', type: 'symlink', linkname: 'x' },
      { name: 'a/f1', data: '1' },
      { name: 'a', type: 'symlink', linkname: outside },
      { name: 'a/f2', data: '2' },
      { name: 'a', type: 'symlink', linkname: '../../../../../../..' },
      { name: 'a/f3', data: '3' },
    ]);
    assert.equal(error, undefined);
    assert.deepEqual(await readdir(outside), [], 'nothing written on the host');
    assert.equal(await readFile(join(root, outside, 'f2'), 'utf8'), '2');
    assert.equal(await readFile(join(root, 'f3'), 'utf8'), '3');
  });

  test('a 3,000-level path says so in a short message, not a 10 KB ENAMETOOLONG', async () => {
    const { error } = await apply([{ name: `${'a/'.repeat(3000)}file`, data: 'x' }]);
    assert.ok(error instanceof LayerApplyError, String(error));
    assert.ok(error.message.length < 600, `${error.message.length} characters`);
    assert.match(error.message, /layer 0: cannot unpack "a\/a\/.*"…".*a\/file" \(6004 bytes, 3001 levels\): its path \(6004 bytes, 3001 levels\) is longer than this filesystem allows \(ENAMETOOLONG\)/);
  });

  test('through unpack(): the hostile image fails with the layer named', async () => {
    const detour = 'd/../'.repeat(400);
    const entries: LayerEntry[] = [{ name: 'd', type: 'directory' }, { name: 'l0', type: 'symlink', linkname: 'd' }];
    for (let i = 1; i <= 100; i++) entries.push({ name: `l${i}`, type: 'symlink', linkname: `${detour}l${i - 1}` });
    entries.push({ name: 'l100/f', data: 'x' });
    await assert.rejects(bench.unpackLayers([entries]), /refusing layer entry "l100\/f": .* \(layer 0 \(sha256:[a-f0-9]{64}\)\)/);
  });
});
