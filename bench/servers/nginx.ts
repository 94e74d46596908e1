/**
 * nginx with sendfile serving a directory: the limit for blob GET (the kernel copies file pages to
 * the socket; no user-space server can beat it on the same loopback). Everything it writes stays in its temp dir.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nginxConfig } from '../../src/testing/nginx.ts';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

export async function startNginx(runDir: string, root: string): Promise<Server> {
  const dir = join(runDir, 'nginx');
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = nginxConfig(dir, {
    workerProcesses: 'auto',
    workerConnections: 1024,
    http: `  access_log off;
  server {
    listen ${host};
    root ${root};
  }`,
  });
  await writeFile(join(dir, 'nginx.conf'), config);
  // -e: the error log before the config is read (the default /var/log/nginx may not be writable).
  const daemon = startDaemon('nginx', ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', join(dir, 'nginx.conf')], { cwd: dir });
  return serverFrom({ name: 'nginx', what: 'nginx', host, daemon, dir: dir, readyPath: '/oci-layout' });
}
