import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { decompressLayer } from '../../src/images/decompress.ts';
import { seededBytes, tarOf } from '../../src/testing/images.ts';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('layers are decompressed by their magic bytes: gzip, zstd, or none', async () => {
  const tar = await tarOf([{ name: 'f', data: seededBytes('decompress', 300_000) }]);
  for (const [kind, bytes] of [['gzip', gzipSync(tar)], ['zstd', zstdCompressSync(tar)], ['none', tar]] as const) {
    // Split into small chunks so the sniffer sees a head shorter than the magic.
    const chunks = Array.from({ length: Math.ceil(bytes.length / 3) }, (_, i) => bytes.subarray(i * 3, i * 3 + 3)).slice(0, 2);
    const source = Readable.from([...chunks, bytes.subarray(6)]);
    assert.equal(sha(await buffer(decompressLayer(source))), sha(tar), kind);
  }
});

test('a corrupt gzip layer fails the stream', async () => {
  const bytes = gzipSync(await tarOf([{ name: 'f', data: seededBytes('corrupt', 10_000) }]));
  bytes[bytes.length - 6] = bytes[bytes.length - 6]! ^ 0xff; // the CRC
  await assert.rejects(buffer(decompressLayer(Readable.from([bytes]))));
});
