/**
 * The CNCF registry (Debian's docker-registry 2.8) on a loopback port with its own filesystem root.
 * The config is Debian's shipped /etc/docker/registry/config.yml (in-memory blob descriptor cache,
 * deletes on, health check) minus htpasswd auth, with the access log off like skiff's request log.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { onCleanup } from '../cleanup.ts';
import { startDaemon } from '../proc.ts';
import { waitReady } from './ready.ts';
import type { Server } from './server.ts';

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
  const stop = async (): Promise<void> => {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const forget = onCleanup(`docker-registry ${host}`, stop);
  await waitReady('docker-registry', daemon, `http://${host}/v2/`);
  return {
    name: label,
    host,
    url: `http://${host}`,
    pid: daemon.pid,
    async stop() {
      forget();
      await stop();
    },
  };
}
