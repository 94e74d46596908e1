import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { access, constants } from 'node:fs/promises';
import type { Logger } from 'pino';
import { RegistryError } from '../errors/registry-error.ts';
import { deleteBlob, getBlob } from './handlers/blobs.ts';
import { catalog, listTags, ping, referrers } from './handlers/discovery.ts';
import { deleteManifest, getManifest, putManifest } from './handlers/manifests.ts';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './handlers/uploads.ts';
import { sendError, sendJson, toRegistryError } from './http-util.ts';
import type { Registry } from './registry.ts';
import { Router, type RequestContext } from './router.ts';

const NAME = '(?<name>.+?)';

export function registryRoutes(): Router {
  return new Router()
    .add(/^\/v2\/?$/, { GET: ping, HEAD: ping })
    .add(/^\/v2\/_catalog$/, { GET: catalog })
    .add(new RegExp(`^/v2/${NAME}/tags/list$`), { GET: listTags })
    .add(new RegExp(`^/v2/${NAME}/manifests/(?<reference>[^/]+)$`), { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest })
    .add(new RegExp(`^/v2/${NAME}/blobs/uploads/?$`), { POST: startUpload })
    .add(new RegExp(`^/v2/${NAME}/blobs/uploads/(?<uuid>[^/]+)$`), { GET: uploadStatus, PATCH: patchUpload, PUT: finishUpload, DELETE: cancelUpload })
    .add(new RegExp(`^/v2/${NAME}/blobs/(?<digest>[^/]+)$`), { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob })
    .add(new RegExp(`^/v2/${NAME}/referrers/(?<digest>[^/]+)$`), { GET: referrers });
}

export interface RegistryServerOptions {
  registry: Registry;
  log: Logger;
  /** Directory whose writability /healthz checks. */
  dataDir: string;
}

/** Wires the router to node:http: one structured log line per request, spec errors for every failure. */
export function createRegistryServer({ registry, log, dataDir }: RegistryServerOptions): Server {
  const router = registryRoutes();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Split by hand: WHATWG URL parsing would resolve `..` and `.` segments, letting
    // /v2/a/%2E%2E/b/… reach repository b.
    const raw = req.url ?? '/';
    const queryStart = raw.indexOf('?');
    const rawPath = queryStart === -1 ? raw : raw.slice(0, queryStart);
    const query = new URLSearchParams(queryStart === -1 ? '' : raw.slice(queryStart + 1));
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    if (rawPath === '/healthz') {
      try {
        await registry.metadata.ping();
        await access(dataDir, constants.W_OK);
        sendJson(res, 200, { status: 'ready' });
      } catch (error) {
        sendJson(res, 503, { status: 'unavailable', reason: (error as Error).message });
      }
      return;
    }
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
    if (!found) throw new RegistryError('NAME_UNKNOWN', `no such endpoint: ${req.method} ${path.slice(0, 200)}`, { status: 404 });
    if ('allowed' in found) {
      throw new RegistryError('UNSUPPORTED', `method ${req.method} is not allowed on ${path.slice(0, 200)}`, { status: 405, headers: { Allow: found.allowed.join(', ') } });
    }
    const ctx: RequestContext = { req, res, path, query, params: found.params, registry, log };
    await found.handler(ctx);
  }

  return createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    const started = process.hrtime.bigint();
    const remote = req.socket?.remoteAddress; // the socket may be gone by the time the response closes
    res.on('close', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.info(
        { method: req.method, path: req.url, status: res.statusCode, bytes: Number(res.getHeader('content-length') ?? 0), ms: Math.round(ms * 100) / 100, remote, complete: res.writableFinished },
        'request',
      );
    });
    handle(req, res).catch((error: unknown) => {
      const registryError = toRegistryError(error);
      if (registryError.status >= 500) log.error({ err: error, method: req.method, path: req.url }, 'request failed');
      // A client that sent a body we never read would desynchronize keep-alive: close instead.
      if (!req.complete) res.setHeader('Connection', 'close');
      sendError(req, res, registryError);
    });
  });
}

export function listenAddress(server: Server): string {
  const address = server.address() as AddressInfo;
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}
