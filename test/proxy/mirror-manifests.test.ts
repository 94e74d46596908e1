/**
 * Mirror mode, manifests, tags and catalog (issue 11 §Behaviour): by digest from the cache or
 * fetched and verified once; by tag within the TTL from the cache, after it revalidated with a HEAD
 * (a GET only when the tag moved); the stale copy with a Warning when the upstream answers 503 or
 * 429 or is down; tags list and catalog passed through with the cache as the fallback. The
 * upstream is a real skiff registry behind counting, fault-injecting proxies.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultProxy, type ProxiedRequest } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { pushImage, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const STALE = '110 - "Response is Stale"';

describe('mirror manifests, tags and catalog', () => {
  let origin: TestRegistry;
  let proxy: FaultProxy;
  /** A second way to the same origin, stopped by the test of a dead upstream. */
  let doomed: FaultProxy;
  let mirror: TestMirror;
  let base: string;
  let images: TestImage[];

  before(async () => {
    origin = await startTestRegistry();
    proxy = new FaultProxy(origin.url);
    doomed = new FaultProxy(origin.url);
    const url = `http://${await proxy.start()}`;
    const doomedUrl = `http://${await doomed.start()}`;
    mirror = await startTestMirror({
      upstreams: [
        upstream({ host: 'hour.test', url, tagTTL: 3_600_000 }),
        upstream({ host: 'zero.test', url, tagTTL: 0 }),
        upstream({ host: 'short.test', url, tagTTL: 300 }),
        upstream({ host: 'down.test', url: doomedUrl, tagTTL: 0 }),
      ],
    });
    base = mirror.url;
    images = await Promise.all([1, 2, 3].map((i) => makeImage({ seed: `mirror-manifests-${i}`, layers: 1 })));
  });
  after(async () => {
    await mirror?.stop();
    await proxy?.stop();
    await doomed?.stop();
    await origin?.stop();
  });
  beforeEach(() => {
    proxy.decide = () => undefined;
  });

  /** The requests the upstream saw for `repo` through upstream `host` (told with ?ns=) since `from`. */
  const seen = (host: string, repo: string, from = 0): string[] =>
    proxy.requests
      .slice(from)
      .filter((r: ProxiedRequest) => r.url.includes(`/v2/${repo}/`) && r.url.includes(`ns=${host}`))
      .map((r) => `${r.method} ${r.url.split('?')[0]!.replace(`/v2/${repo}/`, '')}`);

  async function manifest(path: string, method = 'GET'): Promise<{ status: number; digest: string | null; warning: string | null; type: string | null; body: Buffer }> {
    const res = await fetch(`${base}${path}`, { method });
    return { status: res.status, digest: res.headers.get('docker-content-digest'), warning: res.headers.get('warning'), type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
  }

  test('by digest: fetched once, verified, stored with its media type, then served from the cache', async () => {
    const image = images[0]!;
    await pushImage(origin.url, 'lib/bydigest', image, 'v1');
    const digest = image.manifest.descriptor.digest;
    const cold = await manifest(`/v2/hour.test/lib/bydigest/manifests/${digest}`);
    assert.deepEqual([cold.status, cold.digest, cold.type], [200, digest, image.manifest.descriptor.mediaType]);
    assert.deepEqual(cold.body, image.manifest.data);
    const mark = proxy.requests.length;
    const warm = await manifest(`/v2/hour.test/lib/bydigest/manifests/${digest}`);
    assert.deepEqual([warm.status, warm.digest], [200, digest]);
    assert.equal(proxy.requests.length, mark, 'no upstream request for a cached digest');
    assert.deepEqual(seen('hour.test', 'lib/bydigest'), [`GET manifests/${digest}`]);
    // Stored under the canonical name, its children not required (they are fetched when asked).
    const record = await mirror.registry.metadata.getManifest('hour.test/lib/bydigest', digest);
    assert.equal(record?.mediaType, image.manifest.descriptor.mediaType);
    assert.equal(await mirror.registry.blobs.stat(image.layers[0]!.descriptor.digest), undefined);
  });

  test('by tag within the TTL: the cached copy, even after the tag moved upstream; the fetch time is recorded', async () => {
    await pushImage(origin.url, 'lib/hour', images[0]!, 'v1');
    const before = Date.now();
    const cold = await manifest('/v2/hour.test/lib/hour/manifests/v1');
    assert.deepEqual([cold.status, cold.digest], [200, images[0]!.manifest.descriptor.digest]);
    const tag = await mirror.registry.metadata.getTag('hour.test/lib/hour', 'v1');
    assert.ok(tag?.checkedAt !== undefined && tag.checkedAt >= before && tag.checkedAt <= Date.now(), JSON.stringify(tag));
    await pushImage(origin.url, 'lib/hour', images[1]!, 'v1');
    const mark = proxy.requests.length;
    for (let i = 0; i < 3; i++) assert.equal((await manifest('/v2/hour.test/lib/hour/manifests/v1')).digest, images[0]!.manifest.descriptor.digest);
    assert.equal(proxy.requests.length, mark);
    assert.deepEqual(seen('hour.test', 'lib/hour'), ['GET manifests/v1']);
  });

  test('after the TTL: HEADs, not GETs, while the tag stays; the moved tag is picked up with one GET by digest', async () => {
    await pushImage(origin.url, 'lib/zero', images[0]!, 'v1');
    const from = proxy.requests.length;
    for (let i = 0; i < 4; i++) assert.equal((await manifest('/v2/zero.test/lib/zero/manifests/v1')).digest, images[0]!.manifest.descriptor.digest);
    assert.deepEqual(seen('zero.test', 'lib/zero', from), ['GET manifests/v1', 'HEAD manifests/v1', 'HEAD manifests/v1', 'HEAD manifests/v1']);
    await pushImage(origin.url, 'lib/zero', images[1]!, 'v1');
    const mark = proxy.requests.length;
    const moved = await manifest('/v2/zero.test/lib/zero/manifests/v1');
    assert.deepEqual([moved.status, moved.digest], [200, images[1]!.manifest.descriptor.digest]);
    assert.deepEqual(moved.body, images[1]!.manifest.data);
    assert.deepEqual(seen('zero.test', 'lib/zero', mark), ['HEAD manifests/v1', `GET manifests/${images[1]!.manifest.descriptor.digest}`]);
    // Moved back to a manifest the cache holds: no GET at all.
    await pushManifest(origin.url, 'lib/zero', 'v1', images[0]!.manifest);
    const back = proxy.requests.length;
    assert.equal((await manifest('/v2/zero.test/lib/zero/manifests/v1')).digest, images[0]!.manifest.descriptor.digest);
    assert.deepEqual(seen('zero.test', 'lib/zero', back), ['HEAD manifests/v1']);
  });

  test('a real TTL: nothing asked within it, one HEAD after it', async () => {
    await pushImage(origin.url, 'lib/short', images[2]!, 'v1');
    const from = proxy.requests.length;
    await manifest('/v2/short.test/lib/short/manifests/v1');
    await manifest('/v2/short.test/lib/short/manifests/v1');
    assert.deepEqual(seen('short.test', 'lib/short', from), ['GET manifests/v1']);
    await sleep(350);
    assert.equal((await manifest('/v2/short.test/lib/short/manifests/v1')).digest, images[2]!.manifest.descriptor.digest);
    assert.deepEqual(seen('short.test', 'lib/short', from), ['GET manifests/v1', 'HEAD manifests/v1']);
  });

  test('HEAD of an uncached manifest fetches it with GET (a chained pull-through upstream only fetches on GET)', async () => {
    await pushImage(origin.url, 'lib/headfirst', images[1]!, 'v2');
    const from = proxy.requests.length;
    const head = await manifest('/v2/hour.test/lib/headfirst/manifests/v2', 'HEAD');
    assert.deepEqual([head.status, head.digest, head.body.length], [200, images[1]!.manifest.descriptor.digest, 0]);
    assert.deepEqual(seen('hour.test', 'lib/headfirst', from), ['GET manifests/v2']);
  });

  for (const [what, fault] of [
    ['503', { status: 503 }],
    ['429 with Retry-After', { status: 429, retryAfter: '1' }],
  ] as const) {
    test(`the upstream answers ${what}: the stale copy with a Warning and a log line; an uncached tag fails`, async () => {
      await pushImage(origin.url, 'lib/flaky', images[0]!, 'v1');
      assert.equal((await manifest('/v2/zero.test/lib/flaky/manifests/v1')).status, 200);
      proxy.decide = () => fault;
      const stale = await manifest('/v2/zero.test/lib/flaky/manifests/v1');
      assert.deepEqual([stale.status, stale.digest, stale.warning], [200, images[0]!.manifest.descriptor.digest, STALE]);
      assert.deepEqual(stale.body, images[0]!.manifest.data);
      const line = mirror.logs.findLast((l) => l.msg === 'mirror: upstream unavailable, serving the cached (stale) manifest');
      assert.equal(line?.repository, 'zero.test/lib/flaky');
      assert.equal(line?.level, 40);
      const uncached = await fetch(`${base}/v2/zero.test/lib/flaky/manifests/never`);
      assert.equal(uncached.status, fault.status === 429 ? 429 : 503);
      const body = (await uncached.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]!.code, fault.status === 429 ? 'TOOMANYREQUESTS' : 'UNAVAILABLE');
      assert.match(body.errors[0]!.message, /cannot get manifest lib\/flaky:never from upstream zero\.test/);
      if (fault.status === 429) assert.equal(uncached.headers.get('retry-after'), '1');
      // Back to health: fresh again, no Warning.
      proxy.decide = () => undefined;
      const fresh = await manifest('/v2/zero.test/lib/flaky/manifests/v1');
      assert.deepEqual([fresh.status, fresh.warning], [200, null]);
    });
  }

  test('a manifest the upstream corrupts is refused and not cached; the fixed upstream then serves it', async () => {
    await pushImage(origin.url, 'lib/corrupt', images[2]!, 'v1');
    const digest = images[2]!.manifest.descriptor.digest;
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes('/manifests/') ? { corruptAt: 5 } : undefined);
    const bad = await fetch(`${base}/v2/hour.test/lib/corrupt/manifests/${digest}`);
    assert.equal(bad.status, 502);
    assert.match(((await bad.json()) as { errors: { message: string }[] }).errors[0]!.message, /sent bad content; nothing was cached/);
    assert.equal(await mirror.registry.metadata.getManifest('hour.test/lib/corrupt', digest), undefined);
    proxy.decide = () => undefined;
    assert.equal((await manifest(`/v2/hour.test/lib/corrupt/manifests/${digest}`)).status, 200);
  });

  test('a tag removed upstream is removed from the cache after the TTL', async () => {
    await pushImage(origin.url, 'lib/gone', images[0]!, 'v1');
    assert.equal((await manifest('/v2/zero.test/lib/gone/manifests/v1')).status, 200);
    assert.equal((await fetch(`${origin.url}/v2/lib/gone/manifests/v1`, { method: 'DELETE' })).status, 202);
    assert.equal((await manifest('/v2/zero.test/lib/gone/manifests/v1')).status, 404);
    assert.equal(await mirror.registry.metadata.resolveTag('zero.test/lib/gone', 'v1'), undefined);
  });

  test('tags list: passed through (with paging); its last answer and the cached tags, with a Warning, when the upstream fails', async () => {
    for (const tag of ['c', 'a', 'b']) await pushImage(origin.url, 'lib/tags', images[0]!, tag);
    const all = await fetch(`${base}/v2/zero.test/lib/tags/tags/list`);
    assert.deepEqual(await all.json(), { name: 'zero.test/lib/tags', tags: ['a', 'b', 'c'] });
    const page = await fetch(`${base}/v2/zero.test/lib/tags/tags/list?n=2`);
    assert.deepEqual(await page.json(), { name: 'zero.test/lib/tags', tags: ['a', 'b'] });
    assert.equal(page.headers.get('link'), '</v2/zero.test/lib/tags/tags/list?n=2&last=b>; rel="next"');
    const next = await fetch(`${base}/v2/zero.test/lib/tags/tags/list?n=2&last=b`);
    assert.deepEqual(await next.json(), { name: 'zero.test/lib/tags', tags: ['c'] });
    assert.ok(seen('zero.test', 'lib/tags').every((r) => r === 'GET tags/list'));
    // The upstream's last answer was a, b, c; d is pushed upstream after it, and pulled through.
    await pushImage(origin.url, 'lib/tags', images[0]!, 'd');
    assert.equal((await manifest('/v2/zero.test/lib/tags/manifests/d')).status, 200);
    proxy.decide = () => ({ status: 503 });
    const stale = await fetch(`${base}/v2/zero.test/lib/tags/tags/list`);
    assert.deepEqual([stale.status, stale.headers.get('warning')], [200, STALE]);
    assert.deepEqual(await stale.json(), { name: 'zero.test/lib/tags', tags: ['a', 'b', 'c', 'd'] });
    const stalePage = await fetch(`${base}/v2/zero.test/lib/tags/tags/list?n=3`);
    assert.deepEqual(await stalePage.json(), { name: 'zero.test/lib/tags', tags: ['a', 'b', 'c'] });
    const unknown = await fetch(`${base}/v2/zero.test/lib/never-pulled/tags/list`);
    assert.equal(unknown.status, 503);
    proxy.decide = () => undefined;
    const missing = await fetch(`${base}/v2/zero.test/lib/no-such-repo/tags/list`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code, 'NAME_UNKNOWN');
  });

  test('catalog: local repositories plus each upstream\'s catalog under its prefix; its last answer, with a Warning, when upstreams fail', async () => {
    await pushImage(base, 'local/app', images[0]!, 'v1'); // no default upstream here: a local repository
    const body = (await (await fetch(`${base}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(body.repositories.includes('local/app'));
    assert.ok(body.repositories.includes('zero.test/lib/tags'), 'from the cache');
    assert.ok(body.repositories.includes('hour.test/lib/bydigest'));
    assert.ok(body.repositories.includes('zero.test/lib/headfirst'), 'from the upstream catalog: never pulled through zero.test');
    assert.deepEqual(body.repositories, [...body.repositories].sort());
    const paged = await fetch(`${base}/v2/_catalog?n=1`);
    assert.deepEqual(await paged.json(), { repositories: [body.repositories[0]] });
    assert.match(paged.headers.get('link') ?? '', /rel="next"/);
    proxy.decide = () => ({ status: 503 });
    const stale = await fetch(`${base}/v2/_catalog`);
    assert.equal(stale.headers.get('warning'), STALE);
    const cached = ((await stale.json()) as { repositories: string[] }).repositories;
    assert.ok(cached.includes('zero.test/lib/tags') && cached.includes('local/app'));
    assert.ok(cached.includes('zero.test/lib/headfirst'), 'from the upstream\'s last catalog');
  });

  test('--read-only: the cache is served as it is, nothing is fetched or revalidated', async () => {
    const readOnly = await startTestMirror({ dataDir: mirror.dataDir, readOnly: true, upstreams: [upstream({ host: 'zero.test', url: 'http://127.0.0.1:9', tagTTL: 0 })] });
    try {
      const from = proxy.requests.length;
      const cached = await fetch(`${readOnly.url}/v2/zero.test/lib/zero/manifests/v1`);
      assert.deepEqual([cached.status, cached.headers.get('warning')], [200, null]);
      await cached.arrayBuffer();
      const uncached = await fetch(`${readOnly.url}/v2/zero.test/lib/zero/manifests/never`);
      assert.equal(uncached.status, 404);
      assert.match(((await uncached.json()) as { errors: { message: string }[] }).errors[0]!.message, /is not cached, and this registry is read-only/);
      const blob = await fetch(`${readOnly.url}/v2/zero.test/lib/zero/blobs/${images[2]!.layers[0]!.descriptor.digest}`);
      assert.equal(blob.status, 404);
      assert.equal(proxy.requests.length, from);
    } finally {
      await readOnly.stop();
    }
  });

  // Last: it stops the proxy behind down.test for good.
  test('the upstream is down: cached tags serve stale with a Warning, cached digests as usual, uncached fail clearly', async () => {
    await pushImage(origin.url, 'lib/down', images[1]!, 'v1');
    assert.equal((await manifest('/v2/down.test/lib/down/manifests/v1')).status, 200);
    await doomed.stop();
    const stale = await manifest('/v2/down.test/lib/down/manifests/v1');
    assert.deepEqual([stale.status, stale.digest, stale.warning], [200, images[1]!.manifest.descriptor.digest, STALE]);
    const byDigest = await manifest(`/v2/down.test/lib/down/manifests/${images[1]!.manifest.descriptor.digest}`);
    assert.deepEqual([byDigest.status, byDigest.warning], [200, null]);
    const uncached = await fetch(`${base}/v2/down.test/lib/down/manifests/v2`);
    assert.equal(uncached.status, 503);
    assert.match(((await uncached.json()) as { errors: { message: string }[] }).errors[0]!.message, /from upstream down\.test \(http:\/\/127\.0\.0\.1:\d+\), which is unavailable: .*connection refused/);
    assert.equal((await fetch(`${base}/v2/`)).status, 200);
  });
});
