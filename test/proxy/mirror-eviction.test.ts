/**
 * Mirror mode, eviction (issue 11 §Behaviour "Eviction", and §What it must show: "LRU eviction
 * under a small max-size works. The cache directory never holds a partial file after kill -9").
 * With a small cacheMaxSize, pulling more images than fit evicts the least recently used one and
 * keeps those hit since; a blob shared with a kept image stays; local content stays and never
 * counts; an evicted image pulls again from upstream; the size gauge matches the files; a blob a
 * client is reading is not deleted under it; deletes a crash cut short are finished at the next
 * start. Last, a `skiff serve --proxy` process killed with -9 mid-fill leaves no partial file
 * under blobs/, and its next start removes the ingest. The upstream is a real skiff registry
 * behind a counting, fault-injecting proxy.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { digestOf, type Digest } from '../../src/digest/digest.ts';
import { MediaTypes } from '../../src/oci/media-types.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { seededBytes, type Blob } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { freePort, stopChild, waitForHttp } from '../../src/testing/peers.ts';
import { pushBlob, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));
const MiB = 1024 * 1024;
const HOST = 'upstream.test';
const EVICTION = 'mirror: cache eviction';
const STILL_OVER = /^mirror: cache eviction left the cache over its maximum size/;

/** An image as a client pulls it: a manifest, then its blobs. */
interface Image {
  manifest: Blob;
  blobs: Blob[];
}

function layer(seed: string, size: number): Blob {
  const data = seededBytes(seed, size);
  return { descriptor: { mediaType: MediaTypes.ociLayerGzip, digest: digestOf(data), size }, data };
}

function image(seed: string, layers: Blob[]): Image {
  const configData = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed }));
  const config: Blob = { descriptor: { mediaType: MediaTypes.ociConfig, digest: digestOf(configData), size: configData.length }, data: configData };
  const data = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: layers.map((l) => l.descriptor) }));
  return { manifest: { descriptor: { mediaType: MediaTypes.ociManifest, digest: digestOf(data), size: data.length }, data }, blobs: [config, ...layers] };
}

/** Every distinct byte of an image: its manifest and blobs, each once. */
const bytesOf = (...images: Image[]): number => {
  const sizes = new Map<string, number>();
  for (const { manifest, blobs } of images) for (const b of [manifest, ...blobs]) sizes.set(b.descriptor.digest, b.descriptor.size);
  return [...sizes.values()].reduce((a, b) => a + b, 0);
};

