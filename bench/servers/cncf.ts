/**
 * The CNCF registry (Debian's docker-registry 2.8) on a loopback port with its own filesystem root.
 * The config is Debian's shipped /etc/docker/registry/config.yml (in-memory blob descriptor cache,
 * deletes on, health check) minus htpasswd auth, with the access log off like skiff's request log.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

let counter = 0;

export interface CncfOptions {
  /** Its pull-through cache mode (`proxy: { remoteurl }`), as its documentation sets up a Docker Hub mirror. */
  proxyRemote?: string;
  /** Turns the access log on (Apache combined format, on stdout) and hands it over line by line. */
  accessLog?: (line: string) => void;
  /** Serves its Prometheus metrics (`/metrics`) on this loopback port. */
  debugPort?: number;
  /** Turns its Basic authentication back on (`auth: { htpasswd: { realm, path } }`) with this htpasswd file. */
  htpasswd?: string;
}

export async function startCncf(runDir: string, label = 'cncf', options: CncfOptions = {}): Promise<Server> {
  const dir = join(runDir, `cncf-${++counter}`);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const debug = options.debugPort === undefined ? '' : `, debug: { addr: "127.0.0.1:${options.debugPort}", prometheus: { enabled: true, path: /metrics } }`;
  const config = [
    'version: 0.1',
    `log: { level: warn, accesslog: { disabled: ${options.accessLog ? 'false' : 'true'} } }`,
    'storage:',
    '  cache: { blobdescriptor: inmemory }',
    `  filesystem: { rootdirectory: ${join(dir, 'data')} }`,
    '  delete: { enabled: true }',
    `http: { addr: "${host}", headers: { X-Content-Type-Options: [nosniff] }${debug} }`,
    'health: { storagedriver: { enabled: true, interval: 10s, threshold: 3 } }',
    ...(options.proxyRemote === undefined ? [] : [`proxy: { remoteurl: "${options.proxyRemote}" }`]),
    ...(options.htpasswd === undefined ? [] : [`auth: { htpasswd: { realm: bench, path: "${options.htpasswd}" } }`]),
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), `${config}\n`);
  let partial = '';
  const accessLog = options.accessLog;
  const onStdout = accessLog
    ? (chunk: Buffer): void => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop()!;
        for (const line of lines) if (line) accessLog(line);
      }
    : undefined;
  const daemon = startDaemon('docker-registry', ['serve', join(dir, 'config.yml')], { cwd: dir, ...(onStdout ? { onStdout } : {}) });
  return serverFrom({ name: label, what: 'docker-registry', host, daemon, dir: dir, readyPath: '/v2/' });
}
