/**
 * Logging in with the registry's own users: the server checks the password as its token service
 * does and answers with the new session (an HttpOnly cookie, and a new CSRF token in the body).
 */
import { useId, useState } from 'preact/hooks';
import type { LoginRequest, SessionInfo } from '../../server/ui/api-types.ts';
import { ApiError, request, setCsrfToken } from '../api.ts';
import { ErrorAlert } from '../components/error-alert.tsx';
import { PageHeading } from '../components/page-heading.tsx';
import { navigate, type Route } from '../router.ts';
import { useSession } from '../session.ts';

/** Where to go after logging in: a path on this site only (`//evil.example` is another site). */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') && !next.startsWith('/login') ? next : '/';
}

export function LoginPage({ route }: { route: Route }) {
  const { session, setSession } = useSession();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const userId = useId();
  const passwordId = useId();

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: LoginRequest = { username, password };
      const next = await request<SessionInfo>('POST', '/api/v1/session', body);
      setCsrfToken(next.csrf);
      setSession(next);
      navigate(safeNext(route.search.get('next')), { replace: true });
    } catch (caught) {
      if (caught instanceof ApiError && caught.status === 401) setError(new Error('Incorrect username or password'));
      else if (caught instanceof ApiError && caught.status === 429) setError(new Error(`Too many attempts. Try again${caught.retryAfter ? ` in ${caught.retryAfter} seconds` : ' later'}.`));
      else setError(caught);
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeading title="Log in" />
      {!session.login ? (
        <p>This registry has no login{session.auth ? '' : ': authentication is off, so there is nothing to log in to'}.</p>
      ) : (
        <form class="login" onSubmit={submit}>
          {session.user && <p class="muted">You are logged in as {session.user}; logging in again replaces that session.</p>}
          <div class="field">
            <label for={userId}>Username</label>
            <input id={userId} name="username" autoComplete="username" required value={username} onInput={(event) => setUsername(event.currentTarget.value)} />
          </div>
          <div class="field">
            <label for={passwordId}>Password</label>
            <input id={passwordId} name="password" type="password" autoComplete="current-password" required value={password} onInput={(event) => setPassword(event.currentTarget.value)} />
          </div>
          <ErrorAlert error={error} />
          <button type="submit" class="primary" disabled={busy}>
            Log in
          </button>
        </form>
      )}
    </>
  );
}
