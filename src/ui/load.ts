/**
 * Loading a GET endpoint into a component: the newest request wins (an older answer arriving late,
 * as when typing in a filter, is dropped), the last data stays on screen while the next loads, and
 * a 401 goes to the login page.
 */
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { get } from './api.ts';
import { handleUnauthorized, useSession } from './session.ts';

// Requests started before the first render (see prefetch), by URL; each is used once.
const prefetched = new Map<string, Promise<unknown>>();

/**
 * Start a GET now, for the page about to render: the first page's data then loads beside the
 * session instead of after it. Nothing happens to its answer until useLoad asks for that URL.
 */
export function prefetch(url: string): void {
  const promise = get(url);
  promise.catch(() => undefined); // handled when taken; never an unhandled rejection meanwhile
  prefetched.set(url, promise);
}

function takePrefetched<T>(url: string): Promise<T> | undefined {
  const promise = prefetched.get(url) as Promise<T> | undefined;
  prefetched.delete(url);
  return promise;
}

export interface Loaded<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  /** Fetch the same URL again (after a delete); settles when that answer is on screen. */
  reload(): Promise<void>;
}

/** `url` null: load nothing (yet). */
export function useLoad<T>(url: string | null): Loaded<T> {
  const session = useSession();
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({ data: null, error: null, loading: url !== null });
  const [generation, setGeneration] = useState(0);
  const latest = useRef(0);
  // reload()'s callers, told once the next answer is shown.
  const waiting = useRef<(() => void)[]>([]);
  // A layout effect: the request starts as the page renders, not a frame later after the paint.
  useLayoutEffect(() => {
    if (url === null) return;
    // Not aborted (an aborted fetch shows as a failed request in the browser's log): its answer is ignored.
    const ticket = ++latest.current;
    setState((previous) => ({ ...previous, loading: true }));
    const settle = (next: { data: T | null; error: unknown; loading: boolean } | null) => {
      if (ticket !== latest.current) return;
      if (next) setState(next);
      for (const resolve of waiting.current.splice(0)) resolve();
    };
    (takePrefetched<T>(url) ?? get<T>(url)).then(
      (data) => settle({ data, error: null, loading: false }),
      (error: unknown) => settle(handleUnauthorized(error, session) ? null : { data: null, error, loading: false }),
    );
  }, [url, generation]);
  // Answers after unmount are dropped too.
  useEffect(() => () => void (latest.current = -1), []);
  const reload = () =>
    new Promise<void>((resolve) => {
      waiting.current.push(resolve);
      setGeneration((n) => n + 1);
    });
  return { ...state, reload };
}
