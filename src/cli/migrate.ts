import type { Command } from 'commander';

/**
 * `skiff migrate --config skiff.yaml`: applies the PostgreSQL metadata schema's pending migrations
 * and exits, for deployments that migrate before rolling out replicas (each replica also migrates
 * at start, under an advisory lock, so this is never required).
 */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description("apply pending migrations to the PostgreSQL metadata database of a skiff serve config (replicas also do it at start)")
    .requiredOption('--config <file.yaml>', 'the skiff serve config whose metadata.postgres.url names the database')
    .action(async (options: { config: string }) => {
      const [{ resolveServeConfig }, { ConfigError }] = await Promise.all([import('../server/config.ts'), import('../errors/config-error.ts')]);
      const config = await resolveServeConfig({}, options.config);
      if (!config.metadata) {
        throw new ConfigError(`${options.config}: metadata: no postgres database to migrate (SQLite under data brings its own schema up to date when skiff serve opens it)`);
      }
      const [{ migrate, MetadataConnectionError }, { SCHEMA_VERSION, SchemaVersionError }, { redactUrl }] = await Promise.all([
        import('../server/storage/postgres-metadata.ts'),
        import('../server/storage/postgres-migrations.ts'),
        import('../errors/redact-url.ts'),
      ]);
      const where = redactUrl(config.metadata.postgres.url);
      let applied: number[];
      try {
        applied = await migrate(config.metadata.postgres.url);
      } catch (error) {
        if (error instanceof MetadataConnectionError || error instanceof SchemaVersionError) throw new ConfigError(`metadata.postgres.url: ${error.message}`);
        throw error;
      }
      process.stdout.write(
        applied.length > 0
          ? `${where}: applied migration${applied.length > 1 ? 's' : ''} ${applied.join(', ')}; schema version ${SCHEMA_VERSION}\n`
          : `${where}: schema version ${SCHEMA_VERSION}, nothing to apply\n`,
      );
    });
}
