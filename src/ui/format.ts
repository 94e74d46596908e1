/**
 * How numbers, sizes, times and digests read in the UI. English throughout (the page is lang="en"),
 * so a count reads "10,000" whatever the browser's locale.
 */

const count = new Intl.NumberFormat('en-US');
const percent = new Intl.NumberFormat('en-US', { style: 'percent', maximumFractionDigits: 1 });
const relative = new Intl.RelativeTimeFormat('en', { numeric: 'always' });
// The exact time in the reader's own zone and format: it is the one they compare with their clock.
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'long' });

export function formatCount(n: number): string {
  return count.format(n);
}

export function formatPercent(ratio: number | null): string {
  return ratio === null ? '—' : percent.format(ratio);
}

const SIZE_UNITS = ['kB', 'MB', 'GB', 'TB', 'PB'];

/** Decimal units with three significant digits, as `docker images` shows them: "12.3 MB". */
export function formatSize(bytes: number | null): string {
  if (bytes === null) return '—';
  if (bytes < 1000) return `${bytes} B`;
  let value = bytes;
  let unit = '';
  for (const next of SIZE_UNITS) {
    value /= 1000;
    unit = next;
    if (value < 999.5) break;
  }
  const digits = value < 9.995 ? 2 : value < 99.95 ? 1 : 0;
  return `${value.toFixed(digits)} ${unit}`;
}

const RELATIVE_STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['second', 60],
  ['minute', 60],
  ['hour', 24],
  ['day', 30],
  ['month', 12],
  ['year', Infinity],
];

/** "3 minutes ago" (or "in 2 hours" for a clock ahead of ours). */
export function formatRelative(ms: number, now = Date.now()): string {
  let value = (ms - now) / 1000;
  if (Math.abs(value) < 45) return 'just now';
  for (const [unit, size] of RELATIVE_STEPS) {
    if (Math.abs(value) < size || unit === 'year') return relative.format(Math.round(value), unit);
    value /= size;
  }
  return relative.format(Math.round(value), 'year');
}

export function formatExact(ms: number): string {
  return exact.format(ms);
}

/** A duration as an operator configured it: "5 min", "1 h", "30 s", "1.5 h". */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  const units: [string, number][] = [
    ['d', 86400],
    ['h', 3600],
    ['min', 60],
  ];
  for (const [unit, size] of units) {
    if (seconds >= size) return `${Number((seconds / size).toFixed(1))} ${unit}`;
  }
  return `${Number(seconds.toFixed(1))} s`;
}

/** `sha256:` and the first 12 hex digits: enough to tell manifests apart on a page. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(':');
  return colon < 0 ? digest.slice(0, 12) : digest.slice(0, colon + 13);
}

/** An ISO 8601 time from an image config as milliseconds, or null when it does not parse. */
export function parseTime(iso: string | null): number | null {
  if (iso === null) return null;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? null : ms;
}
