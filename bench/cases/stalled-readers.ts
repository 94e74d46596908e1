/**
 * 2,000 clients that ask for a 20 MB blob and then read nothing (issue #9 §3): the server's
 * resident memory while they stall, and once they have gone. skiff and the CNCF registry side by
 * side, fresh servers each round. The targets are absolute: under 300 MiB while stalled, and back
 * within 50 MiB of idle after they close.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { digestOf } from '../../src/digest/digest.ts';
import { pushBlob } from '../../src/testing/push.ts';
import type { Context } from '../context.ts';
import { rssMiB, sampleRss } from '../measure/rss.ts';
import { series, type Row } from '../model.ts';
import { startCncf } from '../servers/cncf.ts';
import type { Server } from '../servers/server.ts';
import { startSkiff } from '../servers/skiff.ts';

const READERS = 2000;
const BLOB_BYTES = 20_000_000;
const SETTLE_MS = 4000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens a connection, sends one GET and never reads the answer. */
function stalledReader(host: string, path: string): Promise<Socket> {
  const [hostname, port] = host.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

async function measure(server: Server, path: string, log: (line: string) => void): Promise<{ idle: number; peak: number; after: number; opened: number }> {
  const warm = await fetch(`${server.url}${path}`);
  await warm.arrayBuffer();
  await sleep(500);
  const idle = rssMiB(server.pid).rss;
  const sampler = sampleRss(server.pid, 20);
  const sockets: Socket[] = [];
  let failed = 0;
  // In batches, so the listen backlog is not what is being measured.
  for (let i = 0; i < READERS; i += 100) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(100, READERS - i) }, () => stalledReader(server.host, path)));
    for (const result of batch) {
      if (result.status === 'fulfilled') sockets.push(result.value);
      else failed++;
    }
  }
  for (const socket of sockets) socket.on('error', () => undefined);
  await sleep(SETTLE_MS);
  const peak = sampler.stop().peakMiB;
  for (const socket of sockets) socket.destroy();
  await sleep(SETTLE_MS);
  const after = rssMiB(server.pid).rss;
  log(`  ${server.name}: idle ${idle.toFixed(0)} MiB, ${sockets.length} stalled readers (${failed} failed to connect) → peak ${peak.toFixed(0)} MiB, after ${after.toFixed(0)} MiB`);
  return { idle, peak, after, opened: sockets.length };
}

export async function stalledReadersCase(ctx: Context): Promise<Row[]> {
  const peakRow: Row = {
    id: 'stalled-readers-rss',
    title: `server peak RSS with ${READERS} stalled readers of a 20 MB blob`,
    unit: 'MiB',
    better: 'lower',
    skiff: series(),
    peerName: 'CNCF registry',
    peer: series(),
    limit: { name: 'issue target 300 MiB', value: 300 },
  };
  const afterRow: Row = {
    id: 'stalled-readers-after',
    title: 'RSS above idle once the stalled readers have closed',
    unit: 'MiB',
    better: 'lower',
    skiff: series(),
    peerName: 'CNCF registry',
    peer: series(),
    limit: { name: 'issue target 50 MiB', value: 50 },
  };
  const blob = randomBytes(BLOB_BYTES);
  const digest = digestOf(blob);
  const path = `/v2/bench/stalled/blobs/${digest}`;
  const rounds = Math.min(ctx.options.rounds, 2);
  for (let round = 0; round < rounds; round++) {
    for (const [start, target] of [
      [() => startSkiff(ctx.skiff, ctx.runDir), 'skiff'],
      [() => startCncf(ctx.runDir, `cncf-stalled-${round}`), 'peer'],
    ] as const) {
      const server = await start();
      try {
        await pushBlob(server.url, 'bench/stalled', { descriptor: { mediaType: 'application/octet-stream', digest, size: blob.length }, data: blob });
        const result = await measure(server, path, ctx.log);
        peakRow[target].samples.push(result.peak);
        peakRow[target].extra.push({ idleMiB: result.idle, opened: result.opened });
        afterRow[target].samples.push(Math.max(0.1, result.after - result.idle)); // 0.1: "no growth", kept positive for the % of limit
        afterRow[target].extra.push({ idleMiB: result.idle, afterMiB: result.after });
      } catch (error) {
        peakRow[target].errors.push((error as Error).message);
      } finally {
        await server.stop();
      }
    }
  }
  return [peakRow, afterRow];
}
