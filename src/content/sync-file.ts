import { open } from 'node:fs/promises';

/** fsync(2) a file or directory by path. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
