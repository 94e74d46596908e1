import { credentialSource } from '../client/credentials.ts';
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

  async close(): Promise<void> {
    await this.transport.close();
  }
}
