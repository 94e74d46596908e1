import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { digestOf } from '../../src/digest/digest.ts';
import { InvalidDigestError } from '../../src/digest/digest.ts';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { blobStoreSuite } from './blob-store-suite.ts';

/** Every regular file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'skiff-fsblob-'));
}

blobStoreSuite('FsBlobStore', async () => {
  const root = await tempRoot();
  const store = await new FsBlobStore(root).init();
  return {
    store,
    reopen: () => new FsBlobStore(root).init(),
    ingestLeftovers: () => filesUnder(join(root, 'ingest')),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe('FsBlobStore specifics', () => {
  test('release: each chunk is handed back once its write is done, never one a tap kept', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      const chunks = [randomBytes(70_000), randomBytes(1), randomBytes(300_000)];
      for (const keepsChunks of [false, true]) {
        const released: Buffer[] = [];
        const ingest = await store.ingest(`release-${keepsChunks}`);
        const tap = { keepsChunks, write: () => true, drained: async () => undefined };
        await ingest.append(Readable.from(chunks), {
          offset: 0,
          tap,
          release: (chunk) => {
            // Handed back only after the bytes are in the file.
            released.push(chunk);
          },
        });
        assert.deepEqual(released, keepsChunks ? [] : chunks);
        await ingest.commit(digestOf(Buffer.concat(chunks)));
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('layout: blobs/<alg>/<2 hex>/<hex>', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      const digest = digestOf('layout');
      await store.put(Readable.from([Buffer.from('layout')]), digest, 6);
      const hex = digest.slice('sha256:'.length);
      assert.equal(store.blobPath(digest), join(root, 'blobs', 'sha256', hex.slice(0, 2), hex));
      assert.deepEqual(await filesUnder(join(root, 'blobs')), [join('sha256', hex.slice(0, 2), hex)]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('a failed put leaves no file in blobs/ nor in ingest/', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      await assert.rejects(store.put(Readable.from([Buffer.from('real')]), digestOf('fake'), 4));
      await assert.rejects(store.put(Readable.from([Buffer.from('too long')]), digestOf('too long'), 3));
      assert.deepEqual(await filesUnder(join(root, 'blobs')), []);
      assert.deepEqual(await filesUnder(join(root, 'ingest')), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('20 concurrent puts of the same content leave exactly one file', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      const data = randomBytes(128 * 1024);
      const digest = digestOf(data);
      await Promise.all(Array.from({ length: 20 }, () => store.put(Readable.from([data]), digest, data.length)));
      const files = await filesUnder(join(root, 'blobs'));
      assert.equal(files.length, 1);
      assert.deepEqual(await filesUnder(join(root, 'ingest')), []);
      assert.ok((await store.readSmall(digest, data.length)).equals(data));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('an ingest file left by a crash is resumed from its size', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      await writeFile(join(root, 'ingest', 'crashed'), 'partial-and-garbage');
      const ingest = await store.ingest('crashed');
      assert.equal(await ingest.size(), 19);
      await ingest.append(Readable.from([Buffer.from('!')]), { offset: 7 }); // the server had acknowledged 7 bytes
      const result = await ingest.commit(digestOf('partial!'), 8);
      assert.equal((await store.readSmall(result.digest, 8)).toString(), 'partial!');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('ingest refs cannot escape the ingest directory', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      for (const ref of ['../escape', '..', 'a/b', '', 'a\u0000b', 'x'.repeat(129), '.hidden', 'a b']) {
        await assert.rejects(store.ingest(ref), /invalid ingest ref/, JSON.stringify(ref));
      }
      assert.deepEqual(await filesUnder(root), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('blobPath refuses invalid digests', async () => {
    const store = new FsBlobStore('/nonexistent');
    assert.throws(() => store.blobPath('sha256:../../etc/passwd' as never), InvalidDigestError);
    await assert.rejects(store.stat('sha256:abc' as never), InvalidDigestError);
  });
});

describe('FsBlobStore: a source that breaks keeps the running hash', () => {
  test('the hash covers exactly the bytes on disk, so the resumed append continues it and commit reads nothing back', async () => {
    const root = await tempRoot();
    try {
      const store = await new FsBlobStore(root).init();
      const data = randomBytes(3 * 1024 * 1024);
      const ingest = await store.ingest('broken-source');
      const breaking = new Readable({
        read() {
          this.push(data.subarray(0, 1024 * 1024));
          this.destroy(new Error('connection reset'));
        },
      });
      await assert.rejects(ingest.append(breaking, { offset: 0 }), /connection reset/);
      const kept = await ingest.size();
      assert.equal(kept, 1024 * 1024);
      assert.equal(store.hashState('broken-source')?.offset, kept);
      let written = 0;
      await ingest.append(Readable.from([data.subarray(kept)]), { offset: kept, onWritten: (size) => (written = size) });
      assert.equal(written, data.length, 'onWritten reports the ingest size once the last chunk is in the file');
      assert.equal(store.hashState('broken-source')?.offset, data.length);
      const result = await ingest.commit(digestOf(data), data.length);
      assert.equal(result.digest, digestOf(data));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
