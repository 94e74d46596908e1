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
    if (!accepted.includes(key)) throw new FilterError(`invalid filter '${key}'`);
    filters.set(key, [...(filters.get(key) ?? []), value]);
  }
  return filters;
}

/** `true`/`false` filters (docker accepts exactly these words). */
export function booleanFilter(filters: Filters, key: string): boolean | undefined {
  const values = filters.get(key);
  if (!values) return undefined;
  const distinct = [...new Set(values)];
  if (distinct.length === 1 && (distinct[0] === 'true' || distinct[0] === 'false')) return distinct[0] === 'true';
  throw new FilterError(`invalid filter '${key}=${values.join(',')}'`);
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
