import type { Server } from 'node:http';
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import type { ServeConfig } from './config.ts';
import { splitListen } from './config.ts';
import { openRegistry } from './open-registry.ts';
import type { Registry } from './registry.ts';
import { createRegistryServer, listenAddress } from './server.ts';
import { UploadReaper } from './upload-reaper.ts';

export interface RunningRegistry {
  server: Server;
  registry: Registry;
  /** `host:port` actually bound (port 0 resolved). */
  address: string;
  url: string;
  /** Stops accepting, lets in-flight requests finish, then closes storage. */
  close(): Promise<void>;
}

/** Starts `skiff serve`: embedded storage, HTTP server, graceful close. */
export async function startRegistry(config: ServeConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningRegistry> {
  const registry = await openRegistry(config.data, { deleteEnabled: config.delete, readOnly: config.readOnly, sendBufferMemory: config.sendBufferMemory });
  const server = createRegistryServer({ registry, log, dataDir: config.data, limits: config });
  const { host, port } = splitListen(config.listen);
  server.listen(port, host);
  await once(server, 'listening');
  // Read-only promises no writes to storage; stale sessions are purged once writes are back.
  const uploadReaper = config.readOnly ? undefined : new UploadReaper(registry, { expiry: config.uploadExpiry, log }).start();
  const address = listenAddress(server);
  let closing: Promise<void> | undefined;
  return {
    server,
    registry,
    address,
    url: `http://${address}`,
    close() {
      closing ??= (async () => {
        await uploadReaper?.stop(); // before storage closes under it
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Keep-alive connections go idle as their last request finishes; close them as they do.
        const reaper = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        await closed;
        clearInterval(reaper);
        await registry.metadata.close();
      })();
      return closing;
    },
  };
}
