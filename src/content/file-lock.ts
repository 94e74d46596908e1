import { open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyedLock } from './keyed-lock.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One attempt at the lock file `path` (`open(…, 'wx')` is atomic): true when this process holds it
 * now. A lock whose owner died (kill -9) is taken over: its file names a PID that no longer exists.
 * Resolves to the PID of the live owner otherwise.
 */
async function takeFileLock(path: string): Promise<true | number> {
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      try {
        await handle.writeFile(String(process.pid));
      } finally {
        await handle.close(); // also when the write fails (a full disk): never left to the GC
      }
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (owner > 0 && !isAlive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      return owner;
    }
  }
}

/** A lock file shared by every skiff process on one store, held for `work`; waits up to `timeoutMs` for it. */
export async function withFileLock<T>(path: string, work: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    const taken = await takeFileLock(path);
    if (taken === true) break;
    if (Date.now() > deadline) throw new Error(`timed out waiting for the store lock ${path} (held by PID ${taken || 'unknown'})`);
    await sleep(wait);
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

/**
 * A KeyedLock over lock files `<dir>/<key>.lock`: one holder per key among the processes on one
 * machine that share `dir` (`skiff serve` and `skiff gc` on one data directory). Within one process
 * the file excludes too, so two holders never share it by accident.
 */
export class FileKeyedLock implements KeyedLock {
  private readonly dir: string;
  private readonly waitMs: number;

  constructor(dir: string, options: { waitMs?: number } = {}) {
    this.dir = dir;
    this.waitMs = options.waitMs ?? 3600_000;
  }

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return withFileLock(join(this.dir, `${key}.lock`), work, this.waitMs);
  }

  async tryRun<T>(key: string, work: () => Promise<T>): Promise<T | undefined> {
    const path = join(this.dir, `${key}.lock`);
    if ((await takeFileLock(path)) !== true) return undefined;
    try {
      return await work();
    } finally {
      await rm(path, { force: true });
    }
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
