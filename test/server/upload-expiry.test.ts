/**
 * Upload sessions expire: abandoned ones (plain POSTs and `?mount=` misses) are purged after
 * uploadExpiry of inactivity, bytes and row, also across a restart; a session that keeps
 * receiving chunks, or has a chunk streaming in right now, is never touched.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { digestOf } from '../../src/digest/digest.ts';
import { UploadReaper } from '../../src/server/upload-reaper.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { expectError, sleep, startUpload, unknownDigest, withDigest } from './http/helpers.ts';

const EXPIRY = 1000; // passes every 250 ms

async function waitFor(what: string, check: () => Promise<boolean>, timeout = 4000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const sessionId = (url: URL): string => url.pathname.split('/').at(-1)!;

describe('upload session expiry', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry({ uploadExpiry: EXPIRY });
  });
  after(async () => {
    await reg.stop();
  });

  const ingestFile = (url: URL) => join(reg.dataDir, 'ingest', sessionId(url));
  const row = (url: URL) => reg.registry.metadata.getUpload(sessionId(url));
  // The row goes before the bytes, so both are checked.
  const purged = async (url: URL) => (await row(url)) === undefined && !existsSync(ingestFile(url));

  async function assertPurged(url: URL): Promise<void> {
    await expectError(await fetch(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    assert.equal(existsSync(ingestFile(url)), false, 'ingest bytes removed');
    assert.equal(await row(url), undefined, 'session row removed');
  }

  async function patch(url: URL, body: Buffer, start: number): Promise<void> {
    const res = await fetch(url, { method: 'PATCH', headers: { 'Content-Range': `${start}-${start + body.length - 1}` }, body });
    assert.equal(res.status, 202, await res.text());
  }

  async function finishAndCheck(url: URL, repo: string, content: Buffer): Promise<void> {
    const digest = digestOf(content);
    const put = await fetch(withDigest(url, digest), { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    const got = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), content);
  }

  test('a session idle longer than uploadExpiry is purged: 404, bytes and row gone', async () => {
    const url = await startUpload(reg.url, 'expiry/idle');
    await patch(url, Buffer.from('some bytes'), 0);
    assert.equal(existsSync(ingestFile(url)), true);
    assert.equal((await fetch(url)).status, 204, 'alive before the expiry');
    await waitFor('the idle session to be purged', () => purged(url));
    await assertPurged(url);
  });

  test('a ?mount= miss opens a session that is purged the same way', async () => {
    const res = await fetch(`${reg.url}/v2/expiry/mount/blobs/uploads/?mount=${unknownDigest('mount')}&from=expiry/elsewhere`, { method: 'POST' });
    assert.equal(res.status, 202, await res.text());
    const url = new URL(res.headers.get('location')!, reg.url);
    assert.equal(existsSync(ingestFile(url)), false, 'a session has no file until its first byte');
    await waitFor('the mount-miss session to be purged', () => purged(url));
    await assertPurged(url);
  });

  test('a session that keeps receiving PATCHes outlives the expiry and completes', async () => {
    const control = await startUpload(reg.url, 'expiry/control');
    const url = await startUpload(reg.url, 'expiry/busy');
    const chunks: Buffer[] = [];
    let offset = 0;
    // 8 chunks 300 ms apart: 2.4 s in all, never 1 s idle.
    for (let i = 0; i < 8; i++) {
      const chunk = Buffer.from(`chunk ${i};`);
      await patch(url, chunk, offset);
      offset += chunk.length;
      chunks.push(chunk);
      await sleep(300);
    }
    assert.equal(await purged(control), true, 'the reaper did run meanwhile');
    assert.equal(await purged(url), false);
    await finishAndCheck(url, 'expiry/busy', Buffer.concat(chunks));
  });

  test('a session with a PATCH still streaming when the age passes is not purged, and completes', async () => {
    const control = await startUpload(reg.url, 'expiry/control');
    const url = await startUpload(reg.url, 'expiry/slow');
    const first = Buffer.from('first half, sent at once; ');
    const second = Buffer.from('second half, sent after the session was long past its expiry');
    const response = new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write(first);
      // The body stalls well past expiry + one interval; the control session proves passes ran.
      void waitFor('the control session to be purged', () => purged(control))
        .then(() => sleep(EXPIRY))
        .then(() => req.end(second), (error: unknown) => req.destroy(error as Error));
    });
    assert.equal(await response, 202);
    assert.equal(await purged(url), false, 'the in-flight session survived');
    await finishAndCheck(url, 'expiry/slow', Buffer.concat([first, second]));
  });

  test('Registry.expireUpload re-reads the session: activity after the cut-off keeps it', async () => {
    const url = await startUpload(reg.url, 'expiry/recheck');
    const idleSince = Date.now() + 1; // the session, as listed, is stale
    await sleep(5);
    await reg.registry.metadata.setUploadOffset(sessionId(url), 0); // a request finished meanwhile
    assert.equal(await reg.registry.expireUpload(sessionId(url), idleSince), false);
    assert.equal(await reg.registry.expireUpload(sessionId(url), Date.now() + 1), true);
    await assertPurged(url);
    assert.equal(await reg.registry.expireUpload(sessionId(url), Date.now() + 1), false, 'already gone');
  });
});

test('sessions left before a restart are purged by the restarted registry', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'skiff-expiry-'));
  try {
    const first = await startTestRegistry({ dataDir }); // default expiry: 24 h
    const urls = [await startUpload(first.url, 'restart/a'), await startUpload(first.url, 'restart/b')];
    const patched = await fetch(urls[1]!, { method: 'PATCH', body: Buffer.from('kept across the restart') });
    assert.equal(patched.status, 202);
    await first.stop();
    assert.equal((await readdir(join(dataDir, 'ingest'))).length, 1, 'only the session that received bytes has a file');

    const second = await startTestRegistry({ dataDir, uploadExpiry: EXPIRY });
    try {
      for (const url of urls) assert.equal((await fetch(new URL(url.pathname, second.url))).status, 204, 'sessions survive the restart');
      const left = async () => (await second.registry.metadata.staleUploads(Date.now() + 1, 10)).length + (await readdir(join(dataDir, 'ingest'))).length;
      await waitFor('both sessions to be purged, rows and bytes', async () => (await left()) === 0);
      for (const url of urls) await expectError(await fetch(new URL(url.pathname, second.url)), 404, 'BLOB_UPLOAD_UNKNOWN');
      assert.deepEqual(await readdir(join(dataDir, 'ingest')), []);
    } finally {
      await second.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

test('a pass works through every stale session in batches and logs one count', async () => {
  const reg = await startTestRegistry(); // its own reaper waits 24 h
  try {
    for (let i = 0; i < 7; i++) await startUpload(reg.url, 'batch/app');
    const limits: number[] = [];
    const metadata = reg.registry.metadata;
    const staleUploads = metadata.staleUploads.bind(metadata);
    metadata.staleUploads = (idleSince, limit) => {
      limits.push(limit);
      return staleUploads(idleSince, limit);
    };
    const lines: { level: number; msg: string; purged?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    // A clock 5 s ahead makes every session 5 s idle without sleeping.
    const reaper = new UploadReaper(reg.registry, { expiry: EXPIRY, log, batchSize: 3, now: () => Date.now() + 5000 });
    assert.equal(reaper.interval, EXPIRY / 4);
    assert.equal(new UploadReaper(reg.registry, { expiry: 24 * 3600_000, log }).interval, 10 * 60_000, 'at most 10 minutes apart');

    assert.equal(await reaper.sweep(), 7);
    assert.deepEqual(limits, [3, 3, 3], 'three batches: 3 + 3 + 1');
    assert.deepEqual(await readdir(join(reg.dataDir, 'ingest')), []);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 30, 'info');
    assert.equal(lines[0]!.purged, 7);

    assert.equal(await reaper.sweep(), 0);
    assert.equal(lines.length, 1, 'a pass that purged nothing stays quiet');
    await reaper.stop();
  } finally {
    await reg.stop();
  }
});
