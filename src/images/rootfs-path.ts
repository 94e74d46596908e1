import { lstat, mkdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** A layer entry that would reach outside the root filesystem being unpacked. */
export class UnsafeEntryError extends Error {
  readonly code = 'UNSAFE_ENTRY';
  readonly entry: string;
  readonly reason: string;
  constructor(entry: string, reason: string) {
    super(`refusing layer entry ${JSON.stringify(entry)}: ${reason}`);
    this.entry = entry;
    this.reason = reason;
    this.name = 'UnsafeEntryError';
  }
}

/** Symlinks followed while resolving one path, as Linux's MAXSYMLINKS (40) but roomier. */
const MAX_SYMLINKS = 255;

/**
 * A layer entry's path as components below the root: leading `/` dropped (as docker does),
 * `.` and empty parts skipped, `..` applied lexically. A `..` that would climb above the root
 * is refused, as is a NUL byte.
 */
export function entryComponents(name: string): string[] {
  if (name.includes('\0')) throw new UnsafeEntryError(name, 'the name contains a NUL byte');
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new UnsafeEntryError(name, '".." climbs out of the root filesystem');
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

/**
 * Resolves a directory path *inside* `root`, the way the container will see it: every symlink met
 * on the way is followed as if `root` were `/` (an absolute target restarts at `root`, `..` stops
 * at `root`), so `etc -> /etc` or `x -> ../../../..` can never lead outside. Every component
 * must end up a real directory; missing ones are created (mode 0755) with `create`, else the
 * result is undefined. The returned host path is below `root` and has no symlink in it.
 *
 * (Linux's openat2 RESOLVE_IN_ROOT does this in the kernel; Node has no binding, so this walks
 * with lstat/readlink. Only the layer being unpacked changes the tree meanwhile.)
 */
export async function resolveDirInRoot(root: string, components: readonly string[], options: { create?: boolean } = {}): Promise<string | undefined> {
  let resolved: string[] = [];
  const pending = [...components];
  let symlinks = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = join(root, ...resolved, part);
    const info = await lstat(host).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (info === undefined) {
      if (!options.create) return undefined;
      await mkdir(host, { mode: 0o755 });
      resolved.push(part);
      continue;
    }
    if (info.isSymbolicLink()) {
      if (++symlinks > MAX_SYMLINKS) throw new UnsafeEntryError(components.join('/'), 'too many levels of symbolic links');
      const target = await readlink(host);
      if (target.startsWith('/')) resolved = [];
      pending.unshift(...target.split('/'));
      continue;
    }
    if (!info.isDirectory()) throw new Error(`/${[...resolved, part].join('/')} is not a directory`);
    resolved.push(part);
  }
  return join(root, ...resolved);
}
