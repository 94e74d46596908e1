import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { ByteRange, Ingest } from '../../src/content/store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../../src/digest/errors.ts';
import { BlobFills, type FillRequest, type FillTarget } from '../../src/proxy/blob-fills.ts';
import { UpstreamEndedEarlyError, type FillEvent, type UpstreamOpener } from '../../src/proxy/fill.ts';
import { consume, outcomeOf, type Outcome } from './outcome.ts';

const MiB = 1024 * 1024;

// ---- helpers ----

async function tempStore(t: { after(fn: () => Promise<void>): void }): Promise<{ store: FsBlobStore; root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-fill-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  return { store: await new FsBlobStore(root).init(), root };
}

async function ingestLeftovers(store: FsBlobStore): Promise<string[]> {
  return readdir(store.ingestDir);
}

function expectBytes(outcome: Outcome, data: Buffer, range?: ByteRange, label = ''): void {
  const slice = range ? data.subarray(range.start, range.end + 1) : data;
  assert.ok(outcome.ok, `${label}: ${outcome.ok ? '' : String((outcome as { error: unknown }).error)}`);
  assert.equal(outcome.bytes, slice.length, label);
  assert.equal(outcome.digest, digestOf(slice), label);
}

/** Bytes in 64 KiB chunks, one per turn of the event loop, as a network stream would come. */
function trickle(bytes: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (async function* () {
      for (let at = 0; at < bytes.length; at += chunk) {
        yield Buffer.from(bytes.subarray(at, at + chunk));
        await nextTurn();
      }
    })(),
    { objectMode: false },
  );
}

/** An upstream as a Readable factory: `blob()` is what it claims is the blob; every open recorded. */
function streamUpstream(blob: () => Buffer, options: { announce?: boolean } = {}): { opens: number[]; open: UpstreamOpener } {
  const opens: number[] = [];
  return {
    opens,
    open: async (offset) => {
      opens.push(offset);
      const bytes = blob();
      const body = trickle(bytes.subarray(Math.min(offset, bytes.length)));
      return options.announce ? { body, size: bytes.length } : body;
    },
  };
}

interface Plan {
  /** Cut the connection once this many body bytes (of the blob) were written. */
  dropAt?: number;
  /** Stop at this blob offset until `gate` resolves. */
  pauseAt?: number;
  gate?: Promise<void>;
}

/** An upstream registry's blob endpoint on node:http, with Range, counting requests and bytes sent. */
class HttpUpstream {
  readonly requests: { range: string | undefined }[] = [];
  /** Body bytes written so far, over all requests. */
  sent = 0;
  /** Responses that reached their end. */
  finished = 0;
  plan: (index: number) => Plan = () => ({});
  data: Buffer;
  private server: Server | undefined;
  private url = '';

  constructor(data: Buffer) {
    this.data = data;
  }

