import type { Server } from 'node:http';
import type { Server as TlsServer } from 'node:tls';
import { once } from 'node:events';
import { pino, type Logger } from 'pino';
import type { ServeConfig } from './config.ts';
import { ConfigError } from '../errors/config-error.ts';
import { splitListen } from './config.ts';
import { ServerMetrics } from './metrics.ts';
import { MetricsSummaryLog } from './metrics-log.ts';
import { openRegistry } from './open-registry.ts';
import type { Registry } from './registry.ts';
import { createRegistryServer, listenAddress } from './server.ts';
import { UploadReaper } from './upload-reaper.ts';
import { configuredUpstreams } from './upstream-config.ts';
import type { AccessControl } from './access-control.ts';
import { authEnabled, openAccessControl } from './auth-config.ts';
import { checkPlainHttpAuth, expiryWarning, loadTlsFiles, TlsReloader } from './tls.ts';
import { collectorFor } from './gc/open-collector.ts';
import { GcScheduler } from './gc/scheduler.ts';
import { WebUi } from './ui/web-ui.ts';

export interface RunningRegistry {
  server: Server;
  registry: Registry;
  /** Served at GET /metrics; the mirror records its counters in `metrics.mirror`. */
  metrics: ServerMetrics;
  /** Authentication and permissions, when on. */
  access: AccessControl | undefined;
  /** The background garbage collector; undefined when `gc.interval` is 0 or the registry is read-only. */
  gc: GcScheduler | undefined;
  /** `host:port` actually bound (port 0 resolved). */
  address: string;
  url: string;
  /** Stops accepting, lets in-flight requests finish, then closes storage. */
  close(): Promise<void>;
}

/** Starts `skiff serve`: embedded storage, HTTP server, graceful close. */
export async function startRegistry(config: ServeConfig, log: Logger = pino({ level: config.logLevel })): Promise<RunningRegistry> {
  const { host, port } = splitListen(config.listen);
  if ((config.tlsCert === undefined) !== (config.tlsKey === undefined)) throw new ConfigError('tlsCert and tlsKey (--tls-cert, --tls-key) go together: give both or neither');
  const tlsFiles = config.tlsCert !== undefined && config.tlsKey !== undefined ? await loadTlsFiles(config.tlsCert, config.tlsKey) : undefined;
  if (tlsFiles) {
    const warning = expiryWarning(tlsFiles, config.tlsCert!);
    if (warning) log.warn(warning);
  }
  checkPlainHttpAuth({ listenHost: host, tls: tlsFiles !== undefined, auth: authEnabled(config), insecureHttp: config.insecureHttp });
  const registry = await openRegistry(config.data, { deleteEnabled: config.delete, readOnly: config.readOnly, sendBufferMemory: config.sendBufferMemory, upstreams: configuredUpstreams(config), cacheMaxSize: config.cacheMaxSize, quotas: config.quotas, log, storage: config.storage, metadata: config.metadata, redis: config.redis });
  let access: AccessControl | undefined;
  try {
    access = await openAccessControl(config, config.data, (name) => registry.policyName(name), log, registry.options.loginLimiter);
  } catch (error) {
    await registry.close();
    throw error;
  }
  const metrics = new ServerMetrics();
  registry.mirror?.setMetrics(metrics.mirror);
  const gcSettings = config.readOnly ? undefined : { collector: () => collectorFor(registry.blobs, registry.metadata, log), settings: config.gc };
  const ui = config.ui ? await WebUi.open({ registry, access, log, tls: tlsFiles !== undefined, gc: gcSettings, cacheMaxSize: config.cacheMaxSize }) : undefined;
  const server = createRegistryServer({ registry, log, dataDir: config.data, limits: config, metrics, xAccelRedirect: config.xAccelRedirect, access, tls: tlsFiles, ui });
  server.listen(port, host);
  await once(server, 'listening');
  // SIGHUP: a renewed certificate and an edited password file take effect without a restart.
  const reloader = tlsFiles ? new TlsReloader({ server: server as unknown as TlsServer, certFile: config.tlsCert!, keyFile: config.tlsKey!, log }) : undefined;
  const stopWatching = reloader?.watchSighup();
  const onHangup = (): void => {
    access?.options.htpasswd?.reload().then(
      () => log.info({ htpasswd: config.htpasswd }, 'htpasswd reloaded'),
      (error: unknown) => log.error({ err: error }, 'htpasswd reload failed, keeping the previous users'),
    );
  };
  if (access?.options.htpasswd) process.on('SIGHUP', onHangup);
  void registry.mirror?.checkUpstreams(); // logs each upstream's state; an unreachable one never stops the start
  // Read-only promises no writes to storage; stale sessions are purged once writes are back.
  const uploadReaper = config.readOnly ? undefined : new UploadReaper(registry, { expiry: config.uploadExpiry, log }).start();
  const gc =
    config.readOnly || config.gc.interval === 0
      ? undefined
      : new GcScheduler({ settings: config.gc, collector: collectorFor(registry.blobs, registry.metadata, log), metadata: registry.metadata, log, metrics, lease: registry.options.gcLock }).start();
  const summary = new MetricsSummaryLog(metrics, log).start();
  const address = listenAddress(server);
  let closing: Promise<void> | undefined;
  return {
    server,
    registry,
    metrics,
    access,
    gc,
    address,
    url: `${tlsFiles ? 'https' : 'http'}://${address}`,
    close() {
      closing ??= (async () => {
        stopWatching?.();
        process.off('SIGHUP', onHangup);
        await uploadReaper?.stop(); // before storage closes under it
        await gc?.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Keep-alive connections go idle as their last request finishes; close them as they do.
        const reaper = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        await closed;
        clearInterval(reaper);
        await summary.stop(); // after the last request, so its counts are in
        await registry.mirror?.close(); // cuts fills still running, before storage closes under them
        await registry.close();
      })();
      return closing;
    },
  };
}
