import type { Digest } from '../digest/digest.ts';
import { formatReference, parseReference, type Reference } from '../reference/reference.ts';
import { readJsonBlob, type ImageConfig } from './record.ts';
import type { ImageRecord, ImageStore } from './store.ts';

/**
 * One local image as docker presents it: the stored record joined with the names that point at
 * it in index.json and its config. Images come from index.json (tagged or dangling entries);
 * a record that no entry refers to is not an image.
 */
export interface LocalImage {
  record: ImageRecord;
  config: ImageConfig;
  /** The config digest: docker's image ID. */
  id: Digest;
  /** The names in index.json that point here, as stored (full canonical refs). */
  names: string[];
  /** The tags pointing here (`domain`, `path`, `tag` set), sorted by full name. */
  tags: Reference[];
  /** `name@digest` references: the record's repoDigests and any digest-only names. */
  repoDigests: Reference[];
  /** Config `created`, falling back to when the store got the image. */
  created: Date;
}

/** Every image in the store. */
export async function loadImages(store: ImageStore): Promise<LocalImage[]> {
  const records = new Map<string, ImageRecord>();
  for (const record of await store.records()) records.set(record.manifest.digest, record);
  const names = new Map<string, string[]>();
  for (const ref of await store.refs()) {
    const list = names.get(ref.manifest.digest) ?? [];
    if (ref.name !== undefined) list.push(ref.name);
    names.set(ref.manifest.digest, list);
  }
  const images: LocalImage[] = [];
  for (const [manifestDigest, refNames] of names) {
    const record = records.get(manifestDigest);
    if (!record) continue;
    images.push(await describeImage(store, record, refNames));
  }
  return images;
}

/** Joins a record with the names that point at it. */
export async function describeImage(store: ImageStore, record: ImageRecord, names: string[]): Promise<LocalImage> {
  const tags: Reference[] = [];
  const digests = new Map<string, Reference>();
  for (const name of [...names].sort()) {
    const ref = tryParse(name);
    if (!ref) continue;
    if (ref.tag !== undefined) tags.push({ domain: ref.domain, path: ref.path, tag: ref.tag });
    else if (ref.digest !== undefined) digests.set(formatReference(ref), ref);
  }
  for (const repoDigest of record.repoDigests) {
    const ref = tryParse(repoDigest);
    if (!ref?.digest) continue;
    const plain: Reference = { domain: ref.domain, path: ref.path, digest: ref.digest };
    digests.set(formatReference(plain), plain);
  }
  let config: ImageConfig = {};
  try {
    config = await readJsonBlob<ImageConfig>(store, record.config.digest);
  } catch {
    // a config blob gone missing: show what the record knows
  }
  return { record, config, id: record.config.digest, names: [...names].sort(), tags, repoDigests: [...digests.values()], created: createdOf(record, config) };
}

function tryParse(name: string): Reference | undefined {
  try {
    return parseReference(name, { defaultTag: false });
  } catch {
    return undefined;
  }
}

function createdOf(record: ImageRecord, config: ImageConfig): Date {
  for (const candidate of [record.created, config.created]) {
    if (!candidate) continue;
    const date = new Date(candidate);
    if (!Number.isNaN(date.getTime())) return date;
  }
  return new Date(record.storedAt);
}

/** The stored index name that `ref` (tag or digest reference) is, if any. */
export function storedName(image: LocalImage, ref: Reference): string | undefined {
  return image.names.find((name) => {
    const parsed = tryParse(name);
    return parsed !== undefined && parsed.domain === ref.domain && parsed.path === ref.path && parsed.tag === ref.tag && parsed.digest === ref.digest;
  });
}

export function isDangling(image: LocalImage): boolean {
  return image.tags.length === 0;
}
