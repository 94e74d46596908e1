import { credentialSource } from '../client/credentials.ts';
import { helperFor, readDockerConfig, storedAuth, type LoadedDockerConfig } from '../client/docker-config.ts';
import { RegistryClient, type Credentials } from '../client/registry-client.ts';
import type { RetryPolicy } from '../client/retry.ts';
import { NodeHttpTransport } from '../client/transport.ts';
import type { AuthTable } from './auth-table.ts';

export interface SyncClientOptions {
  auth: AuthTable;
  retry?: RetryPolicy;
  /** Connections per registry; sync keeps several transfers and manifest reads in flight. */
  connections?: number;
  /** Look up credentials in Docker's config when auth.json has none (default true). */
  dockerConfig?: boolean;
  onCredentialWarning?: (message: string) => void;
}

/**
 * The registry clients of one sync run. auth.json can give different credentials to namespaces
 * of one registry, so a client is kept per (registry, credentials); each caches its own tokens.
 * Without an auth.json entry, Docker's config.json and credential helpers are asked.
 */
export class SyncClients {
  private readonly clients = new Map<string, RegistryClient>();
  private readonly transport: NodeHttpTransport;
  private readonly options: SyncClientOptions;

  constructor(options: SyncClientOptions) {
    this.options = options;
    this.transport = new NodeHttpTransport({ connections: options.connections ?? 32 });
  }

  get(registry: string, repository: string): RegistryClient {
    const fromFile = this.options.auth.credentials(registry, repository);
    const key = `${registry}\n${fromFile ? `${fromFile.username}\n${fromFile.password}` : ''}`;
    let client = this.clients.get(key);
    if (!client) {
      const credentials: Credentials | (() => Promise<Credentials | undefined>) | undefined =
        fromFile ??
        (this.options.dockerConfig === false
          ? undefined
          : credentialSource(registry, { onHelperError: (error) => this.options.onCredentialWarning?.(`${error.message}; continuing without credentials`) }));
      client = new RegistryClient({
        registry,
        transport: this.transport,
        userAgent: 'skiff-sync/0.1',
        ...(credentials ? { credentials } : {}),
        ...(this.options.auth.insecure(registry) ? { plainHttp: true } : {}),
        ...(this.options.retry ? { retry: this.options.retry } : {}),
      });
      this.clients.set(key, client);
    }
    return client;
  }

  /**
   * What to check after a 401 on `registry/repository`: the credentials' real origin (the auth
   * file and its key, Docker's config at `$DOCKER_CONFIG` or `~/.docker`, or a credential helper),
   * or where to put them when there were none. The same lookup order as `get`.
   */
  async credentialsAdvice(registry: string, repository: string): Promise<string> {
    const { auth } = this.options;
    const matched = auth.keyFor(registry, repository);
    if (auth.credentials(registry, repository)) return `check the credentials under ${JSON.stringify(matched![0])} in ${auth.file ?? 'the auth file'}`;
    const addThem = `add a username and password for ${registry} to ${auth.file ?? 'an --auth file'}`;
    if (this.options.dockerConfig === false) return `no credentials were sent: ${addThem}`;
    let docker: LoadedDockerConfig;
    try {
      docker = await readDockerConfig();
    } catch (error) {
      return `no usable credentials: ${(error as Error).message}; ${addThem}`;
    }
    const where = `${docker.path}${process.env.DOCKER_CONFIG ? ' ($DOCKER_CONFIG)' : ''}`;
    const helper = helperFor(docker.data, registry);
    if (helper) return `check the credentials of docker-credential-${helper.helper} (${helper.via} in ${where})`;
    if (hasStoredAuth(docker, registry)) return `check the credentials for ${registry} in ${where}`;
    return `no credentials for ${registry} in ${auth.file ?? 'an auth file (none given)'} or ${where}: ${addThem}, or run skiff login ${registry}`;
  }

  async close(): Promise<void> {
    await this.transport.close();
  }
}

function hasStoredAuth(docker: LoadedDockerConfig, registry: string): boolean {
  try {
    return storedAuth(docker.data, registry, docker.path) !== undefined;
  } catch {
    return true; // an entry is there, unreadable: the advice to check it stands
  }
}
