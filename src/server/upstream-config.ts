import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors/config-error.ts';
import { globProblem } from '../reference/glob.ts';
import {
  DEFAULT_TAG_TTL,
  defaultUpstreamUrl,
  normalizeUpstreamHost,
  proxyUpstream,
  storagePrefix,
  upstreamHostProblem,
  upstreamUrlProblem,
  type UpstreamConfig,
} from '../proxy/upstream-config.ts';
import { parseDuration } from './units.ts';

/**
 * The mirror's settings in `skiff serve`'s config: `proxy: <url>` (the `--proxy` flag) and
 * `upstreams:`, a list of mappings. A problem names the entry and key: `upstreams[1].url: …`.
 */

type Parsed<T> = { value: T } | { problem: string };

const KEYS = ['host', 'url', 'username', 'password', 'passwordFile', 'passwordEnv', 'tagTTL', 'allow', 'deny', 'default'] as const;

/** `--proxy <url>` / `proxy:`: the URL of the default upstream. */
export function parseProxy(value: unknown): Parsed<string | undefined> {
  if (typeof value !== 'string') return { problem: 'expected the URL of the upstream registry, e.g. https://registry-1.docker.io' };
  const problem = upstreamUrlProblem(value);
  if (problem) return { problem };
  const host = normalizeUpstreamHost(new URL(value).host);
  const hostProblem = upstreamHostProblem(host);
  if (hostProblem) return { problem: `${host}: ${hostProblem}` };
  return { value };
}

function globList(value: unknown, key: string, problems: string[]): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) {
    problems.push(`${key}: expected a list of repository globs, e.g. [library/*, myorg/**]`);
    return [];
  }
  for (const glob of list as string[]) {
    const problem = globProblem(glob);
    if (problem) problems.push(`${key}: ${problem}`);
  }
  return list as string[];
}

function parseEntry(entry: unknown, where: string, problems: string[]): UpstreamConfig | undefined {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    problems.push(`${where}: expected a mapping with host, url and optional username, password (or passwordFile, passwordEnv), tagTTL, allow, deny, default`);
    return undefined;
  }
  const values = entry as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(values)) {
    if (!(KEYS as readonly string[]).includes(key)) problems.push(`${where}.${key}: unknown setting (known: ${KEYS.join(', ')})`);
  }
  let host = '';
  if (typeof values.host !== 'string' || values.host === '') problems.push(`${where}.host: required: the registry name clients use, e.g. docker.io`);
  else {
    host = normalizeUpstreamHost(values.host);
    const problem = upstreamHostProblem(host);
    if (problem) problems.push(`${where}.host: ${problem}`);
  }
  let url = host ? defaultUpstreamUrl(host) : '';
  if (values.url !== undefined) {
    const problem = typeof values.url === 'string' ? upstreamUrlProblem(values.url) : 'expected an http:// or https:// URL';
    if (problem) problems.push(`${where}.url: ${problem}`);
    else url = (values.url as string).replace(/\/+$/, '');
  }
  for (const key of ['username', 'password', 'passwordFile', 'passwordEnv'] as const) {
    if (values[key] !== undefined && typeof values[key] !== 'string') problems.push(`${where}.${key}: must be a string`);
  }
  const secretSources = (['password', 'passwordFile', 'passwordEnv'] as const).filter((key) => values[key] !== undefined);
  if (secretSources.length > 1) problems.push(`${where}: give one of password, passwordFile, passwordEnv, not ${secretSources.join(' and ')}`);
  if ((values.username === undefined) !== (secretSources.length === 0)) {
    problems.push(`${where}: username and a password (password, passwordFile or passwordEnv) go together (or leave both out to use the Docker config's credentials for the upstream's host)`);
  }
  const password = upstreamPassword(values, where, problems);
  let tagTTL = DEFAULT_TAG_TTL;
  if (values.tagTTL !== undefined) {
    const ms = parseDuration(values.tagTTL);
    if (ms === undefined) problems.push(`${where}.tagTTL: expected a duration such as 30s, 5m or 1h (0: ask the upstream every time)`);
    else tagTTL = ms;
  }
  const allow = globList(values.allow, `${where}.allow`, problems);
  const deny = globList(values.deny, `${where}.deny`, problems);
  if (values.default !== undefined && typeof values.default !== 'boolean') problems.push(`${where}.default: must be true or false`);
  if (problems.length > before) return undefined;
  const config: UpstreamConfig = { host, url, tagTTL, allow, deny, default: values.default === true };
  if (typeof values.username === 'string') config.username = values.username;
  if (password !== undefined) config.password = password;
  return config;
}

