import type { Registry } from '../registry.ts';
import type { CachedTagPage, MirrorView, UpstreamView } from './api-types.ts';
import { wholeNumber } from './repository-pages.ts';
import type { UiCaller } from './ui-session.ts';
import { RegistryError } from '../../errors/registry-error.ts';

/** Cached tags read per query while filtering by permission. */
const SCAN_PAGE = 1000;

/** Per upstream: its routing, its share of the cache, this process's hit counts, and its stale tags. */
export async function mirrorView(registry: Registry, cacheMaxSize: number | undefined): Promise<MirrorView> {
  const mirror = registry.mirror;
  if (!mirror) return { upstreams: [], cacheBytes: 0, cacheMaxSize: cacheMaxSize ?? null };
  const now = Date.now();
  const upstreams: UpstreamView[] = [];
  for (const upstream of mirror.upstreams.list) {
    const usage = await registry.metadata.cacheUsage(upstream.prefix, now - upstream.config.tagTTL);
    const tally = mirror.upstreamTally(upstream.host);
    const asked = tally.hits + tally.misses;
    upstreams.push({
      host: upstream.host,
      prefix: upstream.prefix,
      url: upstream.config.url,
      default: upstream.config.default ?? false,
      tagTtl: upstream.config.tagTTL,
      repositories: usage.repositories,
      cacheBytes: usage.bytes,
      hits: tally.hits,
      misses: tally.misses,
      hitRatio: asked === 0 ? null : tally.hits / asked,
      staleServes: tally.staleServes,
      staleTags: usage.staleTags,
    });
  }
  return { upstreams, cacheBytes: await registry.metadata.cacheSize(), cacheMaxSize: cacheMaxSize ?? null };
}

/**
 * One upstream's cached tags that the caller may pull, stalest first: when each was last
 * revalidated upstream, and whether its TTL has run out (the next pull of it asks upstream).
 */
export async function mirrorTags(registry: Registry, caller: UiCaller, query: URLSearchParams): Promise<CachedTagPage> {
  const host = query.get('upstream') ?? '';
  const upstream = registry.mirror?.upstreams.list.find((candidate) => candidate.host === host);
  if (!upstream) throw new RegistryError('UNSUPPORTED', `no upstream ${JSON.stringify(host.slice(0, 100))} is configured`, { status: 404 });
  const offset = wholeNumber(query.get('offset'), 0, 1e9, 'offset');
  const limit = wholeNumber(query.get('limit'), 50, 200, 'limit');
  const staleOnly = query.get('stale') === 'true';
  const staleBefore = Date.now() - upstream.config.tagTTL;
  const tags: CachedTagPage['tags'] = [];
  let total = 0;
  for (let scanned = 0; ; scanned += SCAN_PAGE) {
    const page = await registry.metadata.cachedTags(upstream.prefix, { offset: scanned, limit: SCAN_PAGE, ...(staleOnly ? { checkedBefore: staleBefore } : {}) });
    for (const tag of page.tags) {
      if (!caller.mayPull(tag.repository)) continue;
      if (total >= offset && tags.length < limit) {
        tags.push({
          repository: tag.repository,
          tag: tag.tag,
          digest: tag.digest,
          updatedAt: tag.updatedAt,
          checkedAt: tag.checkedAt ?? null,
          stale: tag.checkedAt === undefined || tag.checkedAt < staleBefore,
        });
      }
      total++;
    }
    if (page.tags.length < SCAN_PAGE) break;
  }
  return { upstream: host, tags, total, offset, limit };
}
