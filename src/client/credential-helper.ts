import { spawn } from 'node:child_process';
import type { Credentials } from './registry-client.ts';

/**
 * The `docker-credential-<name>` protocol (docker/docker-credential-helpers, client/client.go):
 *
 *   get    stdin: server URL                       stdout: {"ServerURL","Username","Secret"}
 *   store  stdin: {"ServerURL","Username","Secret"}
 *   erase  stdin: server URL
 *   list   stdin: (ignored)                         stdout: {"<server URL>": "<username>", ...}
 *
 * A helper that has nothing prints "credentials not found in native keychain" (on stdout, by
 * convention) and exits non-zero. A Username of `<token>` means Secret is an identity token.
 */

export const TOKEN_USERNAME = '<token>';
export const DEFAULT_HELPER_TIMEOUT_MS = 30_000;
const OUTPUT_LIMIT = 1024 * 1024;
const NOT_FOUND = /credentials not found/i;
/** Helper names become part of a program name looked up on PATH: no separators, no surprises. */
const HELPER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface HelperOptions {
  /** Environment for the helper (its PATH is where the program is looked up); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Kill the helper after this long; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface HelperSecret {
  ServerURL: string;
  Username: string;
  Secret: string;
}

export class CredentialHelperError extends Error {
  /** The program, e.g. `docker-credential-desktop`. */
  readonly program: string;
  readonly verb: string;
  /** What went wrong, without the `<program> <verb>: ` prefix. */
  readonly detail: string;
  constructor(program: string, verb: string, detail: string, options?: { cause?: unknown }) {
    super(`${program} ${verb}: ${detail}`, options);
    this.program = program;
    this.verb = verb;
    this.detail = detail;
    this.name = 'CredentialHelperError';
  }
}

export function helperProgram(helper: string): string {
  return `docker-credential-${helper}`;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `docker-credential-<helper> <verb>` with `input` on stdin, capped output, and a deadline. */
async function run(helper: string, verb: string, input: string, options: HelperOptions): Promise<RunResult> {
  const program = helperProgram(helper);
  if (!HELPER_NAME.test(helper)) throw new CredentialHelperError(program, verb, `invalid helper name ${JSON.stringify(helper)} (letters, digits, ".", "_" and "-" only)`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_HELPER_TIMEOUT_MS;
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const child = spawn(program, [verb], { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true, ...(options.signal ? { signal: options.signal } : {}) });
    const finish = (error: Error | undefined, result?: RunResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(result!);
    };
    // On a deadline, answer at once: a helper's own children may hold the pipes open for longer.
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout.destroy();
      child.stderr.destroy();
      finish(new CredentialHelperError(program, verb, `timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes <= OUTPUT_LIMIT) out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      errBytes += chunk.length;
      if (errBytes <= OUTPUT_LIMIT) err.push(chunk);
    });
    // A helper may exit without reading stdin; the resulting EPIPE is not our failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') finish(new CredentialHelperError(program, verb, `not found on PATH (is the credential helper installed?)`, { cause: error }));
      else if (error.name === 'AbortError') finish(error);
      else finish(new CredentialHelperError(program, verb, `cannot run: ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => {
      if (code === null) finish(new CredentialHelperError(program, verb, `killed by ${signal ?? 'a signal'}`));
      else finish(undefined, { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

function failure(result: RunResult): string {
  const text = [result.stdout.trim(), result.stderr.trim()].filter(Boolean).join(' / ').slice(0, 500);
  return `exited with status ${result.code}${text ? `: ${text}` : ''}`;
}

function isNotFound(result: RunResult): boolean {
  return NOT_FOUND.test(result.stdout) || NOT_FOUND.test(result.stderr);
}

/** `get`: the credentials for `serverURL`, or undefined when the helper has none. */
export async function helperGet(helper: string, serverURL: string, options: HelperOptions = {}): Promise<Credentials | undefined> {
  const program = helperProgram(helper);
  const result = await run(helper, 'get', serverURL, options);
  if (result.code !== 0) {
    if (isNotFound(result)) return undefined;
    throw new CredentialHelperError(program, 'get', failure(result));
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    throw new CredentialHelperError(program, 'get', `printed something that is not JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CredentialHelperError(program, 'get', 'expected a JSON object {"ServerURL","Username","Secret"}');
  const { Username: username, Secret: secret } = parsed as Record<string, unknown>;
  if ((username !== undefined && typeof username !== 'string') || (secret !== undefined && typeof secret !== 'string')) {
    throw new CredentialHelperError(program, 'get', 'Username and Secret must be strings');
  }
  if (!secret) return undefined; // some helpers answer an empty record instead of "not found"
  if (username === TOKEN_USERNAME) return { identityToken: secret };
  if (!username) return undefined;
  return { username, password: secret };
}

/** `store`: saves a username and secret (or an identity token, with Username `<token>`). */
export async function helperStore(helper: string, secret: HelperSecret, options: HelperOptions = {}): Promise<void> {
  const input = JSON.stringify({ ServerURL: secret.ServerURL, Username: secret.Username, Secret: secret.Secret });
  const result = await run(helper, 'store', input, options);
  if (result.code !== 0) throw new CredentialHelperError(helperProgram(helper), 'store', failure(result));
}

/** `erase`: forgets `serverURL`; false when the helper had nothing for it. */
export async function helperErase(helper: string, serverURL: string, options: HelperOptions = {}): Promise<boolean> {
  const result = await run(helper, 'erase', serverURL, options);
  if (result.code === 0) return true;
  if (isNotFound(result)) return false;
  throw new CredentialHelperError(helperProgram(helper), 'erase', failure(result));
}

/** `list`: server URL → username, for every entry the helper holds. */
export async function helperList(helper: string, options: HelperOptions = {}): Promise<Record<string, string>> {
  const program = helperProgram(helper);
  const result = await run(helper, 'list', 'unused', options);
  if (result.code !== 0) throw new CredentialHelperError(program, 'list', failure(result));
  let parsed: unknown;
  try {
    parsed = JSON.parse(result.stdout);
  } catch {
    throw new CredentialHelperError(program, 'list', `printed something that is not JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CredentialHelperError(program, 'list', 'expected a JSON object of server URL → username');
  return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}
