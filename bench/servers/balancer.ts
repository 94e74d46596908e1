/**
 * Debian's nginx in front of registry replicas with docs/scale-out.md's ```nginx block (the one the
 * scale-out tests run, through src/testing/replicas.ts's documentedBalancerConfig), for the
 * benchmark: its access log off, as every server in the benchmark runs without per-request logs,
 * and `worker_processes auto` (Debian's default; one worker per core).
 */
import { join } from 'node:path';
import { documentedBalancerConfig } from '../../src/testing/replicas.ts';
import { startNginxDaemon } from './nginx.ts';
import type { Server } from './server.ts';

let counter = 0;

export async function startBalancer(runDir: string, upstreams: string[], name = 'nginx'): Promise<Server> {
  return startNginxDaemon(join(runDir, `balancer-${++counter}`), {
    name,
    what: 'nginx (balancer)',
    readyPath: '/v2/',
    server: (host) => documentedBalancerConfig({ listen: host, replicas: upstreams }),
  });
}
