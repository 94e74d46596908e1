import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { digestOf } from '../../src/digest/digest.ts';
import { freePort, stopChild, waitForHttp } from '../../src/testing/peers.ts';
import { sleep } from './http/helpers.ts';

const MAIN_TS = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const CROWD_TS = fileURLToPath(new URL('./fixtures/crowd.ts', import.meta.url));
const SLOW = 3000;
const IDLE = 3000;
const HEADERS_TIMEOUT_MS = 8000;
const KEEP_ALIVE_MS = 8000;

/** `sh -c 'ulimit -n N; exec …'`: each process gets the file descriptors a few thousand sockets need. */
function withFds(args: string[]): ReturnType<typeof spawn> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('sh', ['-c', `ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${quoted}`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

test(`${SLOW} slow-header and ${IDLE} idle keep-alive connections: a normal client keeps a p99 under 100 ms, the crowd is closed on time, fds return to idle`, { timeout: 120_000 }, async (t) => {
  const data = await mkdtemp(join(tmpdir(), 'skiff-edge-load-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = withFds([
    process.execPath, '--disable-warning=ExperimentalWarning', MAIN_TS, 'serve', '--listen', `127.0.0.1:${port}`, '--data', data, '--log-level', 'error',
    '--headers-timeout', `${HEADERS_TIMEOUT_MS}ms`, '--keep-alive-timeout', `${KEEP_ALIVE_MS}ms`,
  ]);
  let serverOutput = '';
  server.stdout!.on('data', (c: Buffer) => (serverOutput += c.toString()));
  server.stderr!.on('data', (c: Buffer) => (serverOutput += c.toString()));
  let crowd: ReturnType<typeof spawn> | undefined;
  try {
    await waitForHttp(`${base}/v2/`);
    await (await fetch(`${base}/v2/`, { headers: { Connection: 'close' } })).arrayBuffer();
    await sleep(200);
    const idleFds = openFds(server.pid!);

    crowd = withFds([process.execPath, CROWD_TS, `127.0.0.1:${port}`, String(SLOW), String(IDLE)]);
    const lines = createInterface({ input: crowd.stdout! });
    const events: Record<string, unknown>[] = [];
    const next = (): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const onLine = (line: string) => {
          lines.off('line', onLine);
          resolve(JSON.parse(line) as Record<string, unknown>);
        };
        lines.on('line', onLine);
        crowd!.once('exit', (code) => reject(new Error(`crowd exited ${code} early`)));
      });
    const opened = await next();
    events.push(opened);
    assert.equal(opened.failed, 0, `crowd connections failed: ${JSON.stringify(opened)}`);
    assert.ok(openFds(server.pid!) >= idleFds + SLOW + IDLE - 50, `the server holds the crowd (${openFds(server.pid!)} fds)`);

    // A normal client pushes and pulls while the crowd is there.
    const latencies: number[] = [];
    const timed = async (run: () => Promise<Response>): Promise<Response> => {
      const started = performance.now();
      const res = await run();
      await res.arrayBuffer();
      latencies.push(performance.now() - started);
      return res;
    };
    const until = Date.now() + 3000;
    for (let i = 0; Date.now() < until; i++) {
      const body = Buffer.from(`blob ${i} pushed through the crowd`);
      const digest = digestOf(body);
      const push = await timed(() => fetch(`${base}/v2/load/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body }));
      assert.equal(push.status, 201);
      const pull = await timed(() => fetch(`${base}/v2/load/app/blobs/${digest}`));
      assert.equal(pull.status, 200);
    }
    const p99 = percentile(latencies, 99);
    assert.ok(latencies.length >= 50, `${latencies.length} requests`);
    assert.ok(p99 < 100, `p99 ${p99.toFixed(1)} ms over ${latencies.length} requests (p50 ${percentile(latencies, 50).toFixed(1)} ms)`);

    t.diagnostic(`normal client: ${latencies.length} requests, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
    const closed = await next();
    t.diagnostic(`crowd closed: ${JSON.stringify(closed)}`);
    const slow = closed.slow as { stillOpen: number; minMs: number; maxMs: number };
    const idle = closed.idle as { stillOpen: number; minMs: number; maxMs: number };
    assert.equal(slow.stillOpen, 0);
    assert.equal(idle.stillOpen, 0);
    // node checks headersTimeout every second here; keep-alive adds its own 1 s grace.
    assert.ok(slow.minMs >= HEADERS_TIMEOUT_MS - 500 && slow.maxMs <= HEADERS_TIMEOUT_MS + 5000, `slow-header connections closed after ${slow.minMs}–${slow.maxMs} ms`);
    assert.ok(idle.minMs >= KEEP_ALIVE_MS - 500 && idle.maxMs <= KEEP_ALIVE_MS + 6000, `idle connections closed after ${idle.minMs}–${idle.maxMs} ms`);
    await sleep(500);
    assert.ok(openFds(server.pid!) <= idleFds + 5, `fds back to idle: ${openFds(server.pid!)} now, ${idleFds} before`);
  } finally {
    if (crowd && crowd.exitCode === null) await stopChild(crowd as Parameters<typeof stopChild>[0], 'SIGKILL');
    await stopChild(server as Parameters<typeof stopChild>[0]);
    await rm(data, { recursive: true, force: true });
  }
  assert.doesNotMatch(serverOutput, /"level":(50|60)/, serverOutput.slice(0, 2000));
});
