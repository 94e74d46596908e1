/**
 * Issue 15's performance rows: skiff on S3 (Ceph radosgw), PostgreSQL and Redis vs the CNCF
 * registry's S3 driver on the same radosgw, side by side in one run (`--only scale-out`).
 *
 * - push / pull: `big-0` (one --big-mib layer) with skopeo into and out of (`docker://… → oci:`)
 *   one skiff replica on a fresh deployment (bucket, database, Redis prefix) and a CNCF registry on
 *   a fresh bucket, every round; the pull right after the push, from the same server. Both run as
 *   shipped: each redirects blob GETs to presigned radosgw URLs (skiff's storage.s3.redirect and the
 *   CNCF registry's redirect, both on by default). A second replica of the same deployment with
 *   `redirect: false`, which sends the bytes itself, is pulled from too (its own report row).
 * - RSS: one --rss-push-mib layer (1 GiB) PUT in one request (curl -T: POST, then PUT with the
 *   whole body and the digest) into the same servers, each one's VmRSS sampled every 5 ms.
 * - manifest GET by tag (wrk, 50 connections): two replicas behind nginx with docs/scale-out.md's
 *   block vs one CNCF registry on S3, directly and behind the same nginx block.
 *
 * Ceph runs with memstore (objects in the OSD's memory): the rows compare registries, and the disk
 * would only add the same writes to both sides. Its capacity is raised past the harness's 2 GiB to
 * hold a round's worst case (the CNCF registry's 1 GiB upload plus its multipart copy), and each
 * round's bucket is emptied, deleted and radosgw's garbage collected (`gc process --include-all`)
 * before the next, so memory stays bounded by one round.
 */
import { AbortMultipartUploadCommand, CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createS3Client } from '../../src/content/s3-bucket.ts';
import { startEngines, type Engines } from '../../src/testing/scale-out.ts';
import { skopeoPull } from '../clients.ts';
import { onCleanup } from '../cleanup.ts';
import type { Context } from '../context.ts';
import { keystream } from '../gen/keystream.ts';
import { MANIFEST_ACCEPT } from '../gen/media-types.ts';
import { cacheRoot, type BenchImage } from '../gen/sets.ts';
import { cpuSeconds } from '../measure/cpu.ts';
import { rssMiB, sampleRss, type Memory } from '../measure/rss.ts';
import { load } from '../measure/wrk.ts';
import { series, type Row, type Series } from '../model.ts';
import { run, type RunResult } from '../proc.ts';
import { expectImage, pushImage } from '../registry.ts';
import { interleave, type Contestant } from '../rounds.ts';
import { startBalancer } from '../servers/balancer.ts';
import { startCncfS3, type S3Bucket } from '../servers/cncf-s3.ts';
import type { Server } from '../servers/server.ts';
import { startSkiffReplica } from '../servers/skiff-replica.ts';

const MiB = 1024 * 1024;
const CONNECTIONS = 50;

/** A raw (incompressible, uncompressed) blob of `mib` MiB in the image cache, with its digest. */
interface RawBlob {
  path: string;
  size: number;
  digest: string;
}

async function rawBlob(mib: number, log: (line: string) => void): Promise<RawBlob> {
  const dir = join(cacheRoot(), `raw-${mib}MiB`);
  const meta = join(dir, 'blob.json');
  if (existsSync(meta)) return JSON.parse(await readFile(meta, 'utf8')) as RawBlob;
  await mkdir(dir, { recursive: true });
  const started = performance.now();
  const path = join(dir, 'blob');
  const staging = `${path}.staging-${process.pid}`;
  const hash = createHash('sha256');
  const file = await open(staging, 'w');
  try {
    for (const chunk of keystream(`raw-${mib}`, mib * MiB)) {
      hash.update(chunk);
      await file.write(chunk);
    }
  } finally {
    await file.close();
  }
  await rename(staging, path);
  const blob: RawBlob = { path, size: mib * MiB, digest: `sha256:${hash.digest('hex')}` };
  await writeFile(meta, JSON.stringify(blob));
  log(`generated a raw ${mib} MiB blob in ${((performance.now() - started) / 1000).toFixed(1)} s → ${path}`);
  return blob;
}

