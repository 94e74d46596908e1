/**
 * nginx with sendfile serving a directory: the limit for blob GET (the kernel copies file pages to
 * the socket; no user-space server can beat it on the same loopback). Everything it writes stays in its temp dir.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nginxCommand, nginxConfig } from '../../src/testing/nginx.ts';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

export async function startNginx(runDir: string, root: string): Promise<Server> {
  return startNginxDaemon(join(runDir, 'nginx'), {
    name: 'nginx',
    what: 'nginx',
    readyPath: '/oci-layout',
    server: async (host) => `  server {
    listen ${host};
    root ${root};
  }`,
  });
}

/**
 * Debian's nginx as a bench daemon from the prefix `dir` (pid, logs, temp paths there), on a free
 * loopback port, access log off; `server(host)` gives its server (and upstream) blocks.
 */
export async function startNginxDaemon(dir: string, options: { name: string; what: string; readyPath: string; server: (host: string) => Promise<string> }): Promise<Server> {
  const command = await nginxCommand();
  if (command === undefined) throw new Error('nginx is not installed (apt-get install -y nginx)');
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = nginxConfig(dir, {
    workerProcesses: 'auto',
    workerConnections: 1024,
    http: `  access_log off;
${await options.server(host)}`,
  });
  await writeFile(join(dir, 'nginx.conf'), config);
  // -e: the error log before the config is read (the default /var/log/nginx may not be writable).
  const daemon = startDaemon(command, ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', join(dir, 'nginx.conf')], { cwd: dir });
  return serverFrom({ name: options.name, what: options.what, host, daemon, dir, readyPath: options.readyPath });
}
