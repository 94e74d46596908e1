/**
 * The fill wired as the mirror will wire it: the upstream is a real skiff registry reached through
 * RegistryClient.openBlobFrom (auth, retries, its own Range resume), behind a fault-injecting proxy
 * that counts the GETs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spareBulkBatches } from '../../src/client/bulk-get.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { ByteRange } from '../../src/content/store.ts';
import { digestOf } from '../../src/digest/digest.ts';
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { BlobFills, type FillRequest } from '../../src/proxy/blob-fills.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { pushBlob } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { consume, outcomeOf, type Outcome } from './outcome.ts';

const MiB = 1024 * 1024;
const REPO = 'library/app';

async function read(fills: BlobFills, request: FillRequest, range?: ByteRange): Promise<Outcome> {
  return outcomeOf(async () => consume(await (await fills.source(request)).reader(range)));
}

describe('BlobFills over RegistryClient.openBlobFrom', () => {
  let origin: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let root: string;

  before(async () => {
    origin = await startTestRegistry();
    proxy = new FaultProxy(origin.url);
    client = new RegistryClient({ registry: await proxy.start(), retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
    root = await mkdtemp(join(tmpdir(), 'skiff-fill-client-'));
  });
  after(async () => {
    await client.close();
    await proxy.stop();
    await origin.stop();
    await rm(root, { recursive: true, force: true });
  });

  async function pushed(size: number): Promise<{ data: Buffer; descriptor: Descriptor }> {
    const data = randomBytes(size);
    const descriptor: Descriptor = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(data), size };
    await pushBlob(origin.url, REPO, { descriptor, data });
    return { data, descriptor };
  }

  const blobGets = (descriptor: Descriptor) => proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${descriptor.digest}`));

  test('10 callers, a connection cut midway: one GET plus one Range resume, the right bytes for each', async () => {
    const { data, descriptor } = await pushed(8 * MiB);
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes('/blobs/') && r.range === undefined ? { dropAfterBytes: 3 * MiB } : undefined);
    const store = await new FsBlobStore(join(root, 'a')).init();
    // The client resumes on its own: one open per fill is enough.
    const fills = new BlobFills(store, { attempts: 1 });
    const request = (): FillRequest => ({ digest: descriptor.digest, size: descriptor.size, open: async (offset, signal) => client.openBlobFrom(REPO, descriptor, offset, signal) });
    const ranges: (ByteRange | undefined)[] = [undefined, { start: 0, end: 99 }, { start: 3 * MiB - 1, end: 3 * MiB }, { start: 8 * MiB - 1, end: 8 * MiB - 1 }, undefined];
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => read(fills, request(), ranges[i % ranges.length])));
    outcomes.forEach((outcome, i) => {
      const range = ranges[i % ranges.length];
      const slice = range ? data.subarray(range.start, range.end + 1) : data;
      assert.deepEqual(outcome, { ok: true, bytes: slice.length, digest: digestOf(slice) }, `caller ${i}`);
    });
    const gets = blobGets(descriptor);
    assert.equal(gets.length, 2, JSON.stringify(gets));
    assert.equal(gets[0]!.range, undefined);
    assert.match(gets[1]!.range ?? '', /^bytes=\d+-$/);
    await fills.settled();
    assert.equal(await store.stat(descriptor.digest), descriptor.size);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('a fill hands its bulk read batches back once written: the next reads reuse them', async () => {
    // 12 MiB is more batches than the pool keeps spare: without the hand-back, the fill takes
    // every spare batch and returns none.
    const { data, descriptor } = await pushed(12 * MiB);
    proxy.decide = () => undefined;
    const store = await new FsBlobStore(join(root, 'spare')).init();
    const fills = new BlobFills(store, { attempts: 1 });
    const request: FillRequest = { digest: descriptor.digest, size: descriptor.size, open: async (offset, signal) => client.openBlobFrom(REPO, descriptor, offset, signal) };
    assert.deepEqual(await read(fills, request), { ok: true, bytes: data.length, digest: descriptor.digest });
    await fills.settled();
    assert.ok(spareBulkBatches() > 0, 'written chunks were handed back for reuse');
    assert.equal(await store.stat(descriptor.digest), descriptor.size);
  });

  test('corrupted bytes from the upstream: every caller fails before its last byte, nothing stored; the fixed upstream then fills', async () => {
    const { data, descriptor } = await pushed(2 * MiB);
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes('/blobs/') ? { corruptAt: MiB } : undefined);
    const store = await new FsBlobStore(join(root, 'b')).init();
    const fills = new BlobFills(store, { attempts: 1 });
    const request = (): FillRequest => ({ digest: descriptor.digest, size: descriptor.size, open: async (offset, signal) => client.openBlobFrom(REPO, descriptor, offset, signal) });
    const outcomes = await Promise.all([read(fills, request()), read(fills, request(), { start: 0, end: 9 }), read(fills, request(), { start: 2 * MiB - 1, end: 2 * MiB - 1 })]);
    const lengths = [2 * MiB, 10, 1];
    outcomes.forEach((outcome, i) => {
      assert.equal(outcome.ok, false, `caller ${i}`);
      assert.ok(outcome.bytes < lengths[i]!, `caller ${i} got ${outcome.bytes} of ${lengths[i]}`);
    });
    await fills.settled();
    assert.equal(await store.stat(descriptor.digest), undefined);
    assert.deepEqual(await readdir(store.ingestDir), []);
    assert.equal(blobGets(descriptor).length, 1);

    proxy.decide = () => undefined;
    assert.deepEqual(await read(fills, request()), { ok: true, bytes: data.length, digest: descriptor.digest });
    assert.equal(blobGets(descriptor).length, 2);
    await fills.settled();
    assert.equal(await store.stat(descriptor.digest), descriptor.size);
  });
});
