import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** True when `name` is on PATH. */
export async function hasCommand(name: string): Promise<boolean> {
  try {
    await run('sh', ['-c', `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Interop tests need real peers. In CI a missing peer is a failure, never a skip;
 * locally the test skips with a loud message saying what to install.
 */
export async function peerSkipReason(...commands: string[]): Promise<string | false> {
  const missing: string[] = [];
  for (const command of commands) if (!(await hasCommand(command))) missing.push(command);
  if (missing.length === 0) return false;
  const message = `interop peer(s) missing: ${missing.join(', ')} (apt-get install -y skopeo docker-registry)`;
  if (process.env.CI) throw new Error(`${message}; CI must run interop tests`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

/** Asks the kernel for a free loopback port. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function waitForHttp(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not come up within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface Peer {
  url: string;
  /** `127.0.0.1:port`, for image references. */
  host: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Stops a child we started, by its PID, and waits for it to exit. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid!, signal);
  const timer = setTimeout(() => child.pid && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * The CNCF registry (Debian's docker-registry) on a loopback port with a temp filesystem root.
 * `htpasswd` (lines of `user:bcrypt-hash`) turns on its Basic authentication; `proxyRemote` makes
 * it a pull-through cache of that registry URL.
 */
export async function startCncfRegistry(options: { htpasswd?: string; proxyRemote?: string } = {}): Promise<Peer> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-cncf-'));
  const port = await freePort();
  const config = [
    'version: 0.1',
    'log: { level: error, accesslog: { disabled: true } }',
    `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
    `http: { addr: 127.0.0.1:${port} }`,
  ];
  // Its pull-through cache mode: every pull goes to `proxyRemote`, pushes are refused.
  if (options.proxyRemote !== undefined) config.push(`proxy: { remoteurl: ${options.proxyRemote} }`);
  if (options.htpasswd !== undefined) {
    await writeFile(join(dir, 'htpasswd'), `${options.htpasswd}\n`);
    config.push(`auth: { htpasswd: { realm: skiff-test, path: ${join(dir, 'htpasswd')} } }`);
  }
  await writeFile(join(dir, 'config.yml'), config.join('\n'));
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/v2/`);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`docker-registry did not start: ${(error as Error).message}\n${stderr}`);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    child,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Runs skopeo with plain-HTTP loopback registries; resolves to stdout, rejects with stderr. */
export async function skopeo(args: string[]): Promise<string> {
  try {
    const { stdout } = await run('skopeo', ['--insecure-policy', ...args], { maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}