describe('mirror cache eviction', { timeout: 180_000 }, () => {
  let origin: TestRegistry;
  let proxy: FaultProxy;
  let upstreamUrl: string;
  const mirrors: TestMirror[] = [];

  before(async () => {
    origin = await startTestRegistry();
    proxy = new FaultProxy(origin.url);
    upstreamUrl = `http://${await proxy.start()}`;
  });
  after(async () => {
    for (const mirror of mirrors) await mirror.stop().catch(() => undefined);
    await proxy?.stop();
    await origin?.stop();
  });

  /** A mirror of the origin (the default upstream; team/** stays local) with its grace period off, so it evicts what a test just pulled. */
  async function startMirror(settings: { cacheMaxSize?: number; dataDir?: string } = {}): Promise<TestMirror> {
    const mirror = await startTestMirror({ upstreams: [upstream({ host: HOST, url: upstreamUrl, default: true, deny: ['team/**'] })], ...settings });
    mirror.registry.mirror!.cache.graceMs = 0;
    mirrors.push(mirror);
    return mirror;
  }
  const cacheOf = (mirror: TestMirror) => mirror.registry.mirror!.cache;

  async function publish(repository: string, img: Image, tag = 'v1'): Promise<void> {
    for (const b of img.blobs) await pushBlob(origin.url, repository, b);
    await pushManifest(origin.url, repository, tag, img.manifest);
  }

  /** Pulls by tag through `base` as a client does, checking every digest; then lets the cache settle. */
  async function pull(mirror: TestMirror, repository: string, img: Image, tag = 'v1'): Promise<void> {
    const res = await fetch(`${mirror.url}/v2/${repository}/manifests/${tag}`, { headers: { Accept: MediaTypes.ociManifest } });
    assert.equal(res.status, 200, `${repository}:${tag}`);
    assert.equal(digestOf(Buffer.from(await res.arrayBuffer())), img.manifest.descriptor.digest);
    for (const b of img.blobs) {
      const got = await fetch(`${mirror.url}/v2/${repository}/blobs/${b.descriptor.digest}`);
      assert.equal(got.status, 200, `${repository}@${b.descriptor.digest}`);
      assert.equal(digestOf(Buffer.from(await got.arrayBuffer())), b.descriptor.digest);
    }
    await mirror.registry.mirror!.settled();
    await sleep(5); // the LRU's clock counts milliseconds: keep pulls apart
  }

  const upstreamGets = (digest: Digest) => proxy.count((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`));
  const stored = async (mirror: TestMirror, b: Blob) => (await mirror.registry.blobs.stat(b.descriptor.digest)) !== undefined;
  const cached = async (mirror: TestMirror, repository: string, img: Image) => (await mirror.registry.metadata.getManifest(`${HOST}/${repository}`, img.manifest.descriptor.digest)) !== undefined;
  const evictionLines = (mirror: TestMirror) => mirror.logs.filter((line) => line.msg === EVICTION || STILL_OVER.test(String(line.msg)));

  async function metric(mirror: TestMirror, name: string): Promise<number> {
    const text = await (await fetch(`${mirror.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in /metrics`);
    return Number(line.split(' ')[1]);
  }

  /** The bytes under blobs/ of these digests, read from the files themselves. */
  async function onDisk(mirror: TestMirror, digests: Digest[]): Promise<number> {
    let total = 0;
    for (const digest of digests) total += (await stat((mirror.registry.blobs as FsBlobStore).blobPath(digest))).size;
    return total;
  }
  const digestsOf = (...images: Image[]): Digest[] => [...new Set(images.flatMap((img) => [img.manifest, ...img.blobs].map((b) => b.descriptor.digest)))];

  test('pulling more than fits evicts the least recently used image, keeps the one hit since, and the evicted one pulls again from upstream', async () => {
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((seed) => image(`lru-${seed}`, [layer(`lru-${seed}`, MiB)])) as [Image, Image, Image, Image];
    for (const [name, img] of Object.entries({ a, b, c, d })) await publish(`lru/${name}`, img);
    const size = Math.max(...[a, b, c, d].map((img) => bytesOf(img)));
    const mirror = await startMirror({ cacheMaxSize: Math.floor(3.5 * size) });

    await pull(mirror, 'lru/a', a);
    await pull(mirror, 'lru/b', b);
    await pull(mirror, 'lru/c', c);
    assert.equal(cacheOf(mirror).size, bytesOf(a, b, c));
    assert.deepEqual(evictionLines(mirror), [], 'three fit');

    const mark = proxy.requests.length;
    await pull(mirror, 'lru/a', a); // a hit: a is now more recent than b and c
    assert.equal(proxy.requests.length, mark, 'served from the cache');
    await pull(mirror, 'lru/d', d); // past the maximum: one pass, when d's layer commits

    assert.equal(await cached(mirror, 'lru/b', b), false, 'b, the least recently used, is gone');
    for (const blob of b.blobs) assert.equal(await stored(mirror, blob), false, `b's ${blob.descriptor.mediaType} is deleted`);
    assert.equal(await stored(mirror, b.manifest), false);
    for (const [name, img] of Object.entries({ a, c, d })) {
      assert.equal(await cached(mirror, `lru/${name}`, img), true, `${name} stays`);
      for (const blob of img.blobs) assert.equal(await stored(mirror, blob), true);
    }
    // The gauge is the bytes of the files the cache holds, each once.
    const expected = bytesOf(a, c, d);
    assert.equal(await onDisk(mirror, digestsOf(a, c, d)), expected);
    assert.equal(await mirror.registry.metadata.cacheSize(), expected);
    assert.equal(await metric(mirror, 'skiff_mirror_cache_size_bytes'), expected);
    assert.equal(await metric(mirror, 'skiff_mirror_cache_evictions_total'), 3, 'the manifest, config and layer of b');
    assert.equal(await metric(mirror, 'skiff_mirror_cache_evicted_bytes_total'), bytesOf(b));
    const lines = evictionLines(mirror);
    assert.equal(lines.length, 1, 'one log line per pass');
    assert.deepEqual(
      { level: lines[0]!.level, manifests: lines[0]!.manifests, blobs: lines[0]!.blobs, bytes: lines[0]!.bytes, sizeAfter: lines[0]!.sizeAfter, maxBytes: lines[0]!.maxBytes },
      { level: 30, manifests: 1, blobs: 3, bytes: bytesOf(b), sizeAfter: expected, maxBytes: Math.floor(3.5 * size) },
    );

    // b pulls again, from upstream; now c is the least recently used, and a still stays.
    const layerGets = upstreamGets(b.blobs[1]!.descriptor.digest);
    await pull(mirror, 'lru/b', b);
    assert.equal(upstreamGets(b.blobs[1]!.descriptor.digest), layerGets + 1);
    assert.equal(await cached(mirror, 'lru/c', c), false, 'c goes next');
    assert.equal(await cached(mirror, 'lru/a', a), true, 'a was hit after c');
    assert.equal(await metric(mirror, 'skiff_mirror_cache_size_bytes'), bytesOf(a, b, d));
  });

  test('a blob shared with a kept image stays: counted once, and the kept image pulls with no upstream request', async () => {
    const shared = layer('shared', MiB);
    const e = image('shared-e', [shared, layer('shared-e', MiB)]);
    const f = image('shared-f', [shared, layer('shared-f', MiB)]);
    const g = image('shared-g', [layer('shared-g', MiB)]);
    await publish('shared/e', e);
    await publish('shared/f', f);
    await publish('shared/g', g);
    const mirror = await startMirror({ cacheMaxSize: Math.floor(bytesOf(e, f) + 0.5 * MiB) });

    await pull(mirror, 'shared/e', e);
    await pull(mirror, 'shared/f', f);
    assert.equal(cacheOf(mirror).size, bytesOf(e, f), 'the shared layer counts once');
    await pull(mirror, 'shared/g', g);

    assert.equal(await cached(mirror, 'shared/e', e), false, 'e, the least recently used, is gone');
    assert.equal(await stored(mirror, e.blobs[2]!), false, "e's own layer is deleted");
    assert.equal(await stored(mirror, shared), true, 'the layer f still needs stays');
    assert.equal(await metric(mirror, 'skiff_mirror_cache_size_bytes'), bytesOf(f, g));
    const mark = proxy.requests.length;
    await pull(mirror, 'shared/f', f);
    assert.equal(proxy.requests.length, mark, 'f is whole in the cache');
  });

  test('local content stays and never counts: pushed images, and a cached layer a local image uses', async () => {
    const h = image('local-h', [layer('local-h', MiB)]);
    const i = image('local-i', [layer('local-i', MiB)]);
    const j = image('local-j', [layer('local-j', MiB)]);
    for (const [name, img] of Object.entries({ h, i, j })) await publish(`local/${name}`, img);
    const mirror = await startMirror({ cacheMaxSize: Math.floor(1.5 * bytesOf(h)) });
    await pull(mirror, 'local/h', h);

    // A local image, pushed to the mirror itself: its own layer, and the layer of cached h.
    const mine = image('local-mine', [layer('local-mine', MiB), h.blobs[1]!]);
    for (const b of mine.blobs) await pushBlob(mirror.url, 'team/app', b);
    await pushManifest(mirror.url, 'team/app', 'v1', mine.manifest);
    assert.equal(await mirror.registry.metadata.cacheSize(), bytesOf(h) - h.blobs[1]!.descriptor.size, "h's layer is local now: it leaves the cache's count");

    await pull(mirror, 'local/i', i);
    await pull(mirror, 'local/j', j);
    assert.equal(await cached(mirror, 'local/h', h), false, 'h was evicted');
    assert.equal(await cached(mirror, 'local/i', i), false, 'and i after it');
    assert.equal(await stored(mirror, h.blobs[1]!), true, "h's layer stays: a local image uses it");
    for (const b of [mine.manifest, ...mine.blobs]) assert.equal(await stored(mirror, b), true, 'every local blob stays');
    const res = await fetch(`${mirror.url}/v2/team/app/manifests/v1`, { headers: { Accept: MediaTypes.ociManifest } });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    assert.equal(await metric(mirror, 'skiff_mirror_cache_size_bytes'), bytesOf(j), 'the local bytes never count');
    // h pulls again: its manifest from upstream, its layer from the local copy.
    const layerGets = upstreamGets(h.blobs[1]!.descriptor.digest);
    await pull(mirror, 'local/h', h);
    assert.equal(upstreamGets(h.blobs[1]!.descriptor.digest), layerGets);
  });

  /** A slow client of a blob: reads its first bytes, then stops reading until `finish()`. */
  async function pausedReader(url: string): Promise<{ finish(): Promise<{ bytes: number; digest: string }> }> {
    return new Promise((resolve, reject) => {
      const req = request(url, { agent: false }, (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          if (bytes !== chunk.length) return;
          res.pause();
          resolve({
            async finish() {
              const ended = once(res, 'end');
              res.resume();
              await ended;
              return { bytes, digest: `sha256:${hash.digest('hex')}` };
            },
          });
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('a blob a client is reading is not deleted under it; the next pass takes it once the client is done', async () => {
    const big = image('reading-big', [layer('reading-big', 32 * MiB)]);
    // Too big for the socket buffers: its paused client keeps its response, and its pin, open.
    const second = image('reading-second', [layer('reading-second', 16 * MiB)]);
    await publish('reading/big', big);
    await publish('reading/second', second);
    const mirror = await startMirror({ cacheMaxSize: Math.floor(bytesOf(big) + 0.5 * MiB) });
    await pull(mirror, 'reading/big', big);
    const [bigLayer, secondLayer] = [big.blobs[1]!, second.blobs[1]!];
    const bigReader = await pausedReader(`${mirror.url}/v2/reading/big/blobs/${bigLayer.descriptor.digest}`);

    let secondReader: Awaited<ReturnType<typeof pausedReader>> | undefined;
    try {
      // The second image's layer comes to a slow client too: its fill commits past the maximum
      // size while both layers are being read.
      const res = await fetch(`${mirror.url}/v2/reading/second/manifests/v1`, { headers: { Accept: MediaTypes.ociManifest } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      const config = await fetch(`${mirror.url}/v2/reading/second/blobs/${second.blobs[0]!.descriptor.digest}`);
      assert.equal(digestOf(Buffer.from(await config.arrayBuffer())), second.blobs[0]!.descriptor.digest);
      secondReader = await pausedReader(`${mirror.url}/v2/reading/second/blobs/${secondLayer.descriptor.digest}`);
      await mirror.registry.mirror!.settled();
      assert.equal(await cached(mirror, 'reading/big', big), false, "big's manifest is evicted");
      assert.equal(await stored(mirror, bigLayer), true, 'its layer is being read: kept');
      assert.equal(await stored(mirror, secondLayer), true, 'so is the other one');
      const line = evictionLines(mirror).at(-1)!;
      assert.match(String(line.msg), STILL_OVER, 'the pass says what it could not evict');
      assert.equal(line.level, 40);
      assert.ok(Number(line.sizeAfter) >= bigLayer.descriptor.size + secondLayer.descriptor.size, 'the layers still count');
    } finally {
      const got = await bigReader.finish();
      assert.deepEqual(got, { bytes: bigLayer.descriptor.size, digest: bigLayer.descriptor.digest }, 'the client got every byte');
      if (secondReader) assert.deepEqual(await secondReader.finish(), { bytes: secondLayer.descriptor.size, digest: secondLayer.descriptor.digest });
    }
    await sleep(20); // the response's pin goes when its last write is done
    const pass = await cacheOf(mirror).evict();
    assert.equal(await stored(mirror, bigLayer), false, 'now it goes');
    assert.ok(pass && pass.blobs >= 1);
    assert.equal(await metric(mirror, 'skiff_mirror_cache_size_bytes'), await mirror.registry.metadata.cacheSize());
  });

  test('deletes a crash cut short (released in the metadata, files still there) are finished at the next start', async () => {
    const k = image('crash-k', [layer('crash-k', MiB)]);
    await publish('crash/k', k);
    const dataDir = await mkdtemp(join(tmpdir(), 'skiff-eviction-'));
    try {
      const first = await startMirror({ dataDir });
      await pull(first, 'crash/k', k);
      // The release happens, the deletes never do (as if the process died right after).
      const step = await first.registry.metadata.evictCache({ bytes: Number.MAX_SAFE_INTEGER, usedBefore: Number.MAX_SAFE_INTEGER, pinned: [], now: Date.now() });
      assert.equal(step.released.length, 3);
      await first.stop();
      for (const b of [k.manifest, ...k.blobs]) assert.equal(await first.registry.blobs.stat(b.descriptor.digest), b.descriptor.size, 'still on disk');

      const second = await startMirror({ dataDir, cacheMaxSize: 100 * MiB });
      for (const b of [k.manifest, ...k.blobs]) assert.equal(await stored(second, b), false, 'deleted before the first request');
      assert.deepEqual(await second.registry.metadata.releasedBlobs(10), []);
      assert.equal(await metric(second, 'skiff_mirror_cache_size_bytes'), 0);
      assert.ok(second.logs.some((line) => line.msg === EVICTION && line.blobs === 3));
      const layerGets = upstreamGets(k.blobs[1]!.descriptor.digest);
      await pull(second, 'crash/k', k);
      assert.equal(upstreamGets(k.blobs[1]!.descriptor.digest), layerGets + 1, 'pulled again from upstream');
      assert.equal(await metric(second, 'skiff_mirror_cache_size_bytes'), bytesOf(k));
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  test('kill -9 of `skiff serve --proxy` mid-fill leaves no partial file under blobs/, and the next start removes the ingest', async () => {
    const big = layer('kill9-big', 48 * MiB);
    await pushBlob(origin.url, 'crash/big', big);
    const dataDir = await mkdtemp(join(tmpdir(), 'skiff-eviction-kill9-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const start = (): ChildProcess =>
      spawn(SKIFF, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--proxy', upstreamUrl, '--cache-max-size', '1GiB', '--log-level', 'warn'], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    // The upstream sends 8 MiB of the blob, then hangs: the fill is surely in the middle.
    proxy.decide = (r) => (r.method === 'GET' && r.url.includes(big.descriptor.digest) ? { stallAfterBytes: 8 * MiB } : undefined);
    let child = start();
    try {
      await waitForHttp(`${base}/v2/`, 60_000);
      const client = fetch(`${base}/v2/crash/big/blobs/${big.descriptor.digest}`).then((res) => res.arrayBuffer());
      client.catch(() => undefined); // the server dies under it
      const ingest = join(dataDir, 'ingest');
      let partial: string | undefined;
      for (let waited = 0; partial === undefined; waited += 20) {
        assert.ok(waited < 30_000, 'the fill started');
        for (const name of await readdir(ingest)) {
          if (name.startsWith('fill-') && (await stat(join(ingest, name))).size >= 8 * MiB) partial = name;
        }
        if (partial === undefined) await sleep(20);
      }
      process.kill(child.pid!, 'SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      await client.catch(() => undefined);

      // Nothing half-written under blobs/: every file there hashes to its own name, and the blob is not one of them.
      const files = await blobFiles(dataDir);
      assert.equal(files.includes(big.descriptor.digest.slice('sha256:'.length)), false, 'the blob was never committed');
      for (const hex of files) {
        const bytes = await readFile(join(dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex));
        assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `blob file ${hex} is whole`);
      }
      assert.ok((await readdir(ingest)).includes(partial), 'the partial bytes are only in ingest/');

      proxy.decide = () => undefined;
      child = start();
      await waitForHttp(`${base}/v2/`, 60_000);
      assert.deepEqual(await readdir(ingest), [], 'the next start removed the ingest');
      const res = await fetch(`${base}/v2/crash/big/blobs/${big.descriptor.digest}`);
      assert.equal(res.status, 200);
      assert.equal(digestOf(Buffer.from(await res.arrayBuffer())), big.descriptor.digest, 'filled again, whole');
      const committed = await readFile(join(dataDir, 'blobs', 'sha256', big.descriptor.digest.slice(7, 9), big.descriptor.digest.slice(7)));
      assert.equal(digestOf(committed), big.descriptor.digest);
    } finally {
      proxy.decide = () => undefined;
      await stopChild(child);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

/** The hex names of every file under <data>/blobs/sha256/. */
async function blobFiles(dataDir: string): Promise<string[]> {
  const names: string[] = [];
  const root = join(dataDir, 'blobs', 'sha256');
  for (const prefix of await readdir(root).catch(() => [] as string[])) names.push(...(await readdir(join(root, prefix))));
  return names;
}
