import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, describe, test } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { DecodeThread } from '../../src/images/decode-thread.ts';
import { decompressLayer } from '../../src/images/decompress.ts';
import { LayerDigester } from '../../src/images/layer-digester.ts';
import { seededBytes, tarOf } from '../../src/testing/images.ts';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { Ingest } from '../../src/content/store.ts';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One ingest in a fresh blob store, and a reader of its file. */
async function withIngest(work: (ingest: Ingest, read: () => Promise<Buffer>) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-tap-'));
  try {
    const store = await new FsBlobStore(root).init();
    const ingest = await store.ingest('tap');
    await work(ingest, () => readFile(store.ingestPath('tap')));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

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

describe('LayerDigester: DiffID and size from compressed bytes as they arrive', () => {
  const thread = new DecodeThread();
  after(() => thread.close());
  const backends = [['this thread', {}], ['a decode thread', { thread }]] as const;
  // Incompressible, so its gzip is as big as it: more than either queue holds.
  const bigGzip = () => {
    const tar = seededBytes('digester-backpressure', 40 * 1024 * 1024); // past the decode thread's 16 MiB queue
    return { tar, bytes: gzipSync(tar, { level: 1 }) };
  };
  let bigLayer: ReturnType<typeof bigGzip> | undefined;

  /** Feeds `bytes` in pieces of `step` bytes (the first two tiny, so the magic is split), honouring backpressure. */
  async function measure(digester: LayerDigester, bytes: Buffer, step = 65_536) {
    const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 3)];
    for (let offset = 3; offset < bytes.length; offset += step) pieces.push(bytes.subarray(offset, offset + step));
    for (const piece of pieces) if (!digester.write(piece)) await digester.drained();
    return digester.end();
  }

  for (const [where, options] of backends) {
    test(`gzip, zstd and uncompressed layers on ${where} give the tar's digest and size`, async () => {
      const tar = await tarOf([{ name: 'f', data: seededBytes(`digester-${where}`, 700_000) }]);
      const diffId = `sha256:${sha(tar)}` as const;
      for (const [kind, bytes] of [['gzip', gzipSync(tar)], ['zstd', zstdCompressSync(tar)], ['none', tar]] as const) {
        const digester = new LayerDigester(options);
        assert.deepEqual(await measure(digester, bytes), { diffId, size: tar.length }, kind);
        assert.equal(digester.compression, kind);
      }
    });

    test(`a corrupt layer on ${where} rejects end(), not write()`, async () => {
      const bytes = gzipSync(await tarOf([{ name: 'f', data: seededBytes('digester-corrupt', 200_000) }]));
      bytes[bytes.length - 6] = bytes[bytes.length - 6]! ^ 0xff; // the CRC
      await assert.rejects(measure(new LayerDigester(options), bytes), /incorrect data check/);
      await assert.rejects(measure(new LayerDigester(options), bytes.subarray(0, 100_000)), /unexpected end of file/);
      // The decoder is still usable for the next layer.
      const tar = await tarOf([{ name: 'g', data: seededBytes('digester-after', 1000) }]);
      assert.equal((await measure(new LayerDigester(options), gzipSync(tar))).diffId, `sha256:${sha(tar)}`);
    });

    test(`backpressure on ${where}: write() says wait once a few MiB are queued, and drained() lets it go on`, async () => {
      const { tar, bytes } = (bigLayer ??= bigGzip());
      const digester = new LayerDigester(options);
      let refused = 0;
      for (let offset = 0; offset < bytes.length; offset += 1024 * 1024) {
        if (!digester.write(bytes.subarray(offset, offset + 1024 * 1024))) {
          refused++;
          await digester.drained();
        }
      }
      assert.ok(refused > 0, 'the writer was asked to wait');
      assert.deepEqual(await digester.end(), { diffId: `sha256:${sha(tar)}`, size: tar.length });
    });
  }

  for (const [where, options] of backends) {
    test(`as an ingest's tap on ${where}, it measures every chunk written, in order, and the file holds them`, async () => {
      const tar = await tarOf([{ name: 'f', data: seededBytes(`digester-pass-${where}`, 2_500_000) }]);
      const bytes = gzipSync(tar, { level: 1 });
      // Odd-sized pieces, the first ones shorter than the magic.
      const sizes = [1, 2, 5, 65_536, 100_003, 1_048_576, 7];
      const pieces: Buffer[] = [];
      for (let offset = 0, i = 0; offset < bytes.length; i++) {
        const size = sizes[i % sizes.length]!;
        pieces.push(bytes.subarray(offset, offset + size));
        offset += size;
      }
      await withIngest(async (ingest, read) => {
        const digester = new LayerDigester(options);
        assert.equal(await ingest.append(Readable.from(pieces), { offset: 0, tap: digester }), bytes.length);
        assert.ok((await read()).equals(bytes), 'the file holds the bytes read');
        assert.deepEqual(await digester.end(), { diffId: `sha256:${sha(tar)}`, size: tar.length });
      });
    });

    test(`as an ingest's tap on ${where}: a source that breaks still has everything it delivered written and measured`, async () => {
      const bytes = gzipSync(seededBytes(`digester-break-${where}`, 1_500_000), { level: 1 });
      const delivered = 1_300_000;
      async function* breaking() {
        for (let offset = 0; offset < delivered; offset += 100_000) yield bytes.subarray(offset, Math.min(offset + 100_000, delivered));
        throw new Error('connection reset');
      }
      await withIngest(async (ingest, read) => {
        const digester = new LayerDigester(options);
        await assert.rejects(ingest.append(Readable.from(breaking()), { offset: 0, tap: digester }), /connection reset/);
        assert.ok((await read()).equals(bytes.subarray(0, delivered)));
        digester.destroy();
      });
    });
  }

  test('an uncompressed layer with a known sha256 digest is not hashed again; any other is', async () => {
    const tar = await tarOf([{ name: 'f', data: seededBytes('digester-identity', 5000) }]);
    const claimed = `sha256:${'ab'.repeat(32)}` as const;
    assert.deepEqual(await new LayerDigester({ identity: claimed }).end(), { diffId: claimed, size: 0 });
    assert.deepEqual(await measure(new LayerDigester({ identity: claimed }), tar), { diffId: claimed, size: tar.length });
    const sha512 = `sha512:${'cd'.repeat(64)}` as const;
    assert.deepEqual(await measure(new LayerDigester({ identity: sha512 }), tar), { diffId: `sha256:${sha(tar)}`, size: tar.length });
    // Compressed layers are always decoded: the digest says nothing about the tar.
    assert.equal((await measure(new LayerDigester({ identity: claimed }), gzipSync(tar))).diffId, `sha256:${sha(tar)}`);
  });

  test('an empty layer is an empty uncompressed tar', async () => {
    assert.deepEqual(await new LayerDigester().end(), { diffId: `sha256:${sha(Buffer.alloc(0))}`, size: 0 });
  });

  test('a decode thread that dies fails its layers (pull then measures from the file); the next layer gets a new one', async () => {
    const own = new DecodeThread();
    const tar = await tarOf([{ name: 'f', data: seededBytes('digester-dies', 300_000) }]);
    const bytes = gzipSync(tar);
    const digester = new LayerDigester({ thread: own });
    digester.write(bytes.subarray(0, 1000));
    await own.close();
    digester.write(bytes.subarray(1000));
    await assert.rejects(digester.end(), /decode thread exited/);
    assert.equal((await measure(new LayerDigester({ thread: own }), bytes)).diffId, `sha256:${sha(tar)}`);
    await own.close();
  });

  test('destroy() stops a layer on the decode thread; end() then rejects and nothing hangs', async () => {
    const digester = new LayerDigester({ thread });
    digester.write(gzipSync(seededBytes('digester-destroy', 100_000)).subarray(0, 50_000));
    digester.destroy();
    await assert.rejects(digester.end(), /stopped/);
  });
});

describe('LayerDigester: which chunks it keeps after write returns (a pull reuses the others\' buffers)', () => {
  const tar = gzipSync(Buffer.alloc(200_000, 1));

  test('a decoder in the thread pool keeps them; the decode thread and an uncompressed layer copy or hash at once', async () => {
    const pool = new LayerDigester();
    pool.write(tar.subarray(0, 2));
    assert.equal(pool.keepsChunks, true, 'two bytes cannot tell the compression: kept to sniff');
    pool.write(tar.subarray(2));
    assert.equal(pool.keepsChunks, true, 'zlib reads it later, in the thread pool');
    await pool.end();

    const plain = new LayerDigester();
    plain.write(Buffer.alloc(1024));
    assert.equal(plain.keepsChunks, false);
    await plain.end();

    const thread = new DecodeThread();
    try {
      const threaded = new LayerDigester({ thread });
      threaded.write(tar);
      assert.equal(threaded.keepsChunks, false, 'copied into the thread\'s batch');
      await threaded.end();
    } finally {
      await thread.close();
    }
  });
});
