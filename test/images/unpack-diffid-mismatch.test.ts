import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { DiffIdMismatchError } from '../../src/images/record.ts';
import { unpack } from '../../src/images/unpack.ts';
import { layerTar, makeImageFromLayers } from '../../src/testing/layers.ts';
import { storeTestImage } from '../../src/testing/store-image.ts';
import { unpackBench, type UnpackBench } from './unpack-fixtures.ts';

/**
 * Bug class: trusting stored layers blindly. unpack hashes each decompressed layer as it applies
 * it and compares with the DiffID recorded (and checked against the config) at pull/load time,
 * so bit rot or tampering in the store is caught.
 */
describe('unpack: DiffIDs are verified while unpacking', () => {
  let bench: UnpackBench;
  before(async () => {
    bench = await unpackBench();
  });
  after(async () => {
    await bench.cleanup();
  });

  async function storeImage(tag: string, compress = true) {
    const image = await makeImageFromLayers([[{ name: 'a', data: `first ${tag}` }], [{ name: 'b', data: `second ${tag}` }]], { seed: tag, compress });
    const record = await storeTestImage(bench.store, image, `docker.io/diffid/test:${tag}`);
    return { image, record };
  }

  async function overwriteBlob(path: string, data: Buffer) {
    await chmod(path, 0o644);
    await writeFile(path, data);
  }

  test('a stored layer whose content changed on disk is refused', async () => {
    const { record } = await storeImage('tampered');
    const other = gzipSync(await layerTar([{ name: 'b', data: 'evil!!' }]));
    await overwriteBlob(bench.store.blobs.blobPath(record.layers[1]!.digest), other);
    await assert.rejects(unpack(bench.store, 'diffid/test:tampered', join(bench.dir, 'tampered')), (error: unknown) => {
      assert.ok(error instanceof DiffIdMismatchError, String(error));
      assert.match(error.message, /layers from manifest don't match image configuration: layer 1 .* unpacks to sha256:[a-f0-9]{64}, the image says sha256:/);
      return true;
    });
  });

  test('an uncompressed layer is checked too', async () => {
    const { record } = await storeImage('plain', false);
    await overwriteBlob(bench.store.blobs.blobPath(record.layers[0]!.digest), await layerTar([{ name: 'a', data: 'other' }]));
    await assert.rejects(unpack(bench.store, 'diffid/test:plain', join(bench.dir, 'plain')), DiffIdMismatchError);
  });

  test('a record whose DiffIDs disagree with the layers is refused', async () => {
    const { record } = await storeImage('record');
    const diffIds = [...record.diffIds];
    diffIds[0] = `sha256:${'0'.repeat(64)}`;
    await bench.store.putRecord({ ...record, diffIds });
    await assert.rejects(unpack(bench.store, 'diffid/test:record', join(bench.dir, 'record')), /layer 0 .* the image says sha256:0{64}/);
    await bench.store.putRecord({ ...record, diffIds: diffIds.slice(0, 1) });
    await assert.rejects(unpack(bench.store, 'diffid/test:record', join(bench.dir, 'record2')), /lists 2 layers but 1 DiffIDs/);
  });

  test('a truncated layer fails with the decompressor\'s error', async () => {
    const { record } = await storeImage('truncated');
    const path = bench.store.blobs.blobPath(record.layers[0]!.digest);
    const data = await readFile(path);
    await overwriteBlob(path, data.subarray(0, data.length - 20));
    await assert.rejects(unpack(bench.store, 'diffid/test:truncated', join(bench.dir, 'truncated')), /unexpected end|Unexpected end/i);
  });

  test('an intact image unpacks (the check passes)', async () => {
    await storeImage('intact');
    const result = await unpack(bench.store, 'diffid/test:intact', join(bench.dir, 'intact'));
    assert.equal(await readFile(join(result.root, 'b'), 'utf8'), 'second intact');
  });
});