/**
 * The processes whose CPU a timed step records, by name: a PID, or with `tree` the PID and every
 * process under it, listed again at each probe (PostgreSQL's backends come and go with the replicas'
 * pooled connections, nginx's workers are the master's children).
 */
type Processes = Record<string, { pid: number; tree?: boolean }>;
type CpuSnapshot = Record<string, Map<number, number>>;

async function cpuSnapshot(processes: Processes): Promise<CpuSnapshot> {
  const out: CpuSnapshot = {};
  for (const [name, { pid, tree }] of Object.entries(processes)) {
    const pids = tree ? [pid, ...(await descendants(pid))] : [pid];
    const times = new Map<number, number>();
    for (const one of pids) {
      try {
        times.set(one, cpuSeconds(one));
      } catch {
        // gone
      }
    }
    out[name] = times;
  }
  return out;
}

/**
 * CPU seconds each named process (or tree) spent between two snapshots, rounded to 10 ms: a process
 * that started in between counts whole, one that ended in between is missed.
 */
function spent(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, times] of Object.entries(after)) {
    let sum = 0;
    for (const [pid, seconds] of times) sum += seconds - (before[name]?.get(pid) ?? 0);
    out[name] = Math.round(sum * 100) / 100;
  }
  return out;
}

/** The Ceph daemons' PIDs from their pid files (ceph.conf's run_dir), by name (`ceph-osd`, `radosgw`, …). */
async function cephPids(conf: string): Promise<Record<string, number>> {
  const runDir = join(dirname(conf), 'run');
  const out: Record<string, number> = {};
  for (const name of await readdir(runDir)) {
    if (!name.endsWith('.pid')) continue;
    const pid = Number((await readFile(join(runDir, name), 'utf8')).trim());
    if (!(pid > 0)) continue;
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm) out[comm] = pid;
  }
  return out;
}

/** Every process under `pid` (children, grandchildren), PostgreSQL's backends for the postmaster. */
async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    const children = await readFile(`/proc/${parent}/task/${parent}/children`, 'utf8').catch(() => '');
    for (const child of children.split(' ').filter(Boolean).map(Number)) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** Deletes a bucket with everything in it (objects, unfinished multipart uploads). */
async function dropBucket(s3: S3Client, bucket: string): Promise<number> {
  let count = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 1000 }));
    const keys = (page.Contents ?? []).map((object) => ({ Key: object.Key! }));
    if (keys.length > 0) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    count += keys.length;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const upload of uploads.Uploads ?? []) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key!, UploadId: upload.UploadId! }));
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
  return count;
}

/** Throws unless the OCI layout's index names the image's manifest. */
async function expectPulled(dir: string, image: BenchImage): Promise<void> {
  const index = await readFile(join(dir, 'index.json'), 'utf8');
  if (!index.includes(image.manifest.digest)) throw new Error(`${dir} does not hold ${image.manifest.digest}:\n${index.slice(0, 500)}`);
}

/**
 * A blob in one request, as a client that has the whole blob does (POST, then PUT with the body and
 * the digest), with curl streaming the file; the server's RSS is sampled while the body flows.
 */
