/**
 * A garbage-collection dry run on demand: what a cycle would delete now and why, without deleting
 * anything, so an operator can check a retention policy before it runs for real.
 */
import { useState } from 'preact/hooks';
import type { GcDryRun } from '../../server/ui/api-types.ts';
import { request } from '../api.ts';
import { ErrorAlert } from '../components/error-alert.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { ScrollBox } from '../components/scroll-box.tsx';
import { formatCount, formatSize } from '../format.ts';
import { handleUnauthorized, useSession } from '../session.ts';

function plural(n: number, one: string, many: string): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

/** The numbers `skiff gc --dry-run` prints under its table, in a sentence. */
function summary(result: GcDryRun): string {
  const count = (kind: string) => result.rows.filter((row) => row.kind === kind).length;
  const what =
    result.rows.length === 0
      ? 'Nothing to delete.'
      : `Would delete ${plural(count('tag'), 'tag', 'tags')}, ${plural(count('manifest'), 'manifest', 'manifests')} and ${plural(count('blob'), 'blob', 'blobs')}, freeing ${formatSize(result.freedBytes)}.`;
  return `${what} Reviewed ${plural(result.reviewed, 'digest', 'digests')}; ${plural(result.prunedLinks, 'repository link', 'repository links')} to prune; ${formatCount(result.later)} in their grace period; ${formatCount(result.queued)} queued; ${formatCount(Math.round(result.ms))} ms.`;
}

export function GcPage() {
  const state = useSession();
  const [running, setRunning] = useState(false);
  const [result, setResult] = useState<GcDryRun | null>(null);
  const [error, setError] = useState<unknown>(null);
  const run = async () => {
    setRunning(true);
    setError(null);
    try {
      setResult(await request<GcDryRun>('POST', '/api/v1/gc/dry-run'));
    } catch (caught) {
      if (!handleUnauthorized(caught, state)) setError(caught);
    } finally {
      setRunning(false);
    }
  };
  return (
    <>
      <PageHeading title="Garbage collection" />
      <p>A dry run lists what a collection cycle would delete now, and why. It deletes nothing.</p>
      {state.session.admin ? (
        <p>
          <button type="button" class="primary" disabled={running} onClick={() => void run()}>
            {running ? 'Running…' : 'Run dry run'}
          </button>
        </p>
      ) : (
        <p class="muted">Only administrators can run it.</p>
      )}
      <ErrorAlert error={error} />
      <p role="status" class="summary">
        {result && summary(result)}
      </p>
      {result && result.rows.length > 0 && (
        <ScrollBox>
          <table aria-label="Would delete" class="list">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Repository</th>
                <th scope="col">Target</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {result.rows.map((row, index) => (
                <tr key={index}>
                  <td>{row.kind}</td>
                  <td>{row.repository ?? <span class="muted">—</span>}</td>
                  <td>
                    <code class="wrap">{row.target}</code>
                  </td>
                  <td class="num">{formatSize(row.size)}</td>
                  <td class="wrap">{row.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </ScrollBox>
      )}
    </>
  );
}
