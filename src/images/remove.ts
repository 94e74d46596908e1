import { shortId } from '../digest/digest.ts';
import { formatFamiliar, parseReference, type Reference } from '../reference/reference.ts';
import { isDangling, loadImages, storedName, type LocalImage } from './catalog.ts';
import { humanSize } from './human.ts';
import { findImage } from './resolve.ts';
import type { ImageStore } from './store.ts';

/**
 * `docker rmi` and `docker image prune` (moby's ImageDelete):
 * - by name: untag; the image itself goes when no tag is left (its repo digests are untagged
 *   with it, and blobs no other image uses are deleted from blobs/);
 * - by ID: an image with at most one tag, all references in one repository, loses them and is
 *   deleted; with more it is refused unless forced ("referenced in multiple repositories"). An ID
 *   covers every manifest stored with that config, and counts the references of all of them;
 * - `Deleted: <ID>` is printed only once no manifest with that config is left;
 * - prune: dangling images, or with `all` every image (there are no containers to keep one).
 */

/** docker's ImageDeleteResponseItem: one `Untagged:` or `Deleted:` line. */
export type DeleteItem = { untagged: string } | { deleted: string };

export interface RemoveResult {
  items: DeleteItem[];
  /** Bytes freed in blobs/. */
  reclaimed: number;
}

export class ImageConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageConflictError';
  }
}

/** Removes one image by name or ID. Throws NoSuchImageError / ImageConflictError. */
export async function removeImage(store: ImageStore, input: string, options: { force?: boolean } = {}): Promise<RemoveResult> {
  const images = await loadImages(store);
  const { image, reference } = findImage(images, input);
  if (reference?.digest !== undefined) {
    const digestRef: Reference = { domain: reference.domain, path: reference.path, digest: reference.digest };
    if (image.repoDigests.some((d) => sameRef(d, digestRef))) return removeDigestReference(store, image, digestRef);
  } else if (reference?.tag !== undefined) {
    return removeTag(store, image, reference);
  }
  // An ID names every manifest stored with that config (the same image as docker v2s2 and as
  // OCI, or loaded from both archive formats); a manifest digest names only its own.
  const twins = isIdPrefix(input, image.id) ? images.filter((other) => other.id === image.id) : [image];
  return removeById(store, image.id, twins, options.force ?? false);
}

/** `rmi name:tag`: untag, drop now-orphaned repo digests of that repository, delete when no tag is left. */
async function removeTag(store: ImageStore, image: LocalImage, ref: Reference): Promise<RemoveResult> {
  const items: DeleteItem[] = [];
  const name = storedName(image, ref);
  if (name !== undefined) await store.untag(name, { keepDangling: true });
  items.push({ untagged: formatFamiliar(ref) });
  const remaining = image.tags.filter((t) => !sameRef(t, ref));
  if (!remaining.some((t) => sameRepository(t, ref))) {
    // docker: a removed tag takes the digest references of its repository along when it was the last one there.
    const sameRepo = image.repoDigests.filter((d) => sameRepository(d, ref));
    items.push(...(await dropDigestRefs(store, image, sameRepo)));
  }
  if (remaining.length > 0) return { items, reclaimed: 0 };
  return finish(store, image, items);
}

/** `rmi name@digest`: drop that repo digest; delete the image when no tag is left. */
async function removeDigestReference(store: ImageStore, image: LocalImage, ref: Reference): Promise<RemoveResult> {
  const items = await dropDigestRefs(store, image, [ref]);
  if (image.tags.length > 0) return { items, reclaimed: 0 };
  return finish(store, image, items);
}

/**
 * `rmi <ID>`: the images (manifests) with that ID go together. Referenced by more than one tag or
 * repository (counted over all of them), it is refused unless forced, as moby does.
 */
async function removeById(store: ImageStore, id: string, images: LocalImage[], force: boolean): Promise<RemoveResult> {
  const tags = images.flatMap((image) => image.tags);
  const references = images.flatMap((image) => [...image.tags, ...image.repoDigests]);
  const repositories = new Set(references.map((r) => `${r.domain}/${r.path}`));
  const single = tags.length <= 1 && repositories.size <= 1;
  if (!single && !force) {
    throw new ImageConflictError(`conflict: unable to delete ${shortId(id)} (must be forced) - image is referenced in multiple repositories`);
  }
  const items: DeleteItem[] = [];
  let reclaimed = 0;
  for (const image of images) {
    const result = await finish(store, image, []);
    items.push(...result.items);
    reclaimed += result.reclaimed;
  }
  // docker's order: every Untagged line, then the Deleted ones.
  return { items: [...items.filter((i) => 'untagged' in i), ...items.filter((i) => 'deleted' in i)], reclaimed };
}

/**
 * Untags everything left on the image, deletes it and its unused blobs. `Deleted: <ID>` only
 * when no other stored manifest has the same config: until then the ID is still listed.
 */
