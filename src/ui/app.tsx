/**
 * The frame of every page: the session first (who may see what), then the header with the main
 * navigation, and the page the URL names in <main>.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { SessionInfo } from '../server/ui/api-types.ts';
import { request, setCsrfToken } from './api.ts';
import { ErrorAlert } from './components/error-alert.tsx';
import { GcPage } from './pages/gc.tsx';
import { LoginPage } from './pages/login.tsx';
import { ManifestPage } from './pages/manifest.tsx';
import { MirrorPage } from './pages/mirror.tsx';
import { NotFoundPage } from './pages/not-found.tsx';
import { RepositoriesPage } from './pages/repositories.tsx';
import { TagsPage } from './pages/tags.tsx';
import { parseReference } from './reference.ts';
import { navigate, useRoute, type Route } from './router.ts';
import { fetchSession, SessionContext, type SessionState } from './session.ts';

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function Page({ route }: { route: Route }) {
  const path = route.path;
  if (path === '/') return <RepositoriesPage route={route} />;
  if (path === '/login') return <LoginPage route={route} />;
  if (path === '/mirror') return <MirrorPage />;
  if (path === '/gc') return <GcPage />;
  if (path.startsWith('/r/') && path.length > 3) {
    const { name, tag, digest } = parseReference(decodePath(path.slice(3)).replace(/\/+$/, ''));
    if (tag !== null || digest !== null) return <ManifestPage name={name} tag={tag} digest={digest} />;
    return <TagsPage route={route} name={name} />;
  }
  return <NotFoundPage />;
}

function Header({ state, path }: { state: SessionState; path: string }) {
  const { session } = state;
  const [busy, setBusy] = useState(false);
  const logOut = async () => {
    setBusy(true);
    try {
      await request('DELETE', '/api/v1/session');
    } catch {
      // Gone already (expired): reloading the session shows the truth either way.
    }
    await state.reload().catch(() => undefined);
    setBusy(false);
    navigate('/');
  };
  const current = (active: boolean) => (active ? ('page' as const) : undefined);
  return (
    <header class="top">
      <a class="brand" href="/">
        skiff
      </a>
      <nav aria-label="Main">
        <ul>
          <li>
            <a href="/" aria-current={current(path === '/' || path.startsWith('/r/'))}>
              Repositories
            </a>
          </li>
          {session.mirror && (
            <li>
              <a href="/mirror" aria-current={current(path === '/mirror')}>
                Mirror
              </a>
            </li>
          )}
          {session.admin && (
            <li>
              <a href="/gc" aria-current={current(path === '/gc')}>
                Garbage collection
              </a>
            </li>
          )}
        </ul>
      </nav>
      <div class="account">
        {session.user ? (
          <>
            <span class="user">Signed in as {session.user}</span>
            <button type="button" class="small" disabled={busy} onClick={() => void logOut()}>
              Log out
            </button>
          </>
        ) : (
          session.login &&
          path !== '/login' && <a href={`/login?next=${encodeURIComponent(path + location.search)}`}>Log in</a>
        )}
      </div>
    </header>
  );
}

/** When the session cannot be had (the server is down, a proxy in the way): nothing else can show. */
export function BootError({ error }: { error: unknown }) {
  return (
    <main id="main">
      <h1>skiff</h1>
      <ErrorAlert error={error} />
    </main>
  );
}

/** Rendered once the session is known (main.tsx waits for it), so no page renders without it. */
export function App({ initial }: { initial: SessionInfo }) {
  const route = useRoute();
  const [session, setSession] = useState(initial);
  const state = useMemo<SessionState>(
    () => ({
      session,
      setSession: (next) => {
        setCsrfToken(next.csrf);
        setSession(next);
      },
      reload: async () => setSession(await fetchSession()),
    }),
    [session],
  );

  // After a client-side navigation to another page, move focus to its heading, as a page load
  // would put a screen reader at the top (not on the first render: the browser does that).
  const shownPath = useRef(route.path);
  useEffect(() => {
    if (shownPath.current !== route.path) document.querySelector<HTMLElement>('main h1')?.focus({ preventScroll: true });
    shownPath.current = route.path;
  }, [route.path]);

  return (
    <SessionContext.Provider value={state}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <Header state={state} path={route.path} />
      <main id="main" tabIndex={-1}>
        {/* Keyed by path and user: another repository, or the same list after a login or logout, is a fresh page. */}
        <Page key={`${session.user ?? ''} ${route.path}`} route={route} />
      </main>
    </SessionContext.Provider>
  );
}
