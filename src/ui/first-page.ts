/**
 * The repository list's page size and the API URL of one of its pages: one definition for the page
 * (pages/repositories.tsx), its prefetch (main.tsx) and the preload that `/` carries in its HTML
 * (scripts/build-ui.ts writes it into index-home.html). The browser hands a preloaded answer to a
 * fetch only for the very same URL, so they must agree to the byte. Plain TypeScript without the
 * DOM, so that the build script can import it too.
 */
export const REPOSITORY_PAGE_SIZE = 50;

export function repositoriesApiUrl(filter: string, offset: number): string {
  const search = new URLSearchParams();
  if (filter !== '') search.set('filter', filter);
  search.set('offset', String(offset));
  search.set('limit', String(REPOSITORY_PAGE_SIZE));
  return `/api/v1/repositories?${search.toString()}`;
}
