import { constants, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { entryComponents, RootResolver, shortName, UnsafeEntryError } from './rootfs-path.ts';
import { drainEntry, entryChunks, tarEntries, type TarEntry, type TarHeader } from './tar-io.ts';

/** A layer could not be applied (the cause is attached); the root filesystem is then incomplete. */
export class LayerApplyError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LayerApplyError';
  }
}

/** AUFS/overlay whiteouts as the OCI image spec writes them in layer tars. */
export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** An entry unpack could not create (Node has no mknod) and left out. */
export interface SkippedEntry {
  path: string;
  type: string;
  reason: string;
}

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Applies layer tars, in order, onto a root filesystem directory, as a container runtime's
 * snapshotter would: regular files, directories, symlinks (kept as they are, never followed
 * outside), hard links (to earlier entries inside the root only), modes, mtimes and, when
 * `preserveOwnership`, uid/gid. `.wh.<name>` deletes `<name>` from lower layers and
 * `.wh..wh..opq` empties its directory of lower layers' content.
 *
 * Safety: an entry's name is cleaned (leading `/` dropped, `..` above the root refused) and its
 * parent directory resolved with a `RootResolver`, so symlinks planted by a layer (`etc -> /etc`)
 * are followed as the container would see them, inside the root. The entry itself is never
 * written through: whatever was at its path is removed first, and files are created with
 * O_EXCL|O_NOFOLLOW. A hard link's target is resolved the same way and must already exist.
 *
 * Directory modes and mtimes are applied by `finish()`, after the last layer, so that adding
 * entries does not bump the mtimes and a read-only directory does not block later writes.
 */
export class LayerApplier {
  readonly root: string;
  readonly skipped: SkippedEntry[] = [];
  private readonly preserveOwnership: boolean;
  private readonly directories = new Map<string, { mode: number; mtime: Date | undefined }>();
  /** Resolves parents inside the root, caching within a layer; a new one per layer. */
  private resolver: RootResolver;
  /** Filesystem calls spent resolving paths, over every layer applied (tests bound it). */
  resolveOperations = 0;

  constructor(root: string, options: { preserveOwnership?: boolean } = {}) {
    this.root = root;
    this.preserveOwnership = options.preserveOwnership ?? false;
    this.resolver = new RootResolver(root);
  }

