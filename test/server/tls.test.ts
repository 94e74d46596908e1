import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { ConfigError } from '../../src/errors/config-error.ts';
import { checkPlainHttpAuth, expiryWarning, isLoopbackHost, loadTlsFiles, TlsReloader } from '../../src/server/tls.ts';
import { issueCertificate, makeTestCa, makeTestCertificate, type TestCertificate } from '../../src/testing/tls-cert.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-tls-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function fingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

describe('loadTlsFiles', () => {
  let first: TestCertificate;
  let other: TestCertificate;
  before(async () => {
    first = await makeTestCertificate(join(dir, 'load'), { commonName: 'registry.test' });
    other = await makeTestCertificate(join(dir, 'load'), { name: 'other' });
  });

  test('reads a matching certificate and key', async () => {
    const files = await loadTlsFiles(first.certFile, first.keyFile);
    assert.equal(files.cert.toString(), first.cert);
    assert.equal(files.key.toString(), first.key);
    assert.equal(files.subject, 'CN=registry.test');
    assert.equal(files.fingerprint256, fingerprint(first.cert));
    const days = (files.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `notAfter ${files.notAfter.toISOString()}`);
    assert.equal(expiryWarning(files, first.certFile), undefined);
  });

  test('a key that belongs to another certificate is refused, naming both files', async () => {
    await assert.rejects(loadTlsFiles(first.certFile, other.keyFile), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.message.includes(first.certFile) && err.message.includes(other.keyFile), err.message);
      assert.match(err.message, /does not match the certificate/);
      return true;
    });
  });

  test('a chain with the server certificate not first says so', async () => {
    const chain = join(dir, 'load', 'wrong-order.crt');
    await writeFile(chain, other.cert + first.cert);
    await assert.rejects(loadTlsFiles(chain, first.keyFile), /the first must be the server's own/);
  });

  test('garbage, swapped, encrypted and missing files are ConfigErrors naming the file', async () => {
    const garbage = join(dir, 'load', 'garbage.pem');
    await writeFile(garbage, 'not a certificate\n');
    const broken = join(dir, 'load', 'broken.crt');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const encrypted = join(dir, 'load', 'encrypted.key');
    await writeFile(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
    const missing = join(dir, 'load', 'missing.pem');
    const cases: [string, string, RegExp][] = [
      [garbage, first.keyFile, /^TLS certificate .*garbage\.pem is not a PEM certificate/],
      [broken, first.keyFile, /^TLS certificate .*broken\.crt is not a valid certificate: /],
      [first.certFile, garbage, /^TLS key .*garbage\.pem is not a PEM private key/],
      [first.keyFile, first.certFile, /server\.key is not a PEM certificate: it holds a private key \(are the certificate and key files swapped\?\)/],
      [first.certFile, encrypted, /^TLS key .*encrypted\.key is encrypted with a passphrase/],
      [missing, first.keyFile, /^TLS certificate .*missing\.pem cannot be read: ENOENT: no such file or directory$/],
      [first.certFile, missing, /^TLS key .*missing\.pem cannot be read: ENOENT/],
    ];
    for (const [cert, key, message] of cases) {
      await assert.rejects(loadTlsFiles(cert, key), (err: Error) => {
        assert.ok(err instanceof ConfigError, `${cert} ${key}: ${err.name}`);
        assert.match(err.message, message);
        return true;
      });
    }
  });

  test('a CA-issued leaf with its chain loads; an RSA leaf too', async () => {
    const ca = await makeTestCa(join(dir, 'ca'));
    const leaf = await issueCertificate(ca, join(dir, 'ca'), { commonName: 'token signer', keyType: 'rsa' });
    const x509 = new X509Certificate(leaf.cert);
    assert.ok(x509.verify(new X509Certificate(ca.cert).publicKey), 'leaf is signed by the root');
    assert.ok(x509.checkIssued(new X509Certificate(ca.cert)));
    assert.equal(new X509Certificate(ca.cert).ca, true);
    assert.equal(x509.ca, false);
    assert.equal(x509.publicKey.asymmetricKeyType, 'rsa');
    const chain = join(dir, 'ca', 'chain.crt');
    await writeFile(chain, leaf.cert + ca.cert);
    const files = await loadTlsFiles(chain, leaf.keyFile);
    assert.equal(files.subject, 'CN=token signer');
  });

  test('expiryWarning: soon, expired, not yet valid', async () => {
    const soon = await makeTestCertificate(join(dir, 'soon'), { days: 3 });
    const files = await loadTlsFiles(soon.certFile, soon.keyFile);
    assert.match(expiryWarning(files, soon.certFile) ?? '', /expires in [23] days, on .*; renew it and send skiff SIGHUP$/);
    const later = new Date(files.notAfter.getTime() + 1000);
    assert.match(expiryWarning(files, soon.certFile, later) ?? '', /expired on /);
    const earlier = new Date(files.notBefore.getTime() - 1000);
    assert.match(expiryWarning(files, soon.certFile, earlier) ?? '', /is not valid before /);
  });
});

