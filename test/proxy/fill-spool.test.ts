/**
 * Fills through a spool (the mirror on a store with no local files, S3): readers follow the
 * spool's file as the bytes land, the blob reaches the shared store only verified, the spool is
 * emptied, and the readers' last byte does not wait for the upload to the shared store. The
 * shared store here is a second FsBlobStore behind the BlobStore interface (the S3 driver runs
 * the same path in test/scale-out/mirror.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { BlobStore } from '../../src/content/store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { BlobFills, type FillRequest } from '../../src/proxy/blob-fills.ts';
import type { FillEvent, UpstreamOpener } from '../../src/proxy/fill.ts';
import { FillSpool } from '../../src/proxy/fill-spool.ts';
import { consume, outcomeOf } from './outcome.ts';

const MiB = 1024 * 1024;

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-spool-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The shared store, with every `put` held until `gate` resolves, and failing when `fail` says so. */
function sharedStore(store: FsBlobStore, options: { gate?: Promise<void>; fail?: () => Error | undefined; puts?: Digest[] } = {}): BlobStore {
  return new Proxy(store, {
    get(target, key, receiver) {
      if (key !== 'put') {
        const value = Reflect.get(target, key, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
      return async (...args: Parameters<BlobStore['put']>) => {
        options.puts?.push(args[1]);
        await options.gate;
        const failure = options.fail?.();
        if (failure) {
          args[0].destroy();
          throw failure;
        }
        return target.put(...args);
      };
    },
  });
}

/** An upstream that sends `bytes` in 64 KiB chunks, one per turn of the event loop, announcing the size. */
function upstream(bytes: () => Buffer): { opens: number[]; open: UpstreamOpener } {
  const opens: number[] = [];
  return {
    opens,
    open: async (offset) => {
      opens.push(offset);
      const data = bytes();
      const body = Readable.from(
        (async function* () {
          for (let at = offset; at < data.length; at += 64 * 1024) {
            yield Buffer.from(data.subarray(at, at + 64 * 1024));
            await nextTurn();
          }
        })(),
        { objectMode: false },
      );
      return { body, size: data.length };
    },
  };
}

async function spoolFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

test('a fill spools, reaches the shared store verified, and leaves the spool empty; later callers read the shared store', async (t) => {
  const dir = await tempDir(t);
  const shared = await new FsBlobStore(join(dir, 'shared')).init();
  const target = await FillSpool.open(shared, join(dir, 'spool'));
  const data = randomBytes(3 * MiB + 17);
  const digest = digestOf(data);
  const source = upstream(() => data);
  const events: FillEvent[] = [];
  const fills = new BlobFills(target, { onEvent: (event) => events.push(event) });
  const request = (): FillRequest => ({ digest, open: source.open });

  const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => outcomeOf(async () => consume(await (await fills.source(request())).reader(i % 2 ? { start: 5, end: MiB } : undefined)))));
  for (const [i, outcome] of outcomes.entries()) {
    const want = i % 2 ? data.subarray(5, MiB + 1) : data;
    assert.deepEqual(outcome, { ok: true, bytes: want.length, digest: digestOf(want) }, `caller ${i}`);
  }
  await fills.settled();
  assert.deepEqual(source.opens, [0], 'one upstream open');
  assert.equal(await shared.stat(digest), data.length);
  assert.deepEqual(await spoolFiles(join(dir, 'spool')), [], 'nothing left in the spool');
  assert.deepEqual(
    events.filter((e) => e.type === 'commit').map((e) => e.type === 'commit' && [e.size, e.alreadyExisted]),
    [[data.length, false]],
  );
  const later = await fills.source(request());
  assert.equal(later.from, 'store');
  assert.deepEqual(await consume(await later.reader()), { ok: true, bytes: data.length, digest });
});

