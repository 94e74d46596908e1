import { randomUUID } from 'node:crypto';
import { mkdir, open, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../errors/config-error.ts';

/** The data directory cannot be used. A ConfigError, so `skiff serve` exits 2 with the message. */
export class DataDirError extends ConfigError {
  constructor(dir: string, problem: string) {
    super(`data directory ${dir}: ${problem}. Choose a directory skiff can create and write: --data <dir>, "data:" in the config file, or $SKIFF_DATA.`);
    this.name = 'DataDirError';
  }
}

type ErrnoError = NodeJS.ErrnoException;

/** `it` for the data directory itself, else the path of the ancestor at fault. */
const named = (dir: string, shown: string): string => (dir === shown ? 'it' : dir);

/** What an errno means for the data directory, in words. */
function explain(error: ErrnoError): string {
  switch (error.code) {
    case 'EROFS':
      return `it is on a read-only file system (${error.message})`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${error.message})`;
    case 'ENOTDIR':
      return `a component of the path is not a directory (${error.message})`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `no space left (${error.message})`;
    default:
      return error.message;
  }
}

/**
 * mkdir -p, one level at a time. Node's `mkdir(…, { recursive: true })` loops forever when a parent
 * exists but refuses children with ENOENT (anything under /proc): it retries the parent (EEXIST)
 * and the child (ENOENT) without end, at full CPU and with no output. Here a child that still
 * fails after its parent is in place is final.
 */
async function makeDirectory(dir: string, shown: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (error) {
    const code = (error as ErrnoError).code;
    if (code === 'EEXIST') return checkIsDirectory(dir, shown);
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw new DataDirError(shown, `cannot create ${named(dir, shown)}: ${explain(error as ErrnoError)}`);
    await makeDirectory(parent, shown);
  }
  try {
    await mkdir(dir);
  } catch (error) {
    const code = (error as ErrnoError).code;
    if (code === 'EEXIST') return checkIsDirectory(dir, shown); // created meanwhile by someone else
    const why = code === 'ENOENT' ? `${dirname(dir)} does not accept new directories (${(error as ErrnoError).message})` : explain(error as ErrnoError);
    throw new DataDirError(shown, `cannot create ${named(dir, shown)}: ${why}`);
  }
}

async function checkIsDirectory(dir: string, shown: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (error) {
    const why = (error as ErrnoError).code === 'ENOENT' ? `it is a symbolic link to nothing (${(error as ErrnoError).message})` : explain(error as ErrnoError);
    throw new DataDirError(shown, `${named(dir, shown)} exists but cannot be used: ${why}`);
  }
  if (!isDirectory) throw new DataDirError(shown, `${named(dir, shown)} exists and is not a directory`);
}

/**
 * Creates the data directory if needed and proves it writable by creating and removing a file,
 * so a bad --data fails at start-up with a clear message instead of on the first push.
 * Creating a file answers what access(2) only predicts (ACLs, read-only mounts, quotas).
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  const dir = resolve(dataDir);
  await makeDirectory(dir, dir);
  const probe = join(dir, `.skiff-write-test-${randomUUID()}`);
  try {
    const handle = await open(probe, 'wx');
    await handle.close();
    await unlink(probe);
  } catch (error) {
    throw new DataDirError(dir, `cannot write in it: ${explain(error as ErrnoError)}`);
  }
}
