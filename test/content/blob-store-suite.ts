/**
 * A conformance suite for the BlobStore interface. Any driver (filesystem, S3-compatible, …)
 * runs it through `blobStoreSuite(name, makeStore)`; driver-specific checks live next to it.
 */
import { describe, test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable, Writable } from 'node:stream';
import fc from 'fast-check';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../../src/digest/errors.ts';
import { BlobNotFoundError, type BlobStore } from '../../src/content/store.ts';

export interface BlobStoreHarness {
  store: BlobStore;
  /** A new store instance over the same persisted state, as after a process restart. */
  reopen(): Promise<BlobStore>;
  /** Ingest (write-in-progress) artifacts currently persisted, by any name; [] when clean. */
  ingestLeftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function readAll(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A destination that keeps the chunks it is given, as many Writables (and PassThrough) do. */
function collector(): { sink: Writable; result(): Buffer } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { sink, result: () => Buffer.concat(chunks) };
}

function source(...parts: (string | Uint8Array)[]): Readable {
  return Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
}

async function listAll(store: BlobStore): Promise<Digest[]> {
  const out: Digest[] = [];
  for await (const digest of store.list()) out.push(digest);
  return out.sort();
}

export function blobStoreSuite(name: string, makeStore: () => Promise<BlobStoreHarness>): void {
  describe(`BlobStore conformance: ${name}`, () => {
    let h: BlobStoreHarness;
    let store: BlobStore;

    beforeEach(async () => {
      h = await makeStore();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    async function assertClean(): Promise<void> {
      assert.deepEqual(await listAll(store), []);
      assert.deepEqual(await h.ingestLeftovers(), []);
    }

    describe('put and read', () => {
      test('put, then stat, reader, range reader, readSmall and copyTo agree', async () => {
        const data = Buffer.from('hello, blob store');
        const digest = digestOf(data);
        assert.deepEqual(await store.put(source('hello, ', 'blob store'), digest, data.length), { digest, size: data.length, alreadyExisted: false });
        assert.equal(await store.stat(digest), data.length);
        assert.deepEqual(await readAll(await store.reader(digest)), data);
        assert.equal((await readAll(await store.reader(digest, { start: 7, end: 10 }))).toString(), 'blob');
        assert.equal((await readAll(await store.reader(digest, { start: 0, end: 0 }))).toString(), 'h');
        assert.equal((await readAll(await store.reader(digest, { start: data.length - 1, end: data.length - 1 }))).toString(), 'e');
        assert.deepEqual(await store.readSmall(digest, 1024), data);
        const whole = collector();
        await store.copyTo(digest, whole.sink);
        assert.deepEqual(whole.result(), data);
        const part = collector();
        await store.copyTo(digest, part.sink, { start: 7, end: 10 });
        assert.equal(part.result().toString(), 'blob');
        assert.deepEqual(await listAll(store), [digest]);
        assert.deepEqual(await h.ingestLeftovers(), []);
      });

      test('put without an expected size', async () => {
        const digest = digestOf('no size');
        assert.equal((await store.put(source('no size'), digest)).size, 7);
        assert.equal(await store.stat(digest), 7);
      });

      test('the empty blob', async () => {
        const digest = digestOf('');
        assert.deepEqual(await store.put(source(), digest, 0), { digest, size: 0, alreadyExisted: false });
        assert.equal(await store.stat(digest), 0);
        assert.equal((await store.readSmall(digest, 0)).length, 0);
        assert.equal((await readAll(await store.reader(digest))).length, 0);
      });

      test('a sha512 blob', async () => {
        const digest = digestOf('five-twelve', 'sha512');
        assert.equal((await store.put(source('five-', 'twelve'), digest, 11)).digest, digest);
        assert.equal((await store.readSmall(digest, 100)).toString(), 'five-twelve');
        assert.deepEqual(await listAll(store), [digest]);
      });

      test('a multi-megabyte blob streams intact through reader, whole and in ranges', async () => {
        const data = randomBytes(3 * 1024 * 1024 + 123);
        const digest = digestOf(data);
        await store.put(Readable.from([data.subarray(0, 1_000_000), data.subarray(1_000_000)]), digest, data.length);
        assert.deepEqual(await readAll(await store.reader(digest)), data);
        const start = 1024 * 1024 - 5;
        const end = data.length - 7;
        assert.deepEqual(await readAll(await store.reader(digest, { start, end })), data.subarray(start, end + 1));
      });

      test('copyTo of a multi-megabyte blob into a Writable that keeps its chunks, whole and in ranges', async () => {
        const data = randomBytes(3 * 1024 * 1024 + 123);
        const digest = digestOf(data);
        await store.put(Readable.from([data]), digest, data.length);
        const start = 1024 * 1024 - 5;
        const end = data.length - 7;
        const whole = collector();
        await store.copyTo(digest, whole.sink);
        assert.ok(whole.result().equals(data), 'copyTo into a Writable that keeps its chunks delivers the blob intact');
        const part = collector();
        await store.copyTo(digest, part.sink, { start, end });
        assert.ok(part.result().equals(data.subarray(start, end + 1)), 'ranged copyTo delivers the range intact');
      });

      test('copyTo into a PassThrough consumed concurrently delivers the blob intact', async () => {
        const data = randomBytes(3 * 1024 * 1024);
        const digest = digestOf(data);
        await store.put(Readable.from([data]), digest, data.length);
        const through = new PassThrough();
        const [, received] = await Promise.all([store.copyTo(digest, through), readAll(through)]);
        assert.ok(received.equals(data));
      });

      test('putting the same content again reports alreadyExisted', async () => {
        const digest = digestOf('twice');
        assert.equal((await store.put(source('twice'), digest, 5)).alreadyExisted, false);
        assert.equal((await store.put(source('twi', 'ce'), digest, 5)).alreadyExisted, true);
        assert.deepEqual(await listAll(store), [digest]);
        assert.deepEqual(await h.ingestLeftovers(), []);
      });

      test('absent blobs: stat is undefined, readers throw BlobNotFoundError', async () => {
        const digest = digestOf('absent');
        assert.equal(await store.stat(digest), undefined);
        await assert.rejects(store.reader(digest), BlobNotFoundError);
        await assert.rejects(store.readSmall(digest, 10), BlobNotFoundError);
        await assert.rejects(store.copyTo(digest, collector().sink), BlobNotFoundError);
      });

      test('property: any bytes put come back the same, whole and in any range', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 2000 }), { maxLength: 5 }), fc.nat(), fc.nat(), async (chunks, a, b) => {
            const data = Buffer.concat(chunks);
            const digest = digestOf(data);
            await store.put(Readable.from(chunks.map((c) => Buffer.from(c))), digest, data.length);
            assert.ok((await store.readSmall(digest, data.length)).equals(data));
            if (data.length > 0) {
              const start = a % data.length;
              const end = start + (b % (data.length - start));
              assert.ok((await readAll(await store.reader(digest, { start, end }))).equals(data.subarray(start, end + 1)));
            }
          }),
          { numRuns: 25 },
        );
        assert.deepEqual(await h.ingestLeftovers(), []);
      });
    });

    describe('put failures leave nothing behind', () => {
      test('wrong digest throws DigestMismatchError', async () => {
        const claimed = digestOf('something else');
        await assert.rejects(store.put(source('actual content'), claimed, 14), (e: unknown) => {
          assert.ok(e instanceof DigestMismatchError);
          assert.equal(e.expected, claimed);
          assert.equal(e.actual, digestOf('actual content'));
          return true;
        });
        assert.equal(await store.stat(claimed), undefined);
        assert.equal(await store.stat(digestOf('actual content')), undefined);
        await assertClean();
      });

      test('more bytes than expectedSize throws SizeMismatchError', async () => {
        const digest = digestOf('12345');
        await assert.rejects(store.put(source('123', '456789'), digest, 5), SizeMismatchError);
        await assertClean();
        // Even when the digest would match the longer content.
        await assert.rejects(store.put(source('123456789'), digestOf('123456789'), 5), SizeMismatchError);
        await assertClean();
      });

      test('fewer bytes than expectedSize throws SizeMismatchError', async () => {
        await assert.rejects(store.put(source('1234'), digestOf('1234'), 5), SizeMismatchError);
        await assertClean();
      });

      test('a source that fails midway', async () => {
        const failing = new Readable({
          read() {
            this.push(Buffer.alloc(1000, 1));
            this.destroy(new Error('peer went away'));
          },
        });
        await assert.rejects(store.put(failing, digestOf('x'), 5000), /peer went away/);
        await assertClean();
      });

      test('an aborted signal', async () => {
        const controller = new AbortController();
        const slow = new PassThrough();
        slow.write(Buffer.alloc(100));
        const pending = store.put(slow, digestOf(Buffer.alloc(200)), 200, controller.signal);
        setTimeout(() => controller.abort(), 20);
        await assert.rejects(pending);
        await assertClean();
      });
    });

    describe('resumable ingest', () => {
      test('append at 0, append at the offset, commit', async () => {
        const ingest = await store.ingest('upload-1');
        assert.equal(ingest.ref, 'upload-1');
        assert.equal(await ingest.size(), 0);
        assert.equal(await ingest.append(source('hello '), { offset: 0 }), 6);
        assert.equal(await ingest.size(), 6);
        assert.equal(await ingest.append(source('wor', 'ld'), { offset: 6 }), 11);
        assert.equal(await ingest.size(), 11);
        // Not visible before commit.
        assert.equal(await store.stat(digestOf('hello world')), undefined);
        assert.deepEqual(await ingest.commit(digestOf('hello world'), 11), { digest: digestOf('hello world'), size: 11, alreadyExisted: false });
        assert.equal((await store.readSmall(digestOf('hello world'), 100)).toString(), 'hello world');
        assert.deepEqual(await h.ingestLeftovers(), []);
      });

      test('reopening an ingest by ref resumes it', async () => {
        await (await store.ingest('resume')).append(source('abc'), { offset: 0 });
        const again = await store.ingest('resume');
        assert.equal(await again.size(), 3);
        assert.equal(await again.append(source('def'), { offset: 3 }), 6);
        assert.equal((await again.commit(digestOf('abcdef'))).size, 6);
      });

      test('append at an offset smaller than the file cuts the extra bytes (crash leftovers)', async () => {
        const ingest = await store.ingest('leftovers');
        await ingest.append(source('hello world'), { offset: 0 });
        assert.equal(await ingest.append(source('XYZ'), { offset: 5 }), 8);
        assert.equal(await ingest.size(), 8);
        await assert.rejects(ingest.commit(digestOf('hello world')), DigestMismatchError);
        const second = await store.ingest('leftovers2');
        await second.append(source('hello world'), { offset: 0 });
        await second.append(source('XYZ'), { offset: 5 });
        await second.commit(digestOf('helloXYZ'), 8);
        assert.equal((await store.readSmall(digestOf('helloXYZ'), 100)).toString(), 'helloXYZ');
      });

      test('a retried chunk at the same offset replaces the first attempt', async () => {
        const ingest = await store.ingest('retry');
        await ingest.append(source('aaaa'), { offset: 0 });
        await ingest.append(source('bbbb'), { offset: 4 });
        await ingest.append(source('cccc'), { offset: 4 });
        await ingest.commit(digestOf('aaaacccc'), 8);
        assert.equal((await store.readSmall(digestOf('aaaacccc'), 100)).toString(), 'aaaacccc');
      });

      test('append past the end of the ingest is refused', async () => {
        const ingest = await store.ingest('gap');
        await ingest.append(source('abc'), { offset: 0 });
        await assert.rejects(ingest.append(source('xyz'), { offset: 10 }));
        assert.equal(await ingest.size(), 3);
      });

      test('commit recomputes the digest after a restart lost the hash state', async () => {
        const first = await store.ingest('restart');
        await first.append(source('part one, '), { offset: 0 });
        const restarted = await h.reopen();
        const resumed = await restarted.ingest('restart');
        assert.equal(await resumed.size(), 10);
        await resumed.append(source('part two'), { offset: 10 });
        const result = await resumed.commit(digestOf('part one, part two'), 18);
        assert.deepEqual(result, { digest: digestOf('part one, part two'), size: 18, alreadyExisted: false });
        assert.equal((await restarted.readSmall(result.digest, 100)).toString(), 'part one, part two');
        // and a wrong digest is still caught on the recompute path
        const other = await (await h.reopen()).ingest('restart-bad');
        await other.append(source('abc'), { offset: 0 });
        const again = await (await h.reopen()).ingest('restart-bad');
        await again.append(source('def'), { offset: 3 });
        await assert.rejects(again.commit(digestOf('abcdeX')), DigestMismatchError);
      });

      test('an ingest committed under sha512 verifies against sha512', async () => {
        const ingest = await store.ingest('sha512');
        await ingest.append(source('abc'), { offset: 0 });
        await ingest.append(source('def'), { offset: 3 });
        assert.equal((await ingest.commit(digestOf('abcdef', 'sha512'))).digest, digestOf('abcdef', 'sha512'));
      });

      test('commit with the wrong digest throws and removes the ingest', async () => {
        const ingest = await store.ingest('bad-commit');
        await ingest.append(source('abc'), { offset: 0 });
        await assert.rejects(ingest.commit(digestOf('abd')), DigestMismatchError);
        await assertClean();
      });

      test('commit with the wrong size throws SizeMismatchError and removes the ingest', async () => {
        const ingest = await store.ingest('bad-size');
        await ingest.append(source('abc'), { offset: 0 });
        await assert.rejects(ingest.commit(digestOf('abc'), 4), SizeMismatchError);
        await assertClean();
      });

      test('append beyond maxBytes fails with SizeMismatchError and keeps at most maxBytes', async () => {
        const ingest = await store.ingest('bounded');
        await ingest.append(source('abc'), { offset: 0 });
        await assert.rejects(ingest.append(source('de', 'fgh'), { offset: 3, maxBytes: 4 }), SizeMismatchError);
        const size = await ingest.size();
        assert.ok(size >= 3 && size <= 7, `size ${size}`);
        // The client resumes from what was kept.
        const data = Buffer.from('abcdefgh');
        await ingest.append(Readable.from([data.subarray(size)]), { offset: size });
        await ingest.commit(digestOf(data), 8);
        assert.ok((await store.readSmall(digestOf(data), 8)).equals(data));
      });

      test('abort drops the ingest and its bytes', async () => {
        const ingest = await store.ingest('dropped');
        await ingest.append(source('abc'), { offset: 0 });
        await ingest.abort();
        assert.deepEqual(await h.ingestLeftovers(), []);
        assert.equal(await (await store.ingest('dropped')).size(), 0);
      });
    });

    describe('concurrency', () => {
      test('20 concurrent puts of the same content all succeed and store it once', async () => {
        const data = randomBytes(256 * 1024);
        const digest = digestOf(data);
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.put(Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), digest, data.length)),
        );
        for (const result of results) {
          assert.equal(result.digest, digest);
          assert.equal(result.size, data.length);
        }
        assert.ok(results.some((r) => !r.alreadyExisted), 'one writer stored it');
        assert.deepEqual(await listAll(store), [digest]);
        assert.ok((await store.readSmall(digest, data.length)).equals(data));
        assert.deepEqual(await h.ingestLeftovers(), []);
      });

      test('concurrent puts of different content all land', async () => {
        const blobs = Array.from({ length: 10 }, (_, i) => Buffer.from(`blob number ${i}`));
        await Promise.all(blobs.map((b) => store.put(source(b), digestOf(b), b.length)));
        assert.deepEqual(await listAll(store), blobs.map((b) => digestOf(b)).sort());
      });

      test('a mix of good and bad concurrent puts of the same digest', async () => {
        const good = Buffer.from('the real content');
        const digest = digestOf(good);
        const attempts = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) => store.put(source(i % 2 === 0 ? good : Buffer.from('forged content!!')), digest, good.length)),
        );
        assert.equal(attempts.filter((a) => a.status === 'fulfilled').length, 5);
        for (const a of attempts) if (a.status === 'rejected') assert.ok(a.reason instanceof DigestMismatchError);
        assert.ok((await store.readSmall(digest, 100)).equals(good));
        assert.deepEqual(await h.ingestLeftovers(), []);
      });
    });

    describe('readSmall, delete, list', () => {
      test('readSmall refuses blobs above the limit', async () => {
        const digest = digestOf('0123456789');
        await store.put(source('0123456789'), digest, 10);
        assert.equal((await store.readSmall(digest, 10)).toString(), '0123456789');
        assert.equal((await store.readSmall(digest, 1_000_000)).length, 10);
        await assert.rejects(store.readSmall(digest, 9), /more than the 9/);
        await assert.rejects(store.readSmall(digest, 0));
      });

      test('delete removes a blob once', async () => {
        const digest = digestOf('doomed');
        await store.put(source('doomed'), digest, 6);
        assert.equal(await store.delete(digest), true);
        assert.equal(await store.stat(digest), undefined);
        await assert.rejects(store.reader(digest), BlobNotFoundError);
        assert.equal(await store.delete(digest), false);
        assert.deepEqual(await listAll(store), []);
        // and it can come back
        await store.put(source('doomed'), digest, 6);
        assert.equal(await store.stat(digest), 6);
      });

      test('list yields every committed blob of every algorithm, and only those', async () => {
        assert.deepEqual(await listAll(store), []);
        const expected: Digest[] = [];
        for (let i = 0; i < 12; i++) {
          const algorithm = i % 3 === 0 ? 'sha512' : 'sha256';
          const digest = digestOf(`item ${i}`, algorithm);
          await store.put(source(`item ${i}`), digest);
          expected.push(digest);
        }
        const pending = await store.ingest('in-progress');
        await pending.append(source('not committed'), { offset: 0 });
        assert.deepEqual(await listAll(store), expected.sort());
        await store.delete(expected[0]!);
        assert.deepEqual(await listAll(store), expected.slice(1));
      });

      test('committed blobs survive a restart', async () => {
        const digest = digestOf('durable');
        await store.put(source('durable'), digest, 7);
        const restarted = await h.reopen();
        assert.equal(await restarted.stat(digest), 7);
        assert.equal((await restarted.readSmall(digest, 7)).toString(), 'durable');
      });
    });
  });
}
