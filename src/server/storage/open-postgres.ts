import { ConfigError } from '../../errors/config-error.ts';
import type { PostgresMetadataConfig } from '../backend-config.ts';
import { MetadataConnectionError, PostgresMetadataStore } from './postgres-metadata.ts';
import { SchemaVersionError } from './postgres-migrations.ts';

/**
 * The PostgreSQL metadata store `metadata.postgres` describes, connected, checked and migrated:
 * an unreachable server, refused credentials or a missing database stop the start with the setting.
 */
export async function openPostgresMetadata(config: PostgresMetadataConfig): Promise<PostgresMetadataStore> {
  try {
    return await PostgresMetadataStore.open(config.url, { poolSize: config.poolSize });
  } catch (error) {
    if (error instanceof MetadataConnectionError || error instanceof SchemaVersionError) throw new ConfigError(`metadata.postgres.url: ${error.message}`);
    throw error;
  }
}