  /** Applies one uncompressed layer tar. `label` names the layer in errors. */
  async apply(tar: Readable, label: string): Promise<void> {
    const layer = new LayerState();
    this.resolver = new RootResolver(this.root);
    try {
      for await (const entry of tarEntries(tar)) {
        try {
          await this.applyEntry(entry, layer);
        } catch (error) {
          if (error instanceof UnsafeEntryError) throw new UnsafeEntryError(entry.header.name, `${error.reason} (${label})`);
          throw new LayerApplyError(`${label}: cannot unpack ${shortName(entry.header.name)}: ${describeFailure(error, entry.header.name)}`, { cause: error });
        } finally {
          this.resolveOperations += this.resolver.fsOperations;
          this.resolver.fsOperations = 0;
        }
      }
    } catch (error) {
      if (error instanceof UnsafeEntryError || error instanceof LayerApplyError) throw error;
      // The layer stream itself failed: a truncated or corrupt tar, a decompression error.
      throw new LayerApplyError(`${label}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Sets the deferred directory modes and mtimes, deepest first. */
  async finish(): Promise<void> {
    const paths = [...this.directories.keys()].sort((a, b) => b.split(sep).length - a.split(sep).length);
    for (const path of paths) {
      const attrs = this.directories.get(path)!;
      const info = await lstatOrUndefined(path);
      if (!info?.isDirectory()) continue;
      await chmod(path, attrs.mode);
      if (attrs.mtime) await utimes(path, attrs.mtime, attrs.mtime);
    }
    this.directories.clear();
  }

  private async applyEntry(entry: TarEntry, layer: LayerState): Promise<void> {
    const { header } = entry;
    const components = entryComponents(header.name);
    const base = components.at(-1);
    if (base === undefined) return drainEntry(entry); // the root itself: its attributes are the caller's
    const parentComponents = components.slice(0, -1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      await drainEntry(entry);
      return this.whiteout(header, parentComponents, base, layer);
    }

    const parent = (await this.resolver.resolveDir(parentComponents, { create: true }))!;
    const target = join(parent, base);
    const existing = await lstatOrUndefined(target);
    const mode = (header.mode ?? 0o644) & 0o7777;
    switch (header.type) {
      case 'directory': {
        if (!existing?.isDirectory()) {
          if (existing) await this.remove(target);
          await mkdir(target, { mode: 0o700 });
        }
        if (this.preserveOwnership) await lchown(target, header.uid ?? 0, header.gid ?? 0);
        this.directories.set(target, { mode: header.mode === undefined ? 0o755 : mode, mtime: header.mtime });
        await drainEntry(entry);
        break;
      }
      case 'file':
      case 'contiguous-file': {
        if (existing) await this.remove(target);
        await this.writeFile(entry, target, mode);
        break;
      }
      case 'symlink': {
        await drainEntry(entry);
        const linkname = header.linkname ?? '';
        if (linkname === '') throw new Error('symlink with an empty target');
        if (existing) await this.remove(target);
        await symlink(linkname, target);
        if (this.preserveOwnership) await lchown(target, header.uid ?? 0, header.gid ?? 0);
        if (header.mtime) await lutimes(target, header.mtime, header.mtime);
        break;
      }
      case 'link': {
        await drainEntry(entry);
        const source = await this.hardlinkSource(header);
        if (source === target) break;
        if (existing) await this.remove(target);
        await link(source, target);
        break;
      }
      default: {
        // character/block devices and FIFOs need mknod(2), which Node does not offer.
        await drainEntry(entry);
        this.skipped.push({ path: `/${components.join('/')}`, type: String(header.type), reason: 'device and FIFO entries are not supported' });
        return;
      }
    }
    layer.add(this.root, target);
  }

  private async writeFile(entry: TarEntry, target: string, mode: number): Promise<void> {
    const handle = await open(target, CREATE_NEW, 0o600);
    try {
      for await (const chunk of entryChunks(entry)) {
        let offset = 0;
        while (offset < chunk.length) offset += (await handle.write(chunk, offset)).bytesWritten;
      }
      const { header } = entry;
      // chown before chmod: chown clears setuid/setgid bits.
      if (this.preserveOwnership) await handle.chown(header.uid ?? 0, header.gid ?? 0);
      await handle.chmod(mode);
      if (header.mtime) await handle.utimes(header.mtime, header.mtime);
    } finally {
      await handle.close();
    }
  }

  /** A hard link's target: an earlier entry, resolved inside the root, never a directory. */
  private async hardlinkSource(header: TarHeader): Promise<string> {
    const linkname = header.linkname ?? '';
    const components = entryComponents(linkname);
    const base = components.at(-1);
    if (base === undefined) throw new UnsafeEntryError(header.name, `hard link to the root directory ${JSON.stringify(linkname)}`);
    const parent = await this.resolver.resolveDir(components.slice(0, -1));
    const source = parent === undefined ? undefined : join(parent, base);
    const info = source === undefined ? undefined : await lstatOrUndefined(source);
    if (source === undefined || info === undefined) throw new Error(`hard link target ${JSON.stringify(linkname)} is not in the layers unpacked so far`);
    if (info.isDirectory()) throw new UnsafeEntryError(header.name, `hard link to a directory ${JSON.stringify(linkname)}`);
    return source;
  }

  private async whiteout(header: TarHeader, parentComponents: string[], base: string, layer: LayerState): Promise<void> {
    if (base === OPAQUE_WHITEOUT) {
      const dir = (await this.resolver.resolveDir(parentComponents, { create: true }))!;
      await this.pruneLower(dir, layer);
      return;
    }
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') throw new UnsafeEntryError(header.name, 'a whiteout must name one file');
    const parent = await this.resolver.resolveDir(parentComponents);
    if (parent === undefined) return; // nothing below to hide
    await this.remove(join(parent, victim));
  }

  /** Opaque directory: delete every child that this layer did not put there. */
  private async pruneLower(dir: string, layer: LayerState): Promise<void> {
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (layer.keeps(path)) {
        if ((await lstat(path)).isDirectory()) await this.pruneLower(path, layer);
        continue;
      }
      await this.remove(path);
    }
  }

  /** rm -rf without following symlinks, forgetting deferred attributes and resolutions through what went away. */
  private async remove(path: string): Promise<void> {
    this.resolver.invalidate(path);
    await rm(path, { recursive: true, force: true });
    for (const dir of this.directories.keys()) if (dir === path || dir.startsWith(`${path}${sep}`)) this.directories.delete(dir);
  }
}

/** What the current layer has created, to tell it from lower layers' content under an opaque directory. */
class LayerState {
  private readonly created = new Set<string>();
  private readonly ancestors = new Set<string>();

  add(root: string, path: string): void {
    this.created.add(path);
    for (let dir = dirname(path); relative(root, dir) !== '' && !this.ancestors.has(dir); dir = dirname(dir)) this.ancestors.add(dir);
  }

  keeps(path: string): boolean {
    return this.created.has(path) || this.ancestors.has(path);
  }
}

/** What went wrong with one entry, without echoing a huge host path back. */
function describeFailure(error: unknown, name: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENAMETOOLONG') {
    return `its path (${name.length} bytes, ${name.split('/').length} levels) is longer than this filesystem allows (ENAMETOOLONG); such a layer cannot be unpacked here`;
  }
  const message = (error as Error).message;
  return message.length > 500 ? `${message.slice(0, 200)}…${message.slice(-200)}` : message;
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
