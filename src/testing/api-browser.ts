import assert from 'node:assert/strict';
import type { SessionInfo } from '../server/ui/api-types.ts';

/**
 * A browser's view of the web UI's API (/api/v1/) on one server, for tests: its cookies, and the
 * CSRF token its session handed out, sent the way the UI sends them.
 */
export class ApiBrowser {
  private readonly cookies: Map<string, string>;
  csrf = '';
  private readonly base: string;
  constructor(base: string, cookies = new Map<string, string>()) {
    this.base = base;
    this.cookies = cookies;
  }

  /** The same browser (cookies and CSRF token) talking to another address: another replica of one deployment. */
  at(base: string): ApiBrowser {
    const other = new ApiBrowser(base, this.cookies);
    other.csrf = this.csrf;
    return other;
  }

  async request(method: string, path: string, options: { body?: unknown; headers?: Record<string, string>; csrf?: boolean } = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    if ((options.csrf ?? true) && method !== 'GET' && this.csrf) headers['x-csrf-token'] = this.csrf;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, { method, headers, ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}), redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';');
      const [name = '', value = ''] = pair.split('=');
      if (attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute))) this.cookies.delete(name.trim());
      else this.cookies.set(name.trim(), value.trim());
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  async session(): Promise<SessionInfo> {
    const answer = await this.request('GET', '/api/v1/session');
    assert.equal(answer.status, 200, answer.text);
    this.csrf = (answer.json as SessionInfo).csrf;
    return answer.json as SessionInfo;
  }

  async login(username: string, password: string): Promise<SessionInfo> {
    await this.session();
    const answer = await this.request('POST', '/api/v1/session', { body: { username, password } });
    assert.equal(answer.status, 200, answer.text);
    return answer.json as SessionInfo;
  }
}
