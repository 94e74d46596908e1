import { createInterface } from 'node:readline';
import { Writable, type Readable } from 'node:stream';
import type { Command } from 'commander';
import type { Transport } from '../client/transport.ts';
import { CredentialHelperError, helperErase, helperStore, type HelperOptions } from '../client/credential-helper.ts';
import {
  configKeyFor,
  helperFor,
  readDockerConfig,
  removeStoredAuth,
  setHelperPlaceholder,
  setStoredAuth,
  writeDockerConfig,
  type DockerConfigOptions,
} from '../client/docker-config.ts';
import { ClientError } from '../client/errors.ts';
import { RegistryClient } from '../client/registry-client.ts';
import { isValidRegistryHost, normalizeRegistryHost } from '../client/registry-host.ts';
import type { RetryPolicy } from '../client/retry.ts';
import { DOCKER_HUB_DOMAIN } from '../reference/reference.ts';

/**
 * `skiff login` / `skiff logout`, compatible with `docker login`: the same config.json, the same
 * keys (Docker Hub under `https://index.docker.io/v1/`), the same credential helpers. Credentials
 * are checked against the registry before anything is stored.
 */

export class LoginError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoginError';
  }
}

export interface LoginOptions extends DockerConfigOptions {
  /** Registry host; default docker.io. `https://ghcr.io/` and `index.docker.io` are accepted too. */
  registry?: string;
  username: string;
  password: string;
  /** Talk plain HTTP to a non-loopback registry. */
  plainHttp?: boolean;
  transport?: Transport;
  retry?: RetryPolicy;
  helperTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface LoginResult {
  /** Normalized registry host. */
  registry: string;
  /** The key the credentials are stored under. */
  key: string;
  /** `auths` (base64 in config.json) or the helper program that now holds them. */
  storedIn: 'auths' | `docker-credential-${string}`;
  configPath: string;
}

export interface LogoutOptions extends DockerConfigOptions {
  registry?: string;
  helperTimeoutMs?: number;
}

export interface LogoutResult {
  registry: string;
  /** False when there was nothing stored for the registry. */
  removed: boolean;
  configPath: string;
}

/** `ghcr.io`, `https://ghcr.io/`, `index.docker.io` → normalized host; anything else is an error. */
export function registryArgument(input: string | undefined): string {
  if (input === undefined || input.trim() === '') return DOCKER_HUB_DOMAIN;
  const host = normalizeRegistryHost(input);
  if (!isValidRegistryHost(host)) throw new LoginError(`${JSON.stringify(input)} is not a registry host (expected e.g. ghcr.io or localhost:5000)`);
  return host;
}

function helperOptions(options: DockerConfigOptions & { helperTimeoutMs?: number }): HelperOptions {
  return { ...(options.env ? { env: options.env } : {}), ...(options.helperTimeoutMs !== undefined ? { timeoutMs: options.helperTimeoutMs } : {}) };
}

/** True when the failure means the registry rejected these credentials. */
function isRejection(error: unknown): boolean {
  // A registry's 401, or its token service's (token-cache.ts throws a ClientError with the status).
  return error instanceof ClientError && error.status === 401;
}

/** Pings the registry with the credentials; a 401 is "wrong username or password". */
export async function verifyCredentials(registry: string, username: string, password: string, options: Pick<LoginOptions, 'plainHttp' | 'transport' | 'retry' | 'signal'> = {}): Promise<void> {
  const client = new RegistryClient({
    registry,
    credentials: { username, password },
    retry: options.retry ?? { attempts: 3, baseDelayMs: 200, maxDelayMs: 2000 },
    ...(options.plainHttp !== undefined ? { plainHttp: options.plainHttp } : {}),
    ...(options.transport ? { transport: options.transport } : {}),
  });
  try {
    await client.ping(options.signal);
  } catch (error) {
    if (isRejection(error)) throw new LoginError(`wrong username or password for ${registry}`, { cause: error });
    throw new LoginError(`cannot log in to ${registry}: ${(error as Error).message}`, { cause: error });
  } finally {
    if (!options.transport) await client.close();
  }
}

/**
 * Verifies the credentials, then stores them: with the configured credential helper
 * (`credHelpers[host]`, else `credsStore`) when there is one, else base64 in `auths`.
 * Every other part of config.json is kept.
 */
export async function login(options: LoginOptions): Promise<LoginResult> {
  const registry = registryArgument(options.registry);
  if (!options.username) throw new LoginError('a username is required');
  if (!options.password) throw new LoginError('a password is required');
  // Read first: a broken config.json should stop us before we talk to the network.
  const loaded = await readDockerConfig(options);
  await verifyCredentials(registry, options.username, options.password, options);
  const helper = helperFor(loaded.data, registry);
  const key = configKeyFor(registry);
  if (helper) {
    try {
      await helperStore(helper.helper, { ServerURL: key, Username: options.username, Secret: options.password }, helperOptions(options));
    } catch (error) {
      if (error instanceof CredentialHelperError) {
        throw new LoginError(`cannot store the credentials: ${error.message} (configured by ${helper.via} in ${loaded.path})`, { cause: error });
      }
      throw error;
    }
    setHelperPlaceholder(loaded.data, registry);
    const configPath = await writeDockerConfig(loaded.data, options);
    return { registry, key, storedIn: `docker-credential-${helper.helper}`, configPath };
  }
  setStoredAuth(loaded.data, registry, { username: options.username, password: options.password });
  const configPath = await writeDockerConfig(loaded.data, options);
  return { registry, key, storedIn: 'auths', configPath };
}

/** Forgets the registry's credentials: in its helper (if any) and every `auths` spelling of it. */
export async function logout(options: LogoutOptions = {}): Promise<LogoutResult> {
  const registry = registryArgument(options.registry);
  const loaded = await readDockerConfig(options);
  const helper = helperFor(loaded.data, registry);
  let removed = false;
  if (helper) {
    try {
      removed = await helperErase(helper.helper, configKeyFor(registry), helperOptions(options));
    } catch (error) {
      if (error instanceof CredentialHelperError) {
        throw new LoginError(`cannot remove the credentials: ${error.message} (configured by ${helper.via} in ${loaded.path})`, { cause: error });
      }
      throw error;
    }
  }
  const keys = removeStoredAuth(loaded.data, registry);
  if (keys.length > 0) {
    removed = true;
    await writeDockerConfig(loaded.data, options);
  }
  return { registry, removed, configPath: loaded.path };
}

/** What the commands read and write; tests pass their own. */
export interface LoginIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

const processIo = (): LoginIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });

