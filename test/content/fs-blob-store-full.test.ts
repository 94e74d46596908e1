/**
 * Regression: a write that failed with ENOSPC used to surface as an unhandled 'error' event of
 * the ingest's write stream and end the process. /dev/full fails every write with ENOSPC, so a
 * symlink to it stands in for a full disk without root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestOf } from '../../src/digest/digest.ts';
import { FsBlobStore } from '../../src/content/fs-blob-store.ts';
import { StorageFullError } from '../../src/content/storage-errors.ts';

const skip = existsSync('/dev/full') ? false : 'no /dev/full on this system';

describe('FsBlobStore on a full disk', { skip }, () => {
  let root: string;
  let store: FsBlobStore;
  const escaped: unknown[] = [];
  const onEscape = (error: unknown) => escaped.push(error);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-full-'));
    store = await new FsBlobStore(root).init();
    process.on('uncaughtException', onEscape);
    process.on('unhandledRejection', onEscape);
  });
  after(async () => {
    process.off('uncaughtException', onEscape);
    process.off('unhandledRejection', onEscape);
    await rm(root, { recursive: true, force: true });
  });

  async function fullIngest(ref: string) {
    await symlink('/dev/full', join(root, 'ingest', ref));
    return store.ingest(ref);
  }

  for (const [name, chunks] of [
    ['one small chunk', [Buffer.from('hello')]],
    ['many chunks, larger than the stream buffer', Array.from({ length: 8 }, () => Buffer.alloc(512 * 1024, 7))],
  ] as const) {
    test(`append of ${name} rejects with StorageFullError, nothing escapes`, async () => {
      const ingest = await fullIngest(`full-${chunks.length}`);
      const error = await ingest.append(Readable.from(chunks), { offset: 0 }).then(
        () => assert.fail('append succeeded on a full disk'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof StorageFullError, String(error));
      assert.equal(error.reason, 'ENOSPC');
      assert.match(error.message, /storage is full \(ENOSPC\) while writing ingest full-\d+; free space/);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(escaped, []);
    });
  }

  test('the store keeps working for other writes', async () => {
    const data = Buffer.from('still fine');
    const result = await store.put(Readable.from([data]), digestOf(data), data.length);
    assert.equal(result.size, data.length);
    assert.deepEqual(await store.readSmall(digestOf(data), 100), data);
    assert.ok((await readdir(join(root, 'ingest'))).every((name) => name.startsWith('full-')));
  });
});
