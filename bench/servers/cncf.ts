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

export async function startCncf(runDir: string, label = 'cncf'): Promise<Server> {
  const dir = join(runDir, `cncf-${++counter}`);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = [
    'version: 0.1',
    'log: { level: warn, accesslog: { disabled: true } }',
    'storage:',
    '  cache: { blobdescriptor: inmemory }',
    `  filesystem: { rootdirectory: ${join(dir, 'data')} }`,
    '  delete: { enabled: true }',
    `http: { addr: "${host}", headers: { X-Content-Type-Options: [nosniff] } }`,
    'health: { storagedriver: { enabled: true, interval: 10s, threshold: 3 } }',
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), `${config}\n`);
  const daemon = startDaemon('docker-registry', ['serve', join(dir, 'config.yml')], { cwd: dir });
  return serverFrom({ name: label, what: 'docker-registry', host, daemon, dir: dir, readyPath: '/v2/' });
}