/**
 * The upstream's password: inline, from a file (a mounted secret; one trailing newline dropped),
 * or from an environment variable. Read once at start; never logged.
 */
function upstreamPassword(values: Record<string, unknown>, where: string, problems: string[]): string | undefined {
  if (typeof values.password === 'string') return values.password;
  if (typeof values.passwordFile === 'string') {
    try {
      const secret = readFileSync(values.passwordFile, 'utf8').replace(/\r?\n$/, '');
      if (secret === '') problems.push(`${where}.passwordFile: ${values.passwordFile} is empty`);
      return secret;
    } catch (error) {
      problems.push(`${where}.passwordFile: cannot read ${values.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return undefined;
    }
  }
  if (typeof values.passwordEnv === 'string') {
    const secret = process.env[values.passwordEnv];
    if (secret === undefined || secret === '') problems.push(`${where}.passwordEnv: the environment variable ${values.passwordEnv} is not set`);
    return secret;
  }
  return undefined;
}

/** `upstreams:` as a list of UpstreamConfig, or every problem, one per line (`[1].url: …`). */
export function parseUpstreamList(value: unknown): Parsed<UpstreamConfig[] | undefined> {
  if (!Array.isArray(value)) return { problem: 'expected a list of upstreams, each a mapping with host and url' };
  const problems: string[] = [];
  const list: UpstreamConfig[] = [];
  value.forEach((entry, i) => {
    const parsed = parseEntry(entry, `[${i}]`, problems);
    if (parsed) list.push(parsed);
  });
  return problems.length > 0 ? { problem: problems.join('\n') } : { value: list };
}

/**
 * Every upstream the server pulls through: the `upstreams:` list, plus the default upstream that
 * `proxy` names. Checks what involves several of them: one host each, at most one default.
 * `where` names the source of `proxy` (a file or "flags") in messages.
 */
export function configuredUpstreams(settings: { proxy?: string | undefined; upstreams?: UpstreamConfig[] | undefined }, where = 'config'): UpstreamConfig[] {
  const list = [...(settings.upstreams ?? [])];
  const problems: string[] = [];
  if (settings.proxy !== undefined) {
    const proxied = proxyUpstream(settings.proxy);
    const clash = list.findIndex((upstream) => upstream.default);
    if (clash !== -1) problems.push(`${where}: proxy: upstreams[${clash}] is the default already; give one default upstream (proxy, or default: true)`);
    list.push(proxied);
  }
  const seen = new Map<string, number>();
  list.forEach((upstream, i) => {
    const prefix = storagePrefix(upstream.host);
    const first = seen.get(prefix);
    if (first !== undefined) problems.push(`${where}: upstreams[${i}].host: ${upstream.host} is configured twice (also upstreams[${first}]${settings.proxy !== undefined && i === list.length - 1 ? ', and proxy names it' : ''})`);
    else seen.set(prefix, i);
  });
  const defaults = list.map((upstream, i) => (upstream.default ? i : -1)).filter((i) => i !== -1);
  if (defaults.length > 1 && settings.proxy === undefined) problems.push(`${where}: upstreams: only one upstream may be the default (default: true on upstreams[${defaults.join('], upstreams[')}])`);
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return list;
}
