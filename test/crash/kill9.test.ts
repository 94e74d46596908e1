import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { digestOf } from '../../src/digest/digest.ts';
import { makeImage, seededBytes } from '../../src/testing/images.ts';
import { freePort, stopChild, waitForHttp } from '../../src/testing/peers.ts';
import { pushBlob } from '../../src/testing/push.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));
const CHUNK = 128 * 1024;
const BLOB_SIZE = 4 * CHUNK;

function startSkiff(dataDir: string, port: number): ChildProcess {
  return spawn(SKIFF, ['serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** A chunked upload: POST, PATCH with Content-Range, PUT ?digest=. Returns the digest once 201 came back. */
async function chunkedUpload(base: string, repo: string, data: Buffer): Promise<string> {
  const digest = digestOf(data);
  const post = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  assert.equal(post.status, 202);
  let location = post.headers.get('location')!;
  for (let start = 0; start < data.length; start += CHUNK) {
    const chunk = data.subarray(start, start + CHUNK);
    const patch = await fetch(new URL(location, base), {
      method: 'PATCH',
      headers: { 'Content-Range': `${start}-${start + chunk.length - 1}`, 'Content-Type': 'application/octet-stream' },
      body: chunk,
    });
    assert.equal(patch.status, 202);
    location = patch.headers.get('location')!;
  }
  const put = await fetch(new URL(`${location}?digest=${digest}`, base), { method: 'PUT' });
  assert.equal(put.status, 201);
  return digest;
}

test('kill -9 during concurrent chunked uploads and manifest pushes loses nothing committed', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'skiff-crash-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let child = startSkiff(dataDir, port);
  try {
    await waitForHttp(`${base}/v2/`);

    // One upload left deliberately unfinished: two chunks acknowledged before the crash.
    const pending = seededBytes('pending', BLOB_SIZE);
    const post = await fetch(`${base}/v2/crash/pending/blobs/uploads/`, { method: 'POST' });
    const pendingLocation = post.headers.get('location')!;
    for (const start of [0, CHUNK]) {
      const res = await fetch(new URL(pendingLocation, base), {
        method: 'PATCH',
        headers: { 'Content-Range': `${start}-${start + CHUNK - 1}` },
        body: pending.subarray(start, start + CHUNK),
      });
      assert.equal(res.status, 202);
    }

    const committedBlobs = new Map<string, string>(); // digest → repo
    const committedManifests = new Map<string, string>(); // digest → repo:tag
    let stop = false;
    const worker = async (id: number) => {
      for (let round = 0; !stop; round++) {
        const repo = `crash/w${id}`;
        try {
          const digest = await chunkedUpload(base, repo, seededBytes(`w${id}-r${round}`, BLOB_SIZE));
          committedBlobs.set(digest, repo);
          const image = await makeImage({ seed: `w${id}-m${round}`, layers: 1, layerSize: 2048 });
          for (const item of image.blobs) await pushBlob(base, repo, item);
          const res = await fetch(`${base}/v2/${repo}/manifests/t${round}`, {
            method: 'PUT',
            headers: { 'Content-Type': image.manifest.descriptor.mediaType },
            body: image.manifest.data,
          });
          if (res.status === 201) committedManifests.set(image.manifest.descriptor.digest, `${repo}:t${round}`);
        } catch {
          return; // the server died under us: expected
        }
      }
    };
    const workers = Array.from({ length: 6 }, (_, i) => worker(i));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    process.kill(child.pid!, 'SIGKILL');
    stop = true;
    await Promise.all(workers);
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    assert.ok(committedBlobs.size > 0, 'some uploads completed before the kill');
    assert.ok(committedManifests.size > 0, 'some manifests were pushed before the kill');

    child = startSkiff(dataDir, port);
    await waitForHttp(`${base}/v2/`);

    // Nothing half-written is visible: every file under blobs/ hashes to its own name.
    for (const prefix of await readdir(join(dataDir, 'blobs', 'sha256'))) {
      for (const hex of await readdir(join(dataDir, 'blobs', 'sha256', prefix))) {
        const bytes = await readFile(join(dataDir, 'blobs', 'sha256', prefix, hex));
        assert.equal(createHash('sha256').update(bytes).digest('hex'), hex, `blob file ${hex} is whole`);
      }
    }
    for (const [digest, repo] of committedBlobs) {
      const res = await fetch(`${base}/v2/${repo}/blobs/${digest}`);
      assert.equal(res.status, 200, `committed blob ${digest} readable`);
      assert.equal(digestOf(Buffer.from(await res.arrayBuffer())), digest);
    }
    for (const [digest, ref] of committedManifests) {
      const [repo, tag] = ref.split(':') as [string, string];
      const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200, `committed manifest ${ref} readable`);
      assert.equal(digestOf(Buffer.from(await res.arrayBuffer())), digest);
      assert.equal(res.headers.get('docker-content-digest'), digest);
    }

    // The unfinished session survived the restart and continues where it stood.
    const status = await fetch(new URL(pendingLocation, base));
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${2 * CHUNK - 1}`);
    const rest = await fetch(new URL(pendingLocation, base), {
      method: 'PATCH',
      headers: { 'Content-Range': `${2 * CHUNK}-${BLOB_SIZE - 1}` },
      body: pending.subarray(2 * CHUNK),
    });
    assert.equal(rest.status, 202);
    const put = await fetch(new URL(`${rest.headers.get('location')}?digest=${digestOf(pending)}`, base), { method: 'PUT' });
    assert.equal(put.status, 201);
    const read = await fetch(`${base}/v2/crash/pending/blobs/${digestOf(pending)}`);
    assert.deepEqual(Buffer.from(await read.arrayBuffer()), pending);
  } finally {
    await stopChild(child);
    await rm(dataDir, { recursive: true, force: true });
  }
});
