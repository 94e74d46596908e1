/**
 * Mirror mode with real peers (issue 11 §What it must show): the CNCF registry as the upstream
 * (behind a counting proxy), skopeo and `skiff pull` through the mirror with digests identical to
 * the upstream's; 20 concurrent cold pulls, through several names that share the blobs, making one
 * upstream GET per blob; a second skiff mirror chained in front of the first (`--proxy`, as Docker's
 * registry-mirrors would) pulling cold content through both; and the upstream stopped: cached
 * images still pull by tag and by digest, uncached ones fail clearly, the server stays up.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clientFactory } from '../../src/cli/registry-clients.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { Puller } from '../../src/images/pull.ts';
import { ImageStore } from '../../src/images/store.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { startTestMirror, upstream, type TestMirror } from '../../src/testing/mirror.ts';
import { peerSkipReason, skopeo, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { pushBlob, pushImage } from '../../src/testing/push.ts';

const skip = await peerSkipReason('skopeo', 'docker-registry');
const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const MiB = 1024 * 1024;

describe('mirror with real peers: the CNCF registry upstream, skopeo, skiff pull', { skip, timeout: 90_000 }, () => {
  let cncf: Peer;
  let proxy: FaultProxy;
  /** host:port clients would name the upstream by (the counting proxy in front of the CNCF registry). */
  let upstreamHost: string;
  let mirror: TestMirror;
  /** A second skiff mirror whose upstream is the first (`proxy: <first mirror>`). */
  let front: TestMirror;
  let work: string;
  let app: TestImage;
  const stores: string[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-mirror-peers-'));
    cncf = await startCncfRegistry();
    proxy = new FaultProxy(cncf.url);
    upstreamHost = await proxy.start();
    // tagTTL 0: every tag is revalidated, so a stopped upstream is noticed (and the stale copy served).
    mirror = await startTestMirror({ upstreams: [upstream({ host: upstreamHost, url: `http://${upstreamHost}`, default: true, tagTTL: 0 })] });
    front = await startTestMirror({ proxy: mirror.url });
    app = await makeImage({ seed: 'mirror-peers-app', layers: 2, layerSize: 256 * 1024 });
    await pushImage(cncf.url, 'team/app', app, 'v1');
  });
  after(async () => {
    await front?.stop();
    await mirror?.stop();
    await proxy?.stop();
    await cncf?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const blobGets = (digest: string) => proxy.requests.filter((r) => r.method === 'GET' && r.url.includes(`/blobs/${digest}`)).length;

  /** skopeo copy into an OCI layout; the top manifest's digest and every blob's, each re-hashed. */
  async function skopeoPull(reference: string, name: string): Promise<{ top: string; blobs: string[] }> {
    const dir = join(work, name);
    await skopeo(['copy', '--src-tls-verify=false', `docker://${reference}`, `oci:${dir}:x`]);
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const blobs = (await readdir(join(dir, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
    for (const digest of blobs) assert.equal(digestOf(await readFile(join(dir, 'blobs', 'sha256', digest.slice(7)))), digest);
    return { top: index.manifests[0]!.digest, blobs };
  }
  const everything = (image: TestImage) => [...image.blobs, image.manifest].map((b) => b.descriptor.digest).sort();

  async function pullInProcess(reference: string, mirrors = {}): Promise<string> {
    const root = await mkdtemp(join(work, 'store-'));
    stores.push(root);
    const clients = clientFactory({ mirrors });
    try {
      return (await new Puller(await ImageStore.open(root), clients.pullSource).pull(reference)).digest;
    } finally {
      await clients.close();
    }
  }

  test('skopeo through the mirror, by the default name and by the prefixed name: the upstream\'s digests', async () => {
    const byDefault = await skopeoPull(`${mirror.address}/team/app:v1`, 'skopeo-default');
    assert.deepEqual(byDefault, { top: app.manifest.descriptor.digest, blobs: everything(app) });
    const prefixed = `${mirror.address}/${upstreamHost.replace(':', '_')}/team/app:v1`;
    assert.deepEqual(await skopeoPull(prefixed, 'skopeo-prefix'), byDefault);
    const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${cncf.host}/team/app:v1`])) as { Digest: string };
    assert.equal(inspect.Digest, app.manifest.descriptor.digest);
    for (const blob of app.blobs) assert.equal(blobGets(blob.descriptor.digest), 1, blob.descriptor.digest);
  });

  test('skiff pull through the mirror: as a process by the mirror\'s name, and with --mirror-config (?ns=)', async () => {
    const root = join(work, 'cli-store');
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, 'pull', '--root', root, '--progress', 'plain', `${mirror.address}/team/app:v1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, output);
    assert.ok(output.includes(`Digest: ${app.manifest.descriptor.digest}`), output);

    // The upstream's own name, redirected to the mirror as containerd's hosts.toml would: ?ns=<upstream>.
    const config = join(work, 'mirrors.yaml');
    await writeFile(config, `${upstreamHost}:\n  mirrors:\n    - url: ${mirror.url}\n      pullFromMirror: all\n      insecure: true\n`);
    const before = proxy.requests.length;
    const { loadClientMirrors } = await import('../../src/cli/registry-clients.ts');
    assert.equal(await pullInProcess(`${upstreamHost}/team/app:v1`, await loadClientMirrors(config)), app.manifest.descriptor.digest);
    // Only the mirror spoke to the upstream: one HEAD to revalidate the tag (TTL 0), no GET.
    assert.deepEqual(
      proxy.requests.slice(before).map((r) => r.method),
      ['HEAD'],
    );
  });

  test('20 concurrent cold pulls through three names and two repositories sharing the blobs: one upstream GET per blob', async () => {
    const big = await makeImage({ seed: 'mirror-peers-big', layers: 3, layerSize: 3 * MiB });
    await pushImage(cncf.url, 'team/big', big, 'v1');
    await pushImage(cncf.url, 'team/twin', big, 'v1');
    const prefix = upstreamHost.replace(':', '_');
    const config = { [upstreamHost]: { mirrors: [{ url: mirror.url, pullFromMirror: 'all' as const, insecure: true }] } };
    const pulls = Array.from({ length: 20 }, (_, i) => {
      const repo = i % 2 === 0 ? 'team/big' : 'team/twin';
      switch (i % 4) {
        case 0:
        case 1:
          return pullInProcess(`${mirror.address}/${repo}:v1`);
        case 2:
          return pullInProcess(`${mirror.address}/${prefix}/${repo}:v1`);
        default:
          return pullInProcess(`${upstreamHost}/${repo}:v1`, config);
      }
    });
    const digests = await Promise.all(pulls);
    assert.deepEqual(new Set(digests), new Set([big.manifest.descriptor.digest]));
    for (const blob of big.blobs) assert.equal(blobGets(blob.descriptor.digest), 1, `${blob.descriptor.digest}: ${blobGets(blob.descriptor.digest)} upstream GETs`);
    for (const repo of ['team/big', 'team/twin']) {
      const manifestGets = proxy.requests.filter((r) => r.method === 'GET' && r.url.startsWith(`/v2/${repo}/manifests/`)).length;
      assert.equal(manifestGets, 1, `${repo}: one manifest GET, shared by every name`);
    }
  });

  test('20 concurrent cold GETs of one 200 MiB blob, by the default name, the prefix and ?ns=: one upstream GET, every client the right bytes', { timeout: 120_000 }, async () => {
    const data = randomBytes(200 * MiB);
    const digest = digestOf(data);
    await pushBlob(cncf.url, 'team/huge', { descriptor: { mediaType: 'application/octet-stream', digest, size: data.length }, data });
    const prefix = upstreamHost.replace(':', '_');
    const paths = [`/v2/team/huge/blobs/${digest}`, `/v2/${prefix}/team/huge/blobs/${digest}`, `/v2/team/huge/blobs/${digest}?ns=${upstreamHost}`];
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await fetch(`${mirror.url}${paths[i % paths.length]}`);
        assert.equal(res.status, 200);
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          bytes += chunk.length;
        }
        return { digest: `sha256:${hash.digest('hex')}`, bytes };
      }),
    );
    for (const result of results) assert.deepEqual(result, { digest, bytes: data.length });
    assert.equal(blobGets(digest), 1, `${blobGets(digest)} upstream GETs of the 200 MiB blob`);
  });

  test('a skiff mirror in front of the skiff mirror (--proxy) pulls cold content through both', async () => {
    const chain = await makeImage({ seed: 'mirror-peers-chain', layers: 2, layerSize: 512 * 1024 });
    await pushImage(cncf.url, 'team/chain', chain, 'v1');
    const got = await skopeoPull(`${front.address}/team/chain:v1`, 'skopeo-chain');
    assert.deepEqual(got, { top: chain.manifest.descriptor.digest, blobs: everything(chain) });
    for (const blob of chain.blobs) assert.equal(blobGets(blob.descriptor.digest), 1);
    // Each mirror keeps its copy, under its own canonical name for the upstream it knows.
    assert.notEqual(await mirror.registry.metadata.getManifest(`${upstreamHost.replace(':', '_')}/team/chain`, chain.manifest.descriptor.digest), undefined);
    const frontName = `${mirror.address.replace(':', '_')}/team/chain`;
    assert.notEqual(await front.registry.metadata.getManifest(frontName, chain.manifest.descriptor.digest), undefined);
    assert.equal(await front.registry.blobs.stat(chain.layers[0]!.descriptor.digest), chain.layers[0]!.descriptor.size);
  });

  test('a skiff mirror whose upstream is the CNCF registry in proxy mode pulls cold content through both', async () => {
    const cold = await makeImage({ seed: 'mirror-peers-cncf-proxy', layers: 2, layerSize: 300 * 1024 });
    await pushImage(cncf.url, 'team/viacache', cold, 'v1');
    // The CNCF cache answers HEAD 404 for what it has not fetched yet (distribution#4747): skiff never asks it so.
    const cncfCache = await startCncfRegistry({ proxyRemote: `http://${upstreamHost}` });
    const second = await startTestMirror({ proxy: cncfCache.url });
    try {
      const got = await skopeoPull(`${second.address}/team/viacache:v1`, 'skopeo-cncf-proxy');
      assert.deepEqual(got, { top: cold.manifest.descriptor.digest, blobs: everything(cold) });
    } finally {
      await second.stop();
      await cncfCache.stop();
    }
  });

  // Last: the upstream stays stopped.
  test('upstream stopped: cached images pull by tag and by digest, uncached ones fail clearly, the server stays up', async () => {
    await proxy.stop();
    const byTag = await skopeoPull(`${mirror.address}/team/app:v1`, 'down-tag');
    assert.equal(byTag.top, app.manifest.descriptor.digest);
    const byDigest = await skopeoPull(`${mirror.address}/team/app@${app.manifest.descriptor.digest}`, 'down-digest');
    assert.deepEqual(byDigest.blobs, everything(app));
    assert.equal(await pullInProcess(`${mirror.address}/team/app:v1`), app.manifest.descriptor.digest);
    const res = await fetch(`${mirror.url}/v2/team/app/manifests/v1`);
    assert.equal(res.headers.get('warning'), '110 - "Response is Stale"');
    await res.arrayBuffer();
    // skopeo shows only the status of a 503; skiff pull (below) and the error body say what failed.
    await assert.rejects(skopeoPull(`${mirror.address}/team/never:v1`, 'down-never'), /reading manifest v1 in [\d.:]+\/team\/never: .*503 Service Unavailable/);
    await assert.rejects(pullInProcess(`${mirror.address}/team/never:v1`), /503 UNAVAILABLE: cannot get manifest team\/never:v1 from upstream/);
    assert.equal((await fetch(`${mirror.url}/v2/`)).status, 200);
    assert.ok(mirror.logs.some((l) => l.msg === 'mirror: upstream unavailable, serving the cached (stale) manifest'));
  });
});