  async start(t: { after(fn: () => Promise<void>): void }): Promise<this> {
    this.server = createServer((req, res) => void this.serve(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/blob`;
    t.after(async () => {
      this.server!.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    });
    return this;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const index = this.requests.push({ range: req.headers.range }) - 1;
    const plan = this.plan(index);
    const data = this.data;
    const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    if (start > data.length || (start === data.length && start > 0)) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    res.writeHead(start > 0 ? 206 : 200, {
      'content-length': data.length - start,
      ...(start > 0 ? { 'content-range': `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    });
    let paused = false;
    for (let at = start; at < data.length; ) {
      if (plan.pauseAt !== undefined && !paused && at >= plan.pauseAt) {
        paused = true;
        await plan.gate;
      }
      if (plan.dropAt !== undefined && at >= plan.dropAt) {
        res.destroy();
        return;
      }
      const stop = Math.min(data.length, at + 64 * 1024, plan.dropAt !== undefined && at < plan.dropAt ? plan.dropAt : Infinity, plan.pauseAt !== undefined && !paused && at < plan.pauseAt ? plan.pauseAt : Infinity);
      const piece = data.subarray(at, stop);
      this.sent += piece.length;
      at = stop;
      if (!res.write(piece)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go);
            res.off('close', go);
            resolve();
          };
          res.on('drain', go);
          res.on('close', go);
        });
      }
      if (res.destroyed) return;
    }
    res.end(() => this.finished++);
  }

  /** GET with Range from the offset; announces the blob's total size unless told not to. */
  opener(announce = true): UpstreamOpener {
    return (offset, signal) =>
      new Promise((resolve, reject) => {
        const req = get(this.url, { agent: false, signal, headers: offset > 0 ? { range: `bytes=${offset}-` } : {} }, (res) => {
          if (res.statusCode !== 200 && res.statusCode !== 206) {
            res.resume();
            reject(Object.assign(new Error(`upstream answered ${res.statusCode}`), { status: res.statusCode }));
            return;
          }
          const total = res.statusCode === 206 ? Number(/\/(\d+)$/.exec(String(res.headers['content-range']))?.[1]) : Number(res.headers['content-length']);
          resolve(announce ? { body: res, size: total } : res);
        });
        req.on('error', reject);
      });
  }
}

