import { InvalidReferenceError, formatReference, parseReference, type Reference } from '../reference/reference.ts';
import type { LocalImage } from './catalog.ts';
import { resolveImage } from './resolve.ts';
import type { ImageRecord, ImageStore } from './store.ts';

/**
 * `docker tag SOURCE TARGET`: SOURCE by name or ID, TARGET normalized (`app` is
 * `docker.io/library/app:latest`). The tag always moves: whatever it named before loses it
 * (and stays in the store as a dangling image when that was its last name).
 */


export interface TagResult {
  image: LocalImage;
  /** The full name written to index.json, e.g. `docker.io/library/app:v1`. */
  name: string;
  target: Reference;
}

export async function tagImage(store: ImageStore, source: string, target: string, now: Date = new Date()): Promise<TagResult> {
  const ref = parseReference(target);
  if (ref.digest !== undefined) throw new InvalidReferenceError(target, 'refusing to create a tag with a digest reference');
  const { image } = await resolveImage(store, source);
  const normalized: Reference = { domain: ref.domain, path: ref.path, tag: ref.tag ?? 'latest' };
  const name = formatReference(normalized);
  await store.tag(name, image.record.manifest);
  const record = await store.getRecord(image.record.manifest.digest);
  if (record) await store.putRecord({ ...record, lastTagTime: now.toISOString() });
  return { image, name, target: normalized };
}
