import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** Every `skiff serve` setting; each flag has the same key in the YAML file. */
export const ServeConfigSchema = z
  .object({
    listen: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]*):\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:5000').default('127.0.0.1:5000'),
    data: z.string().min(1).optional(),
    delete: z.boolean().default(true),
    readOnly: z.boolean().default(false),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .strict();

export type ServeConfig = z.infer<typeof ServeConfigSchema> & { data: string };

export function defaultDataDir(): string {
  if (process.env.SKIFF_DATA) return process.env.SKIFF_DATA;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'skiff-registry');
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Flags beat the file; the file beats defaults. Errors name the file, the key and why. */
export async function resolveServeConfig(flags: Record<string, unknown>, file?: string): Promise<ServeConfig> {
  let fromFile: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ConfigError(`${file}: cannot read: ${(error as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text) ?? {};
    } catch (error) {
      throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a mapping of settings`);
    fromFile = parsed as Record<string, unknown>;
  }
  const merged = { ...fromFile, ...Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) };
  const result = ServeConfigSchema.safeParse(merged);
  if (!result.success) {
    const where = file ?? 'flags';
    const problems = result.error.issues.map((issue) => `${where}: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new ConfigError(problems.join('\n'));
  }
  return { ...result.data, data: result.data.data ?? defaultDataDir() };
}

export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(listen.slice(colon + 1)) };
}