async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Asks on the terminal; with `hidden`, typed characters are not echoed. */
async function prompt(io: LoginIo, question: string, hidden: boolean): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!muted) io.stderr.write(chunk);
      callback();
    },
  });
  const rl = createInterface({ input: io.stdin, output, terminal: true });
  try {
    const answer = new Promise<string>((resolve) => rl.question(question, resolve));
    muted = hidden;
    return await answer;
  } finally {
    muted = false;
    if (hidden) io.stderr.write('\n');
    rl.close();
  }
}

/** docker's warning for a password on the command line (it lands in shell history and `ps`). */
export const PASSWORD_FLAG_WARNING = 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.';

/** `skiff login [-u user] [-p password | --password-stdin] [registry]` and `skiff logout [registry]`. */
export function registerLogin(program: Command, io: LoginIo = processIo()): void {
  program
    .command('login')
    .description('log in to a registry; credentials go to the credential helper configured in Docker\'s config.json, else into config.json')
    .argument('[registry]', 'registry host', DOCKER_HUB_DOMAIN)
    .option('-u, --username <name>', 'username')
    .option('-p, --password <password>', 'password or token (insecure: prefer --password-stdin)')
    .option('--password-stdin', 'read the password (or token) from standard input')
    .action(async (registryInput: string, options: { username?: string; password?: string; passwordStdin?: boolean }) => {
      // docker's checks and words (cli/command/registry/login.go), in docker's order.
      if (options.password !== undefined) {
        io.stderr.write(`${PASSWORD_FLAG_WARNING}\n`);
        if (options.passwordStdin) throw new LoginError('--password and --password-stdin are mutually exclusive');
      }
      const registry = registryArgument(registryInput);
      let username = options.username;
      let password: string;
      if (options.passwordStdin) {
        if (!username) throw new LoginError('Must provide --username with --password-stdin');
        password = (await readAll(io.stdin)).replace(/\r?\n$/, '');
      } else if (options.password !== undefined) {
        password = options.password;
        if (!username) {
          if (!io.stdin.isTTY) throw new LoginError('Cannot perform an interactive login from a non TTY device (give --username)');
          username = (await prompt(io, 'Username: ', false)).trim();
        }
      } else {
        if (!io.stdin.isTTY) throw new LoginError('Cannot perform an interactive login from a non TTY device (use --username and --password-stdin)');
        username ||= (await prompt(io, 'Username: ', false)).trim();
        password = await prompt(io, 'Password: ', true);
      }
      if (!username) throw new LoginError('a username is required');
      if (!password) throw new LoginError('a password is required (standard input was empty)');
      const result = await login({ registry, username, password, env: io.env });
      if (result.storedIn === 'auths') {
        io.stderr.write(`WARNING! Your password is stored unencrypted in ${result.configPath}.\nConfigure a credential helper (credsStore) to remove this warning.\n`);
      }
      io.stdout.write('Login Succeeded\n');
    });
  program
    .command('logout')
    .description('remove the stored credentials for a registry')
    .argument('[registry]', 'registry host', DOCKER_HUB_DOMAIN)
    .action(async (registryInput: string) => {
      const result = await logout({ registry: registryArgument(registryInput), env: io.env });
      io.stdout.write(result.removed ? `Removing login credentials for ${result.registry}\n` : `Not logged in to ${result.registry}\n`);
    });
}
