import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http, https } from '../platform/node-http.ts';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ServeConfig } from './config.ts';
import { BodyBudget } from './body-budget.ts';
import { limitConnections } from './connection-limit.ts';
import { MemoryRelief } from './memory-relief.ts';
import { ServerMetrics } from './metrics.ts';
import { checkHealth } from './health.ts';
import { InOrder } from './in-order.ts';
import { drainAfterEarlyAnswer } from './linger.ts';
import { clientGone, logEachRequest, noteUser, redactUrl } from './request-log.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { deleteBlob, getBlob } from './handlers/blobs.ts';
import { catalog, listTags, ping, referrers } from './handlers/discovery.ts';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.ts';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './handlers/uploads.ts';
import { sendError, sendJson, toRegistryError } from './http-util.ts';
import type { Registry } from './registry.ts';
import { Router, type RequestContext } from './router.ts';
import { OPEN_CALLER, type AccessControl, type Need } from './access-control.ts';
import { serveToken } from './handlers/token.ts';
import type { Action } from '../auth/actions.ts';
import { nameProblem } from '../reference/name.ts';
import type { RouteName } from './metrics.ts';
import type { WebUi } from './ui/web-ui.ts';

const NAME = '(?<name>.+?)';

export function registryRoutes(): Router {
  return new Router()
    .add('base', /^\/v2\/?$/, { GET: ping, HEAD: ping })
    .add('catalog', /^\/v2\/_catalog$/, { GET: catalog })
    .add('tags', new RegExp(`^/v2/${NAME}/tags/list$`), { GET: listTags })
    .add('manifest', new RegExp(`^/v2/${NAME}/manifests/(?<reference>[^/]+)$`), { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest })
    .add('upload', new RegExp(`^/v2/${NAME}/blobs/uploads/?$`), { POST: startUpload })
    .add('upload', new RegExp(`^/v2/${NAME}/blobs/uploads/(?<uuid>[^/]+)$`), { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload })
    .add('blob', new RegExp(`^/v2/${NAME}/blobs/(?<digest>[^/]+)$`), { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob })
    .add('referrers', new RegExp(`^/v2/${NAME}/referrers/(?<digest>[^/]+)$`), { GET: referrers });
}

/** The bounds the server's edge enforces, from the serve config. */
export type ServerLimits = Pick<ServeConfig, 'headersTimeout' | 'idleTimeout' | 'keepAliveTimeout' | 'maxConnections' | 'minFreeSpace' | 'manifestBodyMemory'>;

export interface RegistryServerOptions {
  registry: Registry;
  log: Logger;
  /** Directory whose writability and free space /healthz checks. */
  dataDir: string;
  limits: ServerLimits;
  /** Served at GET /metrics; one is made when not given. */
  metrics?: ServerMetrics;
  /** Blob offload: GETs of stored blobs answer `X-Accel-Redirect: <prefix>/…` and no body (handlers/blobs.ts). */
  xAccelRedirect?: string | undefined;
  /** Authentication and permissions; everyone may do everything without it. */
  access?: AccessControl | undefined;
  /** Serve HTTPS with this certificate and key (PEM); TlsReloader swaps them on SIGHUP. */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** The web UI at `/` and `/api/v1/`; none when not given (`--no-ui`). */
  ui?: WebUi | undefined;
}

/**
 * Wires the router to node:http. The edge is where hostile clients are handled, so every handler
 * inherits it: headers must arrive in time, a body or response that stalls is cut, idle
 * keep-alive connections close, connections beyond the cap get a 503, and one connection's
 * requests run in order. One structured log line per request; spec errors for every failure.
 */
