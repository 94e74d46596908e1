import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { digestOf } from '../../src/digest/digest.ts';
import { MediaTypes } from '../../src/oci/media-types.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import type { Blob, TestImage } from '../../src/testing/images.ts';
import { layerTar } from '../../src/testing/layers.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

/*
 * Issue 10 §1: `skiff pull` stayed alive forever after a successful pull whenever a layer of 32 MiB
 * or more was involved and the decode thread was started but never used: a resumed layer, a second
 * pull of the same image at the same time, an uncompressed layer. Each command's big path runs here
 * as a process with stdout and stderr going to files, as under cron, and must exit soon after its
 * last output, without main.ts's last-resort exit having to step in.
 */

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** The bound after the last output (or the start, for a silent command) within which a command must be gone. */
const EXIT_BOUND_MS = 10_000;
/**
 * A command silent this long is taken for hung and killed. Longer than the bound: a sync is
 * silent while it copies, and on a loaded 2-core machine a 64 MiB copy once took over 10 s.
 */
const SILENCE_CAP_MS = 45_000;
const LAYER_BYTES = 64 * 1024 * 1024;
/** What main.ts prints when it had to end a process that a finished command left running. */
const LINGERED = /kept the process alive/;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

let logs: string;
let runs = 0;
let env: NodeJS.ProcessEnv;

/**
 * Runs `skiff <args>` with stdout and stderr redirected to files. Fails if it exits later than
 * EXIT_BOUND_MS after its last output, or had to be ended by main.ts's last resort; kills it when
 * silent for SILENCE_CAP_MS. `hold` lets a test act while it runs.
 */
async function skiff(args: string[], options: { stdin?: string; hold?: (pid: number) => Promise<void> } = {}): Promise<Finished> {
  const n = ++runs;
  const paths = { out: join(logs, `${n}.out`), err: join(logs, `${n}.err`) };
  const fds = { in: options.stdin ? openSync(options.stdin, 'r') : 'ignore', out: openSync(paths.out, 'w'), err: openSync(paths.err, 'w') } as const;
  const started = Date.now();
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, ...args], { stdio: [fds.in, fds.out, fds.err], env });
  for (const fd of Object.values(fds)) if (typeof fd === 'number') closeSync(fd);
  const exit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
  await options.hold?.(child.pid!);
  const lastOutput = async () => Math.max(started, ...(await Promise.all(Object.values(paths).map(async (p) => (await stat(p)).mtimeMs))));
  let hung = false;
  const watch = setInterval(async () => {
    if (child.exitCode === null && child.signalCode === null && Date.now() - (await lastOutput()) > SILENCE_CAP_MS) {
      hung = true;
      child.kill('SIGKILL');
    }
  }, 200);
  const [code, signal] = await exit.finally(() => clearInterval(watch));
  const lingered = Date.now() - (await lastOutput());
  const result = { code, signal, stdout: await readFile(paths.out, 'utf8'), stderr: await readFile(paths.err, 'utf8') };
  const said = `skiff ${args.join(' ')}\n${result.stdout}${result.stderr}`;
  assert.ok(!hung, `silent and still running after ${SILENCE_CAP_MS / 1000} s: ${said}`);
  if (signal !== 'SIGKILL') assert.ok(lingered < EXIT_BOUND_MS, `exited ${lingered} ms after its last output: ${said}`);
  assert.doesNotMatch(result.stderr, LINGERED, `the command left something running: ${said}`);
  return result;
}

/** An image with one layer: `tar` as gzip, zstd or as it is. */
function bigImage(tar: Buffer, compression: 'gzip' | 'zstd' | 'none'): TestImage {
  const blob = (mediaType: string, data: Buffer): Blob => ({ descriptor: { mediaType, digest: digestOf(data), size: data.length }, data });
  const layer =
    compression === 'gzip'
      ? blob(MediaTypes.ociLayerGzip, gzipSync(tar, { level: 1 }))
      : compression === 'zstd'
        ? blob(MediaTypes.ociLayerZstd, zstdCompressSync(tar))
        : blob(MediaTypes.ociLayer, tar);
  const diffId = digestOf(tar);
  const configJson = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] }, config: { Labels: { compression } } };
  const config = blob(MediaTypes.ociConfig, Buffer.from(JSON.stringify(configJson)));
  const manifest = blob(MediaTypes.ociManifest, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: [layer.descriptor] })));
  return { blobs: [config, layer], config, layers: [layer], manifest, diffIds: [diffId] };
}

