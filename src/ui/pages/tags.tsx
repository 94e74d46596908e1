/**
 * A repository's tags, newest push first, sortable by each column but the platforms (the API
 * sorts, so the order holds across pages). Tags can be deleted here where the user may.
 */
import { useState } from 'preact/hooks';
import type { DeleteResult, TagPage, TagSort } from '../../server/ui/api-types.ts';
import { namePath, query, request } from '../api.ts';
import { ConfirmDialog } from '../components/confirm-dialog.tsx';
import { ShortDigest } from '../components/digest.tsx';
import { ErrorAlert } from '../components/error-alert.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { UrlPager } from '../components/pager.tsx';
import { PullCommand } from '../components/pull-command.tsx';
import { ScrollBox } from '../components/scroll-box.tsx';
import { RelativeTime } from '../components/time.tsx';
import { takeFlash } from '../flash.ts';
import { formatSize, parseTime } from '../format.ts';
import { useLoad } from '../load.ts';
import { repositoryHref } from '../reference.ts';
import { navigate, pageParam, withParams, type Route } from '../router.ts';
import { handleUnauthorized, useSession } from '../session.ts';

const PAGE_SIZE = 50;
type Order = 'asc' | 'desc';

interface Column {
  label: string;
  /** null: the API cannot sort by it. */
  sort: TagSort | null;
  /** The order of a first click: times newest first, the rest ascending. */
  first: Order;
  numeric?: boolean;
}

const COLUMNS: Column[] = [
  { label: 'Tag', sort: 'name', first: 'asc' },
  { label: 'Digest', sort: 'digest', first: 'asc' },
  { label: 'Size', sort: 'size', first: 'asc', numeric: true },
  { label: 'Platforms', sort: 'platforms', first: 'asc' },
  { label: 'Created', sort: 'created', first: 'desc' },
  { label: 'Pushed', sort: 'pushed', first: 'desc' },
];
const SORTS = new Set<string>(COLUMNS.flatMap((column) => (column.sort ? [column.sort] : [])));

export function TagsPage({ route, name }: { route: Route; name: string }) {
  const state = useSession();
  const { session } = state;
  const requested = route.search.get('sort') ?? '';
  const sort: TagSort = SORTS.has(requested) ? (requested as TagSort) : 'pushed';
  const order: Order = route.search.get('order') === 'asc' ? 'asc' : route.search.get('order') === 'desc' ? 'desc' : sort === 'pushed' || sort === 'created' ? 'desc' : 'asc';
  const offset = (pageParam(route.search) - 1) * PAGE_SIZE;
  const { data, error, loading, reload } = useLoad<TagPage>(`/api/v1/repositories/${namePath(name)}/tags${query({ sort, order, offset, limit: PAGE_SIZE })}`);

  const [status, setStatus] = useState(() => takeFlash() ?? '');
  const [pending, setPending] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);

  const sortBy = (column: Column) => {
    if (!column.sort) return;
    const nextOrder = column.sort === sort ? (order === 'asc' ? 'desc' : 'asc') : column.first;
    const isDefault = column.sort === 'pushed' && nextOrder === 'desc';
    navigate(withParams({ sort: isDefault ? null : column.sort, order: isDefault ? null : nextOrder, page: null }));
  };

  const remove = async (tag: string) => {
    setBusy(true);
    setDeleteError(null);
    try {
      await request<DeleteResult>('DELETE', `/api/v1/repositories/${namePath(name)}/tags/${encodeURIComponent(tag)}`);
      // The list first, then the message: when "Deleted tag" shows, the row is gone.
      await reload();
      setPending(null);
      setStatus(`Deleted tag ${tag}`);
    } catch (caught) {
      if (!handleUnauthorized(caught, state)) setDeleteError(caught);
    } finally {
      setBusy(false);
    }
  };

  const mayDelete = data?.mayDelete ?? false;
  return (
    <>
      <PageHeading title={name} />
      <div class="repository-pull">
        <PullCommand tool="docker" reference={`${session.registryHost}/${name}`} />
        {data?.cached && <span class="badge">cached</span>}
      </div>
      <p role="status" class="flash">
        {status}
      </p>
      <ErrorAlert error={error} notFound={`Repository ${name} does not exist, or you may not pull it.`} />
      {!error && (
        <>
          <ScrollBox>
            <table aria-label="Tags" aria-busy={loading} class="list">
              <thead>
                <tr>
                  {COLUMNS.map((column) => (
                    <th scope="col" class={column.numeric ? 'num' : undefined} aria-sort={column.sort === null ? undefined : column.sort === sort ? (order === 'asc' ? 'ascending' : 'descending') : 'none'}>
                      {column.sort === null ? (
                        column.label
                      ) : (
                        <button type="button" class="sort" onClick={() => sortBy(column)}>
                          {column.label}
                          <span class="sort-mark" aria-hidden="true">
                            {column.sort === sort ? (order === 'asc' ? '▲' : '▼') : ''}
                          </span>
                        </button>
                      )}
                    </th>
                  ))}
                  {mayDelete && (
                    <th scope="col">
                      <span class="visually-hidden">Actions</span>
                    </th>
                  )}
                </tr>
              </thead>
              <tbody>
                {data?.tags.map((tag) => (
                  <tr key={tag.tag}>
                    <td class="name">
                      <a href={repositoryHref(name, { tag: tag.tag })}>{tag.tag}</a>
                    </td>
                    <td>
                      <ShortDigest digest={tag.digest} />
                    </td>
                    <td class="num">{formatSize(tag.size)}</td>
                    <td>{tag.platforms.length > 0 ? tag.platforms.join(', ') : <span class="muted">—</span>}</td>
                    <td>
                      <RelativeTime ms={parseTime(tag.created)} raw={tag.created} />
                    </td>
                    <td>
                      <RelativeTime ms={tag.pushed} />
                    </td>
                    {mayDelete && (
                      <td>
                        <button
                          type="button"
                          class="small danger-outline"
                          onClick={() => {
                            setDeleteError(null);
                            setPending(tag.tag);
                          }}
                        >
                          Delete<span class="visually-hidden"> tag {tag.tag}</span>
                        </button>
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </ScrollBox>
          <UrlPager
            offset={offset}
            limit={PAGE_SIZE}
            total={data ? data.total : null}
            loading={loading}
            noun={['tag', 'tags']}
            empty="No tags in this repository"
          />
        </>
      )}
      {pending !== null && (
        <ConfirmDialog title={`Delete tag ${pending}?`} confirmLabel="Delete" busyLabel="Deleting…" busy={busy} error={deleteError} onConfirm={() => void remove(pending)} onCancel={() => setPending(null)}>
          <p>
            The tag <code>{pending}</code> is removed from {name}. The manifest it names stays: it can still be pulled by digest, and through any other tag on it.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}
