import type { Server } from 'node:http';
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import type { ServeConfig } from './config.ts';
import { splitListen } from './config.ts';
import { ServerMetrics } from './metrics.ts';
import { MetricsSummaryLog } from './metrics-log.ts';
import { openRegistry } from './open-registry.ts';
import type { Registry } from './registry.ts';
import { createRegistryServer, listenAddress } from './server.ts';
import { UploadReaper } from './upload-reaper.ts';
import { configuredUpstreams } from './upstream-config.ts';

export interface RunningRegistry {
  server: Server;
  registry: Registry;
  /** Served at GET /metrics; the mirror records its counters in `metrics.mirror`. */
  metrics: ServerMetrics;
  /** `host:port` actually bound (port 0 resolved). */
  address: string;
  url: string;
  /** Stops accepting, lets in-flight requests finish, then closes storage. */
  close(): Promise<void>;
}

/** Starts `skiff serve`: embedded storage, HTTP server, graceful close. */
export async function startRegistry(config: ServeConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningRegistry> {
  const registry = await openRegistry(config.data, { deleteEnabled: config.delete, readOnly: config.readOnly, sendBufferMemory: config.sendBufferMemory, upstreams: configuredUpstreams(config), cacheMaxSize: config.cacheMaxSize, log });
  const metrics = new ServerMetrics();
  registry.mirror?.setMetrics(metrics.mirror);
  const server = createRegistryServer({ registry, log, dataDir: config.data, limits: config, metrics, xAccelRedirect: config.xAccelRedirect });
  const { host, port } = splitListen(config.listen);
  server.listen(port, host);
  await once(server, 'listening');
  void registry.mirror?.checkUpstreams(); // logs each upstream's state; an unreachable one never stops the start
  // Read-only promises no writes to storage; stale sessions are purged once writes are back.
  const uploadReaper = config.readOnly ? undefined : new UploadReaper(registry, { expiry: config.uploadExpiry, log }).start();
  const summary = new MetricsSummaryLog(metrics, log).start();
  const address = listenAddress(server);
  let closing: Promise<void> | undefined;
  return {
    server,
    registry,
    metrics,
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
        await summary.stop(); // after the last request, so its counts are in
        await registry.mirror?.close(); // cuts fills still running, before storage closes under them
        await registry.metadata.close();
      })();
      return closing;
    },
  };
}