describe('isLoopbackHost', () => {
  const table: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['::1', true],
    ['[::1]', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::ffff:127.0.0.1', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['', false],
    ['0.0.0.0', false],
    ['::', false],
    ['[::]', false],
    ['10.0.0.1', false],
    ['128.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['registry.example', false],
    ['localhost.example', false],
    ['127.0.0.1.example', false],
  ];
  for (const [host, loopback] of table) {
    test(`${JSON.stringify(host)} → ${loopback}`, () => assert.equal(isLoopbackHost(host), loopback));
  }
});

describe('checkPlainHttpAuth', () => {
  const refused = /^refusing to serve authentication over plain HTTP on (.+): credentials and tokens would cross the network in clear text; give --tls-cert\/--tls-key, listen on a loopback address, or pass --insecure-http$/;

  test('auth over plain HTTP on a network address is refused', () => {
    for (const listenHost of ['0.0.0.0', '', '::', '192.168.1.5', 'registry.example']) {
      assert.throws(() => checkPlainHttpAuth({ listenHost, tls: false, auth: true, insecureHttp: false }), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, refused);
        return true;
      });
    }
    assert.throws(() => checkPlainHttpAuth({ listenHost: '0.0.0.0', tls: false, auth: true, insecureHttp: false }), /on 0\.0\.0\.0 \(all interfaces\):/);
    assert.throws(() => checkPlainHttpAuth({ listenHost: '192.168.1.5', tls: false, auth: true, insecureHttp: false }), /on 192\.168\.1\.5:/);
  });

  test('allowed with TLS, on loopback, with --insecure-http, or without auth', () => {
    const allowed = [
      { listenHost: '0.0.0.0', tls: true, auth: true, insecureHttp: false },
      { listenHost: '127.0.0.1', tls: false, auth: true, insecureHttp: false },
      { listenHost: '[::1]', tls: false, auth: true, insecureHttp: false },
      { listenHost: 'localhost', tls: false, auth: true, insecureHttp: false },
      { listenHost: '0.0.0.0', tls: false, auth: true, insecureHttp: true },
      { listenHost: '0.0.0.0', tls: false, auth: false, insecureHttp: false },
    ];
    for (const options of allowed) assert.doesNotThrow(() => checkPlainHttpAuth(options), JSON.stringify(options));
  });
});

