/**
 * Server memory while pushing and pulling one large blob (default 1 GiB):
 *   node bench/memory.ts [--size-mib 1024]
 * Starts `bin/skiff serve` as a child, streams the blob up (POST + one streamed PATCH + PUT)
 * and down (GET), and samples the child's RSS from /proc every 20 ms.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { freePort, stopChild, waitForHttp } from '../src/testing/peers.ts';

const sizeMiB = Number(process.argv[process.argv.indexOf('--size-mib') + 1] || 1024) || 1024;
const size = sizeMiB * 1024 * 1024;
const CHUNK = 1024 * 1024;
const block = randomBytes(CHUNK);

function* blobChunks(): Generator<Buffer> {
  for (let i = 0; i < size / CHUNK; i++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(i, 0); // every chunk differs; the blob is incompressible
    yield chunk;
  }
}

async function rssKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
}

function send(method: string, url: string, body?: Readable): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: body ? { 'Content-Type': 'application/octet-stream' } : { 'Content-Length': 0 } }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, sha256: hash.digest('hex'), bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body) body.pipe(req);
    else req.end();
  });
}

const dataDir = await mkdtemp(join(tmpdir(), 'skiff-bench-mem-'));
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const child = spawn(fileURLToPath(new URL('../bin/skiff', import.meta.url)), ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--log-level', 'warn'], { stdio: 'inherit' });
try {
  await waitForHttp(`${base}/v2/`);
  const idle = await rssKiB(child.pid!, 'VmRSS');
  let peak = idle;
  const sampler = setInterval(() => void rssKiB(child.pid!, 'VmRSS').then((v) => (peak = Math.max(peak, v)), () => undefined), 20);

  const hash = createHash('sha256');
  for (const chunk of blobChunks()) hash.update(chunk);
  const digest = `sha256:${hash.digest('hex')}`;

  const t0 = performance.now();
  const post = await send('POST', `${base}/v2/bench/mem/blobs/uploads/`);
  const patch = await send('PATCH', new URL(String(post.headers.location), base).href, Readable.from(blobChunks()));
  const put = await send('PUT', new URL(`${patch.headers.location}?digest=${digest}`, base).href);
  const pushSeconds = (performance.now() - t0) / 1000;
  if (put.status !== 201) throw new Error(`push failed: ${post.status} ${patch.status} ${put.status}`);
  const pushPeak = peak;

  const t1 = performance.now();
  const get = await send('GET', `${base}/v2/bench/mem/blobs/${digest}`);
  const pullSeconds = (performance.now() - t1) / 1000;
  if (`sha256:${get.sha256}` !== digest || get.bytes !== size) throw new Error('pulled bytes differ');
  clearInterval(sampler);
  const hwm = await rssKiB(child.pid!, 'VmHWM');
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  console.log(`blob ${sizeMiB} MiB`);
  console.log(`server RSS idle ${mib(idle)} MiB; peak during push ${mib(pushPeak)} MiB; peak overall ${mib(peak)} MiB; VmHWM ${mib(hwm)} MiB`);
  console.log(`push ${(sizeMiB / pushSeconds).toFixed(0)} MiB/s (${pushSeconds.toFixed(2)} s); pull ${(sizeMiB / pullSeconds).toFixed(0)} MiB/s (${pullSeconds.toFixed(2)} s)`);
} finally {
  await stopChild(child);
  await rm(dataDir, { recursive: true, force: true });
}
