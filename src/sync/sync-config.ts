import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors/config-error.ts';
import { AuthTable } from './auth-table.ts';
import { readConfigDocument } from './config-file.ts';
import { resolveDefaultTarget } from './default-target.ts';
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

export interface SyncConfigOptions {
  /**
   * Where image-syncer's default files are looked for when `--images` / `--auth` are not given
   * (`<cwd>/images.json`, `<cwd>/auth.json`); without it, only the files named are read.
   */
  cwd?: string;
  /** `--registry` and `--namespace` as given; the DEFAULT_REGISTRY / DEFAULT_NAMESPACE variables fill in. */
  registry?: string | undefined;
  namespace?: string | undefined;
}

/** image-syncer's documented defaults for `--images` and `--auth`. */
export const DEFAULT_IMAGES_FILE = 'images.json';
export const DEFAULT_AUTH_FILE = 'auth.json';

function mapping(value: unknown, where: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${where} must be a mapping`);
  return value as Record<string, unknown>;
}

/** Whether a default file is there to read; anything but "does not exist" is left for the read to report. */
async function present(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * Loads image-syncer's files unchanged: `--auth` + `--images`, or the combined `--config`.
 * With `options.cwd`, a missing `--images` means `<cwd>/images.json` (an error if it is not
 * there) and a missing `--auth` means `<cwd>/auth.json` when it exists (otherwise anonymous);
 * `--config` reads only that file, as in image-syncer.
 */
export async function loadSyncConfig(files: SyncConfigFiles, env: NodeJS.ProcessEnv = process.env, options: SyncConfigOptions = {}): Promise<SyncConfig> {
  if (files.config && files.images) throw new ConfigError('give either --config or --images (with --auth), not both');
  const defaults = resolveDefaultTarget(options, env);
  if (files.config) {
    const document = await readConfigDocument(files.config);
    for (const key of Object.keys(document)) if (key !== 'auth' && key !== 'images') throw new ConfigError(`${files.config}: unknown top-level key ${JSON.stringify(key)} (expected "auth" and "images")`);
    const auth = AuthTable.parse(mapping(document.auth, `${files.config}: "auth"`), `${files.config} (auth)`, env);
    const rules = parseImageRules(mapping(document.images, `${files.config}: "images"`), `${files.config} (images)`, env, defaults);
    if (rules.length === 0) throw new ConfigError(`${files.config}: "images" has no rules`);
    return { auth, rules };
  }
  let images = files.images;
  let auth = files.auth;
  if (options.cwd !== undefined) {
    const implicitImages = join(options.cwd, DEFAULT_IMAGES_FILE);
    if (!images && (await present(implicitImages))) images = implicitImages;
    const implicitAuth = join(options.cwd, DEFAULT_AUTH_FILE);
    if (!auth && (await present(implicitAuth))) auth = implicitAuth;
  }
  if (!images) {
    const looked = options.cwd !== undefined ? `; without them skiff reads ./${DEFAULT_IMAGES_FILE}, and there is none in ${options.cwd}` : '';
    throw new ConfigError(`no image rules: give --images <file> (and --auth <file>), or --config <file>${looked}`);
  }
  const table = auth ? AuthTable.parse(await readConfigDocument(auth), auth, env) : new AuthTable();
  const rules = parseImageRules(await readConfigDocument(images), images, env, defaults);
  if (rules.length === 0) throw new ConfigError(`${images}: no image rules`);
  return { auth: table, rules };
}

/**
 * The credentials alone (a `skiff sync --queue --worker`: its images come from the queue): `--auth`,
 * else `<cwd>/auth.json` when it exists, else anonymous.
 */
export async function loadAuthOnly(file: string | undefined, env: NodeJS.ProcessEnv = process.env, options: { cwd?: string } = {}): Promise<AuthTable> {
  let auth = file;
  if (!auth && options.cwd !== undefined && (await present(join(options.cwd, DEFAULT_AUTH_FILE)))) auth = join(options.cwd, DEFAULT_AUTH_FILE);
  return auth ? AuthTable.parse(await readConfigDocument(auth), auth, env) : new AuthTable();
}
