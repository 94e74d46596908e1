import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { rootCertificates } from 'node:tls';
import { NodeHttpTransport } from '../../src/client/transport.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';

test('a registry with an untrusted certificate gets a TLS error that says what to do; its CA fixes it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const cert = await readFile(join(dir, 'cert.pem'), 'utf8');
    const server = createServer({ key: await readFile(join(dir, 'key.pem')), cert }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const retry = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 };
    try {
      const untrusting = new RegistryClient({ registry: host, plainHttp: false, retry });
      await assert.rejects(untrusting.ping(), /TLS problem talking to 127\.0\.0\.1:\d+ \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)[^)]*\); give its CA with --ca-file/);
      await untrusting.close();
      const trusting = new RegistryClient({ registry: host, plainHttp: false, retry, transport: new NodeHttpTransport({ ca: [...rootCertificates, cert] }) });
      await trusting.ping();
      await trusting.close();
    } finally {
      server.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a refused connection says so, naming the registry', async () => {
  const client = new RegistryClient({ registry: '127.0.0.1:1', retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
  await assert.rejects(client.ping(), /cannot connect to 127\.0\.0\.1:1 \(connection refused\)/);
  await client.close();
});
