import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { DigestMismatchError } from '../../src/digest/errors.ts';
import { createS3Client, S3Bucket } from '../../src/content/s3-bucket.ts';
import { S3AccessError } from '../../src/content/s3-errors.ts';
import { S3BlobStore, type S3BlobStoreOptions } from '../../src/content/s3-blob-store.ts';
import { s3Layout } from '../../src/content/s3-layout.ts';
import { StorageFailureError } from '../../src/content/storage-errors.ts';
import { BlobNotFoundError } from '../../src/content/store.ts';
import { GarbageCollector } from '../../src/server/gc/collector.ts';
import { SqliteMetadataStore } from '../../src/server/storage/sqlite-metadata.ts';
import { cephSkipReason, startCeph, type TestCeph } from '../../src/testing/ceph.ts';
import { blobStoreSuite, readAll } from './blob-store-suite.ts';

const MiB = 1024 * 1024;
/** S3's smallest part: the tests cross part boundaries with few bytes. */
const PART = 5 * MiB;

const skip = await cephSkipReason();

/** `data` as a socket delivers it: 64 KiB chunks. */
function chunked(data: Buffer, size = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += size) yield data.subarray(at, Math.min(data.length, at + size));
    })(),
  );
}

describe('S3BlobStore on Ceph radosgw', { skip: skip || undefined }, () => {
  let ceph: TestCeph;
  let admin: S3Client;
  let made = 0;
  const open: S3BlobStore[] = [];

  before(async () => {
    ceph = await startCeph();
    admin = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, accessKeyId: ceph.accessKey, secretAccessKey: ceph.secretKey, forcePathStyle: true });
    process.stderr.write(`# Ceph (mon + memstore OSD + radosgw) started in ${ceph.startMs} ms\n`);
  });
  after(async () => {
    for (const store of open) store.close();
    admin?.destroy();
    await ceph?.stop();
  });

  async function newBucket(): Promise<string> {
    const name = `skiff-${++made}-${randomUUID().slice(0, 8)}`;
    await admin.send(new CreateBucketCommand({ Bucket: name }));
    return name;
  }

  function storeOn(bucket: string, options: Partial<S3BlobStoreOptions> = {}): S3BlobStore {
    const store = new S3BlobStore({
      endpoint: ceph.endpoint,
      region: ceph.region,
      bucket,
      accessKeyId: ceph.accessKey,
      secretAccessKey: ceph.secretKey,
      forcePathStyle: true,
      partSize: PART,
      ...options,
    });
    open.push(store);
    return store;
  }

  async function keys(bucket: string, prefix = ''): Promise<string[]> {
    const out: string[] = [];
    for await (const { key } of new S3Bucket(admin, bucket).list(prefix, 'listing (test)')) out.push(key);
    return out.sort();
  }

  async function uploads(bucket: string, prefix = ''): Promise<string[]> {
    const listed = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return (listed.Uploads ?? []).map((upload) => `${upload.Key} (upload ${upload.UploadId})`);
  }

  async function dropBucket(bucket: string): Promise<void> {
    for (;;) {
      const listed = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
      const objects = (listed.Contents ?? []).map((object) => ({ Key: object.Key! }));
      if (objects.length === 0) break;
      await admin.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
    }
    const pending = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    for (const upload of pending.Uploads ?? []) await admin.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key!, UploadId: upload.UploadId! }));
    await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
  }

  // The conformance suite, under a key prefix (every key the driver writes must honour it).
  blobStoreSuite('S3BlobStore', async () => {
    const bucket = await newBucket();
    const prefix = 'registry/';
    const store = storeOn(bucket, { prefix });
    return {
      store,
      reopen: async () => storeOn(bucket, { prefix }),
      // Ingest objects, and multipart uploads anywhere in the bucket (an ingest's, or a copy's).
      ingestLeftovers: async () => [...(await keys(bucket, `${prefix}ingest/`)), ...(await uploads(bucket))],
      cleanup: async () => {
        const stray = (await keys(bucket)).filter((key) => !key.startsWith(prefix));
        await dropBucket(bucket);
        assert.deepEqual(stray, [], 'every key under the prefix');
      },
    };
  });

  describe('S3BlobStore specifics', () => {
    test('layout: blobs/<alg>/<2 hex>/<hex>, an ingest as its record and multipart upload', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket);
        const digest = digestOf('layout');
        await store.put(Readable.from([Buffer.from('layout')]), digest, 6);
        const hex = digest.slice('sha256:'.length);
        assert.deepEqual(await keys(bucket), [`blobs/sha256/${hex.slice(0, 2)}/${hex}`]);
        const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: `blobs/sha256/${hex.slice(0, 2)}/${hex}` }));
        assert.ok(Number(head.Metadata?.written) > Date.now() - 60_000, 'the written stamp');

        const ingest = await store.ingest('layout-ingest');
        assert.deepEqual(await keys(bucket, 'ingest/'), [], 'no object before the first append');
        await ingest.append(chunked(randomBytes(2 * PART + 123)), { offset: 0 });
        assert.deepEqual(await keys(bucket, 'ingest/'), ['ingest/layout-ingest/tail']);
        const record = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: 'ingest/layout-ingest/tail' }));
        assert.equal(record.ContentLength, 123, 'the tail holds what did not fill a part');
        assert.equal(record.Metadata?.parts, '2');
        assert.equal(record.Metadata?.['part-size'], String(PART));
        assert.equal((await uploads(bucket)).length, 1);
        assert.match((await uploads(bucket))[0]!, /^ingest\/layout-ingest\/data /);
        const other = await store.ingest('layout-other');
        await other.append(Readable.from([Buffer.from('small')]), { offset: 0 });
        assert.deepEqual((await arrayOf(store.ingestRefs())).sort(), ['layout-ingest', 'layout-other']);
        await ingest.abort();
        await other.abort();
        assert.deepEqual(await arrayOf(store.ingestRefs()), []);
        assert.deepEqual(await keys(bucket, 'ingest/'), []);
        assert.deepEqual(await uploads(bucket), []);
        for (const ref of ['../escape', '..', 'a/b', '', 'x'.repeat(129), '.hidden', 'a b']) await assert.rejects(store.ingest(ref), /invalid ingest ref/, JSON.stringify(ref));
        assert.throws(() => s3Layout('no-slash'), /ending in a slash/);
        assert.throws(() => s3Layout('/abs/'), /ending in a slash/);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('a 21 MiB blob appended in odd sizes by two instances in turn, committed by a third', async () => {
      const bucket = await newBucket();
      try {
        const data = randomBytes(21 * MiB + 12_345);
        const digest = digestOf(data);
        const [a, b, c] = [storeOn(bucket), storeOn(bucket), storeOn(bucket)];
        // Sizes that land inside parts, exactly on a boundary, and across several parts at once.
        const sizes = [3_141_593, 2_718_282, PART - (3_141_593 + 2_718_282) % PART, 1, 4_999_999, 7_777_777, 65_537];
        let offset = 0;
        for (const [index, size] of sizes.entries()) {
          const writer = index % 2 === 0 ? a : b;
          const ingest = await writer.ingest('replicas', { resume: true });
          offset = await ingest.append(chunked(data.subarray(offset, offset + size)), { offset });
          assert.equal(await (await storeOn(bucket).ingest('replicas')).size(), offset, `size from a fresh instance after append ${index + 1}`);
        }
        offset = await (await a.ingest('replicas')).append(chunked(data.subarray(offset)), { offset });
        assert.equal(offset, data.length);
        const result = await (await c.ingest('replicas', { resume: true })).commit(digest, data.length);
        assert.deepEqual(result, { digest, size: data.length, alreadyExisted: false });
        assert.equal(await b.stat(digest), data.length);
        assert.equal(createHash('sha256').update(await readAll(await b.reader(digest))).digest('hex'), digest.slice(7));
        assert.deepEqual(await keys(bucket, 'ingest/'), []);
        assert.deepEqual(await uploads(bucket), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('a wrong digest leaves nothing under blobs/ and no multipart upload', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket);
        const data = randomBytes(2 * PART + 777);
        const ingest = await store.ingest('wrong');
        await ingest.append(chunked(data), { offset: 0 });
        await assert.rejects(ingest.commit(digestOf('something else'), data.length), DigestMismatchError);
        // The same from another instance (the re-read path), and through put (larger than a part).
        const other = await storeOn(bucket).ingest('wrong-2');
        await other.append(chunked(data), { offset: 0 });
        await assert.rejects((await storeOn(bucket).ingest('wrong-2')).commit(digestOf('something else')), DigestMismatchError);
        await assert.rejects(store.put(chunked(data), digestOf('something else'), data.length), DigestMismatchError);
        await assert.rejects(store.put(chunked(data), digestOf('something else')), DigestMismatchError);
        assert.deepEqual(await keys(bucket), []);
        assert.deepEqual(await uploads(bucket), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('an ingest that never filled a part: its tail is read and PUT (up to 1 MiB) or copied', async () => {
      const bucket = await newBucket();
      try {
        for (const size of [1000, 3 * MiB]) {
          const data = randomBytes(size);
          const ref = `tail-only-${size}`;
          await (await storeOn(bucket).ingest(ref)).append(chunked(data), { offset: 0 });
          const result = await (await storeOn(bucket).ingest(ref)).commit(digestOf(data), size);
          assert.deepEqual(result, { digest: digestOf(data), size, alreadyExisted: false });
          assert.ok((await readAll(await storeOn(bucket).reader(result.digest))).equals(data));
        }
        assert.deepEqual(await keys(bucket, 'ingest/'), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('ranged reads across part boundaries', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket);
        const data = randomBytes(3 * PART + 4321);
        const digest = digestOf(data);
        const ingest = await store.ingest('ranges');
        await ingest.append(chunked(data.subarray(0, PART + 10)), { offset: 0 });
        await ingest.append(chunked(data.subarray(PART + 10)), { offset: PART + 10 });
        await ingest.commit(digest, data.length);
        const ranges = [
          { start: PART - 1, end: PART },
          { start: PART - 1000, end: 2 * PART + 1000 },
          { start: 0, end: data.length - 1 },
          { start: 3 * PART - 1, end: data.length - 1 },
          { start: data.length - 1, end: data.length - 1 },
        ];
        for (const range of ranges) {
          assert.ok((await readAll(await store.reader(digest, range))).equals(data.subarray(range.start, range.end + 1)), `reader ${range.start}-${range.end}`);
          const kept: Buffer[] = [];
          await store.copyTo(digest, new Writable({ write: (chunk: Buffer, _e, done) => (kept.push(chunk), done()) }), range);
          assert.ok(Buffer.concat(kept).equals(data.subarray(range.start, range.end + 1)), `copyTo ${range.start}-${range.end}`);
        }
        await assert.rejects(store.readSmall(digest, data.length - 1), /more than the/);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('an append below the size cuts what is past it: inside the tail, on a part boundary, inside an uploaded part', async () => {
      const bucket = await newBucket();
      try {
        const data = randomBytes(3 * PART);
        const other = randomBytes(2 * PART + 99);
        // [where the second append starts, what it then writes]
        const cases: [string, number][] = [
          ['in-tail', 2 * PART + 100],
          ['boundary', PART],
          ['in-part', PART + 7],
          ['in-first-part', 4096],
          ['from-zero', 0],
        ];
        for (const [ref, cut] of cases) {
          const first = await storeOn(bucket).ingest(ref);
          await first.append(chunked(data.subarray(0, 2 * PART + 5000)), { offset: 0 });
          // Another instance resumes at an offset the session acknowledged, below what S3 holds.
          const second = await storeOn(bucket).ingest(ref, { resume: true });
          assert.equal(await second.append(chunked(other), { offset: cut }), cut + other.length, ref);
          const expected = Buffer.concat([data.subarray(0, cut), other]);
          assert.equal(await second.size(), expected.length, ref);
          const result = await (await storeOn(bucket).ingest(ref)).commit(digestOf(expected), expected.length);
          assert.equal(result.digest, digestOf(expected), ref);
          assert.ok((await readAll(await storeOn(bucket).reader(result.digest))).equals(expected), ref);
        }
        assert.deepEqual(await keys(bucket, 'ingest/'), []);
        assert.deepEqual(await uploads(bucket), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('a commit cut short after completing the upload: another instance commits, or appends and commits', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket);
        const raw = new S3Bucket(admin, bucket);
        // What a commit does up to completing the upload: the tail as the last part, then complete.
        const completeByHand = async (ref: string): Promise<void> => {
          const [upload] = await uploads(bucket, `ingest/${ref}/`);
          const uploadId = upload!.split('(upload ')[1]!.slice(0, -1);
          const parts = await raw.listParts(`ingest/${ref}/data`, uploadId, 'test');
          const tail = (await raw.getBuffer(`ingest/${ref}/tail`, 'test'))!;
          const last = await raw.uploadPart(`ingest/${ref}/data`, uploadId, parts.length + 1, tail, 'test');
          await raw.completeUpload(`ingest/${ref}/data`, uploadId, [...parts.map((p) => p.etag), last], 'test');
        };
        const data = randomBytes(3 * PART + 1234);
        await (await store.ingest('cut-short')).append(chunked(data.subarray(0, 2 * PART + 10)), { offset: 0 });
        await completeByHand('cut-short');
        const committed = await (await storeOn(bucket).ingest('cut-short')).commit(digestOf(data.subarray(0, 2 * PART + 10)));
        assert.equal(committed.size, 2 * PART + 10);

        // The same, then more bytes (across a part boundary) from the instance that wrote first: its memo still matches the record.
        const writer = await store.ingest('cut-then-append');
        await writer.append(chunked(data.subarray(0, 2 * PART + 10)), { offset: 0 });
        await completeByHand('cut-then-append');
        await writer.append(chunked(data.subarray(2 * PART + 10)), { offset: 2 * PART + 10 });
        const result = await writer.commit(digestOf(data), data.length);
        assert.ok((await readAll(await store.reader(result.digest))).equals(data));
        assert.deepEqual(await keys(bucket, 'ingest/'), []);
        assert.deepEqual(await uploads(bucket), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('a source that breaks keeps what reached S3; the running hash covers exactly it', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket);
        const data = randomBytes(3 * PART);
        const breaking = new Readable({
          read() {
            this.push(data.subarray(0, PART + 3 * MiB));
            this.destroy(new Error('connection reset'));
          },
        });
        const ingest = await store.ingest('broken');
        await assert.rejects(ingest.append(breaking, { offset: 0 }), /connection reset/);
        const kept = await (await storeOn(bucket).ingest('broken')).size();
        assert.equal(kept, PART + 3 * MiB);
        assert.equal(store.memo('broken')?.hash?.offset, kept);
        let written = 0;
        await ingest.append(chunked(data.subarray(kept)), { offset: kept, onWritten: (size) => (written = size) });
        assert.equal(written, data.length, 'onWritten reports the size once the record holds it');
        assert.equal(store.memo('broken')?.hash?.offset, data.length);
        assert.equal((await ingest.commit(digestOf(data), data.length)).digest, digestOf(data));
      } finally {
        await dropBucket(bucket);
      }
    });

    test('put larger than a part streams through an ingest; objects above the copy limit are copied in ranges', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket, { copyLimit: 6 * MiB });
        const data = randomBytes(2 * PART + 5);
        const digest = digestOf(data);
        assert.deepEqual(await store.put(chunked(data), digest, data.length), { digest, size: data.length, alreadyExisted: false });
        assert.deepEqual(await store.put(chunked(data), digest), { digest, size: data.length, alreadyExisted: true });
        await store.unmark(digest);
        assert.ok((await readAll(await store.reader(digest))).equals(data));
        // The collector's copies go the same way.
        assert.ok((await store.quarantine(digest)) !== undefined);
        assert.equal(await store.restore(digest), true);
        assert.ok((await readAll(await store.reader(digest))).equals(data));
        assert.deepEqual(await keys(bucket), [s3Layout('').blob(digest)]);
        assert.deepEqual(await uploads(bucket), []);
      } finally {
        await dropBucket(bucket);
      }
    });

    describe('garbage collection', () => {
      test('quarantine, trashed, restore, purge, modifiedAt', async () => {
        const bucket = await newBucket();
        try {
          const store = storeOn(bucket);
          const digest = digestOf('condemned');
          const before = Date.now();
          await store.put(Readable.from([Buffer.from('condemned')]), digest, 9);
          const written = (await store.modifiedAt(digest))!;
          assert.ok(written >= before && written <= Date.now(), 'modifiedAt: when it was written');
          assert.equal(await store.modifiedAt(digestOf('absent')), undefined);
          assert.equal(await store.quarantine(digestOf('absent')), undefined);

          assert.equal(await store.quarantine(digest), written, 'quarantine reports when the moved blob was written');
          assert.equal(await store.stat(digest), undefined);
          assert.deepEqual(await arrayOf(store.list()), []);
          assert.deepEqual(await arrayOf(store.trashed()), [digest]);
          assert.equal(await store.restore(digest), true);
          assert.equal((await store.readSmall(digest, 100)).toString(), 'condemned');
          assert.deepEqual(await arrayOf(store.trashed()), []);

          await store.quarantine(digest);
          assert.equal(await store.purge(digest), 9);
          assert.equal(await store.purge(digest), 0);
          assert.equal(await store.stat(digest), undefined);
          assert.deepEqual(await keys(bucket), []);
        } finally {
          await dropBucket(bucket);
        }
      });

      test('touch before the move: the collector sees the mark and puts the blob back; unmark and restore clear it', async () => {
        const bucket = await newBucket();
        try {
          const store = storeOn(bucket);
          const digest = digestOf('wanted');
          await store.put(Readable.from([Buffer.from('wanted')]), digest, 6);
          const decidedAt = Date.now();
          assert.equal(await store.touch(digest), true);
          assert.ok((await store.modifiedAt(digest))! > Date.now() + 3600_000, 'a touched blob shows a time a day ahead');
          await store.unmark(digest);
          assert.ok((await store.modifiedAt(digest))! <= Date.now());

          assert.equal(await store.touch(digest), true);
          const modified = (await store.quarantine(digest))!;
          assert.ok(modified > decidedAt, 'the move shows the writer mark');
          assert.equal(await store.restore(digest), true);
          assert.ok((await store.modifiedAt(digest))! <= Date.now(), 'restore cleared the mark');
          assert.deepEqual(await keys(bucket), [s3Layout('').blob(digest)]);
        } finally {
          await dropBucket(bucket);
        }
      });

      test('touch after the move fails, and the writer commits its own copy, which the purge leaves alone', async () => {
        const bucket = await newBucket();
        try {
          const store = storeOn(bucket);
          const digest = digestOf('late writer');
          await store.put(Readable.from([Buffer.from('late writer')]), digest, 11);
          const decidedAt = Date.now();
          assert.ok((await store.quarantine(digest))! <= decidedAt);
          assert.equal(await store.touch(digest), false);
          const ingest = await store.ingest('late');
          await ingest.append(Readable.from([Buffer.from('late writer')]), { offset: 0 });
          assert.equal((await ingest.commit(digest, 11)).alreadyExisted, false);
          assert.equal(await store.purge(digest), 11);
          assert.equal((await store.readSmall(digest, 100)).toString(), 'late writer');
        } finally {
          await dropBucket(bucket);
        }
      });

      test('touch racing quarantine: whenever touch says true, the collector sees the mark (120 rounds)', async () => {
        const bucket = await newBucket();
        try {
          const [writer, collector] = [storeOn(bucket), storeOn(bucket)];
          // The writer starts later, by up to a move's time (its CopyObject takes ~100 ms here): both orders happen.
          const jitter = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.random() * ms));
          let seen = 0;
          await Promise.all(
            Array.from({ length: 8 }, async (_, lane) => {
              for (let round = 0; round < 15; round++) {
                const digest = digestOf(`race ${lane} ${round}`);
                await writer.put(Readable.from([Buffer.from(`race ${lane} ${round}`)]), digest);
                const decidedAt = Date.now();
                const [touched, modified] = await Promise.all([jitter(150).then(() => writer.touch(digest)), jitter(3).then(() => collector.quarantine(digest))]);
                if (touched) {
                  assert.ok(modified !== undefined && modified > decidedAt, `round ${lane}/${round}: touch said true, so the move must show the mark`);
                  seen++;
                  assert.equal(await collector.restore(digest), true);
                  await writer.unmark(digest);
                } else {
                  await collector.purge(digest);
                }
              }
            }),
          );
          process.stderr.write(`# touch found the blob (before its move) in ${seen} of 120 rounds\n`);
        } finally {
          await dropBucket(bucket);
        }
      });

      test('the GarbageCollector with SQLite metadata over S3: unused blobs go, used ones stay, a touched one comes back', async () => {
        const bucket = await newBucket();
        const dir = await mkdtemp(join(tmpdir(), 'skiff-s3gc-'));
        const metadata = new SqliteMetadataStore(join(dir, 'metadata.db'));
        try {
          const store = storeOn(bucket);
          const put = async (text: string): Promise<Digest> => {
            const digest = digestOf(text);
            await store.put(Readable.from([Buffer.from(text)]), digest);
            await metadata.linkBlob('repo', digest, text.length);
            return digest;
          };
          const [unused, used, touched] = [await put('unused'), await put('used'), await put('touched')];
          // A manifest keeps `used`; links alone protect a blob only for the grace period.
          const manifest = await put('{"manifest":"keeps used"}');
          await metadata.putManifest({ repository: 'repo', digest: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 25, createdAt: Date.now() }, [used], ['latest']);
          await metadata.unlinkBlob('repo', unused);
          await metadata.unlinkBlob('repo', touched);
          // A writer finds `touched` stored and touches it while the cycle moves it aside.
          const quarantine = store.quarantine.bind(store);
          store.quarantine = async (digest: Digest) => {
            if (digest === touched) assert.equal(await store.touch(digest), true);
            return quarantine(digest);
          };
          const report = await new GarbageCollector(metadata, store).collect({ graceMs: 0 });
          assert.deepEqual(report.deleted, [{ digest: unused, size: 6 }]);
          assert.equal(report.revived, 1);
          assert.deepEqual((await arrayOf(store.list())).sort(), [used, touched, manifest].sort());
          assert.deepEqual(await arrayOf(store.trashed()), []);
        } finally {
          await metadata.close();
          await rm(dir, { recursive: true, force: true });
          await dropBucket(bucket);
        }
      });
    });

    test('presigned URLs: GET with fetch, with a Range; a tampered signature is refused', async () => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket, { presign: { expiresIn: 60 } });
        const data = randomBytes(PART + 10);
        const digest = digestOf(data);
        await store.put(chunked(data), digest, data.length);
        const url = (await store.redirectUrl(digest))!;
        assert.match(url, /X-Amz-Expires=60/);
        const whole = await fetch(url);
        assert.equal(whole.status, 200);
        assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));
        const part = await fetch(await store.presignedUrl(digest, 30), { headers: { Range: `bytes=${PART - 2}-${PART + 1}` } });
        assert.equal(part.status, 206);
        assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(PART - 2, PART + 2)));
        const tampered = await fetch(url.replace(/X-Amz-Signature=([0-9a-f])/, (_, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`));
        await tampered.arrayBuffer();
        assert.equal(tampered.status, 403);
        assert.equal(await storeOn(bucket).redirectUrl(digest), undefined, 'no redirect unless configured');
      } finally {
        await dropBucket(bucket);
      }
    });

    test('checkAccess names what is wrong: bucket, access key, secret key, endpoint', async () => {
      const bucket = await newBucket();
      try {
        await storeOn(bucket).checkAccess();
        const problem = async (options: Partial<S3BlobStoreOptions>) => {
          try {
            await storeOn(bucket, options).checkAccess();
          } catch (error) {
            assert.ok(error instanceof S3AccessError, String(error));
            return `${error.problem} ${error.setting}: ${error.message}`;
          }
          return 'no problem';
        };
        assert.match(await problem({ bucket: 'no-such-bucket' }), /^bucket-missing bucket: the bucket no-such-bucket does not exist on http:\/\/127\.0\.0\.1:\d+ \(create it, or fix bucket\)$/);
        assert.match(await problem({ accessKeyId: 'nobody' }), /^credentials accessKey: /);
        assert.match(await problem({ secretAccessKey: 'wrong' }), /^credentials secretKey: /);
        assert.match(await problem({ endpoint: 'http://127.0.0.1:1' }), /^unreachable endpoint: cannot reach http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('failures name the bucket, the key and the S3 error; a missing blob is BlobNotFoundError', async () => {
      const store = storeOn('no-such-bucket');
      const digest = digestOf('anything');
      await assert.rejects(store.put(Readable.from([Buffer.from('anything')]), digest), (error: unknown) => {
        assert.ok(error instanceof StorageFailureError, String(error));
        assert.match(error.message, /NoSuchBucket/);
        assert.match(error.message, new RegExp(`s3://no-such-bucket/blobs/sha256/${digest.slice(7, 9)}/`));
        assert.doesNotMatch(error.publicMessage, /s3:\/\//, 'no bucket or key in what a client reads');
        return true;
      });
      const bucket = await newBucket();
      try {
        await assert.rejects(storeOn(bucket).reader(digest), BlobNotFoundError);
        await assert.rejects(storeOn(bucket).copyTo(digest, new Writable({ write: (_c, _e, done) => done() })), BlobNotFoundError);
      } finally {
        await dropBucket(bucket);
      }
    });

    test('100 MiB appended from a socket-like stream and committed: timing, and never the whole blob in memory', async (t) => {
      const bucket = await newBucket();
      try {
        const store = storeOn(bucket, { partSize: 8 * MiB });
        const size = 100 * MiB;
        const hash = createHash('sha256');
        const source = Readable.from(
          (function* () {
            for (let at = 0; at < size; at += MiB) {
              const chunk = randomBytes(MiB);
              hash.update(chunk);
              for (let i = 0; i < MiB; i += 64 * 1024) yield chunk.subarray(i, i + 64 * 1024);
            }
          })(),
        );
        // Live buffer memory, sampled after a full collection (garbage chunks would hide what is held).
        setFlagsFromString('--expose-gc');
        const gc = runInNewContext('gc') as () => void;
        const live = (): number => {
          gc();
          return process.memoryUsage().arrayBuffers;
        };
        const baseline = live();
        let peak = baseline;
        const sampler = setInterval(() => (peak = Math.max(peak, live())), 100);
        const started = performance.now();
        const ingest = await store.ingest('hundred');
        assert.equal(await ingest.append(source, { offset: 0 }), size);
        const appended = performance.now();
        const digest: Digest = `sha256:${hash.digest('hex')}`;
        const result = await ingest.commit(digest, size);
        const committed = performance.now();
        clearInterval(sampler);
        assert.equal(result.digest, digest);
        const growth = (peak - baseline) / MiB;
        const line = `100 MiB: append ${Math.round(appended - started)} ms, commit ${Math.round(committed - appended)} ms, total ${Math.round(committed - started)} ms (a full GC every 100 ms to measure); live buffers grew ${growth.toFixed(1)} MiB at most`;
        t.diagnostic(line);
        process.stderr.write(`# ${line}\n`);
        assert.ok(growth < 32, `live buffers grew ${growth.toFixed(1)} MiB: an append holds one 8 MiB part, not the blob`);
      } finally {
        await dropBucket(bucket);
      }
    });
  });
});

async function arrayOf<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
