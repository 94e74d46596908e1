/**
 * Who the browser is (SessionInfo), shared by every page through a context: the layout shows the
 * user, pages show actions only where the server says they are allowed (it checks again anyway).
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { SessionInfo } from '../server/ui/api-types.ts';
import { ApiError, get, setCsrfToken } from './api.ts';
import { navigate } from './router.ts';

export interface SessionState {
  session: SessionInfo;
  /** Take a SessionInfo the server sent (after a login), or fetch it again (after a logout or a 401). */
  setSession(session: SessionInfo): void;
  reload(): Promise<void>;
}

export const SessionContext = createContext<SessionState | null>(null);

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside SessionContext');
  return state;
}

export async function fetchSession(): Promise<SessionInfo> {
  const session = await get<SessionInfo>('/api/v1/session');
  setCsrfToken(session.csrf);
  return session;
}

/**
 * A 401 means the session is gone (expired, logged out in another tab) or never was: where this
 * server has a login, go to it and come back here after; otherwise the caller shows the error.
 */
export function handleUnauthorized(error: unknown, state: SessionState): boolean {
  if (!(error instanceof ApiError) || error.status !== 401 || !state.session.login) return false;
  void state.reload().catch(() => undefined);
  navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  return true;
}
