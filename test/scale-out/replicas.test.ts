/**
 * Two `skiff serve` replicas on Ceph's S3, PostgreSQL and Redis (docs/scale-out.md): what one
 * replica takes in, the other serves; an upload's chunks may land on either; a replica killed with
 * -9 loses nothing that was acknowledged, and its interrupted uploads resume on the survivor.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { makeImage, seededBytes, writeOciLayout } from '../../src/testing/images.ts';
import { peerSkipReason, skopeo } from '../../src/testing/peers.ts';
import { startReplica } from '../../src/testing/replicas.ts';
import { scaleOutSkipReason, startCluster, startEngines, type Cluster, type Engines } from '../../src/testing/scale-out.ts';

const skip = (await scaleOutSkipReason()) || (await peerSkipReason('skopeo'));
const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));
const TLS = ['--src-tls-verify=false', '--dest-tls-verify=false'];
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A chunked upload's session as the client tracks it: where to send the next chunk. */
async function startUpload(base: string, repo: string): Promise<string> {
  const res = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(res.status, 202, await res.text());
  return new URL(res.headers.get('location')!, base).pathname + new URL(res.headers.get('location')!, base).search;
}

async function patch(base: string, location: string, chunk: Buffer, start: number): Promise<Response> {
  return fetch(new URL(location, base), {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + chunk.length - 1}`, 'Content-Length': String(chunk.length) },
    body: chunk,
  });
}

/** `skiff serve --config` with `settings`, expected to refuse to start: its exit code and output. */
async function serveRefuses(settings: Record<string, unknown>): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-bad-replica-'));
  try {
    const config = join(dir, 'skiff.yaml');
    await writeFile(config, stringify({ listen: '127.0.0.1:0', data: join(dir, 'data'), ...settings }));
    const child = spawn(SKIFF, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(deadline);
    return { code, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('replicas on S3, PostgreSQL and Redis', { skip }, () => {
  let engines: Engines;
  let cluster: Cluster;
  let work: string;

  before(async () => {
    engines = await startEngines();
    cluster = await startCluster(engines, 'replicas');
    work = await mkdtemp(join(tmpdir(), 'skiff-scale-out-'));
  });
  after(async () => {
    await cluster?.stop();
    await engines?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('skopeo pushes through one replica and pulls through the other with identical digests', async () => {
    const [a, b] = cluster.replicas as [typeof cluster.replicas[0], typeof cluster.replicas[0]];
    // One layer above the multipart part size (8 MiB), so it is stored in several parts.
    const image = await makeImage({ seed: 'scale-out-skopeo', layers: 3, layerSize: 12 * 1024 * 1024 });
    const src = join(work, 'skopeo-src');
    await writeOciLayout(src, [...image.blobs, image.manifest], { v1: image.manifest });
    await skopeo(['copy', '--preserve-digests', ...TLS, `oci:${src}:v1`, `docker://${a.host}/scale/skopeo:v1`]);
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${b.host}/scale/skopeo:v1`]);
    assert.equal(sha256(Buffer.from(raw)), image.manifest.descriptor.digest);
    const dst = join(work, 'skopeo-dst');
    await skopeo(['copy', ...TLS, `docker://${b.host}/scale/skopeo:v1`, `oci:${dst}:v1`]);
    const index = JSON.parse(await readFile(join(dst, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifest.descriptor.digest);
    const blobs = (await readdir(join(dst, 'blobs', 'sha256'))).map((hex) => `sha256:${hex}`).sort();
    assert.deepEqual(blobs, [...image.blobs, image.manifest].map((item) => item.descriptor.digest).sort());
    for (const digest of blobs) assert.equal(sha256(await readFile(join(dst, 'blobs', 'sha256', digest.slice(7)))), digest);
  });

  test('a chunked upload whose PATCHes alternate between the replicas completes, and reads back through either', async () => {
    const replicas = cluster.replicas;
    const blob = seededBytes('alternating', 21 * 1024 * 1024 + 12345);
    const digest = sha256(blob);
    let location = await startUpload(replicas[0]!.url, 'scale/chunked');
    // Odd chunk sizes, so chunk edges fall inside multipart parts and parts span chunks.
    const sizes = [3 * 1024 * 1024 + 7, 1024 * 1024 - 3, 6 * 1024 * 1024 + 11, 5 * 1024 * 1024];
    let offset = 0;
    for (let i = 0; offset < blob.length; i++) {
      const chunk = blob.subarray(offset, offset + (sizes[i % sizes.length] ?? blob.length));
      const replica = replicas[i % 2]!;
      const res = await patch(replica.url, location, chunk, offset);
      assert.equal(res.status, 202, `PATCH ${i} on replica ${i % 2}: ${await res.text()}`);
      offset += chunk.length;
      assert.equal(res.headers.get('range'), `0-${offset - 1}`);
      location = new URL(res.headers.get('location')!, replica.url).pathname + new URL(res.headers.get('location')!, replica.url).search;
      // The other replica sees the same session state.
      const status = await fetch(new URL(location, replicas[(i + 1) % 2]!.url));
      assert.equal(status.status, 204);
      assert.equal(status.headers.get('range'), `0-${offset - 1}`);
    }
    const closeUrl = new URL(location, replicas[1]!.url);
    closeUrl.searchParams.set('digest', digest);
    const closed = await fetch(closeUrl, { method: 'PUT' });
    assert.equal(closed.status, 201, await closed.text());
    for (const replica of replicas) {
      const res = await fetch(`${replica.url}/v2/scale/chunked/blobs/${digest}`);
      assert.equal(res.status, 200);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), digest);
    }
    // A range across a part boundary (8 MiB), through the balancer.
    const ranged = await fetch(`${cluster.balancer.url}/v2/scale/chunked/blobs/${digest}`, { headers: { Range: `bytes=${8 * 1024 * 1024 - 100}-${8 * 1024 * 1024 + 99}` } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), blob.subarray(8 * 1024 * 1024 - 100, 8 * 1024 * 1024 + 100));
  });

  test('a tag pushed through one replica moves for the other at once, and the last push wins', async () => {
    const [a, b] = cluster.replicas;
    const first = await makeImage({ seed: 'tag-first' });
    const second = await makeImage({ seed: 'tag-second' });
    const { pushImage } = await import('../../src/testing/push.ts');
    await pushImage(a!.url, 'scale/tags', first, 'latest');
    const one = await fetch(`${b!.url}/v2/scale/tags/manifests/latest`, { method: 'HEAD', headers: { Accept: first.manifest.descriptor.mediaType } });
    assert.equal(one.headers.get('docker-content-digest'), first.manifest.descriptor.digest);
    await pushImage(b!.url, 'scale/tags', second, 'latest');
    const two = await fetch(`${a!.url}/v2/scale/tags/manifests/latest`, { method: 'HEAD', headers: { Accept: second.manifest.descriptor.mediaType } });
    assert.equal(two.headers.get('docker-content-digest'), second.manifest.descriptor.digest);
  });

  test('the balancer spreads requests over both replicas', async () => {
    for (let i = 0; i < 20; i++) await (await fetch(`${cluster.balancer.url}/v2/`)).arrayBuffer();
    const upstreams = new Set((await cluster.balancer.accessLog()).map((line) => line.split(' ')[1]));
    for (const replica of cluster.replicas) assert.ok(upstreams.has(replica.host), `requests reached ${replica.host}: ${[...upstreams].join(', ')}`);
  });

  test('a replica whose backends cannot be used refuses to start, naming the setting', async () => {
    const good = cluster.settings as { storage: { s3: Record<string, unknown> }; metadata: { postgres: { url: string } }; redis: { url: string } };
    const missingBucket = await serveRefuses({ ...good, storage: { s3: { ...good.storage.s3, bucket: 'no-such-bucket' } } });
    assert.equal(missingBucket.code, 2, missingBucket.output);
    assert.match(missingBucket.output, /storage\.s3\.bucket: the bucket no-such-bucket does not exist/);

    const wrongSecret = await serveRefuses({ ...good, storage: { s3: { ...good.storage.s3, secretKey: 'wrong' } } });
    assert.equal(wrongSecret.code, 2, wrongSecret.output);
    assert.match(wrongSecret.output, /storage\.s3\.secretKey: /);

    const wrongPassword = new URL(good.metadata.postgres.url);
    wrongPassword.password = 'wrong';
    const badDatabase = await serveRefuses({ ...good, metadata: { postgres: { url: wrongPassword.toString() } } });
    assert.equal(badDatabase.code, 2, badDatabase.output);
    assert.match(badDatabase.output, /metadata\.postgres\.url: .*credentials/);
    assert.doesNotMatch(badDatabase.output, /:wrong@/, 'the password is not shown');

    const { freePort } = await import('../../src/testing/peers.ts');
    const noRedis = await serveRefuses({ ...good, redis: { url: `redis://127.0.0.1:${await freePort()}` } });
    assert.equal(noRedis.code, 2, noRedis.output);
    assert.match(noRedis.output, /redis\.url redis:\/\/127\.0\.0\.1:\d+: cannot use Redis: .*ECONNREFUSED/);
  });

  test("a replica's start removes ingests whose upload session is gone, and leaves live sessions alone", async () => {
    const { S3BlobStore } = await import('../../src/content/s3-blob-store.ts');
    const s3 = (cluster.settings as { storage: { s3: { endpoint: string; region: string; bucket: string; accessKey: string; secretKey: string } } }).storage.s3;
    const store = new S3BlobStore({ endpoint: s3.endpoint, region: s3.region, bucket: s3.bucket, accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey, forcePathStyle: true });
    try {
      // An orphan: what a crash between an expired session's row delete and its ingest's removal leaves.
      const orphan = randomUUID();
      const { Readable } = await import('node:stream');
      await (await store.ingest(orphan)).append(Readable.from([randomBytes(4096)]), { offset: 0 });
      // A live session with bytes in it.
      const live = seededBytes('live-session', 3 * 1024 * 1024);
      const location = await startUpload(cluster.replicas[0]!.url, 'scale/tidy');
      assert.equal((await patch(cluster.replicas[0]!.url, location, live.subarray(0, 1024 * 1024), 0)).status, 202);

      const starting = await startReplica(cluster.settings);
      try {
        for (const deadline = Date.now() + 20_000; (await (await store.ingest(orphan, { resume: true })).size()) > 0; ) {
          assert.ok(Date.now() < deadline, 'the orphan ingest was removed');
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        // The live session carries on, through the new replica.
        assert.equal((await patch(starting.url, location, live.subarray(1024 * 1024), 1024 * 1024)).status, 202);
        const close = new URL(location, starting.url);
        close.searchParams.set('digest', sha256(live));
        assert.equal((await fetch(close, { method: 'PUT' })).status, 201);
      } finally {
        await starting.stop();
      }
    } finally {
      store.close();
    }
  });

  test('kill -9 of one replica among 8 concurrent pushers: everything acknowledged reads back through the survivor, and interrupted uploads resume there', async () => {
    // A third replica to kill, so the shared cluster keeps its two.
    const victim = await startReplica(cluster.settings);
    const survivor = cluster.replicas[0]!;
    const acknowledged: { repo: string; digest: string; manifest?: boolean }[] = [];
    const resumed: string[] = [];
    const CHUNK = 1024 * 1024;
    let killed = false;

    const pusher = async (p: number): Promise<void> => {
      for (let round = 0; round < 6; round++) {
        const repo = `scale/kill/p${p}`;
        const data = randomBytes(3 * CHUNK + p * 1000 + round);
        const digest = sha256(data);
        let base = killed ? survivor.url : victim.url;
        let location: string;
        try {
          location = await startUpload(base, repo);
        } catch {
          // The victim died under the POST: the client opens its session on the survivor.
          base = survivor.url;
          location = await startUpload(base, repo);
        }
        let offset = 0;
        while (offset < data.length) {
          const chunk = data.subarray(offset, offset + CHUNK);
          let res: Response | undefined;
          try {
            res = await patch(base, location, chunk, offset);
          } catch {
            res = undefined; // the replica died under this request
          }
          if (res?.status === 202) {
            offset += chunk.length;
            location = new URL(res.headers.get('location')!, base).pathname + new URL(res.headers.get('location')!, base).search;
            continue;
          }
          if (res) assert.fail(`PATCH answered ${res.status}: ${await res.text()}`);
          // Resume on the survivor, from where the session stands there.
          base = survivor.url;
          const status = await fetch(new URL(location, base));
          assert.equal(status.status, 204, `upload status on the survivor: ${status.status}`);
          const range = status.headers.get('range');
          // `0-0` is also what a session with no byte yet shows; chunks here are never 1 byte long.
          offset = range === null || range === '0-0' ? 0 : Number(range.split('-')[1]) + 1;
          resumed.push(digest);
        }
        const closeUrl = new URL(location, base);
        closeUrl.searchParams.set('digest', digest);
        let closed: Response;
        try {
          closed = await fetch(closeUrl, { method: 'PUT' });
        } catch {
          // Died during the close: the client cannot know; it uploads again on the survivor.
          base = survivor.url;
          round--;
          continue;
        }
        assert.equal(closed.status, 201, await closed.text());
        acknowledged.push({ repo, digest });
        // A manifest over it (an artifact with the blob as its one layer), through the same replica.
        const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.skiff.test', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2 }, layers: [{ mediaType: 'application/octet-stream', digest, size: data.length }] }));
        try {
          const empty = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${sha256(Buffer.from('{}'))}`, { method: 'POST', body: '{}' });
          if (empty.status !== 201) continue;
          const put = await fetch(`${base}/v2/${repo}/manifests/r${round}`, { method: 'PUT', headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
          if (put.status === 201) acknowledged.push({ repo, digest: sha256(manifest), manifest: true });
        } catch {
          // not acknowledged: nothing is promised
        }
      }
    };

    // One PATCH certainly in the middle of its body when the kill comes: half its bytes sent, the rest held back.
    const stalledData = randomBytes(3 * CHUNK);
    const stalledRepo = 'scale/kill/stalled';
    const stalledLocation = await startUpload(victim.url, stalledRepo);
    assert.equal((await patch(victim.url, stalledLocation, stalledData.subarray(0, CHUNK), 0)).status, 202);
    const { request } = await import('node:http');
    const cut = new Promise<void>((resolve) => {
      const req = request(new URL(stalledLocation, victim.url), {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${CHUNK}-${2 * CHUNK - 1}`, 'Content-Length': String(CHUNK) },
      });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        resolve();
      });
      req.write(stalledData.subarray(CHUNK, CHUNK + CHUNK / 2));
    });

    const pushers = Array.from({ length: 8 }, (_, p) => pusher(p));
    // Kill once some uploads are under way.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    killed = true;
    await victim.kill();
    await cut;
    // The client of the stalled PATCH asks the survivor where the upload stands, and finishes there.
    const status = await fetch(new URL(stalledLocation, survivor.url));
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${CHUNK - 1}`, 'the cut PATCH left nothing acknowledged behind');
    assert.equal((await patch(survivor.url, stalledLocation, stalledData.subarray(CHUNK), CHUNK)).status, 202);
    const closeStalled = new URL(stalledLocation, survivor.url);
    closeStalled.searchParams.set('digest', sha256(stalledData));
    assert.equal((await fetch(closeStalled, { method: 'PUT' })).status, 201);
    acknowledged.push({ repo: stalledRepo, digest: sha256(stalledData) });
    await Promise.all(pushers);

    assert.ok(acknowledged.length >= 8 * 6, `acknowledged ${acknowledged.length}`);
    for (const item of acknowledged) {
      const path = item.manifest ? `manifests/${item.digest}` : `blobs/${item.digest}`;
      const res = await fetch(`${survivor.url}/v2/${item.repo}/${path}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200, `${item.repo} ${path} through the survivor`);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), item.digest);
    }
    // How many of the pushers' own uploads the kill cut varies with timing; the stalled one always was.
    process.stdout.write(`# kill -9: ${acknowledged.length} acknowledged, ${resumed.length} pushers' uploads resumed on the survivor\n`);
  });
});
