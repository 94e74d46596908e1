/**
 * nginx with sendfile serving a directory: the limit for blob GET (the kernel copies file pages to
 * the socket; no user-space server can beat it on the same loopback). Everything it writes stays in its temp dir.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

export async function startNginx(runDir: string, root: string): Promise<Server> {
  const dir = join(runDir, 'nginx');
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const temp = (name: string): string => `${name}_temp_path ${join(dir, `${name}-temp`)};`;
  const config = `
# As root the master would hand workers to "nobody"; running them as us keeps the cache readable.
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes auto;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} warn;
events { worker_connections 1024; }
http {
  sendfile on;
  tcp_nopush on;
  access_log off;
  default_type application/octet-stream;
  ${temp('client_body')} ${temp('proxy')} ${temp('fastcgi')} ${temp('uwsgi')} ${temp('scgi')}
  server {
    listen ${host};
    root ${root};
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), config);
  // -e: the error log before the config is read (the default /var/log/nginx may not be writable).
  const daemon = startDaemon('nginx', ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', join(dir, 'nginx.conf')], { cwd: dir });
  return serverFrom({ name: 'nginx', what: 'nginx', host, daemon, dir: dir, readyPath: '/oci-layout' });
}
