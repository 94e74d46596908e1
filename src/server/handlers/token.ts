import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AccessEntry } from '../../auth/access-token.ts';
import { parseScopes, repositoryActions } from '../../auth/scope.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { nameProblem } from '../../reference/name.ts';
import { parseAuthorization, type AccessControl } from '../access-control.ts';
import { readBodyLimited, sendJson } from '../http-util.ts';

const FORM_LIMIT = 64 * 1024;

/**
 * The built-in token service (docker's token authentication spec, and its OAuth2 form):
 *
 * - `GET /token?service=&scope=…[&offline_token=true]`, with Basic credentials or none (anonymous
 *   gets what the policy lets anonymous do);
 * - `POST /token` with `grant_type=password` (username, password) or `grant_type=refresh_token`.
 *
 * A token grants, per requested repository, the requested actions the policy allows on it: asking
 * for more is not an error (the registry refuses the request later), as with Docker Hub.
 */
export async function serveToken(access: AccessControl, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  const issuer = access.options.issuer;
  if (!issuer) throw new RegistryError('UNSUPPORTED', 'this registry has no token service of its own', { status: 404 });
  res.setHeader('Cache-Control', 'no-store');
  if (req.method === 'GET') return getToken(access, req, res, query);
  if (req.method === 'POST') return postToken(access, req, res);
  throw new RegistryError('UNSUPPORTED', `method ${req.method} is not allowed on /token`, { status: 405, headers: { Allow: 'GET, POST' } });
}

async function getToken(access: AccessControl, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  checkService(access, query.get('service'));
  const credentials = parseAuthorization(req.headers.authorization);
  if (credentials.kind !== 'none' && credentials.kind !== 'basic') throw tokenUnauthorized('the token endpoint takes Basic credentials');
  const user = credentials.kind === 'basic' ? await password(access, req, credentials.user!, credentials.password!) : undefined;
  const answer = await grant(access, user?.name, query.getAll('scope'));
  if (user && query.get('offline_token') === 'true') answer.refresh_token = await access.options.issuer!.refreshToken(user.name, user.entry);
  sendJson(res, 200, answer);
}

async function postToken(access: AccessControl, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const type = req.headers['content-type'] ?? '';
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new RegistryError('UNSUPPORTED', 'POST /token takes an application/x-www-form-urlencoded body', { status: 400 });
  }
  const form = new URLSearchParams((await readBodyLimited(req, FORM_LIMIT)).toString('utf8'));
  checkService(access, form.get('service'));
  const issuer = access.options.issuer!;
  let subject: string;
  let refreshToken: string | undefined;
  switch (form.get('grant_type')) {
    case 'password': {
      const user = await password(access, req, form.get('username') ?? '', form.get('password') ?? '');
      subject = user.name;
      if (form.get('access_type') === 'offline') refreshToken = await issuer.refreshToken(user.name, user.entry);
      break;
    }
    case 'refresh_token': {
      const presented = form.get('refresh_token') ?? '';
      const claims = await issuer.readRefreshToken(presented);
      // A changed password or a removed user ends every refresh token of that user.
      if (!claims || (await access.options.htpasswd?.entryOf(claims.subject)) !== claims.entry) throw tokenUnauthorized('the refresh token is not valid');
      subject = claims.subject;
      refreshToken = presented;
      break;
    }
    default:
      throw new RegistryError('UNSUPPORTED', 'grant_type must be password or refresh_token', { status: 400 });
  }
  const answer = await grant(access, subject, form.getAll('scope'));
  if (refreshToken) answer.refresh_token = refreshToken;
  sendJson(res, 200, answer);
}

interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope: string;
  refresh_token?: string;
}

async function grant(access: AccessControl, user: string | undefined, scopeParams: string[]): Promise<TokenAnswer> {
  const scopes = parseScopes(scopeParams);
  const entries: AccessEntry[] = [];
  const granted: string[] = [];
  for (const [name, wanted] of repositoryActions(scopes)) {
    // A name the registry would refuse gets nothing: no glob can be escaped through a token.
    if (nameProblem(name) !== undefined) continue;
    const allowed = access.options.policy.actionsFor(user, access.options.policyName(name));
    const actions = [...wanted].filter((action) => allowed.has(action));
    if (actions.length === 0) continue;
    entries.push({ type: 'repository', name, actions });
    granted.push(`repository:${name}:${actions.join(',')}`);
  }
  if (user !== undefined && scopes.some((scope) => scope.type === 'registry' && scope.name === 'catalog')) {
    entries.push({ type: 'registry', name: 'catalog', actions: ['*'] });
    granted.push('registry:catalog:*');
  }
  const issued = await access.options.issuer!.accessToken(user, entries);
  return { token: issued.token, access_token: issued.token, expires_in: issued.expiresIn, issued_at: issued.issuedAt.toISOString(), scope: granted.join(' ') };
}

async function password(access: AccessControl, req: IncomingMessage, user: string, secret: string) {
  try {
    return await access.checkPassword(req, user, secret);
  } catch (error) {
    if (error instanceof RegistryError && error.code === 'UNAUTHORIZED') throw tokenUnauthorized('incorrect username or password');
    throw error;
  }
}

function checkService(access: AccessControl, service: string | null): void {
  if (service !== null && service !== '' && service !== access.options.service) {
    throw new RegistryError('UNSUPPORTED', `this token service issues tokens for service ${JSON.stringify(access.options.service)}, not ${JSON.stringify(service.slice(0, 100))}`, { status: 400 });
  }
}

function tokenUnauthorized(message: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, { headers: { 'WWW-Authenticate': 'Basic realm="skiff token service", charset="UTF-8"' } });
}
