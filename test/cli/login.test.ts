import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Command } from 'commander';
import { LoginError, login, logout, registerLogin, registryArgument, type LoginIo } from '../../src/cli/login.ts';
import { credentialsFor } from '../../src/client/credentials.ts';
import { DOCKER_HUB_CONFIG_KEY } from '../../src/client/docker-config.ts';
import { installFakeHelpers, type FakeHelpers } from '../../src/testing/fake-credential-helper.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');
const fast = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 };

async function listen(handler: (req: IncomingMessage, res: ServerResponse, base: string) => void): Promise<{ server: Server; host: string }> {
  let base = '';
  const server = createServer((req, res) => handler(req, res, base));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  base = `http://${host}`;
  return { server, host };
}

const GOOD = `Basic ${b64('alice:correct horse')}`;

/** A registry that wants Basic credentials: 401 with a Basic challenge unless alice's come. */
function basicRegistry(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.authorization === GOOD) res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
  else res.writeHead(401, { 'www-authenticate': 'Basic realm="x"', 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
}

/** A registry with a token service: /v2/ wants a Bearer token, /token hands one out for alice's Basic credentials. */
function tokenRegistry(req: IncomingMessage, res: ServerResponse, base: string): void {
  if (req.url?.startsWith('/token')) {
    if (req.headers.authorization === GOOD) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-alice', expires_in: 300 }));
    else res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"incorrect username or password"}');
    return;
  }
  if (req.headers.authorization === 'Bearer tok-alice') res.writeHead(200).end('{}');
  else res.writeHead(401, { 'www-authenticate': `Bearer realm="${base}/token",service="test-registry"` }).end();
}