test("readers' last byte waits for the digest check, not for the upload to the shared store; new callers meanwhile read the spool", async (t) => {
  const dir = await tempDir(t);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const puts: Digest[] = [];
  const target = await FillSpool.open(sharedStore(await new FsBlobStore(join(dir, 'shared')).init(), { gate, puts }), join(dir, 'spool'));
  const data = randomBytes(2 * MiB);
  const digest = digestOf(data);
  const fills = new BlobFills(target);
  const request = (): FillRequest => ({ digest, open: upstream(() => data).open });

  const first = await consume(await (await fills.source(request())).reader());
  assert.deepEqual(first, { ok: true, bytes: data.length, digest }, 'the whole blob while its upload waits');
  // The upload starts right after the check that released the last byte: on a loaded machine, a few ticks later.
  for (const deadline = Date.now() + 10_000; puts.length === 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(puts, [digest], 'the upload has begun, and waits at its gate');
  const during = await fills.source(request());
  assert.equal(during.from, 'fill', 'the fill is not committed before the upload');
  assert.deepEqual(await consume(await during.reader({ start: MiB, end: 2 * MiB - 1 })), { ok: true, bytes: MiB, digest: digestOf(data.subarray(MiB)) });
  open();
  await fills.settled();
  assert.equal(await target.stat(digest), data.length);
});

test('an upload to the shared store that fails: readers keep the verified bytes, nothing is cached, the spool is emptied, the next caller fills again', async (t) => {
  const dir = await tempDir(t);
  let failing = true;
  const shared = await new FsBlobStore(join(dir, 'shared')).init();
  const target = await FillSpool.open(sharedStore(shared, { fail: () => (failing ? new Error('the bucket refused the upload') : undefined) }), join(dir, 'spool'));
  const data = randomBytes(MiB + 3);
  const digest = digestOf(data);
  const source = upstream(() => data);
  const events: FillEvent[] = [];
  const fills = new BlobFills(target, { onEvent: (event) => events.push(event) });
  const request = (): FillRequest => ({ digest, open: source.open });

  // Three readers open on the fill, and read nothing until it is over.
  const readers = await Promise.all([0, 1, 2].map(async () => (await fills.source(request())).reader()));
  await fills.settled();
  const failed = events.find((e) => e.type === 'fail');
  assert.match(String(failed?.type === 'fail' && failed.error), /the bucket refused the upload/);
  assert.equal(await shared.stat(digest), undefined);
  assert.deepEqual(await spoolFiles(join(dir, 'spool')), []);
  // What they read was verified: they read it all, from the spool file they hold open.
  for (const reader of readers) assert.deepEqual(await consume(reader), { ok: true, bytes: data.length, digest });

  failing = false;
  assert.deepEqual(await consume(await (await fills.source(request())).reader()), { ok: true, bytes: data.length, digest });
  await fills.settled();
  assert.deepEqual(source.opens, [0, 0], 'fetched again');
  assert.equal(await shared.stat(digest), data.length);
});

test('a lying upstream never reaches the shared store: its readers fail before their last byte', async (t) => {
  const dir = await tempDir(t);
  const puts: Digest[] = [];
  const shared = await new FsBlobStore(join(dir, 'shared')).init();
  const target = await FillSpool.open(sharedStore(shared, { puts }), join(dir, 'spool'));
  const data = randomBytes(MiB);
  const digest = digestOf(data);
  const lie = Buffer.from(data);
  lie[lie.length - 1] = lie[lie.length - 1]! ^ 0xff;
  const fills = new BlobFills(target, { attempts: 1 });
  const outcome = await outcomeOf(async () => consume(await (await fills.source({ digest, open: upstream(() => lie).open })).reader()));
  assert.equal(outcome.ok, false);
  assert.ok(outcome.bytes < data.length, `got ${outcome.bytes} bytes`);
  await fills.settled();
  assert.deepEqual(puts, [], 'no upload was attempted');
  assert.equal(await shared.stat(digest), undefined);
  assert.deepEqual(await spoolFiles(join(dir, 'spool')), []);
});

test('opening the spool removes what a crash left in it', async (t) => {
  const dir = await tempDir(t);
  const shared = await new FsBlobStore(join(dir, 'shared')).init();
  const first = await FillSpool.open(shared, join(dir, 'spool'));
  await writeFile(first.ingestPath('fill-left-by-a-crash'), randomBytes(1000));
  await FillSpool.open(shared, join(dir, 'spool'));
  assert.deepEqual(await spoolFiles(join(dir, 'spool')), []);
});
