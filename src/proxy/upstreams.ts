import { normalizeRegistryHost } from '../client/registry-host.ts';
import { Upstream, type UpstreamOptions } from './upstream.ts';
import type { UpstreamConfig } from './upstream-config.ts';

/** Where a request's repository name leads: an upstream, the name there, and the cache's name for it. */
export interface MirrorRoute {
  upstream: Upstream;
  /** The repository's name at the upstream (`library/alpine`). */
  repository: string;
  /** Where its cached copy lives in this registry: `<host prefix>/<repository>` (`docker.io/library/alpine`). */
  canonical: string;
  /** How the request named it. */
  via: 'ns' | 'prefix' | 'default';
  /** False when the upstream's allow/deny lists refuse this repository. */
  allowed: boolean;
}

/**
 * The mirror's routing table. A repository name in a request reaches an upstream:
 *
 *   1. by `?ns=<host>` (containerd's hosts.toml): the name is the upstream's; an `ns` that names
 *      no configured upstream leaves the request to the local registry, never to the default;
 *   2. by path prefix: `/v2/<host>/<name>/…` (podman's registries.conf mirrors, and the cache's
 *      own names: the prefix is the host with a port's `:` written `_`);
 *   3. otherwise by the default upstream, if there is one and it allows the name (Docker's
 *      registry-mirrors: `/v2/library/alpine/…` means Docker Hub).
 *
 * Anything else is a local repository. Either way the cached copy lives under one canonical name,
 * `<prefix>/<upstream name>`, so every way of asking shares one cache.
 */
export class Upstreams {
  readonly list: readonly Upstream[];
  private readonly byHost = new Map<string, Upstream>();
  private readonly byPrefix = new Map<string, Upstream>();
  private readonly fallback: Upstream | undefined;

  constructor(configs: UpstreamConfig[], options: UpstreamOptions = {}) {
    this.list = configs.map((config) => new Upstream(config, options));
    for (const upstream of this.list) {
      this.byHost.set(upstream.host, upstream);
      this.byPrefix.set(upstream.prefix, upstream);
      this.byPrefix.set(upstream.host, upstream);
    }
    this.fallback = this.list.find((upstream) => upstream.config.default);
  }

  get defaultUpstream(): Upstream | undefined {
    return this.fallback;
  }

  route(name: string, ns?: string): MirrorRoute | undefined {
    if (ns !== undefined && ns !== '') {
      const upstream = this.byHost.get(normalizeRegistryHost(ns));
      return upstream ? this.make(upstream, name, 'ns') : undefined;
    }
    const slash = name.indexOf('/');
    if (slash > 0) {
      const upstream = this.byPrefix.get(name.slice(0, slash));
      if (upstream) return this.make(upstream, name.slice(slash + 1), 'prefix');
    }
    if (this.fallback) {
      const route = this.make(this.fallback, name, 'default');
      // A name the default upstream does not allow stays local: how local repositories sit beside it.
      if (route.allowed) return route;
    }
    return undefined;
  }

  /** True when `repository` (a name in this registry) is under a cached namespace. */
  isCached(repository: string): boolean {
    const slash = repository.indexOf('/');
    return slash > 0 && this.byPrefix.has(repository.slice(0, slash));
  }

  async close(): Promise<void> {
    await Promise.all(this.list.map((upstream) => upstream.close()));
  }

  private make(upstream: Upstream, name: string, via: MirrorRoute['via']): MirrorRoute {
    const repository = upstream.upstreamName(name);
    return { upstream, repository, canonical: `${upstream.prefix}/${repository}`, via, allowed: upstream.allows(repository) };
  }
}