async function finish(store: ImageStore, image: LocalImage, items: DeleteItem[]): Promise<RemoveResult> {
  const done = new Set(items.map((i) => ('untagged' in i ? i.untagged : '')));
  for (const tag of image.tags) {
    const line = formatFamiliar(tag);
    if (done.has(line)) continue;
    const name = storedName(image, tag);
    if (name !== undefined) await store.untag(name, { keepDangling: true });
    items.push({ untagged: line });
  }
  for (const ref of image.repoDigests) {
    const line = formatFamiliar(ref);
    if (!done.has(line)) items.push({ untagged: line });
  }
  const sizes = new Map<string, number>();
  for (const d of [image.record.manifest, image.record.config, ...image.record.layers]) sizes.set(d.digest, d.size);
  const deleted = await store.removeImage(image.record.manifest.digest);
  if (!(await idInUse(store, image.id))) items.push({ deleted: image.id });
  for (const digest of deleted) {
    if (digest !== image.id && digest !== image.record.manifest.digest) items.push({ deleted: digest });
  }
  return { items, reclaimed: deleted.reduce((sum, d) => sum + (sizes.get(d) ?? 0), 0) };
}

/** Whether a manifest in the index still has this config (image ID). */
async function idInUse(store: ImageStore, id: string): Promise<boolean> {
  const manifests = new Set((await store.refs()).map((ref) => ref.manifest.digest));
  for (const digest of manifests) {
    if ((await store.getRecord(digest))?.config.digest === id) return true;
  }
  return false;
}

/** True when `input` is the ID itself or a prefix of its hex, with or without `sha256:`. */
function isIdPrefix(input: string, id: string): boolean {
  const hex = id.slice(id.indexOf(':') + 1);
  const given = input.startsWith('sha256:') ? input.slice('sha256:'.length) : input;
  return given.length > 0 && hex.startsWith(given);
}

/** Removes digest references: digest-only names from the index, entries from the record's repoDigests. */
async function dropDigestRefs(store: ImageStore, image: LocalImage, refs: Reference[]): Promise<DeleteItem[]> {
  if (refs.length === 0) return [];
  for (const ref of refs) {
    const name = storedName(image, ref);
    if (name !== undefined) await store.untag(name, { keepDangling: true });
  }
  const record = await store.getRecord(image.record.manifest.digest);
  if (record) {
    const repoDigests = record.repoDigests.filter((entry) => !refs.some((ref) => sameRef(parseOrUndefined(entry), ref)));
    if (repoDigests.length !== record.repoDigests.length) await store.putRecord({ ...record, repoDigests });
  }
  image.repoDigests = image.repoDigests.filter((d) => !refs.some((ref) => sameRef(d, ref)));
  return refs.map((ref) => ({ untagged: formatFamiliar(ref) }));
}

/** `image prune`: dangling images, or with `all` every image. */
export async function pruneImages(store: ImageStore, options: { all?: boolean } = {}): Promise<RemoveResult> {
  const items: DeleteItem[] = [];
  let reclaimed = 0;
  for (const image of await loadImages(store)) {
    if (!options.all && !isDangling(image)) continue;
    const result = await finish(store, image, []);
    items.push(...result.items);
    reclaimed += result.reclaimed;
  }
  // Blobs no image reaches any more (a failed pull's layers, what an older load left behind).
  const swept = await store.removeUnreferencedBlobs();
  items.push(...swept.deleted.map((digest) => ({ deleted: digest })));
  reclaimed += swept.reclaimed;
  return { items, reclaimed };
}

/** `rmi` output: `Untagged: alpine:latest`, `Deleted: sha256:…`. */
export function formatRemoveItems(items: DeleteItem[]): string {
  return items.map((item) => ('untagged' in item ? `Untagged: ${item.untagged}\n` : `Deleted: ${item.deleted}\n`)).join('');
}

/** `image prune` output, as docker prints its report. */
export function formatPruneReport(result: RemoveResult): string {
  let out = '';
  if (result.items.length > 0) {
    out += 'Deleted Images:\n';
    for (const item of result.items) out += 'untagged' in item ? `untagged: ${item.untagged}\n` : `deleted: ${item.deleted}\n`;
    out += '\n';
  }
  return `${out}Total reclaimed space: ${humanSize(result.reclaimed, 4)}\n`;
}

export const PRUNE_WARNING = 'WARNING! This will remove all dangling images.';
export const PRUNE_ALL_WARNING = 'WARNING! This will remove all images without at least one container associated to them.';

function sameRepository(a: Reference, b: Reference): boolean {
  return a.domain === b.domain && a.path === b.path;
}

function sameRef(a: Reference | undefined, b: Reference): boolean {
  return a !== undefined && sameRepository(a, b) && a.tag === b.tag && a.digest === b.digest;
}

function parseOrUndefined(text: string): Reference | undefined {
  try {
    const ref = parseReference(text, { defaultTag: false });
    return { domain: ref.domain, path: ref.path, ...(ref.digest ? { digest: ref.digest } : {}) };
  } catch {
    return undefined;
  }
}
