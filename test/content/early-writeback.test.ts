import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EarlyWriteback } from '../../src/content/early-writeback.ts';

test('early writeback syncs once 32 MiB were written, one fdatasync at a time, and idle() waits for it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-writeback-'));
  const handle = await open(join(dir, 'f'), 'w');
  try {
    const writeback = new EarlyWriteback();
    const running = () => (writeback as unknown as { running: Promise<void> | undefined }).running;
    writeback.wrote(null, 64 * 1024 * 1024);
    assert.equal(running(), undefined, 'no descriptor yet: nothing to sync');
    await handle.write(Buffer.alloc(1024 * 1024, 7));
    writeback.wrote(handle.fd, 16 * 1024 * 1024);
    assert.notEqual(running(), undefined, 'the bytes counted before the descriptor opened count too');
    const first = running();
    writeback.wrote(handle.fd, 40 * 1024 * 1024);
    assert.equal(running(), first, 'a second sync waits for the first');
    await writeback.idle();
    assert.equal(running(), undefined);
    writeback.wrote(handle.fd, 1);
    assert.notEqual(running(), undefined, 'what was written during the first sync is still unsynced');
    await writeback.idle();
    writeback.wrote(handle.fd, 31 * 1024 * 1024);
    assert.equal(running(), undefined, 'under 32 MiB since the last sync began');
  } finally {
    await handle.close();
    await rm(dir, { recursive: true, force: true });
  }
});
