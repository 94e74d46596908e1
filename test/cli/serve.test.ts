import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, stopChild, waitForHttp } from '../../src/testing/peers.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));

interface Serve {
  child: ChildProcess;
  base: string;
  stdout: () => string;
}

async function serve(args: string[]): Promise<Serve> {
  const port = await freePort();
  const child = spawn(SKIFF, ['serve', '--listen', `127.0.0.1:${port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/v2/`);
  return { child, base, stdout: () => out };
}

async function runToExit(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(SKIFF, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('skiff serve (the CLI)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('logs one JSON line per request and reports readiness on /healthz', async () => {
    const s = await serve(['--data', join(dir, 'a')]);
    try {
      const health = await fetch(`${s.base}/healthz`);
      assert.equal(health.status, 200);
      assert.deepEqual(await health.json(), { status: 'ready' });
      const res = await fetch(`${s.base}/v2/some/repo/tags/list`);
      assert.equal(res.status, 404);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const lines = s.stdout().split('\n').filter((line) => line.includes('"msg":"request"'));
      const entry = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find((e) => e.path === '/v2/some/repo/tags/list');
      assert.ok(entry, 'a request line for tags/list');
      assert.equal(entry.method, 'GET');
      assert.equal(entry.status, 404);
      assert.equal(typeof entry.ms, 'number');
    } finally {
      await stopChild(s.child);
    }
  });

  test('--config YAML sets options; flags override it; --no-delete answers 405', async () => {
    const config = join(dir, 'skiff.yaml');
    await writeFile(config, `data: ${join(dir, 'b')}\ndelete: true\nlogLevel: warn\n`);
    const s = await serve(['--config', config, '--no-delete']);
    try {
      const res = await fetch(`${s.base}/v2/x/blobs/sha256:${'0'.repeat(64)}`, { method: 'DELETE' });
      assert.equal(res.status, 405);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]!.code, 'UNSUPPORTED');
    } finally {
      await stopChild(s.child);
    }
  });

  test('a bad configuration exits 2 naming the file and the key', async () => {
    const config = join(dir, 'bad.yaml');
    await writeFile(config, 'listen: nowhere\nshiny: true\n');
    const { code, output } = await runToExit(['serve', '--config', config]);
    assert.equal(code, 2);
    assert.match(output, /bad\.yaml: listen: expected host:port/);
    assert.match(output, /bad\.yaml: shiny: unknown setting/);
  });

  test('SIGTERM lets an in-flight upload finish, then exits 0', async () => {
    const s = await serve(['--data', join(dir, 'c'), '--log-level', 'warn']);
    const post = await fetch(`${s.base}/v2/slow/blobs/uploads/`, { method: 'POST' });
    const location = new URL(post.headers.get('location')!, s.base);
    const exited = once(s.child, 'exit');
    const response = new Promise<number>((resolve, reject) => {
      const req = request(location, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': '6' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write('abc');
      // The request is in flight: stop the server, then finish sending.
      setTimeout(() => {
        process.kill(s.child.pid!, 'SIGTERM');
        setTimeout(() => req.end('def'), 300);
      }, 200);
    });
    assert.equal(await response, 202, 'the in-flight PATCH completed');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    await assert.rejects(fetch(`${s.base}/v2/`), 'no longer listening');
  });
});
