import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isDigest } from '../../digest/digest.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { isValidTag, nameProblem } from '../../reference/name.ts';
import type { GarbageCollector } from '../gc/collector.ts';
import { runGcCycle, type GcSettings } from '../gc/cycle.ts';
import { plainHost, readBodyLimited, sendJson } from '../http-util.ts';
import type { Registry } from '../registry.ts';
import type { SessionInfo, TagSort } from './api-types.ts';
import { ImageFactsCache } from './image-facts.ts';
import { manifestDetail } from './manifest-detail.ts';
import { mirrorTags, mirrorView } from './mirror-view.ts';
import { repositoryPage, tagPage, wholeNumber } from './repository-pages.ts';
import type { UiCaller, UiSessions } from './ui-session.ts';
import { gcDryRunView } from './gc-view.ts';

export interface UiApiOptions {
  registry: Registry;
  sessions: UiSessions;
  log: Logger;
  /** Authentication is on. */
  auth: boolean;
  /** Anonymous may pull some repository, so the UI browses without a login. */
  anonymousBrowse: boolean;
  /** The collector a dry run asks, and its settings; undefined when the registry is read-only. */
  gc: { collector: () => GarbageCollector; settings: Pick<GcSettings, 'grace' | 'retention'> } | undefined;
  cacheMaxSize: number | undefined;
}

const LOGIN_BODY_LIMIT = 16 * 1024;
const TAG_SORTS: readonly TagSort[] = ['pushed', 'name', 'size', 'created', 'digest', 'platforms'];

/**
 * `/api/v1/…`: the JSON the UI needs beyond the OCI API (docs/ui.md). Each request is decided by
 * the session's user under the same policy as `/v2/`: a repository the caller may not pull does
 * not exist here (404, as it is absent from the list), a delete needs the delete action, and every
 * action needs the CSRF token. Reads come from the store only: browsing a mirror's cached copy
 * never makes it ask its upstream.
 */
export class UiApi {
  private readonly facts: ImageFactsCache;
  private dryRun: Promise<unknown> | undefined;

  private readonly options: UiApiOptions;

