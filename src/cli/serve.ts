import type { Command } from 'commander';
import { pino } from 'pino';
import { resolveServeConfig } from '../server/config.ts';
import { startRegistry } from '../server/serve.ts';

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
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default info)')
    .action(async (options: { listen?: string; data?: string; config?: string; delete?: boolean; readOnly?: boolean; logLevel?: string }, command: Command) => {
      // commander reports defaults for --no-delete; only pass what the user actually typed.
      const typed = (key: string) => command.getOptionValueSource(key) === 'cli';
      const config = await resolveServeConfig(
        {
          listen: options.listen,
          data: options.data,
          delete: typed('delete') ? options.delete : undefined,
          readOnly: typed('readOnly') ? options.readOnly : undefined,
          logLevel: options.logLevel,
        },
        options.config,
      );
      const log = pino({ level: config.logLevel });
      const running = await startRegistry(config, log);
      log.info({ listen: running.address, data: config.data, delete: config.delete, readOnly: config.readOnly }, `skiff registry listening on ${running.url}`);
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
