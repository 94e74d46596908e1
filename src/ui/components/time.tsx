/** A time as people scan it ("3 minutes ago"), with the exact one on hover and in `datetime` for machines. */
import { formatExact, formatRelative } from '../format.ts';

export function RelativeTime({ ms, raw }: { ms: number | null; raw?: string | null }) {
  if (ms === null) return <span class="muted">{raw ?? '—'}</span>;
  return (
    <time dateTime={new Date(ms).toISOString()} title={formatExact(ms)}>
      {formatRelative(ms)}
    </time>
  );
}
