import { shortId } from '../digest/digest.ts';
import { canonicalName, familiarName, formatFamiliar, formatReference, type Reference } from '../reference/reference.ts';
import { isDangling, loadImages, type LocalImage } from './catalog.ts';
import { booleanFilter, matchLabels, parseFilters, type Filters } from './filters.ts';
import { formatRows, isTableFormat, type Row } from './formatter.ts';
import { pathMatch, validatePattern } from './glob.ts';
import { createdAt, createdSince, humanSize } from './human.ts';
import { findImage } from './resolve.ts';
import type { ImageStore } from './store.ts';

/**
 * `docker images`: one row per repository:tag (untagged images as `<none>`), newest first,
 * with docker's filters and output formats. Selection (`selectImages`) and rendering
 * (`renderImageList`) are pure; `listImages` reads the store.
 */

export const IMAGE_FILTERS = ['dangling', 'label', 'before', 'since', 'reference'] as const;

export interface SelectOptions {
  /** `--filter key=value`, repeatable. */
  filters?: readonly string[];
  /** The positional `REPO[:TAG]`: a reference filter. */
  reference?: string;
  /** `-a`: there are no intermediate images here, so dangling ones are all there is; accepted for compatibility. */
  all?: boolean;
}

/** One line of `docker images`. */
export interface ImageListRow {
  image: LocalImage;
  /** Familiar repository (`alpine`, `user/app`, `ghcr.io/o/app`) or `<none>`. */
  repository: string;
  tag: string;
  /** `sha256:…` repo digest, `<none>`, or empty for a digest-only row when digests are hidden. */
  digest: string;
}

export interface RenderOptions {
  quiet?: boolean;
  digests?: boolean;
  noTrunc?: boolean;
  /** `table` (default), `json`, `table <template>` or a template. */
  format?: string;
  /** For CREATED; defaults to the current time. */
  now?: Date;
}

export const NONE = '<none>';

export const DEFAULT_TABLE = 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
export const DEFAULT_TABLE_WITH_DIGEST = 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
export const QUIET_FORMAT = '{{.ID}}';

const HEADERS: Record<string, string> = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'VIRTUAL SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
};

export async function listImages(store: ImageStore, options: SelectOptions & { digests?: boolean } = {}): Promise<ImageListRow[]> {
  return selectImages(await loadImages(store), options);
}

/** Filters, sorts newest first and expands images into rows. */
export function selectImages(images: LocalImage[], options: SelectOptions & { digests?: boolean } = {}): ImageListRow[] {
  const filters = parseFilters(options.filters ?? [], IMAGE_FILTERS);
  if (options.reference !== undefined) filters.set('reference', [...(filters.get('reference') ?? []), options.reference]);
  const patterns = filters.get('reference') ?? [];
  for (const pattern of patterns) validatePattern(pattern);
  const dangling = booleanFilter(filters, 'dangling');
  const labels = filters.get('label') ?? [];
  const before = boundary(images, filters, 'before');
  const since = boundary(images, filters, 'since');

  const rows: ImageListRow[] = [];
  for (const image of sortNewestFirst(images)) {
    if (dangling === true && !isDangling(image)) continue;
    if (dangling === false && isDangling(image)) continue;
    if (labels.length > 0 && !matchLabels(labels, image.config.config?.Labels)) continue;
    if (before !== undefined && !(image.created.getTime() < before)) continue;
    if (since !== undefined && !(image.created.getTime() > since)) continue;
    let tags = image.tags;
    let digests = image.repoDigests;
    if (patterns.length > 0) {
      if (isDangling(image)) continue;
      // docker keeps only the references that match; an image left with none is not listed.
      // Unlike docker, a repo digest also stays when a tag of its repository matched, so
      // `images --digests alpine:latest` shows alpine's digest rather than <none>.
      tags = tags.filter((ref) => patterns.some((p) => referenceMatches(p, ref)));
      const keptRepos = new Set(tags.map((t) => `${t.domain}/${t.path}`));
      digests = digests.filter((ref) => keptRepos.has(`${ref.domain}/${ref.path}`) || patterns.some((p) => referenceMatches(p, ref)));
      if (tags.length === 0 && digests.length === 0) continue;
    }
    rows.push(...expand(image, tags, digests, options.digests ?? false));
  }
  return rows;
}

