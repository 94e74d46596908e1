import { formatFamiliar, parseReference, type Reference } from '../reference/reference.ts';
import { loadImages, type LocalImage } from './catalog.ts';
import type { ImageStore } from './store.ts';

/**
 * Finding an image the way docker's daemon does (GetImage): first as a reference (`alpine`
 * is `docker.io/library/alpine:latest`; `name@digest` matches a repo digest or the manifest
 * digest), then as an image ID: the config digest in full (`sha256:…`) or any unique hex prefix,
 * with or without `sha256:`. A manifest digest (or prefix) is accepted when no ID matches.
 */
export class NoSuchImageError extends Error {
  readonly input: string;
  /** docker's words: the name as docker shows it, with the default tag (`No such image: x:latest`). */
  constructor(input: string) {
    super(`No such image: ${shownAs(input)}`);
    this.name = 'NoSuchImageError';
    this.input = input;
  }
}

export class AmbiguousImageError extends Error {
  readonly input: string;
  constructor(input: string) {
    super(`multiple IDs found with provided prefix: ${input}`);
    this.name = 'AmbiguousImageError';
    this.input = input;
  }
}

export interface ResolvedImage {
  image: LocalImage;
  /** Set when `input` named the image (normalized: tag or digest set), unset for an ID. */
  reference?: Reference;
}

const ID_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

/** Resolves against a listing already loaded (see loadImages). */
export function findImage(images: LocalImage[], input: string): ResolvedImage {
  const reference = tryReference(input);
  if (reference) {
    const image = byReference(images, reference);
    if (image) return { image, reference };
  }
  const hex = ID_PREFIX.exec(input)?.[1];
  if (hex !== undefined) {
    const image = byPrefix(images, hex, (i) => i.id, input) ?? byPrefix(images, hex, (i) => i.record.manifest.digest, input);
    if (image) return { image };
  }
  throw new NoSuchImageError(input);
}

export async function resolveImage(store: ImageStore, input: string): Promise<ResolvedImage> {
  return findImage(await loadImages(store), input);
}

function shownAs(input: string): string {
  const reference = tryReference(input);
  return reference ? formatFamiliar(reference) : input;
}

function tryReference(input: string): Reference | undefined {
  try {
    return parseReference(input);
  } catch {
    return undefined;
  }
}

function sameRepository(a: Reference, b: Reference): boolean {
  return a.domain === b.domain && a.path === b.path;
}

function byReference(images: LocalImage[], ref: Reference): LocalImage | undefined {
  if (ref.digest !== undefined) {
    const digest = ref.digest;
    return (
      images.find((image) => image.repoDigests.some((d) => sameRepository(d, ref) && d.digest === digest)) ??
      images.find((image) => image.record.manifest.digest === digest)
    );
  }
  return images.find((image) => image.tags.some((t) => sameRepository(t, ref) && t.tag === ref.tag));
}

/**
 * The image whose digest (by `key`) starts with `hex`; undefined when none does. Several images
 * with the same digest (one config under two manifests) resolve to the newest; different
 * digests sharing the prefix are ambiguous.
 */
function byPrefix(images: LocalImage[], hex: string, key: (image: LocalImage) => string, input: string): LocalImage | undefined {
  const matches = images.filter((image) => key(image).slice(key(image).indexOf(':') + 1).startsWith(hex));
  if (matches.length === 0) return undefined;
  if (new Set(matches.map(key)).size > 1) throw new AmbiguousImageError(input);
  return matches.sort((a, b) => b.created.getTime() - a.created.getTime() || b.record.storedAt - a.record.storedAt)[0];
}
