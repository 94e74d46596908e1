import { ConfigError } from '../errors/config-error.ts';
import { AuthTable } from './auth-table.ts';
import { readConfigDocument } from './config-file.ts';
import { parseImageRules, type ImageRule } from './image-rule.ts';

export interface SyncConfig {
  auth: AuthTable;
  rules: ImageRule[];
}

export interface SyncConfigFiles {
  auth?: string;
  images?: string;
  /** The deprecated combined file: `{"auth": {…}, "images": {…}}`. */
  config?: string;
}

function mapping(value: unknown, where: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
  return value as Record<string, unknown>;
}

/** Loads image-syncer's files unchanged: `--auth` + `--images`, or the combined `--config`. */
export async function loadSyncConfig(files: SyncConfigFiles, env: NodeJS.ProcessEnv = process.env): Promise<SyncConfig> {
  if (files.config && files.images) throw new ConfigError('give either --config or --images (with --auth), not both');
  if (files.config) {
    const document = await readConfigDocument(files.config);
    for (const key of Object.keys(document)) if (key !== 'auth' && key !== 'images') throw new ConfigError(`${files.config}: unknown top-level key ${JSON.stringify(key)} (expected "auth" and "images")`);
    const auth = AuthTable.parse(mapping(document.auth, `${files.config}: "auth"`), `${files.config} (auth)`, env);
    const rules = parseImageRules(mapping(document.images, `${files.config}: "images"`), `${files.config} (images)`, env);
    if (rules.length === 0) throw new ConfigError(`${files.config}: "images" has no rules`);
    return { auth, rules };
  }
  if (!files.images) throw new ConfigError('no image rules: give --images <file> (and --auth <file>), or --config <file>');
  const auth = files.auth ? AuthTable.parse(await readConfigDocument(files.auth), files.auth, env) : new AuthTable();
  const rules = parseImageRules(await readConfigDocument(files.images), files.images, env);
  if (rules.length === 0) throw new ConfigError(`${files.images}: no image rules`);
  return { auth, rules };
}