/** The registry's blob GET in miniature: headers from `source.size()`, then `copyTo(res, range)`. */
async function startMirror(t: { after(fn: () => Promise<void>): void }, fills: BlobFills, request: () => FillRequest): Promise<string> {
  const server = createServer(async (req, res) => {
    try {
      const source = await fills.source(request());
      const size = await source.size();
      const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const range = match ? { start: Number(match[1]), end: Number(match[2]) } : undefined;
      res.writeHead(range ? 206 : 200, {
        'content-length': range ? range.end - range.start + 1 : size,
        ...(range ? { 'content-range': `bytes ${range.start}-${range.end}/${size}` } : {}),
      });
      await source.copyTo(res, range);
    } catch (error) {
      if (!res.headersSent) res.writeHead(502).end(String(error));
      else res.destroy();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`;
}

/** An HTTP client of the mirror: what it accepted (a body cut short is an error, not data). */
function fetchFromMirror(url: string, range?: ByteRange, onData?: (bytes: number) => void, onResponse?: (res: IncomingMessage) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, headers: range ? { range: `bytes=${range.start}-${range.end}` } : {} }, (res) => {
      onResponse?.(res);
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        res.resume();
        resolve({ ok: false, bytes: 0, error: new Error(`mirror answered ${res.statusCode}`) });
        return;
      }
      void consume(res, onData).then((outcome) => {
        const length = Number(res.headers['content-length']);
        // A client that got every byte Content-Length promised would accept the body.
        if (outcome.ok && outcome.bytes !== length) resolve({ ok: false, bytes: outcome.bytes, error: new Error('short body') });
        else resolve(outcome);
      });
    });
    req.on('error', (error) => resolve({ ok: false, bytes: 0, error }));
  });
}

/** The store, with every commit held until `gate` resolves. */
function withGatedCommits(store: FsBlobStore, gate: Promise<void>): FillTarget {
  return {
    stat: (digest) => store.stat(digest),
    reader: (digest, range) => store.reader(digest, range),
    copyTo: (digest, destination, range) => store.copyTo(digest, destination, range),
    ingestPath: (ref) => store.ingestPath(ref),
    sendBuffers: store.sendBuffers,
    ingest: async (ref) => {
      const ingest = await store.ingest(ref);
      const gated: Ingest = {
        ref: ingest.ref,
        size: () => ingest.size(),
        append: (source, options) => ingest.append(source, options),
        commit: async (digest, size) => {
          await gate;
          return ingest.commit(digest, size);
        },
        abort: () => ingest.abort(),
      };
      return gated;
    },
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

function corrupt(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = copy[at]! ^ 0xff;
  return copy;
}

// ---- tests ----

test('20 concurrent callers (some with Ranges) of one 32 MiB blob: one upstream open, the right bytes for each, the first of them before the upstream finished', async (t) => {
  const data = randomBytes(32 * MiB);
  const digest = digestOf(data);
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  // The upstream sends half, then waits until some caller has received bytes: a mirror that
  // serves only after the download completes never gets there (the safety timer opens the gate).
  const upstream = await new HttpUpstream(data).start(t);
  upstream.plan = () => ({ pauseAt: 16 * MiB, gate });
  const safety = setTimeout(openGate, 30_000);
  t.after(() => clearTimeout(safety));
  const { store } = await tempStore(t);
  const events: FillEvent[] = [];
  const fills = new BlobFills(store, { backoffMs: () => 0, onEvent: (event) => events.push(event) });
  const request = (): FillRequest => ({ digest, size: data.length, open: upstream.opener() });
  const mirror = await startMirror(t, fills, request);

  let firstData: { upstreamSent: number; upstreamFinished: number } | undefined;
  const onData = () => {
    if (firstData) return;
    firstData = { upstreamSent: upstream.sent, upstreamFinished: upstream.finished };
    openGate();
  };
  const ranges: (ByteRange | undefined)[] = [
    undefined,
    undefined,
    { start: 0, end: 0 },
    { start: 1000, end: 1_000_999 },
    { start: 20 * MiB, end: 32 * MiB - 1 },
    { start: 32 * MiB - 1, end: 32 * MiB - 1 },
    { start: 5 * MiB + 3, end: 25 * MiB },
    undefined,
    { start: 16 * MiB - 10, end: 16 * MiB + 10 },
    { start: 7, end: 16 * MiB - 1 },
  ];
  const callers = Array.from({ length: 20 }, (_, i) => {
    const range = ranges[i % ranges.length];
    if (i % 2 === 0) return outcomeOf(async () => consume(await (await fills.source(request())).reader(range), onData));
    return fetchFromMirror(mirror, range, onData);
  });
  const outcomes = await Promise.all(callers);

  outcomes.forEach((outcome, i) => expectBytes(outcome, data, ranges[i % ranges.length], `caller ${i} (${i % 2 === 0 ? 'reader' : 'HTTP'})`));
  assert.equal(upstream.requests.length, 1, 'exactly one upstream open');
  assert.equal(events.filter((e) => e.type === 'open').length, 1);
  assert.equal(upstream.sent, data.length, 'the upstream sent the blob once');
  assert.ok(firstData, 'a caller received data');
  assert.equal(firstData.upstreamFinished, 0, 'the first bytes reached a caller before the upstream finished');
  assert.ok(firstData.upstreamSent <= 16 * MiB, `the first bytes reached a caller while the upstream was paused (${firstData.upstreamSent} bytes sent)`);

  await fills.settled();
  assert.equal(fills.running, 0);
  assert.equal(await store.stat(digest), data.length);
  assert.deepEqual(await ingestLeftovers(store), []);
  const commit = events.find((e) => e.type === 'commit');
  assert.deepEqual(commit && { size: commit.size, received: commit.received }, { size: data.length, received: data.length });

  // Once committed, callers are served from the store: no upstream call.
  for (const range of [undefined, { start: 3, end: 300_000 }]) {
    const source = await fills.source(request());
    assert.equal(source.from, 'store');
    expectBytes(await consume(await source.reader(range)), data, range, 'from the store');
    expectBytes(await fetchFromMirror(mirror, range), data, range, 'from the store over HTTP');
  }
  assert.equal(upstream.requests.length, 1, 'no upstream call after the commit');
});

test('an upstream that breaks midway is resumed with Range at the byte reached', async (t) => {
  const data = randomBytes(8 * MiB + 123);
  const digest = digestOf(data);
  const upstream = await new HttpUpstream(data).start(t);
  upstream.plan = (index) => (index === 0 ? { dropAt: 3 * MiB } : {});
  const { store } = await tempStore(t);
  const events: FillEvent[] = [];
  const fills = new BlobFills(store, { backoffMs: () => 0, onEvent: (event) => events.push(event) });
  const request = (): FillRequest => ({ digest, size: data.length, open: upstream.opener() });
  const mirror = await startMirror(t, fills, request);

  const outcomes = await Promise.all([
    outcomeOf(async () => consume(await (await fills.source(request())).reader())),
    outcomeOf(async () => consume(await (await fills.source(request())).reader({ start: 3 * MiB - 5, end: 3 * MiB + 5 }))),
    fetchFromMirror(mirror),
  ]);
  expectBytes(outcomes[0]!, data, undefined, 'reader');
  expectBytes(outcomes[1]!, data, { start: 3 * MiB - 5, end: 3 * MiB + 5 }, 'range across the break');
  expectBytes(outcomes[2]!, data, undefined, 'HTTP');

  const retry = events.find((e) => e.type === 'retry');
  assert.ok(retry && retry.type === 'retry');
  assert.ok(retry.offset > 0 && retry.offset <= 3 * MiB, `resumed at ${retry.offset}`);
  assert.deepEqual(
    upstream.requests.map((r) => r.range),
    [undefined, `bytes=${retry.offset}-`],
  );
  await fills.settled();
  assert.equal(await store.stat(digest), data.length);
  const commit = events.find((e) => e.type === 'commit');
  assert.equal(commit?.type === 'commit' && commit.received, data.length, 'no byte fetched twice');
});

describe('an upstream that lies: every reader fails before its last byte, nothing is stored, the next call fetches again', () => {
  const size = 2 * MiB;
  const cases: { name: string; known: boolean; lie: (data: Buffer) => Buffer; error: (e: unknown) => boolean; opens?: number }[] = [
    { name: 'a corrupted byte near the end', known: true, lie: (d) => corrupt(d, size - 100), error: (e) => e instanceof DigestMismatchError },
    { name: 'a corrupted byte at the start, size unknown', known: false, lie: (d) => corrupt(d, 3), error: (e) => e instanceof DigestMismatchError },
    { name: 'extra bytes', known: true, lie: (d) => Buffer.concat([d, Buffer.alloc(1000, 7)]), error: (e) => e instanceof SizeMismatchError },
    { name: 'extra bytes, size unknown', known: false, lie: (d) => Buffer.concat([d, Buffer.alloc(1000, 7)]), error: (e) => e instanceof DigestMismatchError },
    { name: 'missing bytes', known: true, lie: (d) => d.subarray(0, size - 5000), error: (e) => e instanceof UpstreamEndedEarlyError, opens: 3 },
    { name: 'missing bytes, size unknown', known: false, lie: (d) => d.subarray(0, size - 5000), error: (e) => e instanceof DigestMismatchError },
  ];
  for (const c of cases) {
    test(c.name, async (t) => {
      const data = randomBytes(size);
      const digest = digestOf(data);
      let served = c.lie(data);
      const upstream = streamUpstream(() => served);
      const { store } = await tempStore(t);
      const fills = new BlobFills(store, { backoffMs: () => 0 });
      const request = (): FillRequest => ({ digest, ...(c.known ? { size } : {}), open: upstream.open });
      // The first caller starts the fill with what it knows; the others join it. With the size
      // unknown, nobody can send headers before the commit: those readers fail without a byte.
      const starter = await fills.source(request());
      assert.equal(starter.from, 'fill');
      const mirror = await startMirror(t, fills, request);
      const ranges: (ByteRange | undefined)[] = [undefined, { start: 0, end: 9 }, { start: size - 10, end: size - 1 }, { start: MiB, end: MiB + 1 }];
      const outcomes = await Promise.all([
        outcomeOf(async () => consume(await starter.reader())),
        ...ranges.map((range) => outcomeOf(async () => consume(await (await fills.source(request())).reader(range)))),
        fetchFromMirror(mirror),
        fetchFromMirror(mirror, { start: 100, end: 199 }),
      ]);
      const lengths = [size, ...ranges.map((r) => (r ? r.end - r.start + 1 : size)), size, 100];
      outcomes.forEach((outcome, i) => {
        assert.equal(outcome.ok, false, `reader ${i} must fail`);
        assert.ok(outcome.bytes < lengths[i]!, `reader ${i} got ${outcome.bytes} of ${lengths[i]} bytes: its last byte must never come`);
      });
      const firstError = outcomes.map((o) => (o.ok ? undefined : o.error)).find((e) => !(e instanceof Error && /short body|socket hang up|aborted|ECONNRESET/.test(e.message)));
      assert.ok(c.error(firstError), `the failure names the lie: ${String(firstError)}`);
      await fills.settled();
      assert.equal(await store.stat(digest), undefined, 'nothing stored');
      assert.deepEqual(await ingestLeftovers(store), [], 'no ingest left');
      assert.equal(upstream.opens.length, c.opens ?? 1);

      // The upstream is fixed: the next call fetches again and succeeds.
      served = data;
      const opensBefore = upstream.opens.length;
      const source = await fills.source(request());
      assert.equal(source.from, 'fill');
      expectBytes(await consume(await source.reader()), data, undefined, 'after the fix');
      expectBytes(await fetchFromMirror(mirror, { start: 5, end: 50 }), data, { start: 5, end: 50 }, 'after the fix, HTTP');
      assert.equal(upstream.opens.length, opensBefore + 1);
      await fills.settled();
      assert.equal(await store.stat(digest), size);
    });
  }
});

test("every reader's last byte waits for the digest check of the whole blob, not for its commit; bytes before it flow as they arrive; a caller who comes while it commits gets the stored blob", async (t) => {
  const data = randomBytes(MiB + 17);
  const digest = digestOf(data);
  // Every byte, then no end of stream until `endStream`: the file holds the whole blob, unchecked.
  let endStream!: () => void;
  const streamEnd = new Promise<void>((resolve) => (endStream = resolve));
  const open: UpstreamOpener = async () =>
    Readable.from(
      (async function* () {
        yield* trickle(data);
        await streamEnd;
      })(),
      { objectMode: false },
    );
  const { store } = await tempStore(t);
  let releaseCommit!: () => void;
  const commitGate = new Promise<void>((resolve) => (releaseCommit = resolve));
  const fills = new BlobFills(withGatedCommits(store, commitGate));
  const request = (): FillRequest => ({ digest, size: data.length, open });
  const mirror = await startMirror(t, fills, request);
  const got = [0, 0, 0];
  const ended = [false, false, false];
  const whole = outcomeOf(async () => consume(await (await fills.source(request())).reader(), (n) => (got[0] = n))).finally(() => (ended[0] = true));
  const head = outcomeOf(async () => consume(await (await fills.source(request())).reader({ start: 0, end: 9 }), (n) => (got[1] = n))).finally(() => (ended[1] = true));
  const http = fetchFromMirror(mirror, undefined, (n) => (got[2] = n)).finally(() => (ended[2] = true));

  await until(() => got[0] === data.length - 1 && got[1] === 9 && got[2] === data.length - 1, 'every byte but the last');
  await sleep(100);
  assert.deepEqual(got, [data.length - 1, 9, data.length - 1], 'the last byte is held back until the digest is checked');
  assert.deepEqual(ended, [false, false, false]);
  endStream();
  try {
    // Checked: every reader finishes while the commit (fsyncs, rename, records) still waits.
    await until(() => ended.every(Boolean), 'every reader to finish while the commit waits', 5_000);
    expectBytes(await whole, data);
    expectBytes(await head, data, { start: 0, end: 9 });
    expectBytes(await http, data);
    assert.equal(await store.stat(digest), undefined, 'not committed yet');
  } finally {
    setTimeout(releaseCommit, 100);
  }
  // Only the commit is left: a new caller waits for it, and is served from the store (a hit).
  const late = await fills.source(request());
  assert.equal(late.from, 'store');
  assert.equal(await store.stat(digest), data.length);
  expectBytes(await consume(await late.reader()), data);
});

test('a fill whose last write fails after the digest check fails its readers before their last byte, and stores nothing', async (t) => {
  const data = randomBytes(MiB + 17);
  const digest = digestOf(data);
  const upstream = streamUpstream(() => data);
  const { store } = await tempStore(t);
  // The append checks the digest, then its last write never lands (as a full disk would have it).
  const broken: FillTarget = {
    ...withGatedCommits(store, Promise.resolve()),
    ingest: async (ref) => {
      const ingest = await store.ingest(ref);
      return {
        ref: ingest.ref,
        size: () => ingest.size(),
        append: async (source, options) => {
          let verdict = false;
          await ingest.append(source, {
            ...options,
            onWritten: (size) => (size < data.length ? options.onWritten?.(size) : undefined),
            onHashed: (checked, size) => {
              verdict = true;
              options.onHashed?.(checked, size);
            },
          });
          assert.ok(verdict, 'the append checked the digest');
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        },
        commit: (expected, size) => ingest.commit(expected, size),
        abort: () => ingest.abort(),
      } satisfies Ingest;
    },
  };
  const fills = new BlobFills(broken, { attempts: 1 });
  const outcome = await outcomeOf(async () => consume(await (await fills.source({ digest, size: data.length, open: upstream.open })).reader()));
  assert.equal(outcome.ok, false);
  assert.ok(outcome.bytes < data.length, `got ${outcome.bytes} of ${data.length} bytes: the last one must never come`);
  assert.match(String((outcome as { error: unknown }).error), /ENOSPC/);
  await fills.settled();
  assert.equal(await store.stat(digest), undefined, 'nothing stored');
  assert.deepEqual(await ingestLeftovers(store), [], 'no ingest left');
});

test('a caller that goes away does not stop the fill; the cache still completes', async (t) => {
  const data = randomBytes(8 * MiB);
  const digest = digestOf(data);
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  const upstream = await new HttpUpstream(data).start(t);
  upstream.plan = () => ({ pauseAt: 2 * MiB, gate });
  const { store } = await tempStore(t);
  const fills = new BlobFills(store, { backoffMs: () => 0 });
  const request = (): FillRequest => ({ digest, size: data.length, open: upstream.opener() });
  const mirror = await startMirror(t, fills, request);

  // Every caller leaves: one reader destroyed after its first chunk, one HTTP client cut off.
  const reader = await (await fills.source(request())).reader();
  const first = await new Promise<Buffer>((resolve) => reader.once('data', resolve));
  assert.ok(first.length > 0);
  reader.destroy();
  let response: IncomingMessage | undefined;
  const http = fetchFromMirror(mirror, undefined, () => response?.destroy(), (res) => (response = res));
  assert.equal((await http).ok, false);
  assert.equal(fills.running, 1, 'the fill goes on with nobody reading');

  openGate();
  await fills.settled();
  assert.equal(await store.stat(digest), data.length, 'the blob was committed');
  assert.deepEqual(await ingestLeftovers(store), []);
  const source = await fills.source(request());
  assert.equal(source.from, 'store');
  expectBytes(await consume(await source.reader()), data);
  assert.equal(upstream.requests.length, 1);
});

test("a size nobody knew is learnt from the upstream's answer, or else once the whole blob is checked", async (t) => {
  const data = randomBytes(512 * 1024);
  const digest = digestOf(data);
  const { store } = await tempStore(t);

  const announcing = streamUpstream(() => data, { announce: true });
  const fills = new BlobFills(store);
  const source = await fills.source({ digest, open: announcing.open });
  assert.equal(await source.size(), data.length);
  expectBytes(await consume(await source.reader({ start: 10, end: 20 })), data, { start: 10, end: 20 });
  await fills.settled();

  const other = randomBytes(300_000);
  const silent = streamUpstream(() => other);
  const quiet = await fills.source({ digest: digestOf(other), open: silent.open });
  assert.equal(await quiet.size(), other.length, 'known once every byte is in and the digest checked');
  expectBytes(await consume(await quiet.reader()), other);
  await fills.settled();
  assert.equal(await store.stat(digestOf(other)), other.length);
});

test('a size announced by the upstream that contradicts the known size fails the fill at once', async (t) => {
  const data = randomBytes(100_000);
  const digest = digestOf(data);
  const { store } = await tempStore(t);
  const upstream = streamUpstream(() => data, { announce: true });
  const fills = new BlobFills(store, { backoffMs: () => 0 });
  const source = await fills.source({ digest, size: data.length + 1, open: upstream.open });
  const outcome = await outcomeOf(async () => consume(await source.reader()));
  assert.equal(outcome.ok, false);
  assert.ok(!outcome.ok && outcome.error instanceof SizeMismatchError, String(!outcome.ok && outcome.error));
  await fills.settled();
  assert.equal(upstream.opens.length, 1);
  assert.deepEqual(await ingestLeftovers(store), []);
});

test('a zero-byte blob is filled and served', async (t) => {
  const data = Buffer.alloc(0);
  const digest = digestOf(data);
  const { store } = await tempStore(t);
  const upstream = streamUpstream(() => data);
  const fills = new BlobFills(store);
  const mirror = await startMirror(t, fills, () => ({ digest, size: 0, open: upstream.open }));
  const [a, b] = await Promise.all([outcomeOf(async () => consume(await (await fills.source({ digest, size: 0, open: upstream.open })).reader())), fetchFromMirror(mirror)]);
  expectBytes(a!, data);
  expectBytes(b!, data);
  assert.equal(upstream.opens.length, 1);
  await fills.settled();
  assert.equal(await store.stat(digest), 0);
});

test('a flight that finds the blob committed meanwhile serves it from the store without an upstream call', async (t) => {
  const data = randomBytes(10_000);
  const digest = digestOf(data);
  const { store } = await tempStore(t);
  await store.put(Readable.from([data]), digest, data.length);
  let stats = 0;
  // The caller's first look misses (another writer commits right after it).
  const target: FillTarget = {
    stat: async (d: Digest) => (++stats === 1 ? undefined : store.stat(d)),
    reader: (d, r) => store.reader(d, r),
    copyTo: (d, w, r) => store.copyTo(d, w, r),
    ingest: (ref) => store.ingest(ref),
    ingestPath: (ref) => store.ingestPath(ref),
  };
  const upstream = streamUpstream(() => data);
  const events: FillEvent[] = [];
  const fills = new BlobFills(target, { onEvent: (e) => events.push(e) });
  const source = await fills.source({ digest, size: data.length, open: upstream.open });
  assert.equal(source.from, 'fill');
  expectBytes(await consume(await source.reader({ start: 1, end: 9_999 })), data, { start: 1, end: 9_999 });
  assert.equal(upstream.opens.length, 0);
  assert.deepEqual(
    events.map((e) => e.type),
    ['stored'],
  );
});

test('close() aborts running fills: their readers fail, nothing is stored, no ingest is left', async (t) => {
  const data = randomBytes(4 * MiB);
  const digest = digestOf(data);
  const upstream = await new HttpUpstream(data).start(t);
  upstream.plan = () => ({ pauseAt: MiB, gate: new Promise(() => undefined) });
  const { store } = await tempStore(t);
  const fills = new BlobFills(store);
  let got = 0;
  const outcome = outcomeOf(async () => consume(await (await fills.source({ digest, size: data.length, open: upstream.opener() })).reader(), (n) => (got = n)));
  await until(() => got > 0, 'the first bytes');
  await fills.close();
  const result = await outcome;
  assert.equal(result.ok, false);
  assert.ok(result.bytes < data.length);
  assert.equal(await store.stat(digest), undefined);
  assert.deepEqual(await ingestLeftovers(store), []);
  await assert.rejects(fills.source({ digest, open: upstream.opener() }), /shutting down/);
});

test('a Range outside the blob is refused before any byte', async (t) => {
  const data = randomBytes(1000);
  const digest = digestOf(data);
  const { store } = await tempStore(t);
  const fills = new BlobFills(store);
  const upstream = streamUpstream(() => data);
  const source = await fills.source({ digest, size: 1000, open: upstream.open });
  await assert.rejects(source.reader({ start: 10, end: 1000 }), RangeError);
  await assert.rejects(source.reader({ start: 10, end: 9 }), RangeError);
  await fills.settled();
});

test('memory stays flat: 12 readers of a 96 MiB blob, some of which stall, hold far less than the blob', async (t) => {
  // The blob is made on the fly from one random MiB, so the test itself never holds it.
  const block = randomBytes(MiB);
  const size = 96 * MiB;
  const blockAt = (index: number): Buffer => {
    const copy = Buffer.from(block);
    copy.writeUInt32BE(index, 0);
    return copy;
  };
  const hash = createHash('sha256');
  for (let i = 0; i < size / MiB; i++) hash.update(blockAt(i));
  const digest: Digest = `sha256:${hash.digest('hex')}`;
  let opens = 0;
  const open: UpstreamOpener = async (offset) => {
    opens++;
    return Readable.from(
      (async function* () {
        for (let at = offset; at < size; ) {
          const index = Math.floor(at / MiB);
          const piece = blockAt(index).subarray(at - index * MiB);
          for (let i = 0; i < piece.length; i += 64 * 1024) yield piece.subarray(i, i + 64 * 1024);
          at += piece.length;
          await nextTurn();
        }
      })(),
      { objectMode: false },
    );
  };
  const { store } = await tempStore(t);
  const fills = new BlobFills(store);
  const request = (): FillRequest => ({ digest, size, open });
  const mirror = await startMirror(t, fills, request);

  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const baseline = process.memoryUsage().arrayBuffers;
  let peak = 0;
  // A slab of small send buffers is one 33 MiB mapping whose untouched slices hold no memory:
  // only the slices lent out count as live (a slab appears when slow readers keep the 1 MiB
  // buffers lent, which a loaded machine makes happen; its mapping alone once read as 69 MiB).
  const buffers = store.sendBuffers;
  const unlentSlabBytes = (): number => buffers.slabCount * 33 * MiB - buffers.smallLent * 16 * 1024;
  const sampler = setInterval(() => {
    gc();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - unlentSlabBytes() - baseline);
  }, 100);
  t.after(() => clearInterval(sampler));

  // Two readers that stall until the fill has committed: with a tee, they would hold the download
  // back or make it buffer the blob for them. Here they only pin their own stream's buffer.
  const stalled = await Promise.all([0, 1].map(async () => (await fills.source(request())).reader()));
  const readers = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? outcomeOf(async () => consume(await (await fills.source(request())).reader())) : fetchFromMirror(mirror)));
  for (const outcome of await Promise.all(readers)) assert.deepEqual(outcome, { ok: true, bytes: size, digest });
  await fills.settled();
  assert.equal(await store.stat(digest), size, 'committed while two readers had not read a byte');
  for (const reader of stalled) assert.ok(reader.readableLength <= 512 * 1024, `a stalled reader holds ${reader.readableLength} bytes`);
  for (const reader of stalled) assert.deepEqual(await consume(reader), { ok: true, bytes: size, digest });
  clearInterval(sampler);
  assert.equal(opens, 1);
  // Measured 23-39 MiB (SendBuffers lent to 5 responses, stream and socket buffers, the ingest
  // writer); holding the blob for the stalled readers alone would take 96 MiB per copy.
  assert.ok(peak < 64 * MiB, `peak live buffers ${(peak / MiB).toFixed(1)} MiB while 12 readers streamed a ${size / MiB} MiB blob`);
});
