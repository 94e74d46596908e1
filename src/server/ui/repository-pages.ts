import { inParallel } from '../../content/in-parallel.ts';
import type { Digest } from '../../digest/digest.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Registry } from '../registry.ts';
import type { MetadataStore } from '../storage/metadata.ts';
import type { RepositoryPage, TagPage, TagSort, TagSummary } from './api-types.ts';
import type { ImageFacts, ImageFactsCache } from './image-facts.ts';
import type { UiCaller } from './ui-session.ts';

/** Names read from the store per query while filtering the list. */
const SCAN_PAGE = 1000;
/** Tags whose facts are read at once (each a manifest and a config read, the first time). */
const FACTS_CONCURRENCY = 16;

/**
 * One page of the repository list: names containing `filter` that the caller may pull, in lexical
 * order, with their figures. The names are scanned in full for the total (10,000 names are a few
 * milliseconds); only the page's repositories are counted and sized, in one query.
 */
export async function repositoryPage(metadata: MetadataStore, caller: UiCaller, query: URLSearchParams): Promise<RepositoryPage> {
  const filter = (query.get('filter') ?? '').trim().toLowerCase();
  if (filter.length > 256) throw new RegistryError('UNSUPPORTED', 'filter is longer than 256 characters', { status: 400 });
  const offset = wholeNumber(query.get('offset'), 0, 1e9, 'offset');
  const limit = wholeNumber(query.get('limit'), 50, 200, 'limit');
  const window: string[] = [];
  let total = 0;
  let after: string | undefined;
  for (;;) {
    const page = await metadata.listRepositories(SCAN_PAGE, after);
    for (const name of page.items) {
      if (filter !== '' && !name.includes(filter)) continue;
      if (!caller.mayPull(name)) continue;
      if (total >= offset && window.length < limit) window.push(name);
      total++;
    }
    if (!page.more || page.items.length === 0) break;
    after = page.items.at(-1);
  }
  const stats = await metadata.repositoryStats(window);
  return { repositories: stats.map((row) => ({ name: row.name, tags: row.tags, size: row.bytes, lastPush: row.lastPush, cached: row.cached })), total, offset, limit };
}

/**
 * One page of a repository's tags, sorted. Pushed, name and digest order need only the tag table;
 * size, created and platforms need every tag's facts, which the cache keeps by digest after the first sort.
 */
export async function tagPage(
  registry: Registry,
  facts: ImageFactsCache,
  name: string,
  options: { sort: TagSort; order: 'asc' | 'desc'; offset: number; limit: number },
): Promise<Omit<TagPage, 'mayDelete' | 'cached'>> {
  const tags = await registry.metadata.tagsWithTimes(name);
  const { sort, order, offset, limit } = options;
  const direction = order === 'asc' ? 1 : -1;
  let rows: { tag: string; digest: Digest; updatedAt: number; facts?: ImageFacts }[] = tags.map((tag) => ({ ...tag }));
  if (sort === 'size' || sort === 'created' || sort === 'platforms') {
    await inParallel(rows, FACTS_CONCURRENCY, async (row) => {
      row.facts = await facts.of(row.digest);
    });
  }
  const byName = (a: { tag: string }, b: { tag: string }) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0);
  const compare: Record<TagSort, (a: (typeof rows)[number], b: (typeof rows)[number]) => number> = {
    pushed: (a, b) => a.updatedAt - b.updatedAt || byName(a, b),
    name: byName,
    digest: (a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : byName(a, b)),
    size: (a, b) => a.facts!.size - b.facts!.size || byName(a, b),
    // An image without a created time sorts as the oldest.
    created: (a, b) => (a.facts!.created ?? '').localeCompare(b.facts!.created ?? '') || byName(a, b),
    // An artifact (no platform) sorts first.
    platforms: (a, b) => a.facts!.platforms.join(',').localeCompare(b.facts!.platforms.join(',')) || byName(a, b),
  };
  rows = rows.sort((a, b) => direction * compare[sort](a, b));
  const window = rows.slice(offset, offset + limit);
  await inParallel(window, FACTS_CONCURRENCY, async (row) => {
    row.facts ??= await facts.of(row.digest);
  });
  const summaries: TagSummary[] = window.map(({ tag, digest, updatedAt, facts: known }) => ({
    tag,
    digest,
    mediaType: known!.mediaType,
    size: known!.size,
    platforms: known!.platforms,
    created: known!.created,
    pushed: updatedAt,
  }));
  return { name, tags: summaries, total: rows.length, offset, limit, sort, order };
}

export function wholeNumber(text: string | null, fallback: number, max: number, what: string): number {
  if (text === null || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < (what === 'limit' ? 1 : 0) || value > max) {
    throw new RegistryError('UNSUPPORTED', `${what} must be a whole number from ${what === 'limit' ? 1 : 0} to ${max}`, { status: 400 });
  }
  return value;
}
