/**
 * Docker's human-readable units (github.com/docker/go-units) and time strings, so that skiff's
 * columns read exactly like docker's. Pure; no I/O.
 */

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'] as const;

/**
 * Go's `fmt.Sprintf("%.<precision>g", x)`: scientific notation only when the exponent is below
 * -4 or at least the precision, trailing zeros removed, exponent with at least two digits.
 */
export function formatG(value: number, precision: number): string {
  if (value === 0) return '0';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : Number.isNaN(value) ? 'NaN' : '-Inf';
  const [mantissa = '', exponentText = '0'] = value.toExponential(precision - 1).split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= precision) {
    const digits = String(Math.abs(exponent)).padStart(2, '0');
    return `${stripZeros(mantissa)}e${exponent < 0 ? '-' : '+'}${digits}`;
  }
  return stripZeros(value.toFixed(Math.max(0, precision - 1 - exponent)));
}

function stripZeros(text: string): string {
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

/** go-units `HumanSizeWithPrecision`: decimal (1000-based) units, e.g. `7.8MB`, `512B`. */
export function humanSize(bytes: number, precision = 3): string {
  let size = bytes;
  let unit = 0;
  while (size >= 1000 && unit < DECIMAL_UNITS.length - 1) {
    size /= 1000;
    unit++;
  }
  return `${formatG(size, precision)}${DECIMAL_UNITS[unit]}`;
}

/** go-units `HumanDuration`: `Less than a second`, `About an hour`, `3 days`, `2 years`. */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.trunc(milliseconds / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(milliseconds / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(milliseconds / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(milliseconds / 3_600_000 / 24 / 365)} years`;
}

/** docker's CREATED column: `2 hours ago`. */
export function createdSince(created: Date, now: Date): string {
  return `${humanDuration(now.getTime() - created.getTime())} ago`;
}

/** Go's `time.Time.String()` in UTC, docker's CreatedAt: `2026-01-01 00:00:00 +0000 UTC`. */
export function createdAt(created: Date): string {
  const iso = created.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} +0000 UTC`;
}

/** RFC 3339 to the second, as Go's `time.RFC3339` prints a UTC time: `2026-01-01T00:00:00Z`. */
export function rfc3339(created: Date): string {
  return `${created.toISOString().slice(0, 19)}Z`;
}

/**
 * docker's `Ellipsis`: cut to `width` characters, the last one being `…` when cut.
 * Counts code points, as docker does for single-width text.
 */
export function ellipsis(text: string, width: number): string {
  if (width <= 0) return '';
  const chars = [...text];
  if (chars.length <= width) return text;
  if (width === 1) return chars[0] ?? '';
  return `${chars.slice(0, width - 1).join('')}…`;
}
