import { formatCount } from '../format.ts';
import { navigate, pageValue, withParams } from '../router.ts';

/**
 * The line saying which rows are shown, and the buttons to the previous and next page (disabled at
 * the ends). The line is role="status" so a screen reader hears the count change as a filter narrows.
 */
export interface PagerProps {
  offset: number;
  limit: number;
  /** null: not known (loading, or the load failed). */
  total: number | null;
  loading: boolean;
  /** What the rows are, one and several: ["repository", "repositories"]. */
  noun: [string, string];
  /** The line when there are no rows at all. */
  empty: string;
  onOffset(offset: number): void;
}

export function Pager({ offset, limit, total, loading, noun, empty, onOffset }: PagerProps) {
  let status = '';
  if (total === null) status = loading ? 'Loading…' : '';
  else if (total === 0) status = empty;
  else if (offset >= total) status = `No ${noun[1]} on this page (${formatCount(total)} in all)`;
  else status = `Showing ${formatCount(offset + 1)}–${formatCount(Math.min(offset + limit, total))} of ${formatCount(total)} ${total === 1 ? noun[0] : noun[1]}`;
  return (
    <div class="pager">
      <p role="status" class="pager-status">
        {status}
      </p>
      <div class="pager-buttons">
        <button type="button" disabled={offset <= 0} onClick={() => onOffset(Math.max(0, offset - limit))}>
          Previous page
        </button>
        <button type="button" disabled={total === null || offset + limit >= total} onClick={() => onOffset(offset + limit)}>
          Next page
        </button>
      </div>
    </div>
  );
}

/** A Pager whose page lives in the URL (`?page=`), so a reload or the back button keeps it. */
export function UrlPager(props: Omit<PagerProps, 'onOffset'>) {
  return <Pager {...props} onOffset={(next) => navigate(withParams({ page: pageValue(next, props.limit) }))} />;
}
