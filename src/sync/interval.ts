/** `--watch` intervals: `90`, `90s`, `5m`, `1h`, `500ms`. Plain numbers are seconds. */
export function parseInterval(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`invalid interval ${JSON.stringify(text)}: expected e.g. 30s, 5m, 1h`);
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(match[1]) * factor;
  if (ms <= 0) throw new Error(`invalid interval ${JSON.stringify(text)}: must be more than zero`);
  return ms;
}
