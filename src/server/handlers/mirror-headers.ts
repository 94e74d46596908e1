import type { RequestContext } from '../router.ts';

/** `?ns=<registry>`: the registry a mirror's client means (containerd's hosts.toml sends it). */
export function namespaceOf(ctx: RequestContext): string | undefined {
  return ctx.query.get('ns') ?? undefined;
}

/** The `Warning` of an answer served from the mirror's cache because the upstream failed (RFC 7234 §5.5.1). */
export const STALE_WARNING = '110 - "Response is Stale"';
