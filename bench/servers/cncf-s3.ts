/**
 * The CNCF registry (Debian's docker-registry 2.8) with its S3 storage driver on a bucket that
 * already exists, on the same radosgw as skiff's replicas (../shared/ENGINES.md): otherwise
 * cncf.ts's configuration (Debian's shipped config without auth, in-memory blob descriptor cache,
 * access log off). It answers blob GETs with 307 to a presigned radosgw URL, its default;
 * `redirect: false` turns that off (`storage: redirect: disable: true`). AWS_CA_BUNDLE is removed
 * from its environment: its Go SDK panics at start when the variable names no usable bundle.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';

let counter = 0;

export interface S3Bucket {
  endpoint: string;
  region: string;
  bucket: string;
  accessKey: string;
  secretKey: string;
}

export async function startCncfS3(runDir: string, s3: S3Bucket, options: { label?: string; redirect?: boolean } = {}): Promise<Server> {
  const dir = join(runDir, `cncf-s3-${++counter}`);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const driver = [
    `accesskey: ${s3.accessKey}`,
    `secretkey: ${s3.secretKey}`,
    `region: ${s3.region}`,
    `regionendpoint: "${s3.endpoint}"`,
    `bucket: ${s3.bucket}`,
    'secure: false',
    'v4auth: true',
    'forcepathstyle: true',
  ].join(', ');
  const config = [
    'version: 0.1',
    'log: { level: warn, accesslog: { disabled: true } }',
    'storage:',
    '  cache: { blobdescriptor: inmemory }',
    `  s3: { ${driver} }`,
    '  delete: { enabled: true }',
    ...(options.redirect === false ? ['  redirect: { disable: true }'] : []),
    `http: { addr: "${host}", headers: { X-Content-Type-Options: [nosniff] } }`,
    'health: { storagedriver: { enabled: true, interval: 10s, threshold: 3 } }',
  ].join('\n');
  await writeFile(join(dir, 'config.yml'), `${config}\n`);
  const env = { ...process.env };
  delete env.AWS_CA_BUNDLE;
  const daemon = startDaemon('docker-registry', ['serve', join(dir, 'config.yml')], { cwd: dir, env });
  return serverFrom({ name: options.label ?? 'CNCF registry (S3)', what: 'docker-registry (s3)', host, daemon, dir, readyPath: '/v2/' });
}
