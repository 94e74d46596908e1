import { MediaTypes } from '../../oci/media-types.ts';
import { OPEN_CALLER } from '../access-control.ts';
import { nextLink, pageParams, sendJson } from '../http-util.ts';
import type { MirroredPage } from '../mirror.ts';
import type { RequestContext } from '../router.ts';
import { STALE_WARNING, namespaceOf } from './mirror-headers.ts';

/** Sends one page of a sorted listing, with a `Link` to the next when more remain. */
function sendPage(ctx: RequestContext, body: Record<string, unknown>, page: MirroredPage, limit: number | undefined): void {
  const headers: Record<string, string> = page.stale ? { Warning: STALE_WARNING } : {};
  const last = page.items.at(-1);
  if (page.more && limit !== undefined && last !== undefined) headers.Link = nextLink(ctx.path, limit, last);
  sendJson(ctx.res, 200, body, headers);
}

/** end-8a/b: GET /v2/<name>/tags/list[?n=&last=], lexical order, Link when more remain. */
export async function listTags(ctx: RequestContext): Promise<void> {
  const { limit, after } = pageParams(ctx.query);
  const page = await ctx.registry.listTags(ctx.params.name!, limit, after, namespaceOf(ctx));
  sendPage(ctx, { name: ctx.params.name, tags: page.items }, page, limit);
}

/** GET /v2/_catalog[?n=&last=] */
export async function catalog(ctx: RequestContext): Promise<void> {
  const { limit, after } = pageParams(ctx.query);
  const caller = ctx.caller;
  const page = await ctx.registry.catalog(limit, after, caller === OPEN_CALLER ? undefined : (name) => caller.mayList(name));
  sendPage(ctx, { repositories: page.items }, page, limit);
}

/** end-12a/b: GET /v2/<name>/referrers/<digest>[?artifactType=]. Never 404 for a valid digest. */
export async function referrers(ctx: RequestContext): Promise<void> {
  const { query, registry, params } = ctx;
  const artifactType = query.get('artifactType') ?? undefined;
  const index = await registry.referrers(params.name!, params.digest!, artifactType, namespaceOf(ctx));
  const headers: Record<string, string> = artifactType !== undefined ? { 'OCI-Filters-Applied': 'artifactType' } : {};
  sendJson(ctx.res, 200, index, headers, MediaTypes.ociIndex);
}

/** end-1: GET /v2/ */
export function ping(ctx: RequestContext): void {
  sendJson(ctx.res, 200, {});
}