describe('TlsReloader on a real https server', () => {
  let server: Server;
  let port: number;
  let live: { certFile: string; keyFile: string };
  let first: TestCertificate;
  const lines: { msg: string; level: number }[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as { msg: string; level: number });
        done();
      },
    }),
  );

  before(async () => {
    first = await makeTestCertificate(join(dir, 'live'), { commonName: 'first' });
    live = { certFile: first.certFile, keyFile: first.keyFile };
    const files = await loadTlsFiles(live.certFile, live.keyFile);
    server = createServer({ cert: files.cert, key: files.key }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** One request on a fresh connection (no agent, so no reuse and no session resumption). */
  function fetchPeer(ca?: string): Promise<{ body: string; fingerprint: string }> {
    return new Promise((resolve, reject) => {
      const options = ca ? { ca, agent: false as const } : { rejectUnauthorized: false, agent: false as const };
      const req = get(`https://127.0.0.1:${port}/`, options, (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ body, fingerprint }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  }

  test('serves with the first certificate, verifiable against it for 127.0.0.1', async () => {
    assert.deepEqual(await fetchPeer(first.cert), { body: 'ok', fingerprint: fingerprint(first.cert) });
    assert.deepEqual(await fetchPeer(), { body: 'ok', fingerprint: fingerprint(first.cert) });
  });

  test('reload() installs a renewed certificate written over the same files', async () => {
    const second = await makeTestCertificate(join(dir, 'live'), { commonName: 'second' });
    assert.equal(second.certFile, live.certFile, 'same paths, as a renewal writes them');
    assert.notEqual(fingerprint(second.cert), fingerprint(first.cert));
    assert.equal((await fetchPeer()).fingerprint, fingerprint(first.cert), 'nothing changes before the reload');

    const reloader = new TlsReloader({ server, ...live, log });
    assert.equal(await reloader.reload(), true);
    assert.deepEqual(await fetchPeer(second.cert), { body: 'ok', fingerprint: fingerprint(second.cert) });
    const info = lines.find((l) => l.msg === 'tls certificate reloaded') as unknown as { subject: string; notAfter: string };
    assert.equal(info.subject, 'CN=second');
    assert.ok(!Number.isNaN(Date.parse(info.notAfter)));
  });

  test('SIGHUP reloads while the watcher is installed', async () => {
    const third = await makeTestCertificate(join(dir, 'live'), { commonName: 'third' });
    const reloader = new TlsReloader({ server, ...live, log });
    let reloaded!: (ok: boolean) => void;
    const done = new Promise<boolean>((resolve) => (reloaded = resolve));
    // The listener must be in place before the signal: without one SIGHUP ends the process.
    const listeners = process.listenerCount('SIGHUP');
    const stop = reloader.watchSighup(reloaded);
    assert.equal(process.listenerCount('SIGHUP'), listeners + 1);
    try {
      process.kill(process.pid, 'SIGHUP');
      assert.equal(await done, true);
    } finally {
      stop();
    }
    assert.equal(process.listenerCount('SIGHUP'), listeners);
    assert.equal((await fetchPeer(third.cert)).fingerprint, fingerprint(third.cert));
  });

  test('a reload with a broken or mismatched file keeps the previous certificate', async () => {
    const current = (await fetchPeer()).fingerprint;
    const reloader = new TlsReloader({ server, ...live, log });
    const saved = join(dir, 'saved.crt');
    await copyFile(live.certFile, saved);

    await writeFile(live.certFile, 'half-written garbage');
    lines.length = 0;
    assert.equal(await reloader.reload(), false);
    const error = lines.find((l) => l.msg === 'tls reload failed, keeping the previous certificate') as unknown as { level: number; err: string };
    assert.equal(error.level, 50);
    assert.match(error.err, /is not a PEM certificate/);
    assert.equal((await fetchPeer()).fingerprint, current);

    // A renewed certificate whose key has not been written yet: the mismatch is refused too.
    const other = await makeTestCertificate(join(dir, 'elsewhere'));
    await copyFile(other.certFile, live.certFile);
    assert.equal(await reloader.reload(), false);
    assert.equal((await fetchPeer()).fingerprint, current);

    await copyFile(saved, live.certFile);
    assert.equal(await reloader.reload(), true);
    assert.equal((await fetchPeer()).fingerprint, current);
  });
});
