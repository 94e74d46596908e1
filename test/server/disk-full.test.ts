/**
 * Regression: with the data directory on a full filesystem, every small blob push, manifest PUT
 * and PATCH ended in an unhandled ENOSPC 'error' event from the ingest's write stream, which
 * took the server down. Now each such request is answered 507 with a spec error body, the server
 * keeps serving reads, /healthz (checkHealth) says why it is not ready, and once space is freed
 * pushes and interrupted uploads carry on. Needs root for a real 20 MiB tmpfs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, rmdir, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { serveConfig } from '../../src/server/config.ts';
import { checkHealth } from '../../src/server/health.ts';
import { startRegistry, type RunningRegistry } from '../../src/server/serve.ts';
import type { FreeSpaceRule } from '../../src/server/units.ts';
import { MediaTypes } from '../../src/oci/media-types.ts';
import { seededBytes } from '../../src/testing/images.ts';
import { pushBlob, pushManifest } from '../../src/testing/push.ts';
import { blobOf, captureEscapes, expectError, manifestOf, open as openRaw, rangeEnd, startUpload, withDigest } from './http/helpers.ts';
import { digestOf } from '../../src/digest/digest.ts';

const run = promisify(execFile);
const REPO = 'full/app';
/** The serve default, stated here so the health check below uses the same rule. */
const MIN_FREE_SPACE: FreeSpaceRule = { bytes: 1024 ** 3, orPercent: 1 };
/** Set to false once server.ts answers /healthz with checkHealth (a todo test runs, but cannot fail the suite). */
const FULL_MESSAGE = /storage is full \((ENOSPC|SQLITE_FULL)\) while .*; free space on the data directory and retry/;