  constructor(options: UiApiOptions) {
    this.options = options;
    this.facts = new ImageFactsCache(options.registry);
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> {
    const method = req.method ?? 'GET';
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (path === '/api/v1/session') return this.session(req, res, method);
    if (method !== 'GET' && method !== 'HEAD') this.options.sessions.checkAction(req);
    const caller = await this.options.sessions.caller(req, this.deleteEnabled);
    const { registry } = this.options;

    if (path === '/api/v1/repositories' && method === 'GET') {
      this.requireBrowsing(caller);
      return sendJson(res, 200, await repositoryPage(registry.metadata, caller, query));
    }
    if (path === '/api/v1/mirror' && method === 'GET') {
      this.requireBrowsing(caller);
      return sendJson(res, 200, await mirrorView(registry, this.options.cacheMaxSize));
    }
    if (path === '/api/v1/mirror/tags' && method === 'GET') {
      this.requireBrowsing(caller);
      return sendJson(res, 200, await mirrorTags(registry, caller, query));
    }
    if (path === '/api/v1/gc/dry-run' && method === 'POST') return this.gcDryRun(res, caller);

    const tags = /^\/api\/v1\/repositories\/(?<name>.+?)\/tags$/.exec(path);
    if (tags && method === 'GET') {
      const name = await this.visibleRepository(tags.groups!.name!, caller);
      const sort = (query.get('sort') ?? 'pushed') as TagSort;
      if (!TAG_SORTS.includes(sort)) throw badRequest(`sort must be one of ${TAG_SORTS.join(', ')}`);
      const order = query.get('order') ?? (sort === 'pushed' || sort === 'created' ? 'desc' : 'asc');
      if (order !== 'asc' && order !== 'desc') throw badRequest('order must be asc or desc');
      const page = await tagPage(registry, this.facts, name, { sort, order, ...paging(query) });
      return sendJson(res, 200, { ...page, mayDelete: this.mayDelete(caller, name), cached: await registry.metadata.isCachedRepository(name) });
    }
    const tag = /^\/api\/v1\/repositories\/(?<name>.+?)\/tags\/(?<tag>[^/]+)$/.exec(path);
    if (tag && method === 'DELETE') {
      const name = await this.visibleRepository(tag.groups!.name!, caller);
      if (!isValidTag(tag.groups!.tag!)) throw badRequest('invalid tag');
      return this.delete(res, caller, name, tag.groups!.tag!);
    }
    const manifest = /^\/api\/v1\/repositories\/(?<name>.+?)\/manifests\/(?<reference>[^/]+)$/.exec(path);
    if (manifest) {
      const name = await this.visibleRepository(manifest.groups!.name!, caller);
      const reference = manifest.groups!.reference!;
      if (method === 'GET') {
        const detail = await manifestDetail(registry, this.facts, name, reference);
        return sendJson(res, 200, { ...detail, mayDelete: this.mayDelete(caller, name), cached: await registry.metadata.isCachedRepository(name) });
      }
      if (method === 'DELETE') {
        if (!isDigest(reference)) throw badRequest('delete a manifest by its digest (a tag is deleted under /tags/)');
        return this.delete(res, caller, name, reference);
      }
    }
    throw new RegistryError('UNSUPPORTED', `no such endpoint: ${method} ${path.slice(0, 200)}`, { status: 404 });
  }

  private get deleteEnabled(): boolean {
    const { options } = this.options.registry;
    return options.deleteEnabled && !options.readOnly;
  }

  private async session(req: IncomingMessage, res: ServerResponse, method: string): Promise<void> {
    const { sessions } = this.options;
    if (method === 'POST') {
      sessions.checkAction(req);
      let body: { username?: unknown; password?: unknown };
      try {
        body = JSON.parse((await readBodyLimited(req, LOGIN_BODY_LIMIT)).toString('utf8')) as typeof body;
      } catch (error) {
        if (error instanceof RegistryError) throw error;
        throw badRequest('the login body must be JSON: {"username": "…", "password": "…"}');
      }
      if (typeof body?.username !== 'string' || typeof body.password !== 'string' || body.username === '') throw badRequest('username and password are required');
      const user = await sessions.login(req, res, body.username, body.password);
      this.options.log.info({ user }, 'ui: login');
      return sendJson(res, 200, await this.sessionInfo(req, res, user));
    }
    if (method === 'DELETE') {
      sessions.checkAction(req);
      sessions.logout(res);
      return sendJson(res, 200, await this.sessionInfo(req, res, null));
    }
    if (method !== 'GET') throw new RegistryError('UNSUPPORTED', `method ${method} is not allowed on /api/v1/session`, { status: 405, headers: { Allow: 'GET, POST, DELETE' } });
    return sendJson(res, 200, await this.sessionInfo(req, res, undefined));
  }

  /** `user`: just logged in (a string) or out (null); undefined reads it from the session cookie. */
  private async sessionInfo(req: IncomingMessage, res: ServerResponse, user: string | null | undefined): Promise<SessionInfo> {
    const { sessions, registry, auth } = this.options;
    const name = user === undefined ? ((await sessions.caller(req, this.deleteEnabled)).user ?? null) : user;
    return {
      user: name,
      csrf: sessions.csrfToken(req, res),
      auth,
      login: sessions.canLogin,
      anonymousBrowse: !auth || this.options.anonymousBrowse,
      admin: sessions.isAdmin(name ?? undefined) && this.options.gc !== undefined,
      deleteEnabled: this.deleteEnabled,
      registryHost: plainHost(req) ?? 'localhost',
      mirror: registry.mirror !== undefined,
    };
  }

  /** Browsing needs a user unless anonymous may pull somewhere: 401 sends the UI to its login page. */
  private requireBrowsing(caller: UiCaller): void {
    if (this.options.auth && caller.user === undefined && !this.options.anonymousBrowse) throw loginRequired();
  }

  /** The repository as stored, if the caller may pull it; else as absent as a name never pushed. */
  private async visibleRepository(name: string, caller: UiCaller): Promise<string> {
    if (nameProblem(name) !== undefined) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 200))}`);
    if (!caller.mayPull(name)) {
      if (this.options.auth && caller.user === undefined && this.options.sessions.canLogin) throw loginRequired();
      throw unknownRepository(name);
    }
    if (!(await this.options.registry.metadata.repositoryExists(name))) throw unknownRepository(name);
    return name;
  }

  private mayDelete(caller: UiCaller, name: string): boolean {
    return caller.mayDelete(name) && !this.options.registry.mirror?.isCached(name);
  }

  private async delete(res: ServerResponse, caller: UiCaller, name: string, reference: string): Promise<void> {
    if (!caller.mayDelete(name)) {
      if (!this.deleteEnabled) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry', { status: 405 });
      throw new RegistryError('DENIED', `${caller.user ?? 'anonymous'} may not delete in ${name}`);
    }
    await this.options.registry.deleteManifest(name, reference);
    this.options.log.info({ user: caller.user, repository: name, reference }, 'ui: deleted');
    sendJson(res, 200, { deleted: reference });
  }

  private async gcDryRun(res: ServerResponse, caller: UiCaller): Promise<void> {
    const gc = this.options.gc;
    if (!gc) throw new RegistryError('UNSUPPORTED', 'garbage collection does not run on a read-only registry', { status: 405 });
    if (!caller.admin) throw caller.user === undefined && this.options.auth ? loginRequired() : new RegistryError('DENIED', 'only admins may run the garbage collector');
    // One dry run at a time: a second click shares the running one's answer.
    this.dryRun ??= runGcCycle(gc.collector(), this.options.registry.metadata, gc.settings, { dryRun: true }).finally(() => {
      this.dryRun = undefined;
    });
    const report = (await this.dryRun) as Awaited<ReturnType<typeof runGcCycle>>;
    sendJson(res, 200, gcDryRunView(report));
  }
}

function paging(query: URLSearchParams): { offset: number; limit: number } {
  return { offset: wholeNumber(query.get('offset'), 0, 1e9, 'offset'), limit: wholeNumber(query.get('limit'), 50, 200, 'limit') };
}

function badRequest(message: string): RegistryError {
  return new RegistryError('UNSUPPORTED', message, { status: 400 });
}

function loginRequired(): RegistryError {
  // No WWW-Authenticate: a browser would show its own password dialog.
  return new RegistryError('UNAUTHORIZED', 'log in to see this');
}

function unknownRepository(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `repository ${name} is not known to this registry`, { detail: { name } });
}
