/**
 * The list of repositories the user may pull, 50 a page, filtered as they type. The URL holds the
 * filter and the page (`/?q=team&page=2`), so a reload or a shared link shows the same list.
 */
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import type { RepositoryPage } from '../../server/ui/api-types.ts';
import { ErrorAlert } from '../components/error-alert.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { UrlPager } from '../components/pager.tsx';
import { ScrollBox } from '../components/scroll-box.tsx';
import { RelativeTime } from '../components/time.tsx';
import { formatCount, formatSize } from '../format.ts';
import { useLoad } from '../load.ts';
import { navigate, pageParam, withParams, type Route } from '../router.ts';
import { REPOSITORY_PAGE_SIZE, repositoriesApiUrl } from '../first-page.ts';

const PAGE_SIZE = REPOSITORY_PAGE_SIZE;
/** Long enough to skip the requests for the letters of a word typed in one go, short enough to feel instant. */
const DEBOUNCE_MS = 120;

/** The API URL of the list a URL's query shows (main.tsx prefetches it on a first load of `/`). */
export function repositoriesUrl(search: URLSearchParams): string {
  return repositoriesApiUrl(search.get('q') ?? '', (pageParam(search) - 1) * PAGE_SIZE);
}

export function RepositoriesPage({ route }: { route: Route }) {
  const q = route.search.get('q') ?? '';
  const offset = (pageParam(route.search) - 1) * PAGE_SIZE;
  const [text, setText] = useState(q);
  // The filter this page last wrote into the URL: a different one there came from back/forward.
  const written = useRef(q);
  useEffect(() => {
    if (q !== written.current) {
      written.current = q;
      setText(q);
    }
  }, [q]);
  useEffect(() => {
    if (text === written.current) return;
    const timer = setTimeout(() => {
      written.current = text;
      navigate(withParams({ q: text, page: null }), { replace: true });
    }, DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [text]);

  const { data, error, loading } = useLoad<RepositoryPage>(repositoriesUrl(route.search));
  const inputId = useId();
  return (
    <>
      <PageHeading title="Repositories" />
      <div class="toolbar">
        <label for={inputId}>Filter repositories</label>
        <input id={inputId} type="search" value={text} autoComplete="off" spellcheck={false} onInput={(event) => setText(event.currentTarget.value)} />
      </div>
      <ErrorAlert error={error} />
      <ScrollBox>
        <table aria-label="Repositories" aria-busy={loading} class="list">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col" class="num">
                Tags
              </th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col">Last push</th>
            </tr>
          </thead>
          <tbody>
            {data?.repositories.map((repository) => (
              <tr key={repository.name}>
                <td class="name">
                  <a href={`/r/${repository.name}`}>{repository.name}</a>
                  {repository.cached && <span class="badge">cached</span>}
                </td>
                <td class="num">{formatCount(repository.tags)}</td>
                <td class="num">{formatSize(repository.size)}</td>
                <td>
                  <RelativeTime ms={repository.lastPush} />
                </td>
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
        noun={['repository', 'repositories']}
        empty={q ? `No repositories match “${q}”` : 'No repositories yet'}
      />
    </>
  );
}