function sortNewestFirst(images: LocalImage[]): LocalImage[] {
  return [...images].sort(
    (a, b) => b.created.getTime() - a.created.getTime() || b.record.storedAt - a.record.storedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** The created time of the image a before/since filter names (the last one given wins, as in docker). */
function boundary(images: LocalImage[], filters: Filters, key: 'before' | 'since'): number | undefined {
  const values = filters.get(key);
  if (!values || values.length === 0) return undefined;
  const times = values.map((value) => findImage(images, value).image.created.getTime());
  return times[times.length - 1];
}

/**
 * docker's FamiliarMatch, widened to canonical names: the pattern is tried against
 * `name:tag` (or `name@digest`) and `name`, in familiar and canonical form.
 */
export function referenceMatches(pattern: string, ref: Reference): boolean {
  const candidates = [formatFamiliar(ref), familiarName(ref), formatReference(ref), canonicalName(ref)];
  return candidates.some((candidate) => pathMatch(pattern, candidate));
}

/** docker's imageFormatTaggedAndDigest: rows per tag (and per repo digest with --digests). */
function expand(image: LocalImage, tags: Reference[], digestRefs: Reference[], showDigests: boolean): ImageListRow[] {
  if (tags.length === 0 && (digestRefs.length === 0 || isDangling(image))) {
    return [{ image, repository: NONE, tag: NONE, digest: NONE }];
  }
  const tagsByRepo = group(tags);
  const digestsByRepo = group(digestRefs);
  const rows: ImageListRow[] = [];
  for (const [repo, repoTags] of tagsByRepo) {
    const digests = showDigests ? (digestsByRepo.get(repo) ?? []) : [];
    digestsByRepo.delete(repo);
    for (const tag of repoTags) {
      if (digests.length === 0) rows.push({ image, repository: repo, tag: tag.tag ?? NONE, digest: NONE });
      for (const d of digests) rows.push({ image, repository: repo, tag: tag.tag ?? NONE, digest: d.digest ?? NONE });
    }
  }
  for (const [repo, refs] of digestsByRepo) {
    if (showDigests) for (const d of refs) rows.push({ image, repository: repo, tag: NONE, digest: d.digest ?? NONE });
    else rows.push({ image, repository: repo, tag: NONE, digest: '' });
  }
  return rows;
}

function group(refs: Reference[]): Map<string, Reference[]> {
  const out = new Map<string, Reference[]>();
  for (const ref of [...refs].sort((a, b) => (familiarName(a) < familiarName(b) ? -1 : familiarName(a) > familiarName(b) ? 1 : 0))) {
    const key = familiarName(ref);
    out.set(key, [...(out.get(key) ?? []), ref]);
  }
  return out;
}

/** docker's NewImageFormat: which template a combination of flags means. */
export function imageListFormat(options: RenderOptions): string {
  const format = options.format ?? '';
  if (format === '' || format === 'table') {
    if (options.quiet) return QUIET_FORMAT;
    return options.digests ? DEFAULT_TABLE_WITH_DIGEST : DEFAULT_TABLE;
  }
  if (isTableFormat(format) && options.digests && !format.includes('{{.Digest}}')) return `${format}\t{{.Digest}}`;
  return format;
}

/** The row as templates see it (the fields of docker's imageContext). */
export function imageRowFields(row: ImageListRow, options: RenderOptions = {}): Row {
  const now = options.now ?? new Date();
  const { image } = row;
  return {
    Containers: 'N/A',
    CreatedAt: createdAt(image.created),
    CreatedSince: createdSince(image.created, now),
    Digest: row.digest,
    ID: options.noTrunc ? image.id : shortId(image.id),
    Repository: row.repository,
    SharedSize: 'N/A',
    Size: humanSize(image.record.unpackedSize),
    Tag: row.tag,
    UniqueSize: 'N/A',
    VirtualSize: humanSize(image.record.unpackedSize, 4),
  };
}

/** The text `docker images` prints for these rows. */
export function renderImageList(rows: ImageListRow[], options: RenderOptions = {}): string {
  const format = imageListFormat(options);
  let shown = rows;
  if (options.quiet) {
    const seen = new Set<string>();
    shown = rows.filter((row) => !seen.has(row.image.id) && seen.add(row.image.id));
  }
  return formatRows(
    format,
    shown.map((row) => imageRowFields(row, options)),
    HEADERS,
  );
}

/** Whether rows need repo digests expanded: `--digests`, or a format that prints `.Digest`. */
export function wantsDigests(options: RenderOptions): boolean {
  return options.digests === true || (options.format ?? '').includes('.Digest');
}

/** `images` end to end: select with the flags, render as text. */
export async function imagesText(store: ImageStore, options: SelectOptions & RenderOptions = {}): Promise<string> {
  const rows = await listImages(store, { ...options, digests: wantsDigests(options) });
  return renderImageList(rows, options);
}
