import { open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../client/retry.ts';

/**
 * A lock file shared by every skiff process on one store (`open(…, 'wx')` is atomic). A lock
 * whose owner died (kill -9) is taken over: its file names a PID that no longer exists.
 */
export async function withFileLock<T>(path: string, work: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(String(process.pid));
      } finally {
        await handle.close(); // also when the write fails (a full disk): never left to the GC
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (owner > 0 && !isAlive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the store lock ${path} (held by PID ${owner || 'unknown'})`);
      await sleep(wait);
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

/** Whether process `pid` still runs (EPERM: it does, as another user). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes `*.lock` files in `dir` whose owner process is gone (left by kill -9). */
export async function sweepStaleLocks(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.lock')) continue;
    const owner = Number((await readFile(join(dir, name), 'utf8').catch(() => '')).trim());
    if (owner > 0 && !isAlive(owner)) await rm(join(dir, name), { force: true });
  }
}
