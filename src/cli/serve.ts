import type { Command } from 'commander';

/** `skiff serve`: flags → config → startRegistry; SIGTERM/SIGINT drain in-flight requests. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run an OCI Distribution v1.1 registry on embedded storage')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:5000)')
    .option('--data <dir>', 'data directory (default $SKIFF_DATA or ~/.local/share/skiff-registry)')
    .option('--config <file.yaml>', 'YAML file with the same keys as the flags')
    .option('--no-delete', 'refuse DELETE of manifests, tags and blobs (405)')
    .option('--read-only', 'refuse every write (405)')
    .option('--no-ui', 'serve no web UI at / and no /api/v1/ (see docs/ui.md)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default info)')
    .option('--headers-timeout <duration>', 'request line and headers must arrive within this (default 30s)')
    .option('--idle-timeout <duration>', 'cut a request body or response that moves no byte for this long (default 60s)')
    .option('--keep-alive-timeout <duration>', 'close keep-alive connections idle this long (default 30s)')
    .option('--max-connections <n>', 'answer connections beyond this with 503 (default: half the open-file limit)')
    .option('--min-free-space <size|percent>', '/healthz is unavailable below this free space (default 1GiB or 1%, the smaller)')
    .option('--upload-expiry <duration>', 'purge upload sessions idle this long (default 24h)')
    .option('--send-buffer-memory <size>', 'read buffers all blob responses may hold together (default 16MiB)')
    .option('--manifest-body-memory <size>', 'memory all manifest bodies in flight may hold together (default 64MiB)')
    .option('--proxy <url>', 'mirror mode: pull unprefixed names through this upstream registry (several upstreams: upstreams: in --config; see docs/mirror.md)')
    .option('--cache-max-size <size>', 'mirror mode: evict the least recently used cached images beyond this size, e.g. 50GiB (default: unlimited)')
    .option('--x-accel-redirect <prefix>', 'behind nginx: answer GETs of stored blobs with X-Accel-Redirect: <prefix>/<path under <data>/blobs/>, no body (see docs/serve.md)')
    .option('--htpasswd <file>', 'turn authentication on: users from this htpasswd file of bcrypt entries (htpasswd -B); see docs/auth.md')
    .option('--auth-scheme <scheme>', 'challenge clients with token (the built-in token service, default) or basic')
    .option('--anonymous-pull', 'with authentication on, let anonymous requests pull every repository')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate chain (reloaded on SIGHUP)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--gc-interval <duration>', 'run the garbage collector this often (default 1h; 0 turns it off); see docs/gc.md')
    .option('--gc-grace <duration>', 'a blob stays this long after it last became unreferenced or was pushed (default 24h)')
    .option('--insecure-http', 'allow authentication over plain HTTP on a non-loopback address (TLS ends at a proxy in front)')
    .action(async (options: Record<string, string | boolean | undefined>, command: Command) => {
      // Loaded here, not at the top: `skiff --help` loads every command's module, and the server's
      // (auth, jose, bcrypt, the collector) cost ~100 ms of every other command's start-up.
      const [{ pino }, { resolveServeConfig }, { startRegistry }] = await Promise.all([import('pino'), import('../server/config.ts'), import('../server/serve.ts')]);
      // commander reports defaults for --no-delete; only pass what the user actually typed.
      const typed = (key: string) => command.getOptionValueSource(key) === 'cli';
      const config = await resolveServeConfig(
        {
          listen: options.listen,
          data: options.data,
          delete: typed('delete') ? options.delete : undefined,
          readOnly: typed('readOnly') ? options.readOnly : undefined,
          ui: typed('ui') ? options.ui : undefined,
          logLevel: options.logLevel,
          headersTimeout: options.headersTimeout,
          idleTimeout: options.idleTimeout,
          keepAliveTimeout: options.keepAliveTimeout,
          maxConnections: options.maxConnections,
          minFreeSpace: options.minFreeSpace,
          uploadExpiry: options.uploadExpiry,
          sendBufferMemory: options.sendBufferMemory,
          manifestBodyMemory: options.manifestBodyMemory,
          proxy: options.proxy,
          cacheMaxSize: options.cacheMaxSize,
          xAccelRedirect: options.xAccelRedirect,
          htpasswd: options.htpasswd,
          authScheme: options.authScheme,
          anonymousPull: typed('anonymousPull') ? options.anonymousPull : undefined,
          tlsCert: options.tlsCert,
          tlsKey: options.tlsKey,
          insecureHttp: typed('insecureHttp') ? options.insecureHttp : undefined,
          gc: options.gcInterval !== undefined || options.gcGrace !== undefined ? { ...(options.gcInterval !== undefined ? { interval: options.gcInterval } : {}), ...(options.gcGrace !== undefined ? { grace: options.gcGrace } : {}) } : undefined,
        },
        options.config as string | undefined,
      );
      const log = pino({ level: config.logLevel });
      const running = await startRegistry(config, log);
      log.info({ listen: running.address, data: config.data, delete: config.delete, readOnly: config.readOnly, ui: config.ui, xAccelRedirect: config.xAccelRedirect }, `skiff registry listening on ${running.url}${config.ui ? ` (web UI at ${running.url}/)` : ''}`);
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down: finishing in-flight requests');
        const force = setTimeout(() => process.exit(1), 30_000);
        force.unref();
        running.close().then(
          () => {
            log.info('stopped');
            log.flush?.();
            process.exit(0);
          },
          (error: unknown) => {
            log.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
