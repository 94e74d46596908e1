import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { RegistryError } from '../../errors/registry-error.ts';
import type { AccessControl } from '../access-control.ts';
import type { GarbageCollector } from '../gc/collector.ts';
import type { GcSettings } from '../gc/cycle.ts';
import type { Registry } from '../registry.ts';
import { setPageHeaders } from './page-headers.ts';
import { UiApi } from './ui-api.ts';
import { builtUiDir, UiAssets } from './ui-assets.ts';
import { UiSessions } from './ui-session.ts';

export interface WebUiOptions {
  registry: Registry;
  access: AccessControl | undefined;
  log: Logger;
  tls: boolean;
  gc: { collector: () => GarbageCollector; settings: Pick<GcSettings, 'grace' | 'retention'> } | undefined;
  cacheMaxSize: number | undefined;
  /** dist/ui; found from this module when not given. */
  assetsDir?: string;
}

/** The browser app's own routes: each answers the page shell, and the app draws the page. */
const PAGE_PATH = /^\/(?:|login|mirror|gc|r\/.+)$/;

/**
 * The web UI: the built browser app at `/` (and its client-side routes) plus its JSON API at
 * `/api/v1/`. Every other path, `/v2/` above all, never reaches it: the server hands a request
 * here only when its path does not start with `/v2`.
 */
export class WebUi {
  private readonly assets: UiAssets | undefined;
  private readonly api: UiApi;

  private constructor(assets: UiAssets | undefined, api: UiApi) {
    this.assets = assets;
    this.api = api;
  }

  static async open(options: WebUiOptions): Promise<WebUi> {
    const dir = options.assetsDir ?? builtUiDir();
    const assets = await UiAssets.load(dir);
    if (!assets) options.log.warn({ dir }, 'web UI: no built app found (run npm run build); /api/v1/ still answers');
    const sessions = new UiSessions(options.access, options.tls);
    const auth = options.access !== undefined;
    const api = new UiApi({
      registry: options.registry,
      sessions,
      log: options.log,
      auth,
      anonymousBrowse: options.access?.options.policy.anonymousPullsSomewhere() ?? true,
      gc: options.gc,
      cacheMaxSize: options.cacheMaxSize,
    });
    return new WebUi(assets, api);
  }

  /** Which part of the UI `rawPath` is, for the metrics' route label; undefined when none. */
  routeOf(rawPath: string): 'api' | 'ui' | undefined {
    if (rawPath.startsWith('/api/v1/')) return 'api';
    if (PAGE_PATH.test(rawPath) || (rawPath.startsWith('/assets/') && (!this.assets || this.assets.has(rawPath)))) return 'ui';
    return undefined;
  }

  /** Answers a UI request and resolves true, or resolves false when `rawPath` is not the UI's. */
  async handle(req: IncomingMessage, res: ServerResponse, rawPath: string, query: URLSearchParams): Promise<boolean> {
    if (rawPath.startsWith('/api/v1/')) {
      let path: string;
      try {
        path = decodeURIComponent(rawPath);
      } catch {
        throw new RegistryError('NAME_INVALID', 'the request path is not valid percent-encoding');
      }
      await this.api.handle(req, res, path, query);
      return true;
    }
    const method = req.method ?? 'GET';
    const page = PAGE_PATH.test(rawPath);
    if (!page && !rawPath.startsWith('/assets/')) return false;
    if (method !== 'GET' && method !== 'HEAD') throw new RegistryError('UNSUPPORTED', `method ${method} is not allowed on ${rawPath.slice(0, 200)}`, { status: 405, headers: { Allow: 'GET, HEAD' } });
    if (!this.assets) {
      setPageHeaders(res);
      const body = 'The skiff web UI is not built in this installation: run `npm run build` (npm ci does it), then restart skiff serve.\n';
      res.writeHead(503, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) }).end(method === 'HEAD' ? undefined : body);
      return true;
    }
    if (!page && !this.assets.has(rawPath)) return false;
    this.assets.send(req, res, rawPath, query);
    return true;
  }
}
