import { Agent } from 'undici';
import { RegistryClient, type Credentials } from '../client/registry-client.ts';

/**
 * One RegistryClient per registry host for a CLI run, sharing one connection pool.
 * `credentials` looks up what to send to a host (docker config, helpers).
 */
export function clientFactory(credentials?: (registry: string) => Promise<Credentials | undefined>) {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 16 });
  const clients = new Map<string, RegistryClient>();
  return {
    get(registry: string): RegistryClient {
      let client = clients.get(registry);
      if (!client) {
        client = new RegistryClient({ registry, dispatcher, ...(credentials ? { credentials: () => credentials(registry) } : {}) });
        clients.set(registry, client);
      }
      return client;
    },
    async close(): Promise<void> {
      await dispatcher.close();
    },
  };
}
