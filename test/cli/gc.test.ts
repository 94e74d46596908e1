/**
 * `skiff gc` as a user (or cron) runs it (issue 13): stdout and stderr go to files, the process
 * exits in every case with the right code, `--dry-run` prints the table and deletes nothing, a real
 * run deletes exactly what the table said, and a `--data` with no registry is a clear exit 2. All of
 * it beside a `skiff serve` child on the same data directory while pushes go on: none of them
 * fails, and every image pushed meanwhile pulls whole afterwards.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import type { Digest } from '../../src/digest/digest.ts';
import { humanSize } from '../../src/images/human.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { freePort, stopChild, waitForHttp } from '../../src/testing/peers.ts';
import { pushImage } from '../../src/testing/push.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));
/** A `skiff gc` still running after this is taken for hung: killed, and the test fails. */
const EXIT_TIMEOUT_MS = 30_000;
/** The grace period of these runs: the background pushes' blobs are younger, the deleted image's older. */
const GRACE = '2s';
const GRACE_MS = 2000;
/** What main.ts prints when it had to end a process that a finished command left running. */
const LINGERED = /kept the process alive/;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('skiff gc, run as cron runs it, beside a running skiff serve', () => {
  let work: string;
  let dataDir: string;
  let base: string;
  let server: ReturnType<typeof spawn> | undefined;
  let serverLog: string;
  let runs = 0;
  let kept: TestImage;
  let doomed: TestImage;
  /** The blobs only the deleted image used: exactly what the collector must take. */
  let doomedDigests: Digest[];

  // Pushes that go on while the collector runs.
  let pushing = true;
  let background: Promise<void> | undefined;
  const pushed: { tag: string; image: TestImage }[] = [];
  const pushFailures: string[] = [];

  /** Runs bin/skiff with stdout and stderr redirected to files; asserts it exits on its own. */
  async function skiff(args: string[]): Promise<Finished> {
    const n = ++runs;
    const paths = { out: join(work, `${n}.out`), err: join(work, `${n}.err`) };
    const fds = { out: openSync(paths.out, 'w'), err: openSync(paths.err, 'w') };
    const started = Date.now();
    const child = spawn(SKIFF, args, { stdio: ['ignore', fds.out, fds.err] });
    closeSync(fds.out);
    closeSync(fds.err);
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_TIMEOUT_MS);
    const [code, signal] = await exited;
    clearTimeout(timer);
    const result = { code, signal, stdout: await readFile(paths.out, 'utf8'), stderr: await readFile(paths.err, 'utf8'), ms: Date.now() - started };
    const said = `skiff ${args.join(' ')} (exit ${code ?? signal})\n${result.stdout}${result.stderr}`;
    assert.notEqual(signal, 'SIGKILL', `still running after ${EXIT_TIMEOUT_MS / 1000} s: ${said}`);
    assert.doesNotMatch(result.stderr, LINGERED, `the command left something running: ${said}`);
    return result;
  }

  const stored = async (digest: Digest): Promise<boolean> => (await new FsBlobStore(dataDir).stat(digest)) !== undefined;

  /** The digests of the table's `blob` rows. */
  function blobRows(stdout: string): string[] {
    return stdout.split('\n').filter((line) => /^blob\s/.test(line));
  }
  const digestOfRow = (row: string): string => /sha256:[0-9a-f]{64}/.exec(row)![0];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'skiff-gc-cli-'));
    dataDir = join(work, 'data');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    serverLog = join(work, 'serve.log');
    const log = openSync(serverLog, 'w');
    // The server's own collector is off: what goes is what `skiff gc` takes.
    server = spawn(SKIFF, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--gc-interval', '0', '--log-level', 'warn'], { stdio: ['ignore', log, log] });
    closeSync(log);
    await waitForHttp(`${base}/v2/`);

    kept = await makeImage({ seed: 'cli-gc-kept', layerSeeds: ['cli-gc-base', 'cli-gc-kept-own'], layerSize: 4096 });
    doomed = await makeImage({ seed: 'cli-gc-doomed', layerSeeds: ['cli-gc-base', 'cli-gc-doomed-own'], layerSize: 4096 });
    await pushImage(base, 'cli/app', kept, 'kept');
    await pushImage(base, 'cli/app', doomed, 'doomed');
    const res = await fetch(`${base}/v2/cli/app/manifests/${doomed.manifest.descriptor.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 202);
    doomedDigests = [doomed.manifest.descriptor.digest, doomed.config.descriptor.digest, doomed.layers[1]!.descriptor.digest];

    // Pushes go on from now to the end: each image's blobs, then its manifest, well inside the grace period.
    background = (async () => {
      for (let i = 0; pushing; i++) {
        const image = await makeImage({ seed: `cli-gc-busy-${i}`, layerSeeds: ['cli-gc-base', `cli-gc-busy-${i}`], layerSize: 2048 });
        try {
          await pushImage(base, 'cli/busy', image, `b${i}`);
          pushed.push({ tag: `b${i}`, image });
        } catch (error) {
          pushFailures.push(`b${i}: ${(error as Error).message}`);
        }
        await sleep(20);
      }
    })();
    // The deleted image's blobs become due once the grace period has passed since the delete.
    await sleep(GRACE_MS + 500);
  });

  after(async () => {
    pushing = false;
    await background;
    if (server) await stopChild(server);
    await rm(work, { recursive: true, force: true });
  });

  test('--dry-run prints the table of what would go and deletes nothing', async (t) => {
    const run = await skiff(['gc', '--data', dataDir, '--grace', GRACE, '--dry-run']);
    for (const line of run.stdout.trimEnd().split('\n')) t.diagnostic(line);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '', 'nothing on stderr');
    const lines = run.stdout.split('\n');
    assert.match(lines[0]!, /^KIND\s+REPOSITORY\s+TARGET\s+SIZE\s+REASON\s*$/, run.stdout);
    const rows = blobRows(run.stdout);
    assert.deepEqual(rows.map(digestOfRow).sort(), [...doomedDigests].sort(), `exactly the deleted image's own blobs:\n${run.stdout}`);
    for (const row of rows) {
      const digest = digestOfRow(row);
      const blob = [doomed.manifest, ...doomed.blobs].find((b) => b.descriptor.digest === digest)!;
      assert.match(row, new RegExp(`^blob\\s+-\\s+${digest}\\s+${humanSize(blob.data.length).replace('.', '\\.')}\\s+unreferenced\\s*$`), row);
    }
    assert.match(run.stdout, /^gc \(dry run\): reviewed \d+ digests; would delete 0 tags, 0 manifests, 3 blobs \(/m);
    for (const digest of doomedDigests) assert.ok(await stored(digest), `${digest} still stored after a dry run`);

    // A second dry run says the same: the first wrote nothing.
    const again = await skiff(['gc', '--data', dataDir, '--grace', GRACE, '--dry-run']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(blobRows(again.stdout).map(digestOfRow).sort(), [...doomedDigests].sort());
  });

  test('a real run deletes exactly what the dry run listed; the next finds nothing', async () => {
    const run = await skiff(['gc', '--data', dataDir, '--grace', GRACE]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '', 'nothing on stderr');
    assert.match(run.stdout.split('\n')[0]!, /^KIND\s+REPOSITORY\s+TARGET\s+SIZE\s+REASON\s*$/);
    assert.deepEqual(blobRows(run.stdout).map(digestOfRow).sort(), [...doomedDigests].sort(), run.stdout);
    assert.match(run.stdout, /^gc: reviewed \d+ digests; deleted 0 tags, 0 manifests, 3 blobs \(/m);
    for (const digest of doomedDigests) assert.equal(await stored(digest), false, `${digest} deleted`);
    assert.deepEqual(await readdir(join(dataDir, 'gc-trash')).catch(() => []), [], 'gc-trash is empty');

    // The kept image, and the base layer it shares with the deleted one, pull whole through the server.
    const manifest = await fetch(`${base}/v2/cli/app/manifests/kept`, { headers: { Accept: kept.manifest.descriptor.mediaType } });
    assert.equal(manifest.status, 200);
    assert.equal(sha256(Buffer.from(await manifest.arrayBuffer())), kept.manifest.descriptor.digest);
    for (const blob of kept.blobs) {
      const res = await fetch(`${base}/v2/cli/app/blobs/${blob.descriptor.digest}`);
      assert.equal(res.status, 200);
      assert.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.descriptor.digest);
    }
    assert.equal((await fetch(`${base}/v2/cli/app/manifests/doomed`, { method: 'HEAD' })).status, 404);

    const next = await skiff(['gc', '--data', dataDir, '--grace', GRACE]);
    assert.equal(next.code, 0, next.stderr);
    assert.deepEqual(blobRows(next.stdout), [], next.stdout);
    assert.doesNotMatch(next.stdout, /^KIND/m, 'no table when nothing goes');
    assert.match(next.stdout, /^gc: reviewed \d+ digests; deleted 0 tags, 0 manifests, 0 blobs \(0B\)/m);
  });

  test('--data with no registry: exit 2 and a clear message, nothing created', async () => {
    const empty = join(work, 'empty');
    await mkdir(empty);
    for (const dir of [empty, join(work, 'does-not-exist')]) {
      const run = await skiff(['gc', '--data', dir]);
      assert.equal(run.code, 2, `exit 2 for ${dir}: ${run.stdout}${run.stderr}`);
      assert.equal(run.stdout, '');
      assert.equal(run.stderr, `skiff: configuration error:\n${dir}: no registry here (no ${join(dir, 'metadata.db')}); give the --data of a skiff serve\n`);
      await assert.rejects(access(join(dir, 'metadata.db')), 'no database created');
    }
    assert.deepEqual(await readdir(empty), [], 'the empty directory stays empty');
    // --dry-run does not change that.
    const dry = await skiff(['gc', '--data', empty, '--dry-run']);
    assert.equal(dry.code, 2);
  });

  test('the pushes that went on meanwhile all succeeded and pull whole', async (t) => {
    pushing = false;
    await background;
    t.diagnostic(`${pushed.length} images pushed while skiff gc ran`);
    assert.deepEqual(pushFailures, [], 'no push failed while skiff gc ran');
    assert.ok(pushed.length >= 5, `pushes went on (${pushed.length})`);
    for (const { tag, image } of pushed) {
      const manifest = await fetch(`${base}/v2/cli/busy/manifests/${tag}`, { headers: { Accept: image.manifest.descriptor.mediaType } });
      assert.equal(manifest.status, 200, tag);
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.descriptor.digest);
      for (const blob of image.blobs) {
        const res = await fetch(`${base}/v2/cli/busy/blobs/${blob.descriptor.digest}`);
        assert.equal(res.status, 200, `${tag} ${blob.descriptor.digest}`);
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.descriptor.digest);
      }
    }
    // The server stops cleanly and logged no error.
    const child = server!;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await stopChild(child);
    server = undefined;
    assert.equal(await exited, 0);
    assert.doesNotMatch(await readFile(serverLog, 'utf8'), /"level":(50|60)/, 'no error in the server log');
  });
});
