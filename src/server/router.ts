import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Caller } from './access-control.ts';
import type { BodyBudget } from './body-budget.ts';
import type { RouteName } from './metrics.ts';
import type { Registry } from './registry.ts';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** The decoded request path, exactly as sent: never dot-segment-normalized. */
  path: string;
  query: URLSearchParams;
  /** Named captures of the route, e.g. name, digest, reference, uuid. */
  params: Record<string, string>;
  registry: Registry;
  log: Logger;
  /** Memory all manifest bodies being received may hold together. */
  manifestBodies: BodyBudget;
  /** Blob offload to an nginx in front: the internal location's prefix (`--x-accel-redirect`). */
  xAccelRedirect?: string | undefined;
  /** Who asked, as access control decided before the handler (everyone may do everything when it is off). */
  caller: Caller;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  /** The route's name in metrics: bounded, unlike the paths that reach it. */
  name: RouteName;
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
}

/**
 * Tail-anchored routes: a repository name may contain slashes, so each pattern fixes the
 * end of the path (`/blobs/<digest>`) and lets the name take the rest, as the CNCF registry does.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(name: RouteName, pattern: RegExp, methods: Partial<Record<string, Handler>>): this {
    this.routes.push({ name, pattern, methods });
    return this;
  }

  match(method: string, path: string): { route: RouteName; handler: Handler; params: Record<string, string> } | { route: RouteName; allowed: string[] } | undefined {
    for (const route of this.routes) {
      const found = route.pattern.exec(path);
      if (!found) continue;
      const handler = route.methods[method] ?? (method === 'HEAD' ? undefined : undefined);
      if (!handler) return { route: route.name, allowed: Object.keys(route.methods) };
      return { route: route.name, handler, params: { ...found.groups } };
    }
    return undefined;
  }
}
