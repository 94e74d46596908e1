/**
 * A history-API router in a few lines: the URL is the state (a link, a reload or the back button
 * lands on the same view), and same-origin links become client-side navigations while keeping
 * real hrefs, so a middle-click or "open in new tab" still works.
 */
import { useEffect, useState } from 'preact/hooks';

export interface Route {
  path: string;
  search: URLSearchParams;
  /** Path plus query: for `?next=` after a login. */
  href: string;
}

function current(): Route {
  return { path: location.pathname, search: new URLSearchParams(location.search), href: location.pathname + location.search };
}

const listeners = new Set<(route: Route) => void>();
let route = current();

function publish(): void {
  route = current();
  for (const listener of listeners) listener(route);
}

/** Go to a same-origin URL (a path, or `?query` for this path). `replace` rewrites the entry: typing in a filter is not a page to go back to. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  const url = new URL(to, location.href);
  const target = url.pathname + url.search + url.hash;
  if (target === location.pathname + location.search + location.hash) return;
  const pathChanged = url.pathname !== location.pathname;
  if (options.replace) history.replaceState(null, '', target);
  else history.pushState(null, '', target);
  if (pathChanged && !options.replace) window.scrollTo(0, 0);
  publish();
}

/** This path with some query parameters set (null or '' removes one). */
export function withParams(changes: Record<string, string | number | null>): string {
  const search = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === '') search.delete(key);
    else search.set(key, String(value));
  }
  const text = search.toString();
  return location.pathname + (text ? `?${text}` : '');
}

export function useRoute(): Route {
  const [state, setState] = useState(route);
  useEffect(() => {
    listeners.add(setState);
    // A navigation between the first render and this subscription.
    if (state !== route) setState(route);
    return () => void listeners.delete(setState);
  }, []);
  return state;
}

/** A 1-based page number from `?page=`; 1 when absent or not a positive integer. */
export function pageParam(search: URLSearchParams): number {
  const page = Number(search.get('page'));
  return Number.isInteger(page) && page > 0 ? page : 1;
}

/** The `?page=` value for a row offset: null (no parameter) for the first page. */
export function pageValue(offset: number, pageSize: number): number | null {
  const page = Math.floor(offset / pageSize) + 1;
  return page === 1 ? null : page;
}

/** Clicks on same-origin links navigate here, unless the user asked for a new tab or window, or a download. */
export function interceptLinks(root: Document): void {
  root.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const anchor = (event.target as Element | null)?.closest?.('a');
    if (!anchor || !anchor.href || anchor.target || anchor.hasAttribute('download')) return;
    const url = new URL(anchor.href);
    if (url.origin !== location.origin) return;
    // The API and the registry's own paths are not pages of this app.
    if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/v2/') || url.pathname.startsWith('/assets/')) return;
    // In-page anchors (the skip link) keep the browser's behaviour.
    if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
    event.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
  addEventListener('popstate', publish);
}