export function createRegistryServer({ registry, log, dataDir, limits, metrics = new ServerMetrics(), xAccelRedirect, access, tls, ui }: RegistryServerOptions): Server {
  const router = registryRoutes();
  const manifestBodies = new BodyBudget(limits.manifestBodyMemory);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Split by hand: WHATWG URL parsing would resolve `..` and `.` segments, letting
    // /v2/a/%2E%2E/b/… reach repository b.
    const raw = req.url ?? '/';
    const queryStart = raw.indexOf('?');
    const rawPath = queryStart === -1 ? raw : raw.slice(0, queryStart);
    const query = new URLSearchParams(queryStart === -1 ? '' : raw.slice(queryStart + 1));
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    if (rawPath === '/metrics') {
      // With authentication on, any authenticated user may scrape (Prometheus: basic_auth); /healthz stays open for load balancers.
      if (access) await access.authorize(req, { kind: 'base' });
      return metrics.serve(req, res);
    }
    if (rawPath === '/token' && access) {
      metrics.route(req, 'token');
      return serveToken(access, req, res, query);
    }
    if (rawPath === '/healthz') {
      metrics.route(req, 'healthz');
      const health = await checkHealth(registry, dataDir, limits.minFreeSpace);
      sendJson(res, health.status === 'ready' ? 200 : 503, health);
      return;
    }
    // The registry API never reaches the UI: one prefix test is all /v2/ pays for it.
    const uiRoute = ui && !rawPath.startsWith('/v2') ? ui.routeOf(rawPath) : undefined;
    if (uiRoute) {
      metrics.route(req, uiRoute);
      if (await ui!.handle(req, res, rawPath, query)) return;
    }
    // An encoded slash would let `sec%2fapp` address repository sec/app through a path that
    // proxies and access rules in front of the registry see as one segment.
    if (/%2f/i.test(rawPath)) throw new RegistryError('NAME_INVALID', 'encoded slash (%2F) in the request path; send repository names with literal slashes');
    let path: string;
    try {
      path = decodeURIComponent(rawPath);
    } catch {
      throw new RegistryError('NAME_INVALID', 'the request path is not valid percent-encoding');
    }
    if (path.split('/').some((segment) => segment === '.' || segment === '..')) {
      throw new RegistryError('NAME_INVALID', 'path segments "." and ".." are not allowed');
    }
    const found = router.match(req.method ?? 'GET', path);
    if (found) metrics.route(req, found.route);
    // Not NAME_UNKNOWN: that would claim a repository is unknown when the endpoint is.
    if (!found) throw new RegistryError('UNSUPPORTED', `no such endpoint: ${req.method} ${path.slice(0, 200)}`, { status: 404 });
    if ('allowed' in found) {
      throw new RegistryError('UNSUPPORTED', `method ${req.method} is not allowed on ${path.slice(0, 200)}`, { status: 405, headers: { Allow: found.allowed.join(', ') } });
    }
    const caller = access ? await access.authorize(req, needOf(found.route, req.method ?? 'GET', found.params, query, registry)) : OPEN_CALLER;
    noteUser(req, caller.user);
    const ctx: RequestContext = { req, res, path, query, params: found.params, registry, log, manifestBodies, xAccelRedirect, caller };
    await found.handler(ctx);
  }

  const inOrder = new InOrder();
  const create = tls ? (options: object, listener: (req: IncomingMessage, res: ServerResponse) => void) => https().createServer({ ...options, ...tls }, listener) : http.createServer;
  const server: Server = create(
    {
      // No total request time: a 10 GiB push over a slow link must finish. Stalls are cut by the
      // idle timeout below instead.
      requestTimeout: 0,
      headersTimeout: limits.headersTimeout,
      keepAliveTimeout: limits.keepAliveTimeout,
      // How often node checks headersTimeout; its default (30 s) would double the bound.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, limits.headersTimeout / 4)),
    },
    (req, res) => {
      logEachRequest(req, res, log);
      metrics.observe(req, res);
      inOrder.run(req, res, () => {
        handle(req, res).catch((error: unknown) => {
          if (clientGone(req, res)) return; // logged once, as an incomplete request, when the response closes
          const registryError = toRegistryError(error);
          if (registryError.status >= 500) log.error({ err: error, method: req.method, path: redactUrl(req.url ?? '') }, 'request failed');
          drainAfterEarlyAnswer(req, res);
          sendError(req, res, registryError);
        });
      });
    },
  );
  // A request body or a response that moves no byte for this long is cut (node destroys the
  // socket); slow transfers that keep moving are never cut. An upload keeps what arrived.
  server.setTimeout(limits.idleTimeout);
  const relief = new MemoryRelief();
  metrics.trackConnections(limitConnections(server, limits.maxConnections, log, (open) => relief.observe(open), () => metrics.connectionRefused()));
  return server;
}

/** What a route needs: reads need pull, writes push, deletes delete, on the repository as stored. */
function needOf(route: RouteName, method: string, params: Record<string, string>, query: URLSearchParams, registry: Registry): Need {
  if (route === 'base') return { kind: 'base' };
  if (route === 'catalog') return { kind: 'catalog' };
  const name = params.name ?? '';
  const read = method === 'GET' || method === 'HEAD';
  let action: Action;
  if (route === 'upload') action = 'push';
  else if (method === 'DELETE') action = 'delete';
  else action = read ? 'pull' : 'push';
  const need: Need = { kind: 'repository', name, policyName: registry.policyName(name, query.get('ns') ?? undefined), actions: [action] };
  // A mount's source: asked for in the challenge (as the CNCF registry does), so that a token
  // fetched after it can carry pull on `from`; without that grant the mount becomes an upload.
  const from = method === 'POST' && query.has('mount') ? query.get('from') : null;
  if (from && nameProblem(from) === undefined) need.optional = [`repository:${from}:pull`];
  return need;
}

export function listenAddress(server: Server): string {
  const address = server.address() as AddressInfo;
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}
