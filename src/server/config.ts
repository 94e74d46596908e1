import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Every `skiff serve` setting; each flag has the same key in the YAML file. */
export interface ServeConfig {
  listen: string;
  data: string;
  delete: boolean;
  readOnly: boolean;
  logLevel: LogLevel;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LogLevel = (typeof LOG_LEVELS)[number];
const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]*):(\d{1,5})$/;

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

/**
 * The schema, as checks that say what is wrong. Hand-written rather than zod: five keys did not
 * justify the ~18 MiB of resident memory zod adds to a server that must stay small.
 */
const FIELDS: { [K in keyof ServeConfig]: (value: unknown) => string | undefined } = {
  listen: (v) => {
    if (typeof v !== 'string') return 'must be a string host:port';
    const match = LISTEN.exec(v);
    return match && Number(match[2]) <= 65535 ? undefined : 'expected host:port, e.g. 127.0.0.1:5000 or [::1]:5000';
  },
  data: (v) => (typeof v === 'string' && v.length > 0 ? undefined : 'must be a non-empty directory path'),
  delete: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  readOnly: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  logLevel: (v) => ((LOG_LEVELS as readonly unknown[]).includes(v) ? undefined : `must be one of ${LOG_LEVELS.join(', ')}`),
};

const DEFAULTS = { listen: '127.0.0.1:5000', delete: true, readOnly: false, logLevel: 'info' } as const;

function check(values: Record<string, unknown>, where: string): string[] {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    const validate = Object.hasOwn(FIELDS, key) ? FIELDS[key as keyof ServeConfig] : undefined;
    if (!validate) problems.push(`${where}: ${key}: unknown setting (known: ${Object.keys(FIELDS).join(', ')})`);
    else {
      const problem = validate(value);
      if (problem) problems.push(`${where}: ${key}: ${problem}`);
    }
  }
  return problems;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read: ${(error as Error).message}`);
  }
  const { parse } = await import('yaml'); // loaded only when a file is given
  let parsed: unknown;
  try {
    parsed = parse(text) ?? {};
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`${file}: expected a mapping of settings`);
  return parsed as Record<string, unknown>;
}

/** Flags beat the file; the file beats defaults. Errors name the file (or "flags"), the key and why. */
export async function resolveServeConfig(flags: Record<string, unknown>, file?: string): Promise<ServeConfig> {
  const fromFile = file !== undefined ? await readConfigFile(file) : {};
  const fromFlags = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  const problems = [...check(fromFile, file ?? ''), ...check(fromFlags, 'flags')];
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return { ...DEFAULTS, data: defaultDataDir(), ...fromFile, ...fromFlags } as ServeConfig;
}

export function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port: Number(listen.slice(colon + 1)) };
}
