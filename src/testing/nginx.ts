import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, hasCommand, stopChild, waitForHttp, type Peer } from './peers.ts';

/** Debian installs nginx in /usr/sbin, which a non-root PATH often lacks. */
export async function nginxCommand(): Promise<string | undefined> {
  if (await hasCommand('nginx')) return 'nginx';
  return access('/usr/sbin/nginx', constants.X_OK).then(
    () => '/usr/sbin/nginx',
    () => undefined,
  );
}

/**
 * As peerSkipReason (peers.ts) for nginx: in CI a missing nginx fails the test file, locally it
 * skips with a loud message.
 */
export async function nginxSkipReason(): Promise<string | false> {
  if ((await nginxCommand()) !== undefined) return false;
  const message = 'interop peer missing: nginx (apt-get install -y nginx)';
  if (process.env.CI) throw new Error(`${message}; CI must run interop tests`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

/**
 * The nginx configuration that pairs with `skiff serve --x-accel-redirect /_skiff_blobs`: the
 * ```nginx block of docs/serve.md ("Behind nginx"), so the tests run what the documentation gives,
 * with their own addresses and data directory in place of the example's.
 */
export async function documentedNginxConfig(options: { listen: string; skiff: string; dataDir: string }): Promise<string> {
  const doc = await readFile(new URL('../../docs/serve.md', import.meta.url), 'utf8');
  const block = /^## Behind nginx[^]*?^```nginx\n([^]*?)^```$/m.exec(doc)?.[1];
  if (block === undefined) throw new Error('docs/serve.md: no ```nginx block under "## Behind nginx"');
  let config = block;
  const swap = (example: string, actual: string): void => {
    if (config.split(example).length !== 2) throw new Error(`docs/serve.md's nginx example no longer has exactly one ${JSON.stringify(example)}`);
    config = config.replace(example, () => actual);
  };
  swap('server 127.0.0.1:5000;', `server ${options.skiff};`);
  swap('listen 80;', `listen ${options.listen};`);
  swap('alias /var/lib/skiff/blobs/;', `alias ${join(options.dataDir, 'blobs')}/;`);
  return config;
}

/**
 * A whole nginx.conf for an nginx run from the temp prefix `dir` (pid, logs and temp paths all
 * there), with sendfile on and `http` as the rest of the http block. As root the workers run as
 * root too: as "nobody" they may not read a data directory or an image cache under /tmp.
 */
export function nginxConfig(dir: string, options: { workerProcesses: string; workerConnections: number; http: string }): string {
  const temp = (name: string): string => `${name}_temp_path ${join(dir, `${name}-temp`)};`;
  return `
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes ${options.workerProcesses};
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections ${options.workerConnections}; }
http {
  sendfile on;
  tcp_nopush on;
  default_type application/octet-stream;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
${options.http}
}
`;
}

/**
 * Debian's nginx on a free loopback port from a temp prefix (pid, logs and temp paths all there),
 * `daemon off`, as our child (stopped by its PID), once `/v2/` answers. `server(listen)` gives the
 * server and upstream blocks; each request is written to the access log as `logFormat`.
 */
export async function startNginx(options: { prefix: string; workerConnections: number; logFormat: string; server: (listen: string) => Promise<string> }): Promise<NginxFront> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix));
  await mkdir(join(dir, 'logs'));
  const port = await freePort();
  const config = nginxConfig(dir, {
    workerProcesses: '1',
    workerConnections: options.workerConnections,
    http: `  log_format tested '${options.logFormat}';
  access_log ${join(dir, 'logs', 'access.log')} tested;
${await options.server(`127.0.0.1:${port}`)}`,
  });
  await writeFile(join(dir, 'nginx.conf'), config);
  // -e: the error log before the config is read (the default under /var/log may not be writable).
  const command = await nginxCommand();
  if (command === undefined) throw new Error('nginx is not installed (apt-get install -y nginx)');
  const child = spawn(command, ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', join(dir, 'nginx.conf')], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const errorLog = () => readFile(join(dir, 'logs', 'error.log'), 'utf8').catch(() => '');
  try {
    await waitForHttp(`${url}/v2/`);
  } catch (error) {
    await stopChild(child, 'SIGKILL');
    throw new Error(`nginx did not start: ${(error as Error).message}\n${stderr}\n${await errorLog()}`);
  }
  return {
    url,
    host: `127.0.0.1:${port}`,
    child,
    async accessLog() {
      const text = await readFile(join(dir, 'logs', 'access.log'), 'utf8').catch(() => '');
      return text.split('\n').filter((line) => line !== '');
    },
    errorLog,
    async stop() {
      await stopChild(child, 'SIGQUIT'); // graceful: finish requests, then exit
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface NginxFront extends Peer {
  /** The access log so far: one line per request, in the starter's log format. */
  accessLog(): Promise<string[]>;
  errorLog(): Promise<string>;
}

/**
 * Debian's nginx in front of a skiff on `skiff` (host:port) with `--x-accel-redirect /_skiff_blobs`,
 * on a free loopback port, with a temp prefix and config, `daemon off`, stopped by its PID.
 */
export async function startNginxFront(options: { skiff: string; dataDir: string }): Promise<NginxFront> {
  return startNginx({
    prefix: 'skiff-nginx-',
    workerConnections: 256,
    logFormat: '$status $body_bytes_sent "$request"',
    server: (listen) => documentedNginxConfig({ listen, ...options }),
  });
}