async function pushRaw(server: Server, repo: string, blob: RawBlob): Promise<{ seconds: number; peakMiB: number; peakAnonMiB: number; idleMiB: number }> {
  const start = await fetch(`${server.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
  await start.arrayBuffer();
  const location = start.headers.get('location');
  if (start.status !== 202 || !location) throw new Error(`${server.name} POST upload: HTTP ${start.status}, location ${location ?? 'none'}`);
  const url = new URL(location, server.url);
  url.searchParams.set('digest', blob.digest);
  const idleMiB = rssMiB(server.pid).rss;
  const sampler = sampleRss(server.pid);
  let memory: Memory;
  let result: RunResult;
  try {
    // -H 'Expect:': no 100-continue round trip (curl asks for one above 1 MiB).
    result = await run('curl', ['-sS', '-X', 'PUT', '-T', blob.path, '-H', 'Expect:', '-H', 'Content-Type: application/octet-stream', '-o', '/dev/null', '-w', '%{http_code} %{time_total}', url.toString()], {
      timeoutMs: 600_000,
    });
  } finally {
    memory = sampler.stop();
  }
  const [code, total] = result.stdout.trim().split(' ');
  if (code !== '201') throw new Error(`${server.name} PUT ${blob.size} bytes: HTTP ${code}`);
  const head = await fetch(`${server.url}/v2/${repo}/blobs/${blob.digest}`, { method: 'HEAD', signal: AbortSignal.timeout(30_000) });
  if (head.status !== 200 || head.headers.get('content-length') !== String(blob.size)) {
    throw new Error(`${server.name} HEAD ${blob.digest} after the push: HTTP ${head.status}, length ${head.headers.get('content-length')}`);
  }
  return { seconds: Number(total), peakMiB: memory.peakMiB, peakAnonMiB: memory.peakAnonMiB, idleMiB };
}

/** One GET before the load: the right bytes and media type, so wrk's 2xx count means what we think. */
async function checkManifest(server: Server, image: BenchImage): Promise<void> {
  const res = await fetch(`${server.url}/v2/${image.repo}/manifests/${image.tag}`, { headers: { Accept: MANIFEST_ACCEPT }, signal: AbortSignal.timeout(10_000) });
  const body = Buffer.from(await res.arrayBuffer());
  const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (res.status !== 200 || actual !== image.manifest.digest || res.headers.get('content-type') !== image.manifest.mediaType) {
    throw new Error(`${server.name} GET ${image.repo}:${image.tag}: HTTP ${res.status}, ${res.headers.get('content-type')}, body ${actual}; expected ${image.manifest.digest}`);
  }
}

export async function scaleOutCase(ctx: Context): Promise<Row[]> {
  const big = await ctx.set('big');
  const image = big.images[0]!;
  const small = await ctx.set('small');
  const smallImage = small.images[0]!;
  const raw = await rawBlob(ctx.options.rssPushMiB, ctx.log);
  const imageBytes = image.manifest.size + image.blobs.reduce((sum, blob) => sum + blob.size, 0);
  const mb = (imageBytes / 1e6).toFixed(1);

  // A round's worst case is the CNCF registry's: the big image, the raw upload and its multipart
  // copy (UploadPartCopy writes the bytes again before the upload is deleted), with room to spare.
  const memstoreBytes = Math.max(2 * 1024 ** 3, Math.ceil((3 * (ctx.options.bigMiB + ctx.options.rssPushMiB) * MiB + 1024 ** 3) / MiB) * MiB);
  ctx.log(`  starting Ceph (memstore ${(memstoreBytes / 1024 ** 3).toFixed(1)} GiB), PostgreSQL and Redis`);
  const engines: Engines = await startEngines({ ceph: { memstoreBytes } });
  const forgetEngines = onCleanup('scale-out engines', () => engines.stop());
  const s3 = createS3Client({ endpoint: engines.ceph.endpoint, region: engines.ceph.region, accessKeyId: engines.ceph.accessKey, secretAccessKey: engines.ceph.secretKey, forcePathStyle: true });
  const ceph = await cephPids(engines.ceph.conf);
  ctx.log(`  engines up: radosgw ${engines.ceph.endpoint} (Ceph start ${engines.ceph.startMs} ms), PostgreSQL ${engines.postgres.pid}, Redis :${engines.redis.port}`);
  let bucketCounter = 0;
  const bucket = async (label: string): Promise<S3Bucket> => {
    const name = `bench-${label}-${++bucketCounter}`;
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    return { endpoint: engines.ceph.endpoint, region: engines.ceph.region, bucket: name, accessKey: engines.ceph.accessKey, secretKey: engines.ceph.secretKey };
  };
  /** After a round: the bucket goes, and radosgw's garbage collector frees the deleted objects' data now, not in an hour. */
  const release = async (name: string): Promise<void> => {
    const started = performance.now();
    const objects = await dropBucket(s3, name);
    await run('radosgw-admin', ['-c', engines.ceph.conf, 'gc', 'process', '--include-all'], { timeoutMs: 300_000 });
    ctx.log(`    bucket ${name}: ${objects} objects deleted and collected in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  };

  const make = (id: string, title: string, unit: string, better: Row['better'], peerName: string, note?: string): Row => ({
    id,
    title,
    unit,
    better,
    skiff: series(),
    peerName,
    peer: series(),
    ...(note ? { note } : {}),
  });
  const rows = {
    push: make(
      'scale-out-push',
      `push big-0 (${ctx.options.bigMiB} MiB layer) with skopeo into skiff on S3 (1 replica, PostgreSQL, Redis)`,
      's',
      'lower',
      'CNCF registry on S3',
      `fresh bucket (and database, Redis prefix) per round; ${mb} MB; Ceph radosgw with memstore; skiff's storage.s3.partSize 8 MiB (shipped), the CNCF registry's chunksize 10 MiB (its default)`,
    ),
    pull: make(
      'scale-out-pull',
      `pull big-0 (${ctx.options.bigMiB} MiB) with skopeo (docker:// → oci:) from skiff on S3 as shipped (307 to radosgw)`,
      's',
      'lower',
      'CNCF registry on S3 (307 to radosgw)',
      'from the server the round pushed into; both as shipped: skiff (storage.s3.redirect, on by default) and the CNCF registry redirect blob GETs to presigned radosgw URLs',
    ),
    pullProxied: make(
      'scale-out-pull-proxied',
      `pull big-0 (${ctx.options.bigMiB} MiB) from skiff with storage.s3.redirect: false (bytes through the replica)`,
      's',
      'lower',
      'CNCF registry on S3 (307 to radosgw)',
      "a second replica of the round's deployment with storage.s3.redirect: false (for clients that cannot reach the S3 endpoint); the peer's samples are the pull row's",
    ),
    rawPush: make(
      'scale-out-push-raw',
      `push one ${ctx.options.rssPushMiB} MiB blob in one request (curl -T: POST, PUT with body and digest)`,
      's',
      'lower',
      'CNCF registry on S3',
      'curl time_total of the PUT; the HEAD afterwards must give the size',
    ),
    rss: make(
      'scale-out-push-rss',
      `server RSS during that ${ctx.options.rssPushMiB} MiB push (peak VmRSS, sampled every 5 ms)`,
      'MiB',
      'lower',
      'CNCF registry on S3',
      "skiff: the replica's node process, code included; the target holds on every round (max, not median); RssAnon and the idle RSS before the push are in the JSON",
    ),
    manifest: make(
      'scale-out-manifest-rps',
      `manifest GET by tag, 2 replicas (PostgreSQL, Redis, S3) behind nginx vs 1 CNCF registry on S3, ${CONNECTIONS} conn, ${ctx.options.manifestSeconds} s`,
      'req/s',
      'higher',
      'CNCF registry on S3',
      "nginx with docs/scale-out.md's block (worker_processes auto, access log off); the CNCF registry directly, its in-memory blob descriptor cache on (Debian's config); p50/p99 and each process's CPU in the JSON",
    ),
    manifestNginx: make(
      'scale-out-manifest-rps-nginx',
      'manifest GET by tag, the same 2 replicas vs the CNCF registry behind the same nginx block',
      'req/s',
      'higher',
      'CNCF registry on S3 behind nginx',
      "skiff's samples are the row above's",
    ),
  };
  rows.rss.limit = { name: '200 MiB target', value: 200 };
  rows.pullProxied.peer = rows.pull.peer;
  rows.manifestNginx.skiff = rows.manifest.skiff;

  const postgres = { pid: engines.postgres.pid, tree: true };

  try {
    // Push, pull, the big push: one fresh server (and bucket) per contestant and round.
    let pullCounter = 0;
    const pullInto = async (server: Server): Promise<number> => {
      const dir = join(ctx.runDir, `scale-out-pull-${++pullCounter}`);
      try {
        const result = await skopeoPull(dir, image, server.host);
        await expectPulled(dir, image);
        return result.ms / 1000;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    };
    const timed = async <T>(processes: Processes, work: () => Promise<T>): Promise<{ value: T; cpu: Record<string, number> }> => {
      const before = await cpuSnapshot(processes);
      const value = await work();
      return { value, cpu: spent(before, await cpuSnapshot(processes)) };
    };
    const cephCpu: Processes = { radosgw: { pid: ceph.radosgw ?? 0 }, 'ceph-osd': { pid: ceph['ceph-osd'] ?? 0 } };
    /** The image pushed with skopeo and pulled back, each timed with the processes' CPU, into one contestant's series. */
    const pushThenPull = async (probe: Processes, server: Server, side: 'skiff' | 'peer'): Promise<void> => {
      await run('sync', [], { timeoutMs: 120_000 });
      const push = await timed(probe, () => pushImage(big, image, server.host));
      await expectImage(server.host, image);
      rows.push[side].samples.push(push.value.ms / 1000);
      rows.push[side].extra.push({ cpu: push.cpu });
      const pull = await timed(probe, () => pullInto(server));
      rows.pull[side].samples.push(pull.value);
      rows.pull[side].extra.push({ cpu: pull.cpu });
    };
    /** The 1 GiB blob in one request, timed, and the server's peak RSS meanwhile. */
    const bigPush = async (probe: Processes, server: Server, side: 'skiff' | 'peer'): Promise<void> => {
      const rawPush = await timed(probe, () => pushRaw(server, 'bench/raw', raw));
      rows.rawPush[side].samples.push(rawPush.value.seconds);
      rows.rawPush[side].extra.push({ cpu: rawPush.cpu });
      rows.rss[side].samples.push(rawPush.value.peakMiB);
      rows.rss[side].extra.push({ peakAnonMiB: rawPush.value.peakAnonMiB, idleMiB: rawPush.value.idleMiB });
    };

    const skiffRound: Contestant = {
      name: 'skiff on S3',
      series: [rows.push.skiff, rows.pull.skiff, rows.pullProxied.skiff, rows.rawPush.skiff, rows.rss.skiff],
      async round(i) {
        const settings = await engines.deployment(`bench-skiff-${i + 1}`);
        const s3Settings = (settings.storage as { s3: { bucket: string } }).s3;
        const servers: Server[] = [];
        try {
          const replica = await startSkiffReplica(ctx.skiff, ctx.runDir, settings);
          servers.push(replica);
          const probe: Processes = { skiff: { pid: replica.pid }, ...cephCpu, postgres };
          await pushThenPull(probe, replica, 'skiff');

          const redirecting = await startSkiffReplica(ctx.skiff, ctx.runDir, { ...settings, storage: { s3: { ...s3Settings, redirect: false } } }, 'skiff replica (redirect: false)');
          servers.push(redirecting);
          const probe2: Processes = { skiff: { pid: redirecting.pid }, ...cephCpu, postgres };
          const pull2 = await timed(probe2, () => pullInto(redirecting));
          rows.pullProxied.skiff.samples.push(pull2.value);
          rows.pullProxied.skiff.extra.push({ cpu: pull2.cpu });
          await redirecting.stop();
          servers.pop();

          await bigPush(probe, replica, 'skiff');
        } finally {
          for (const server of servers.reverse()) await server.stop();
          await release(s3Settings.bucket);
        }
      },
    };
    const cncfRound: Contestant = {
      name: 'CNCF registry on S3',
      series: [rows.push.peer, rows.pull.peer, rows.rawPush.peer, rows.rss.peer],
      async round() {
        const where = await bucket('cncf');
        try {
          const server = await startCncfS3(ctx.runDir, where);
          try {
            const probe: Processes = { 'docker-registry': { pid: server.pid }, ...cephCpu };
            await pushThenPull(probe, server, 'peer');
            await bigPush(probe, server, 'peer');
          } finally {
            await server.stop();
          }
        } finally {
          await release(where.bucket);
        }
      },
    };
    await interleave(ctx.options.rounds, [skiffRound, cncfRound], ctx.log);

    // Manifest GET by tag: one deployment of two replicas behind nginx, one CNCF registry on S3.
    const servers: Server[] = [];
    try {
      const settings = await engines.deployment('bench-manifest');
      const replicas = [await startSkiffReplica(ctx.skiff, ctx.runDir, settings, 'replica 1'), await startSkiffReplica(ctx.skiff, ctx.runDir, settings, 'replica 2')];
      servers.push(...replicas);
      const front = await startBalancer(ctx.runDir, replicas.map((replica) => replica.host), 'skiff ×2 behind nginx');
      servers.push(front);
      const cncfBucket = await bucket('cncf-manifest');
      const cncf = await startCncfS3(ctx.runDir, cncfBucket);
      servers.push(cncf);
      const cncfFront = await startBalancer(ctx.runDir, [cncf.host], 'CNCF behind nginx');
      servers.push(cncfFront);
      for (const server of [front, cncf]) {
        await pushImage(small, smallImage, server.host);
        await expectImage(server.host, smallImage);
      }
      for (const server of [front, cncf, cncfFront]) await checkManifest(server, smallImage);
      const headers = { Accept: MANIFEST_ACCEPT };
      const url = (server: Server): string => `${server.url}/v2/${smallImage.repo}/manifests/${smallImage.tag}`;
      for (const server of [front, cncf, cncfFront]) await load(url(server), { connections: CONNECTIONS, seconds: 1, headers });
      const loader = (server: Server, target: Series, processes: Processes): Contestant => {
        const probe: Processes = { ...processes, ...cephCpu };
        return {
          name: server.name,
          series: [target],
          async round() {
            const result = await timed(probe, () => load(url(server), { connections: CONNECTIONS, seconds: ctx.options.manifestSeconds, headers }));
            target.samples.push(result.value.rps);
            target.extra.push({ requests: result.value.requests, p50ms: result.value.p50ms, p99ms: result.value.p99ms, cpu: result.cpu });
          },
        };
      };
      const skiffLoad = loader(front, rows.manifest.skiff, { 'replica 1': { pid: replicas[0]!.pid }, 'replica 2': { pid: replicas[1]!.pid }, nginx: { pid: front.pid, tree: true }, postgres });
      const cncfLoad = loader(cncf, rows.manifest.peer, { 'docker-registry': { pid: cncf.pid } });
      const cncfNginxLoad = loader(cncfFront, rows.manifestNginx.peer, { 'docker-registry': { pid: cncf.pid }, nginx: { pid: cncfFront.pid, tree: true } });
      await interleave(ctx.options.rounds, [skiffLoad, cncfLoad, cncfNginxLoad], ctx.log, { rotate: true });
    } finally {
      for (const server of servers.reverse()) await server.stop();
    }
  } finally {
    s3.destroy();
    forgetEngines();
    await engines.stop();
  }
  return [rows.push, rows.pull, rows.pullProxied, rows.rawPush, rows.rss, rows.manifest, rows.manifestNginx];
}
