import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, mock, test } from 'node:test';
import { SendBuffers } from '../../src/content/send-buffers.ts';
import { MemoryRelief } from '../../src/server/memory-relief.ts';
import { seededBytes } from '../../src/testing/images.ts';
import { pushBlob } from '../../src/testing/push.ts';
import { startTestRegistry } from '../../src/testing/test-registry.ts';
import { blobOf, sleep } from '../server/http/helpers.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('SendBuffers', () => {
  test('a small blob gets a buffer of its own size, outside the budget', () => {
    const pool = new SendBuffers(4 * MiB);
    const buffer = pool.take(100);
    assert.equal(buffer.length, 100);
    pool.give(buffer);
    assert.equal(pool.lent, 0);
    assert.equal(pool.slabCount, 0);
  });

  test('large buffers up to the budget, reused; then small slices of one slab', () => {
    const pool = new SendBuffers(2 * MiB, { smallSize: 16 * KiB, slabBytes: 64 * KiB });
    const a = pool.take(10 * MiB);
    const b = pool.take(10 * MiB);
    assert.equal(a.length, MiB);
    assert.equal(b.length, MiB);
    assert.equal(pool.lent, 2);
    const slices = [pool.take(10 * MiB), pool.take(10 * MiB), pool.take(10 * MiB), pool.take(10 * MiB)];
    for (const slice of slices) assert.equal(slice.length, 16 * KiB);
    assert.equal(new Set(slices.map((s) => s.buffer)).size, 1, 'all four slices share one slab');
    assert.equal(new Set(slices.map((s) => s.byteOffset)).size, 4, 'and do not overlap');
    assert.equal(pool.smallLent, 4);
    const fifth = pool.take(10 * MiB); // the first slab is full: a second one
    assert.equal(pool.slabCount, 2);
    pool.give(a);
    assert.equal(pool.take(10 * MiB), a, 'a large buffer given back is lent again, no new allocation');
    for (const slice of [...slices, fifth]) pool.give(slice);
    assert.equal(pool.smallLent, 0);
    assert.equal(pool.slabCount, 0, 'a slab with every slice back is dropped, so its mapping can go back to the kernel');
  });

  test('a forgotten buffer (its write died with the socket) is never lent again, and frees its place in the budget', () => {
    const pool = new SendBuffers(MiB, { smallSize: 16 * KiB, slabBytes: 32 * KiB });
    const large = pool.take(MiB);
    pool.forget(large);
    assert.equal(pool.lent, 0);
    const next = pool.take(MiB);
    assert.notEqual(next, large);
    const [s1, s2] = [pool.take(MiB), pool.take(MiB)];
    pool.forget(s1);
    assert.equal(pool.smallLent, 1);
    const s3 = pool.take(MiB); // the slab has no free slice left: s1 is not handed out again
    assert.notEqual(s3.buffer, s1.buffer);
    pool.give(s2);
    assert.equal(pool.slabCount, 1, 'the first slab is dropped once nothing it lent is outstanding');
    pool.give(s3);
    assert.equal(pool.slabCount, 0);
  });

  test('stalled readers beyond the budget pin small slices; every buffer is accounted for once they leave', async () => {
    const reg = await startTestRegistry({ sendBufferMemory: MiB });
    try {
      const blob = blobOf(seededBytes('stalled pool', 8 * MiB));
      await pushBlob(reg.url, 'pool/stall', blob);
      const pool = (reg.registry.blobs as unknown as { sendBuffers: SendBuffers }).sendBuffers;
      const { hostname, port } = new URL(reg.url);
      const sockets = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<ReturnType<typeof connect>>((resolve) => {
              const socket = connect(Number(port), hostname, () => {
                socket.pause();
                socket.write(`GET /v2/pool/stall/blobs/${blob.descriptor.digest} HTTP/1.1\r\nHost: r\r\n\r\n`);
                resolve(socket);
              });
              socket.on('error', () => undefined);
            }),
        ),
      );
      await sleep(500);
      assert.ok(pool.lent <= 1, `at most the budget's one large buffer is lent (${pool.lent})`);
      assert.ok(pool.smallLent >= 1 && pool.smallLent <= 6 * 2, `stalled readers hold small slices (${pool.smallLent})`);
      for (const socket of sockets) socket.destroy();
      await sleep(500);
      assert.equal(pool.lent, 0);
      assert.equal(pool.smallLent, 0);
      assert.equal(pool.slabCount, 0);
      // And the pool still serves whole, correct blobs.
      const got = Buffer.from(await (await fetch(`${reg.url}/v2/pool/stall/blobs/${blob.descriptor.digest}`)).arrayBuffer());
      assert.ok(got.equals(blob.data));
    } finally {
      await reg.stop();
    }
  });
});

describe('MemoryRelief', () => {
  test('asks for one collection after a crowd of connections has left, not for small numbers', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let collections = 0;
      const relief = new MemoryRelief(100, () => collections++);
      for (let open = 1; open <= 50; open++) relief.observe(open);
      for (let open = 50; open >= 0; open--) relief.observe(open);
      mock.timers.tick(2000);
      assert.equal(collections, 0, 'fewer than the crowd size: nothing to hand back');
      for (let open = 1; open <= 300; open++) relief.observe(open);
      for (let open = 300; open >= 0; open--) relief.observe(open);
      assert.equal(collections, 0, 'a second after, not at once');
      mock.timers.tick(1000);
      assert.equal(collections, 1);
      mock.timers.tick(5000);
      assert.equal(collections, 1, 'once per crowd');
    } finally {
      mock.timers.reset();
    }
  });
});
