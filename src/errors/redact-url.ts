/**
 * A URL as an operator may see it in a message or a log: without its password (in the authority
 * or as a `password` query parameter). For database, Redis and queue URLs, which carry credentials.
 */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    if (parsed.searchParams.has('password')) parsed.searchParams.set('password', 'redacted');
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1@').replace(/password=[^&\s]*/gi, 'password=redacted');
  }
}
