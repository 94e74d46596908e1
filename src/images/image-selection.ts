import type { Digest } from '../digest/digest.ts';
import { canonicalName, formatReference, parseReference, type Reference } from '../reference/reference.ts';
import { NoSuchImageError, resolveImage } from './resolve.ts';
import type { ImageRecord, ImageStore } from './store.ts';

/** An image picked by what the user typed, with the names (full, tagged) that selected it. */
export interface SelectedImage {
  record: ImageRecord;
  names: string[];
}

/**
 * The image(s) one argument of `save` or `unpack` means. Resolution is docker's (see
 * resolve.ts: a tag, `name@digest`, an image ID or unique ID prefix); on top of it, with
 * `allTags` (docker save), a repository named without tag or digest means every tag of it.
 * `names` holds the full names the argument selected: empty for an ID or a digest.
 */
export async function selectImages(store: ImageStore, input: string, options: { allTags?: boolean } = {}): Promise<SelectedImage[]> {
  if (options.allTags) {
    const repository = untaggedRepository(input);
    if (repository !== undefined) {
      const all = await allTagsOf(store, repository);
      if (all.length > 0) return all;
    }
  }
  const { image, reference } = await resolveImage(store, input);
  const names = reference?.tag !== undefined && reference.digest === undefined ? [formatReference(reference)] : [];
  return [{ record: image.record, names }];
}

/** One image, for `unpack`: a repository without a tag means `:latest`. */
export async function selectImage(store: ImageStore, input: string): Promise<SelectedImage> {
  const [image] = await selectImages(store, input);
  if (!image) throw new NoSuchImageError(input);
  return image;
}

function untaggedRepository(input: string): string | undefined {
  let parsed: Reference;
  try {
    parsed = parseReference(input, { defaultTag: false });
  } catch {
    return undefined;
  }
  return parsed.tag === undefined && parsed.digest === undefined ? canonicalName(parsed) : undefined;
}

async function allTagsOf(store: ImageStore, repository: string): Promise<SelectedImage[]> {
  const byManifest = new Map<Digest, SelectedImage>();
  for (const ref of await store.refs()) {
    if (ref.name === undefined || !ref.name.startsWith(`${repository}:`)) continue;
    const existing = byManifest.get(ref.manifest.digest);
    if (existing) {
      existing.names.push(ref.name);
      continue;
    }
    const record = await store.getRecord(ref.manifest.digest);
    if (!record) throw new NoSuchImageError(`${ref.name} (the store lists manifest ${ref.manifest.digest} but has no record of it; pull or load it again)`);
    byManifest.set(ref.manifest.digest, { record, names: [ref.name] });
  }
  return [...byManifest.values()];
}
