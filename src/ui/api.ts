/**
 * The one way the UI talks to the server: same-origin fetches of /api/v1/… in JSON. Errors come
 * in the registry's own form, `{"errors":[{"code","message"}]}`, and are thrown as ApiError so
 * pages match on `status` and `code`, never on message text.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from Retry-After (a 429 after too many logins). */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

// The session's CSRF token, sent on every action. Set from SessionInfo whenever it is (re)loaded.
let csrfToken = '';

export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** A repository name into a path: each component encoded, the slashes kept (the server's router matches on them). */
export function namePath(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

/** A query string from the parameters that have a value. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}

export async function request<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? null : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'NETWORK', 'Could not reach the server. Check the connection and try again.');
  }
  const text = await response.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // A proxy's HTML error page, say: the status says enough.
  }
  if (!response.ok) {
    const first = (json as { errors?: { code?: string; message?: string }[] } | undefined)?.errors?.[0];
    const retry = Number(response.headers.get('Retry-After'));
    throw new ApiError(
      response.status,
      first?.code ?? `HTTP_${response.status}`,
      first?.message ?? `The server answered ${response.status} ${response.statusText}`.trim(),
      Number.isFinite(retry) && retry > 0 ? retry : null,
    );
  }
  return json as T;
}

export function get<T>(path: string): Promise<T> {
  return request<T>('GET', path);
}
