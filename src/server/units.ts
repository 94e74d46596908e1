/** Durations and sizes as people write them in a config file or a flag. */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const DURATION_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30s`, `5m`, `24h`, `7d`, `250ms`; a bare number (or numeric string) is seconds. Milliseconds, or undefined. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined;
  if (typeof value !== 'string') return undefined;
  const match = DURATION.exec(value.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * DURATION_MS[(match[2] ?? 's') as keyof typeof DURATION_MS]);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB|k|K|M|G|T)?$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  k: 1024,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/**
 * A free-space floor: a number of bytes, a share of the filesystem, or (the default) both, in
 * which case the smaller applies, so a small disk is not "full" at 1 GiB free.
 */
export type FreeSpaceRule = { bytes: number; orPercent?: number } | { percent: number };

/** `64MiB`, `1GiB`, `500MB`, `1G`; a bare number is bytes; with `percent`, also `1%`. */
export function parseSize(value: unknown, options: { percent?: boolean } = {}): FreeSpaceRule | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? { bytes: value } : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (options.percent) {
    const percent = /^(\d+(?:\.\d+)?)\s*%$/.exec(text);
    if (percent) return Number(percent[1]) <= 100 ? { percent: Number(percent[1]) } : undefined;
  }
  const match = SIZE.exec(text);
  if (!match) return undefined;
  return { bytes: Math.round(Number(match[1]) * SIZE_BYTES[match[2] ?? 'B']!) };
}

/** The free bytes below which a filesystem of `total` bytes counts as full under `rule`. */
export function freeSpaceFloor(rule: FreeSpaceRule, total: number): number {
  if ('percent' in rule) return Math.ceil((total * rule.percent) / 100);
  if (rule.orPercent === undefined) return rule.bytes;
  return Math.min(rule.bytes, Math.ceil((total * rule.orPercent) / 100));
}
