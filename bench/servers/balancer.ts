/**
 * Debian's nginx in front of registry replicas with docs/scale-out.md's ```nginx block (the one the
 * scale-out tests run, through src/testing/replicas.ts's documentedBalancerConfig), for the
 * benchmark: its access log off, as every server in the benchmark runs without per-request logs,
 * and `worker_processes auto` (Debian's default; one worker per core).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nginxCommand, nginxConfig } from '../../src/testing/nginx.ts';
import { freePort } from '../../src/testing/peers.ts';
import { documentedBalancerConfig } from '../../src/testing/replicas.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

let counter = 0;

export async function startBalancer(runDir: string, upstreams: string[], name = 'nginx'): Promise<Server> {
  const command = await nginxCommand();
  if (command === undefined) throw new Error('nginx is not installed (apt-get install -y nginx)');
  const dir = join(runDir, `balancer-${++counter}`);
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = nginxConfig(dir, {
    workerProcesses: 'auto',
    workerConnections: 1024,
    http: `  access_log off;
${await documentedBalancerConfig({ listen: host, replicas: upstreams })}`,
  });
  await writeFile(join(dir, 'nginx.conf'), config);
  // -e: the error log before the config is read (the default /var/log/nginx may not be writable).
  const daemon = startDaemon(command, ['-p', dir, '-e', join(dir, 'logs', 'error.log'), '-c', join(dir, 'nginx.conf')], { cwd: dir });
  return serverFrom({ name, what: 'nginx (balancer)', host, daemon, dir, readyPath: '/v2/' });
}
