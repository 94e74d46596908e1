/**
 * The mirror's manifests across replicas (docs/scale-out.md "Mirror across replicas"): two Mirror
 * instances on one registry stand for two replicas on one PostgreSQL, and a KeyedMutex for their
 * Redis lease. A manifest is fetched, and a tag past its TTL revalidated, once for both; a lease
 * that cannot be taken (Redis away) never stops the mirror. The Redis forms are tested on a real
 * Redis in test/server/coordination/ and test/scale-out/mirror.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import type { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { KeyedLock } from '../../src/content/keyed-lock.ts';
import { KeyedMutex } from '../../src/content/keyed-mutex.ts';
import { Upstreams } from '../../src/proxy/upstreams.ts';
import { Mirror } from '../../src/server/mirror.ts';
import { openRegistry } from '../../src/server/open-registry.ts';
import type { Registry } from '../../src/server/registry.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { upstream } from '../../src/testing/mirror.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const HOST = 'upstream.test';
const TTL = 60_000;

describe('mirror manifests across replicas', () => {
  let origin: TestRegistry;
  let proxy: FaultProxy;
  let upstreamUrl: string;
  let dataDir: string;
  let registry: Registry;
  let image: TestImage;
  const logs: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
        callback();
      },
    }),
  );
  let clock = Date.now();
  const mirrors: Mirror[] = [];

  /** A replica: its own Mirror (its own SharedCalls and upstream connections) on the shared registry. */
  function replica(manifestLock: KeyedLock): Mirror {
    const mirror = new Mirror(registry, registry.blobs as FsBlobStore, new Upstreams([upstream({ host: HOST, url: upstreamUrl, default: true, tagTTL: TTL })]), { log, manifestLock, now: () => clock });
    mirrors.push(mirror);
    return mirror;
  }

  before(async () => {
    origin = await startTestRegistry();
    proxy = new FaultProxy(origin.url);
    upstreamUrl = `http://${await proxy.start()}`;
    image = await makeImage({ seed: 'mirror-replicas', layers: 1 });
    await pushImage(origin.url, 'lib/app', image, 'v1');
    dataDir = await mkdtemp(join(tmpdir(), 'skiff-mirror-replicas-'));
    registry = await openRegistry(dataDir, { deleteEnabled: false, readOnly: false });
  });
  after(async () => {
    for (const mirror of mirrors) await mirror.close();
    await registry?.close();
    await proxy?.stop();
    await origin?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const manifestRequests = (method: string) => proxy.requests.filter((r) => r.method === method && r.url.includes('/manifests/'));

  test('a cold tag asked on both replicas at once: one upstream GET; past the TTL, one HEAD', async () => {
    const lease = new KeyedMutex(); // the replicas' shared lease
    const [a, b] = [replica(lease), replica(lease)];
    const route = a.route('lib/app', undefined)!;
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).manifest(route, 'v1')));
    for (const answer of answers) assert.equal(answer.record.digest, image.manifest.descriptor.digest);
    assert.equal(manifestRequests('GET').length, 1, JSON.stringify(proxy.requests));
    // By digest, cold on neither replica now: no request.
    await Promise.all([a.manifest(route, image.manifest.descriptor.digest), b.manifest(route, image.manifest.descriptor.digest)]);
    assert.equal(manifestRequests('GET').length, 1);

    clock += TTL + 1;
    const revalidated = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).manifest(route, 'v1')));
    for (const answer of revalidated) assert.deepEqual([answer.record.digest, answer.stale], [image.manifest.descriptor.digest, undefined]);
    assert.equal(manifestRequests('HEAD').length, 1, 'the replica that waited found the tag checked');
    assert.equal(manifestRequests('GET').length, 1);
  });

  test("a lease that cannot be taken (Redis away): the replica asks the upstream on its own, and says so", async () => {
    const away: KeyedLock = {
      run: () => Promise.reject(Object.assign(new Error('Connection is closed.'), { name: 'MaxRetriesPerRequestError' })),
      tryRun: () => Promise.reject(new Error('Connection is closed.')),
    };
    const lonely = replica(away);
    const route = lonely.route('lib/app', undefined)!;
    clock += TTL + 1;
    const heads = manifestRequests('HEAD').length;
    const answer = await lonely.manifest(route, 'v1');
    assert.deepEqual([answer.record.digest, answer.stale], [image.manifest.descriptor.digest, undefined]);
    assert.equal(manifestRequests('HEAD').length, heads + 1, 'revalidated without the lease');
    assert.ok(logs.some((line) => line.msg === "mirror: cannot take the replicas' lease (Redis); fetching without it"));

    // And with the upstream gone too, the cached tag is still served, stale.
    clock += TTL + 1;
    proxy.decide = () => ({ status: 503 });
    const stale = await lonely.manifest(route, 'v1');
    proxy.decide = () => undefined;
    assert.deepEqual([stale.record.digest, stale.stale], [image.manifest.descriptor.digest, true]);
  });
});