describe('every command exits once its work is done, big layers included (issue 10)', { timeout: 240_000 }, () => {
  let registry: TestRegistry;
  let other: TestRegistry;
  let proxy: FaultProxy;
  let proxied: string;
  let work: string;
  const images = {} as Record<'gzip' | 'zstd' | 'none', TestImage>;
  const ref = (kind: string, host = registry.address) => `${host}/big/${kind}:v1`;
  const store = (name: string) => ['--root', join(work, name)];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-exits-'));
    logs = join(work, 'logs');
    await writeFile(join(work, 'password'), 'secret\n');
    await mkdir(logs);
    // No credentials or mirrors from the machine running the tests.
    env = { ...process.env, DOCKER_CONFIG: join(work, 'docker'), XDG_CONFIG_HOME: join(work, 'config'), SKIFF_MIRROR_CONFIG: '' };
    registry = await startTestRegistry();
    other = await startTestRegistry();
    proxy = new FaultProxy(registry.url);
    proxied = await proxy.start();
    // Random bytes: the compressed layers stay above the 32 MiB that starts the decode thread.
    const tar = await layerTar([{ name: 'big.bin', data: randomBytes(LAYER_BYTES) }]);
    for (const kind of ['gzip', 'zstd', 'none'] as const) {
      images[kind] = bigImage(tar, kind);
      await pushImage(registry.url, `big/${kind}`, images[kind], 'v1');
    }
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
    await other?.stop();
    await rm(work, { recursive: true, force: true });
  });

  for (const kind of ['gzip', 'zstd', 'none'] as const) {
    test(`pull of a 64 MiB ${kind === 'none' ? 'uncompressed' : kind} layer`, async () => {
      const run = await skiff(['pull', '-q', ...store('main'), ref(kind)]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, `${ref(kind)}\n`);
    });
  }

  test('pull resumed after kill -9 mid-layer (the resumed layer is measured from the file)', async () => {
    const layer = images.gzip.layers[0]!.descriptor;
    const partial = join(work, 'resumed', '.skiff', 'ingest', layer.digest.replace(':', '-'));
    proxy.decide = (r) => (r.url.endsWith(`/blobs/${layer.digest}`) ? { stallAfterBytes: 16 * 1024 * 1024 } : undefined);
    const first = await skiff(['pull', '--progress', 'plain', ...store('resumed'), ref('gzip', proxied)], {
      hold: async (pid) => {
        for (let i = 0; i < 600 && (await stat(partial).then((s) => s.size, () => 0)) < 16 * 1024 * 1024; i++) await new Promise((resolve) => setTimeout(resolve, 25));
        process.kill(pid, 'SIGKILL');
      },
    });
    assert.equal(first.signal, 'SIGKILL');
    proxy.decide = () => undefined;
    proxy.requests.length = 0;
    const second = await skiff(['pull', '--progress', 'plain', ...store('resumed'), ref('gzip', proxied)]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(proxy.requests.find((r) => r.url.endsWith(`/blobs/${layer.digest}`))?.range, `bytes=${16 * 1024 * 1024}-`);
    assert.match(second.stdout, /Status: Downloaded newer image for/);
  });

  test('two pulls of the same image at once on one store: both exit', async () => {
    const runs = await Promise.all([0, 1].map(() => skiff(['pull', '-q', ...store('twice'), ref('zstd')])));
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
  });

  test('pull -a of the repository, everything already there', async () => {
    const run = await skiff(['pull', '-a', '--progress', 'plain', ...store('main'), `${registry.address}/big/none`]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /Image is up to date/);
  });

  test('tag and push a 64 MiB layer to another registry', async () => {
    const target = ref('pushed', other.address);
    assert.equal((await skiff(['tag', ...store('main'), ref('gzip'), target])).code, 0);
    const run = await skiff(['push', ...store('main'), target]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /: Pushed\n/);
  });

  test('save, load, images, inspect, history, unpack and rmi of the big image', async () => {
    const archive = join(work, 'big.tar');
    assert.equal((await skiff(['save', ...store('main'), '-o', archive, ref('zstd')])).code, 0);
    const loaded = await skiff(['load', ...store('loaded'), '-i', archive]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /Loaded image/);
    for (const args of [['images'], ['inspect', ref('zstd')], ['history', ref('zstd')]]) {
      const run = await skiff([...args, ...store('loaded')]);
      assert.equal(run.code, 0, run.stderr);
    }
    const unpacked = await skiff(['unpack', ...store('loaded'), ref('zstd'), join(work, 'rootfs')]);
    assert.equal(unpacked.code, 0, unpacked.stderr);
    assert.equal((await stat(join(work, 'rootfs', 'big.bin'))).size, LAYER_BYTES);
    const removed = await skiff(['rmi', ...store('loaded'), ref('zstd')]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /^Untagged: .*\nDeleted: sha256:/);
  });

  test('a failing command exits too (a save of an image that is not there)', async () => {
    const run = await skiff(['save', ...store('main'), '-o', join(work, 'none.tar'), 'nothere:1']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /No such image/);
  });

  test('sync of a 64 MiB layer, then its dry run', async () => {
    const auth = join(work, 'auth.json');
    const rules = join(work, 'images.json');
    await writeFile(auth, '{}');
    await writeFile(rules, JSON.stringify({ [ref('zstd')]: `${other.address}/synced/zstd` }));
    const run = await skiff(['sync', '--auth', auth, '--images', rules]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const dry = await skiff(['sync', '--auth', auth, '--images', rules, '--dry-run']);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /dry run: 1 image\(s\), 0 to copy, 1 up to date/);
  });

  test('login and logout', async () => {
    const login = await skiff(['login', '-u', 'someone', '--password-stdin', registry.address], { stdin: join(work, 'password') });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    assert.equal((await skiff(['logout', registry.address])).code, 0);
  });
});