/** Root and a working `mount -t tmpfs`, or a loud skip (a failure in CI). */
async function skipReason(): Promise<string | false> {
  let reason: string | undefined;
  if (process.getuid?.() !== 0) reason = 'needs root to mount a 20 MiB tmpfs';
  if (reason === undefined) {
    const probe = await mkdtemp(join(tmpdir(), 'skiff-tmpfs-probe-'));
    try {
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
      await run('umount', [probe]);
    } catch (error) {
      reason = `cannot mount a tmpfs: ${(error as Error).message.split('\n')[0]}`;
    } finally {
      await rmdir(probe).catch(() => undefined);
    }
  }
  if (reason === undefined) return false;
  const message = `disk-full test: ${reason}`;
  if (process.env.CI) throw new Error(`${message}; CI must run it`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

const skip = await skipReason();

describe('a registry whose data directory is full', { skip, timeout: 45_000 }, () => {
  let dir: string;
  let mounted = false;
  let reg: RunningRegistry | undefined;
  let url: string;
  let filler: string;
  const logLines: { level: number; msg: string; err?: { message?: string } }[] = [];
  const escapes = captureEscapes();

  // Pushed while there is space.
  const config = blobOf(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }), MediaTypes.ociConfig);
  const layers = [blobOf(seededBytes('layer-a', 300 * 1024), MediaTypes.ociLayerGzip), blobOf(seededBytes('layer-b', 5000), MediaTypes.ociLayerGzip)];
  const manifest = manifestOf({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: layers.map((l) => l.descriptor) });
  // Pushed while the disk is full, then again once it is not.
  const lateBlob = blobOf(seededBytes('late-monolithic', 3000));
  const chunked = blobOf(seededBytes('late-chunked', 6000));
  const closing = blobOf(seededBytes('late-closing', 2500));
  const lateManifest = manifestOf({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: config.descriptor, layers: [layers[1]!.descriptor], annotations: { late: 'yes' } });
  let patchSession: URL;
  let closeSession: URL;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-disk-full-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', dir]);
    mounted = true;
    filler = join(dir, 'filler');
    const log = pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line) as (typeof logLines)[number]) });
    reg = await startRegistry(serveConfig({ listen: '127.0.0.1:0', logLevel: 'info', data: dir, minFreeSpace: MIN_FREE_SPACE }), log);
    url = reg.url;
  });

  after(async () => {
    escapes.dispose();
    await reg?.close();
    if (mounted) {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    }
    await rm(dir, { recursive: true, force: true });
  });

  test('pushes an image and opens two upload sessions while there is space', async () => {
    for (const blob of [config, ...layers]) await pushBlob(url, REPO, blob);
    await pushManifest(url, REPO, 'v1', manifest);
    patchSession = await startUpload(url, REPO);
    const first = await fetch(patchSession, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' }, body: chunked.data.subarray(0, 1000) });
    assert.equal(first.status, 202, await first.text());
    patchSession = new URL(first.headers.get('location')!, url);
    closeSession = await startUpload(url, REPO);
    assert.deepEqual(await checkHealth(reg!.registry, dir, MIN_FREE_SPACE), { status: 'ready' });
  });

  test('the filesystem fills to the brim', async () => {
    const handle = await open(filler, 'w');
    try {
      for (const size of [1024 * 1024, 64 * 1024, 4096, 512, 1]) {
        const buffer = Buffer.alloc(size, 0xaa);
        for (;;) {
          try {
            await handle.write(buffer);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            break;
          }
        }
      }
    } finally {
      await handle.close();
    }
    const stats = await statfs(dir);
    assert.equal(stats.bavail, 0);
  });

  test('a monolithic blob POST gets 507 with a spec error body', async () => {
    const res = await fetch(`${url}/v2/${REPO}/blobs/uploads/?digest=${lateBlob.descriptor.digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: lateBlob.data,
    });
    const entry = await expectError(res, 507, 'UNKNOWN');
    assert.match(entry.message, FULL_MESSAGE);
  });

  test('a 4 MiB blob POST, refused mid-body, gets 507 too', async () => {
    const big = blobOf(seededBytes('late-big', 4 * 1024 * 1024));
    const res = await fetch(`${url}/v2/${REPO}/blobs/uploads/?digest=${big.descriptor.digest}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: big.data,
    });
    const entry = await expectError(res, 507, 'UNKNOWN');
    assert.match(entry.message, FULL_MESSAGE);
  });

  test('a 32 MiB blob POST from a client that sends it all before reading gets 507, not a connection reset', async () => {
    const big = seededBytes('late-bigger', 32 * 1024 * 1024);
    const conn = await openRaw(
      url,
      `POST /v2/${REPO}/blobs/uploads/?digest=${digestOf(big)} HTTP/1.1\r\nHost: registry\r\nContent-Type: application/octet-stream\r\nContent-Length: ${big.length}\r\n\r\n`,
    );
    conn.socket.pause();
    await new Promise<void>((resolve) => conn.socket.write(big, () => resolve()));
    conn.socket.resume();
    const response = await conn.firstResponse();
    conn.socket.destroy();
    assert.match(response, /^HTTP\/1\.1 507 /);
    assert.match(response, /storage is full/);
  });

  test('a PATCH gets 507; the session keeps what reached the disk', async () => {
    const res = await fetch(patchSession, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `1000-${chunked.data.length - 1}` },
      body: chunked.data.subarray(1000),
    });
    const entry = await expectError(res, 507, 'UNKNOWN');
    assert.match(entry.message, FULL_MESSAGE);
    const status = await fetch(patchSession);
    assert.equal(status.status, 204);
    assert.ok(rangeEnd(status.headers.get('range')) >= 999);
  });

  test('a closing PUT with a last chunk gets 507', async () => {
    const res = await fetch(withDigest(closeSession, closing.descriptor.digest), {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: closing.data,
    });
    const entry = await expectError(res, 507, 'UNKNOWN');
    assert.match(entry.message, FULL_MESSAGE);
  });

  test('a manifest PUT gets 507', async () => {
    const res = await fetch(`${url}/v2/${REPO}/manifests/late`, { method: 'PUT', headers: { 'Content-Type': MediaTypes.ociManifest }, body: lateManifest.data });
    const entry = await expectError(res, 507, 'UNKNOWN');
    assert.match(entry.message, FULL_MESSAGE);
  });

  test('the server is still up and serves what was pushed before', async () => {
    assert.deepEqual(escapes.take(), []);
    assert.equal((await fetch(`${url}/v2/`)).status, 200);
    for (const blob of [config, ...layers]) {
      const res = await fetch(`${url}/v2/${REPO}/blobs/${blob.descriptor.digest}`);
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob.data));
    }
    const res = await fetch(`${url}/v2/${REPO}/manifests/v1`, { headers: { Accept: MediaTypes.ociManifest } });
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(manifest.data));
    const tags = await fetch(`${url}/v2/${REPO}/tags/list`);
    assert.deepEqual(await tags.json(), { name: REPO, tags: ['v1'] });
    // Nothing half-written became visible.
    assert.equal((await fetch(`${url}/v2/${REPO}/blobs/${lateBlob.descriptor.digest}`)).status, 404);
    assert.equal((await fetch(`${url}/v2/${REPO}/manifests/late`)).status, 404);
  });

  test('the log says the disk is full', () => {
    const failures = logLines.filter((line) => line.msg === 'request failed');
    assert.ok(failures.length >= 5, `request failed lines: ${failures.length}`);
    for (const line of failures) assert.match(line.err?.message ?? '', FULL_MESSAGE);
  });

  test('checkHealth reports unavailable, naming free space, floor and key', async () => {
    const health = await checkHealth(reg!.registry, dir, MIN_FREE_SPACE);
    assert.equal(health.status, 'unavailable');
    assert.match((health as { reason: string }).reason, /^only 0 B free of 20 MiB on the data directory .*, below the floor of 204\.8 KiB \(minFreeSpace: 1 GiB or 1%, the smaller\)/);
  });

  // TODO(lead): drop `todo` once server.ts answers /healthz with checkHealth.
  test('GET /healthz is 503 while full, with the same reason', async () => {
    const res = await fetch(`${url}/healthz`);
    const body = (await res.json()) as { status: string; reason?: string };
    assert.equal(res.status, 503);
    assert.equal(body.status, 'unavailable');
    assert.match(body.reason ?? '', /^only 0 B free of 20 MiB on the data directory .*minFreeSpace/);
  });

  test('with space freed, pushes and the interrupted uploads complete', async () => {
    await rm(filler);
    assert.deepEqual(await checkHealth(reg!.registry, dir, MIN_FREE_SPACE), { status: 'ready' });
    await pushBlob(url, REPO, lateBlob);
    // Resume the PATCH session from where the registry says it stands.
    let status = await fetch(patchSession);
    let offset = rangeEnd(status.headers.get('range')) + 1;
    const patched = await fetch(patchSession, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${chunked.data.length - 1}` },
      body: chunked.data.subarray(offset),
    });
    assert.equal(patched.status, 202, await patched.text());
    const closed = await fetch(withDigest(new URL(patched.headers.get('location')!, url), chunked.descriptor.digest), { method: 'PUT' });
    assert.equal(closed.status, 201, await closed.text());
    // Retry the closing PUT with what the session still lacks.
    status = await fetch(closeSession);
    offset = status.headers.get('range') === '0-0' ? 0 : rangeEnd(status.headers.get('range')) + 1;
    const retried = await fetch(withDigest(closeSession, closing.descriptor.digest), {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: closing.data.subarray(offset),
    });
    assert.equal(retried.status, 201, await retried.text());
    await pushManifest(url, REPO, 'late', lateManifest);
    for (const blob of [lateBlob, chunked, closing]) {
      const res = await fetch(`${url}/v2/${REPO}/blobs/${blob.descriptor.digest}`);
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(blob.data));
    }
    const tags = await fetch(`${url}/v2/${REPO}/tags/list`);
    assert.deepEqual(await tags.json(), { name: REPO, tags: ['late', 'v1'] });
    assert.deepEqual(escapes.take(), []);
  });

  test('GET /healthz is 200 ready once space is back', async () => {
    const res = await fetch(`${url}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ready' });
  });

  test('every committed file under blobs/ hashes to its name; no ingest leftovers', async () => {
    const base = join(dir, 'blobs');
    const entries = await readdir(base, { recursive: true, withFileTypes: true });
    const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    assert.ok(files.length >= 8, `blobs on disk: ${files.length}`);
    for (const file of files) {
      const [algorithm, , hex] = relative(base, file).split('/');
      assert.equal(algorithm, 'sha256');
      assert.equal(createHash('sha256').update(await readFile(file)).digest('hex'), hex, file);
    }
    assert.deepEqual(await readdir(join(dir, 'ingest')), []);
  });
});