describe('skiff login / logout (library)', () => {
  let root: string;
  let open: TestRegistry;
  let basic: { server: Server; host: string };
  let bearer: { server: Server; host: string };
  let fakes: FakeHelpers;
  let n = 0;
  const freshDir = async (config?: unknown) => {
    const dir = join(root, `cfg-${n++}`);
    await mkdir(dir);
    if (config !== undefined) await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  };
  const readConfig = async (dir: string) => JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { auths?: Record<string, Record<string, unknown>>; [key: string]: unknown };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-login-'));
    open = await startTestRegistry();
    basic = await listen(basicRegistry);
    bearer = await listen(tokenRegistry);
    fakes = await installFakeHelpers(join(root, 'helpers'));
  });
  after(async () => {
    basic.server.close();
    bearer.server.close();
    await open.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('registry arguments: default docker.io, URLs and Hub aliases normalized, junk refused', () => {
    assert.equal(registryArgument(undefined), 'docker.io');
    assert.equal(registryArgument('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(registryArgument('https://GHCR.io/'), 'ghcr.io');
    assert.equal(registryArgument('localhost:5000'), 'localhost:5000');
    assert.throws(() => registryArgument('not a host'), /"not a host" is not a registry host/);
  });

  test('against a registry without auth: stored base64 in auths, 0600, other keys kept', async () => {
    const dir = await freshDir({ currentContext: 'default', proxies: { default: { httpProxy: 'http://p:3128' } }, auths: { 'quay.io': { auth: b64('q:q') } } });
    const result = await login({ registry: open.address, username: 'bob', password: 'pw:with:colons', configDir: dir, retry: fast });
    assert.deepEqual(result, { registry: open.address, key: open.address, storedIn: 'auths', configPath: join(dir, 'config.json') });
    assert.deepEqual(await readConfig(dir), {
      currentContext: 'default',
      proxies: { default: { httpProxy: 'http://p:3128' } },
      auths: { 'quay.io': { auth: b64('q:q') }, [open.address]: { auth: b64('bob:pw:with:colons') } },
    });
    assert.equal((await stat(join(dir, 'config.json'))).mode & 0o777, 0o600);
    assert.deepEqual(await credentialsFor(open.address, { configDir: dir }), { username: 'bob', password: 'pw:with:colons' });
  });

  test('Basic auth: the right password is verified and stored', async () => {
    const dir = await freshDir();
    await login({ registry: basic.host, username: 'alice', password: 'correct horse', configDir: dir, retry: fast });
    assert.deepEqual((await readConfig(dir)).auths, { [basic.host]: { auth: b64('alice:correct horse') } });
  });

  test('Basic auth: a wrong password is "wrong username or password for <registry>" and nothing is written', async () => {
    const dir = await freshDir({ credsStore: 'fake' });
    await assert.rejects(login({ registry: basic.host, username: 'alice', password: 'wrong', configDir: dir, env: fakes.env, retry: fast }), (error: unknown) => {
      assert.ok(error instanceof LoginError);
      assert.equal(error.message, `wrong username or password for ${basic.host}`);
      return true;
    });
    assert.deepEqual(await readConfig(dir), { credsStore: 'fake' });
    assert.equal(await fakes.stored(basic.host), undefined, 'the helper was not asked to store anything');
  });

  test('token auth: a refused token request is also "wrong username or password"', async () => {
    const dir = await freshDir();
    await assert.rejects(login({ registry: bearer.host, username: 'alice', password: 'nope', configDir: dir, retry: fast }), { message: `wrong username or password for ${bearer.host}` });
    await assert.rejects(stat(join(dir, 'config.json')), { code: 'ENOENT' });
    await login({ registry: bearer.host, username: 'alice', password: 'correct horse', configDir: dir, retry: fast });
    assert.deepEqual(await credentialsFor(bearer.host, { configDir: dir }), { username: 'alice', password: 'correct horse' });
  });

  test('an unreachable registry is a clear error, not a wrong password', async () => {
    const dead = await listen(() => undefined);
    const host = dead.host;
    await new Promise<void>((resolve) => dead.server.close(() => resolve()));
    const dir = await freshDir();
    await assert.rejects(login({ registry: host, username: 'a', password: 'b', configDir: dir, retry: fast }), {
      name: 'LoginError',
      message: new RegExp(`^cannot log in to ${host.replace(/\./g, '\\.')}: GET http://${host.replace(/\./g, '\\.')}/v2/: cannot connect to ${host.replace(/\./g, '\\.')} \\(connection refused\\)`),
    });
  });

  test('with credsStore the helper stores the secret; config.json keeps only a placeholder', async () => {
    const dir = await freshDir({ credsStore: 'fake', auths: { [basic.host]: { auth: b64('old:secret'), email: 'a@example.com' } } });
    const result = await login({ registry: basic.host, username: 'alice', password: 'correct horse', configDir: dir, env: fakes.env, retry: fast });
    assert.equal(result.storedIn, 'docker-credential-fake');
    assert.deepEqual(await fakes.stored(basic.host), { ServerURL: basic.host, Username: 'alice', Secret: 'correct horse' });
    assert.deepEqual(await readConfig(dir), { credsStore: 'fake', auths: { [basic.host]: { email: 'a@example.com' } } }, 'the old clear-text secret is gone');
    assert.deepEqual(await credentialsFor(basic.host, { configDir: dir, env: fakes.env }), { username: 'alice', password: 'correct horse' });

    assert.deepEqual(await logout({ registry: basic.host, configDir: dir, env: fakes.env }), { registry: basic.host, removed: true, configPath: join(dir, 'config.json') });
    assert.equal(await fakes.stored(basic.host), undefined, 'erased from the helper');
    assert.deepEqual(await readConfig(dir), { credsStore: 'fake', auths: {} });
  });

  test('credHelpers[host] is used over credsStore for storing', async () => {
    const dir = await freshDir({ credsStore: 'broken', credHelpers: { [basic.host]: 'fake' } });
    const result = await login({ registry: basic.host, username: 'alice', password: 'correct horse', configDir: dir, env: fakes.env, retry: fast });
    assert.equal(result.storedIn, 'docker-credential-fake');
  });

  test('a helper that cannot store is an error naming it and where it was configured', async () => {
    const dir = await freshDir({ credsStore: 'broken' });
    await assert.rejects(login({ registry: basic.host, username: 'alice', password: 'correct horse', configDir: dir, env: fakes.env, retry: fast }), {
      message: `cannot store the credentials: docker-credential-broken store: exited with status 3: the keychain is locked (configured by credsStore in ${join(dir, 'config.json')})`,
    });
  });

  test('logout removes every spelling of the host; Docker Hub by default', async () => {
    const dir = await freshDir({
      auths: { [DOCKER_HUB_CONFIG_KEY]: { auth: b64('h:h') }, 'ghcr.io': { auth: b64('g:g') }, 'https://ghcr.io': { auth: b64('g:old') }, 'quay.io': { auth: b64('q:q') } },
      psFormat: 'x',
    });
    assert.equal((await logout({ configDir: dir })).removed, true);
    assert.equal((await logout({ registry: 'https://ghcr.io', configDir: dir })).removed, true);
    assert.deepEqual(await readConfig(dir), { auths: { 'quay.io': { auth: b64('q:q') } }, psFormat: 'x' });
    assert.equal((await logout({ registry: 'ghcr.io', configDir: dir })).removed, false, 'nothing left to remove');
  });

  test('a broken config.json stops login before any network call', async () => {
    const dir = await freshDir();
    await writeFile(join(dir, 'config.json'), '{oops');
    await assert.rejects(login({ registry: basic.host, username: 'alice', password: 'correct horse', configDir: dir, retry: fast }), /config\.json: not valid JSON/);
    assert.equal(await readFile(join(dir, 'config.json'), 'utf8'), '{oops', 'left untouched');
  });
});

describe('skiff login / logout (commander wiring)', () => {
  let root: string;
  let basic: { server: Server; host: string };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-login-cli-'));
    basic = await listen(basicRegistry);
  });
  after(async () => {
    basic.server.close();
    await rm(root, { recursive: true, force: true });
  });

  function run(args: string[], stdin: string, env: NodeJS.ProcessEnv, isTTY = false): { done: Promise<void>; out: () => string; err: () => string } {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const input = Object.assign(Readable.from([Buffer.from(stdin)]), { isTTY });
    const io: LoginIo = { stdin: input, stdout, stderr, env };
    const program = new Command('skiff').exitOverride();
    registerLogin(program, io);
    return { done: program.parseAsync(args, { from: 'user' }).then(() => undefined), out: () => out, err: () => err };
  }

  test('--password-stdin: verified, stored without the trailing newline, warning about clear text', async () => {
    const dir = join(root, 'a');
    const r = run(['login', '-u', 'alice', '--password-stdin', basic.host], 'correct horse\n', { DOCKER_CONFIG: dir });
    await r.done;
    assert.equal(r.out(), 'Login Succeeded\n');
    assert.match(r.err(), new RegExp(`WARNING! Your password is stored unencrypted in ${join(dir, 'config.json').replace(/\./g, '\\.')}`));
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(config.auths[basic.host]!.auth, 'base64').toString(), 'alice:correct horse');

    const out = run(['logout', basic.host], '', { DOCKER_CONFIG: dir });
    await out.done;
    assert.equal(out.out(), `Removing login credentials for ${basic.host}\n`);
    const again = run(['logout', basic.host], '', { DOCKER_CONFIG: dir });
    await again.done;
    assert.equal(again.out(), `Not logged in to ${basic.host}\n`);
  });

  test('a wrong password rejects with the message main.ts prints before exiting 1', async () => {
    const dir = join(root, 'b');
    const r = run(['login', '--username', 'alice', '--password-stdin', basic.host], 'wrong\n', { DOCKER_CONFIG: dir });
    await assert.rejects(r.done, { name: 'LoginError', message: `wrong username or password for ${basic.host}` });
    assert.equal(r.out(), '');
    await assert.rejects(stat(join(dir, 'config.json')), { code: 'ENOENT' });
  });

  test('-p: docker\'s warning on stderr, then the same login as --password-stdin', async () => {
    const dir = join(root, 'p');
    const r = run(['login', '-u', 'alice', '-p', 'correct horse', basic.host], '', { DOCKER_CONFIG: dir });
    await r.done;
    assert.equal(r.out(), 'Login Succeeded\n');
    assert.equal(r.err().split('\n')[0], 'WARNING! Using --password via the CLI is insecure. Use --password-stdin.');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(config.auths[basic.host]!.auth, 'base64').toString(), 'alice:correct horse');
    const wrong = run(['login', '--username', 'alice', '--password', 'wrong', basic.host], '', { DOCKER_CONFIG: dir });
    await assert.rejects(wrong.done, { message: `wrong username or password for ${basic.host}` });
    assert.match(wrong.err(), /^WARNING! Using --password via the CLI is insecure/);
  });

  test('-p with --password-stdin, or without a username and no terminal: docker\'s words', async () => {
    const env = { DOCKER_CONFIG: join(root, 'q') };
    const both = run(['login', '-u', 'alice', '-p', 'x', '--password-stdin', basic.host], 'x\n', env);
    await assert.rejects(both.done, { message: '--password and --password-stdin are mutually exclusive' });
    assert.match(both.err(), /^WARNING! Using --password via the CLI is insecure/, 'the warning comes first, as in docker');
    await assert.rejects(run(['login', '-p', 'x', basic.host], '', env).done, { message: 'Cannot perform an interactive login from a non TTY device (give --username)' });
    await assert.rejects(stat(join(root, 'q', 'config.json')), { code: 'ENOENT' });
  });

  test('misuse is explained: --password-stdin without --username, no terminal to prompt on, empty password', async () => {
    const env = { DOCKER_CONFIG: join(root, 'c') };
    await assert.rejects(run(['login', '--password-stdin', basic.host], 'pw\n', env).done, { message: 'Must provide --username with --password-stdin' });
    await assert.rejects(run(['login', '-u', 'alice', basic.host], '', env).done, /^LoginError: Cannot perform an interactive login from a non TTY device \(use --username and --password-stdin\)$/);
    await assert.rejects(run(['login', '-u', 'alice', '--password-stdin', basic.host], '\n', env).done, /a password is required/);
    await assert.rejects(run(['login', '-u', 'alice', '--password-stdin', 'https://bad host/'], 'pw', env).done, /is not a registry host/);
  });
});
