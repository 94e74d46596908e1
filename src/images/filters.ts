/**
 * docker's `--filter key=value` flags (api/types/filters): repeatable, keys case-insensitive,
 * several values per key. Keys a command does not know are an error. Pure; no I/O.
 */
export class FilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilterError';
  }
}

export type Filters = Map<string, string[]>;

/** Parses `key=value` arguments; `accepted` lists the keys the command understands. */
export function parseFilters(args: readonly string[], accepted: readonly string[]): Filters {
  const filters: Filters = new Map();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === -1) throw new FilterError('bad format of filter (expected name=value)');
    const key = arg.slice(0, eq).trim().toLowerCase();
    const value = arg.slice(eq + 1).trim();
    if (!accepted.includes(key)) throw new FilterError(`invalid filter '${key}' (accepted: ${accepted.join(', ')})`);
    filters.set(key, [...(filters.get(key) ?? []), value]);
  }
  return filters;
}

/**
 * Boolean filters such as `dangling`: docker's GetBoolOrDefault accepts `true`/`1` and
 * `false`/`0`, repeated as long as they agree. Unlike docker, a word it does not know is an error
 * even beside one it does (`dangling=true` with `dangling=yes`), rather than ignored.
 */
export function booleanFilter(filters: Filters, key: string): boolean | undefined {
  const values = filters.get(key);
  if (!values) return undefined;
  const truthy = values.every((v) => v === 'true' || v === '1');
  const falsy = values.every((v) => v === 'false' || v === '0');
  if (truthy !== falsy) return truthy;
  const given = [...new Set(values)].join(',');
  const why = values.some((v) => !['true', '1', 'false', '0'].includes(v)) ? `${key} takes true or false (or 1 or 0)` : `${key} cannot be both true and false`;
  throw new FilterError(`invalid filter '${key}=${given}': ${why}`);
}

/**
 * docker's MatchKVList for `label`: every value must hold, `k` meaning the label exists and
 * `k=v` that it has that value.
 */
export function matchLabels(wanted: readonly string[], labels: Record<string, string> | null | undefined): boolean {
  return wanted.every((item) => {
    const eq = item.indexOf('=');
    const key = eq === -1 ? item : item.slice(0, eq);
    if (!labels || !Object.hasOwn(labels, key)) return false;
    return eq === -1 || labels[key] === item.slice(eq + 1);
  });
}
