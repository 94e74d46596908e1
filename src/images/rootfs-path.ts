import { lstat, mkdir, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';

/** A layer entry that would reach outside the root filesystem being unpacked. */
export class UnsafeEntryError extends Error {
  readonly code = 'UNSAFE_ENTRY';
  readonly entry: string;
  readonly reason: string;
  constructor(entry: string, reason: string) {
    super(`refusing layer entry ${shortName(entry)}: ${reason}`);
    this.entry = entry;
    this.reason = reason;
    this.name = 'UnsafeEntryError';
  }
}

/** Entry names as messages show them: a 3,000-level name is cut to its two ends and its size. */
export function shortName(name: string): string {
  if (name.length <= 200) return JSON.stringify(name);
  return `${JSON.stringify(name.slice(0, 80))}…${JSON.stringify(name.slice(-80))} (${name.length} bytes, ${name.split('/').length} levels)`;
}

/** Symlinks followed while resolving one path, as Linux's MAXSYMLINKS (40) but roomier. */
const MAX_SYMLINKS = 255;
/**
 * Components visited (symlink targets included) to resolve one path. A legitimate path is at
 * most ~2,000 levels deep (PATH_MAX) plus a few links; 100 chained links with long `d/../d/..`
 * targets cost 80,000 visits each time, the CPU blow-up this bound refuses.
 */
export const MAX_RESOLVE_STEPS = 8192;
/** Cached resolutions kept before starting over; bounds memory on a layer of millions of entries. */
const MAX_CACHED = 100_000;

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

/** The work of one resolution, bounded. */
interface Walk {
  entry: string;
  create: boolean;
  steps: number;
  symlinks: number;
}

/**
 * Resolves directory paths *inside* a root, the way the container will see them: every symlink
 * met on the way is followed as if the root were `/` (an absolute target restarts at the root,
 * `..` stops there), so `etc -> /etc` or `x -> ../../../..` can never lead outside. Every
 * component must end up a real directory; missing ones are created (mode 0755) with `create`,
 * else the result is undefined. A returned host path is below the root with no symlink in it.
 *
 * Each `dir/name` looked up (dir itself real) is cached with its real path, so a layer of many
 * entries under one deep or linked directory resolves it once. The tree may change meanwhile only
 * through the layer applier, which calls `invalidate` for whatever it removes or replaces.
 *
 * (Linux's openat2 RESOLVE_IN_ROOT does this in the kernel; Node has no binding, so this walks
 * with lstat/readlink.)
 */
export class RootResolver {
  readonly root: string;
  /** lstat, readlink and mkdir calls made so far: what the cache saves, and what tests count. */
  fsOperations = 0;
  /** `a/b` (a real directory path plus one name) → the real path it resolves to. */
  private readonly cache = new Map<string, readonly string[]>();

  constructor(root: string) {
    this.root = root;
  }

  async resolveDir(components: readonly string[], options: { create?: boolean } = {}): Promise<string | undefined> {
    const walk: Walk = { entry: components.join('/'), create: options.create ?? false, steps: 0, symlinks: 0 };
    let resolved: readonly string[] = [];
    for (const part of components) {
      const next = await this.step(resolved, part, walk);
      if (next === undefined) return undefined;
      resolved = next;
    }
    return join(this.root, ...resolved);
  }

  /**
   * `hostPath` (below the root) is about to be removed or replaced. Any cached resolution that went
   * through it has it as a key (every component visited is cached), so when it is not a key nothing
   * depends on it; when it is, everything is forgotten (cheaper than tracking who depended on what).
   */
  invalidate(hostPath: string): void {
    const key = relative(this.root, hostPath).split(sep).join('/');
    if (this.cache.has(key)) this.cache.clear();
  }

  /** One component below the real directory `dir`: its real path, symlinks followed inside the root. */
  private async step(dir: readonly string[], part: string, walk: Walk): Promise<readonly string[] | undefined> {
    if (++walk.steps > MAX_RESOLVE_STEPS) {
      throw new UnsafeEntryError(walk.entry, `resolving its directory visits more than ${MAX_RESOLVE_STEPS} path components through symbolic links; no real image needs that, refusing the layer`);
    }
    if (part === '' || part === '.') return dir;
    if (part === '..') return dir.slice(0, -1);
    const key = dir.length === 0 ? part : `${dir.join('/')}/${part}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const host = join(this.root, ...dir, part);
    this.fsOperations++;
    const info = await lstat(host).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    let real: readonly string[];
    if (info === undefined) {
      if (!walk.create) return undefined;
      this.fsOperations++;
      await mkdir(host, { mode: 0o755 });
      real = [...dir, part];
    } else if (info.isSymbolicLink()) {
      if (++walk.symlinks > MAX_SYMLINKS) throw new UnsafeEntryError(walk.entry, 'too many levels of symbolic links');
      this.fsOperations++;
      const target = await readlink(host);
      let at: readonly string[] = target.startsWith('/') ? [] : dir;
      for (const next of target.split('/')) {
        const resolved = await this.step(at, next, walk);
        if (resolved === undefined) return undefined;
        at = resolved;
      }
      real = at;
    } else if (!info.isDirectory()) {
      throw new Error(`/${[...dir, part].join('/')} is not a directory`);
    } else {
      real = [...dir, part];
    }
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(key, real);
    return real;
  }
}

/** One resolution with no cache (see RootResolver). */
export async function resolveDirInRoot(root: string, components: readonly string[], options: { create?: boolean } = {}): Promise<string | undefined> {
  return new RootResolver(root).resolveDir(components, options);
}
