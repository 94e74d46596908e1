import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const MODULE = new URL('../../src/images/decode-thread.ts', import.meta.url).href;

/** Runs `script` as an ES module in a fresh node: its exit code ('hung' after `boundMs`) and stderr. */
async function runScript(script: string, boundMs: number): Promise<{ code: number | 'hung'; stderr: string }> {
  // A file, not --eval: the worker inherits node's flags, and --input-type would stop it loading.
  const dir = await mkdtemp(join(tmpdir(), 'skiff-decode-exit-'));
  const file = join(dir, 'script.mjs');
  await writeFile(file, script);
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    const code = await new Promise<number | 'hung'>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('hung');
      }, boundMs);
      child.once('close', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode ?? -1);
      });
    });
    return { code, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// Issue 10: warm() unref'd the worker before adding its 'message' listener, which refs it again;
// a thread warmed for a big layer that was then resumed, found stored, or was uncompressed (never
// open()ed) kept `skiff pull` alive forever.
test('a warmed decode thread that is never used does not keep the process alive', async () => {
  // A timer holds the process until the thread is online: that proves it really started (one that
  // failed to load would end on its own), and nothing else is left to hold the process after it.
  const script = `
    import { DecodeThread } from ${JSON.stringify(MODULE)};
    const thread = new DecodeThread();
    if (!thread.warm()) process.exit(3);
    const hold = setTimeout(() => process.exit(5), 5000);
    thread.worker.once('online', () => {
      console.error('decode thread online');
      clearTimeout(hold);
    });`;
  const { code, stderr } = await runScript(script, 10_000);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /decode thread online/);
});

test('nor does one whose layer was decoded and finished', async () => {
  const script = `
    import { gzipSync } from 'node:zlib';
    import { DecodeThread } from ${JSON.stringify(MODULE)};
    const sink = new DecodeThread().open('gzip');
    sink.write(gzipSync(Buffer.alloc(3_000_000, 1)));
    const { size } = await sink.end();
    if (size !== 3_000_000) process.exit(4);`;
  const { code, stderr } = await runScript(script, 10_000);
  assert.equal(code, 0, stderr);
});
