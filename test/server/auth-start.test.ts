/**
 * Access control at start-up: what `skiff serve` refuses to start with (ConfigError, exit 2 in
 * the CLI), and the token signing key it makes once and keeps.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { request } from 'node:https';
import { pino } from 'pino';
import { ConfigError } from '../../src/errors/config-error.ts';
import { loadSigningKey } from '../../src/auth/signing-key.ts';
import { resolveServeConfig } from '../../src/server/config.ts';
import { startRegistry } from '../../src/server/serve.ts';
import { makeImage } from '../../src/testing/images.ts';
import { peerSkipReason } from '../../src/testing/peers.ts';
import { startTestRegistry } from '../../src/testing/test-registry.ts';
import { makeTestCertificate } from '../../src/testing/tls-cert.ts';

const opensslMissing = await peerSkipReason('openssl');

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Asserts a ConfigError whose message matches every pattern. */
function configError(...patterns: (RegExp | string)[]): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ConfigError, `a ConfigError, got ${String((error as Error)?.stack ?? error)}`);
    for (const pattern of patterns) {
      if (typeof pattern === 'string') assert.ok(error.message.includes(pattern), `${JSON.stringify(pattern)} in: ${error.message}`);
      else assert.match(error.message, pattern);
    }
    return true;
  };
}

let work: string;
let goodHtpasswd: string;
let attempts = 0;

/**
 * startTestRegistry for a start expected to fail: its data directory is made under `work`, since
 * startTestRegistry removes the temporary directory it makes only in stop(), which a refused start never returns.
 */
function refusedStart(settings: Parameters<typeof startTestRegistry>[0]): ReturnType<typeof startTestRegistry> {
  return startTestRegistry({ ...settings, dataDir: join(work, `refused-${++attempts}`) });
}
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'skiff-auth-start-'));
  goodHtpasswd = join(work, 'good.htpasswd');
  await writeFile(goodHtpasswd, `alice:${bcrypt.hashSync('alice-pw', 4)}\n`);
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('htpasswd entries', () => {
  const cases: [string, string, RegExp][] = [
    ['MD5', 'bob:$apr1$abcdefgh$0123456789abcdefghijkl', /MD5 \(\$apr1\$\) hash is not supported/],
    ['SHA-1', 'bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', /SHA-1 \(\{SHA\}\) hash is not supported/],
    ['crypt', 'bob:$6$salt$0123456789', /crypt\(3\) hash is not supported/],
    ['plain text', 'bob:hunter2', /plain-text or crypt password is not supported/],
  ];
  for (const [kind, line, why] of cases) {
    test(`a ${kind} entry stops the start with a ConfigError naming the file, line and user`, async () => {
      const file = join(work, `${kind.replace(/\W/g, '')}.htpasswd`);
      await writeFile(file, `# users\nalice:${bcrypt.hashSync('alice-pw', 4)}\n\n${line}\n`);
      await assert.rejects(refusedStart({ htpasswd: file }), configError(`${file}:4`, 'user bob', why, `htpasswd -B ${file} bob`));
    });
  }

  test('through the CLI path too (resolveServeConfig then startRegistry), and the data directory is left usable', async () => {
    const file = join(work, 'cli-md5.htpasswd');
    await writeFile(file, `carol:$apr1$abcdefgh$0123456789abcdefghijkl\n`);
    const data = join(work, 'cli-md5-data');
    const config = await resolveServeConfig({ listen: '127.0.0.1:0', data, htpasswd: file, logLevel: 'silent' });
    await assert.rejects(startRegistry(config, pino({ level: 'silent' })), configError(`${file}:1`, 'carol', 'MD5'));
    // The refused start closed the store it had opened: a good start on the same directory works.
    const running = await startRegistry({ ...config, htpasswd: goodHtpasswd }, pino({ level: 'silent' }));
    try {
      assert.equal((await fetch(`${running.url}/v2/`, { headers: { Authorization: basic('alice', 'alice-pw') } })).status, 200);
    } finally {
      await running.close();
    }
  });

  test('a missing htpasswd file is a ConfigError naming it', async () => {
    const file = join(work, 'missing.htpasswd');
    await assert.rejects(refusedStart({ htpasswd: file }), configError(file, 'cannot read'));
  });
});

describe('plain HTTP with authentication', () => {
  test('auth on 0.0.0.0:0 without TLS refuses to start, naming --insecure-http', async () => {
    await assert.rejects(refusedStart({ listen: '0.0.0.0:0', htpasswd: goodHtpasswd }), configError('--insecure-http', /plain HTTP/, /all interfaces/));
    await assert.rejects(refusedStart({ listen: ':0', htpasswd: goodHtpasswd }), configError('--insecure-http'));
    const config = await resolveServeConfig({ listen: '0.0.0.0:0', data: join(work, 'plain-data'), htpasswd: goodHtpasswd, logLevel: 'silent' });
    await assert.rejects(startRegistry(config, pino({ level: 'silent' })), configError('--insecure-http'));
  });

  test('with insecureHttp it starts (and still asks for credentials)', async () => {
    const registry = await startTestRegistry({ listen: '0.0.0.0:0', htpasswd: goodHtpasswd, insecureHttp: true });
    try {
      const port = registry.address.split(':').at(-1);
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      assert.equal(res.status, 401);
      await res.arrayBuffer();
      const ok = await fetch(`http://127.0.0.1:${port}/v2/`, { headers: { Authorization: basic('alice', 'alice-pw') } });
      assert.equal(ok.status, 200);
    } finally {
      await registry.stop();
    }
  });

  test('loopback without TLS starts; no auth on 0.0.0.0 starts', async () => {
    const loopback = await startTestRegistry({ listen: '127.0.0.1:0', htpasswd: goodHtpasswd });
    await loopback.stop();
    const open = await startTestRegistry({ listen: '0.0.0.0:0' });
    await open.stop();
  });

  test('auth on 0.0.0.0 with TLS starts, and its challenges point at https', { skip: opensslMissing }, async () => {
    const cert = await makeTestCertificate(join(work, 'tls'));
    const registry = await startTestRegistry({ listen: '0.0.0.0:0', htpasswd: goodHtpasswd, tlsCert: cert.certFile, tlsKey: cert.keyFile });
    try {
      assert.match(registry.url, /^https:/);
      const port = registry.address.split(':').at(-1)!;
      const challenge = await new Promise<string | undefined>((resolve, reject) => {
        request({ host: '127.0.0.1', port, path: '/v2/a/b/manifests/x', ca: cert.cert, agent: false }, (res) => {
          res.resume();
          resolve(res.headers['www-authenticate']);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(challenge, `Bearer realm="https://127.0.0.1:${port}/token",service="skiff",scope="repository:a/b:pull"`);
    } finally {
      await registry.stop();
    }
  });
});

describe('config refusals', () => {
  const data = () => join(work, 'config-data');

  test('tlsCert without tlsKey (and the reverse): ConfigError', async () => {
    await assert.rejects(resolveServeConfig({ data: data(), tlsCert: '/etc/skiff/tls.crt' }), configError('tlsCert and tlsKey'));
    await assert.rejects(resolveServeConfig({ data: data(), tlsKey: '/etc/skiff/tls.key' }), configError('tlsCert and tlsKey'));
    const file = join(work, 'tls-only.yaml');
    await writeFile(file, 'tlsCert: /etc/skiff/tls.crt\nhtpasswd: /etc/skiff/htpasswd\n');
    await assert.rejects(resolveServeConfig({ data: data() }, file), configError('tlsCert and tlsKey'));
  });

  test(
    'startRegistry (the embedders\' entry) refuses tlsCert without tlsKey too',
    async () => {
      const cert = join(work, 'never-read.crt');
      await assert.rejects(
        (async () => {
          const registry = await refusedStart({ htpasswd: goodHtpasswd, tlsCert: cert });
          const res = await fetch(`${registry.url}/v2/a/b/manifests/x`);
          const challenge = res.headers.get('www-authenticate');
          await registry.stop();
          throw new Error(`started at ${registry.url}; challenge ${challenge}`);
        })(),
        configError('tlsKey'),
      );
    },
  );

  test('unknown keys under access, its rules, token, failedLogins and externalToken: ConfigError naming each', async () => {
    const cases: [Record<string, unknown>, string[]][] = [
      [{ access: { rules: [], admins: [], colour: 'blue' } }, ['access.colour: unknown setting']],
      [{ access: { rules: [{ repositories: ['a/**'], actions: ['pull'], users: ['alice'], expires: '1d' }] } }, ['access.rules[0].expires: unknown setting']],
      [{ access: { rules: [{ repositories: ['a/**'], actions: ['pull', 'admin'], users: ['alice'] }] } }, ['access.rules[0].actions', 'not admin']],
      [{ access: { rules: [{ repositories: ['A/**'], actions: ['pull'], users: ['alice'] }] } }, ['access.rules[0].repositories']],
      [{ access: { rules: [{ repositories: ['a/**'], actions: ['pull'] }] } }, ['access.rules[0]: names nobody']],
      [{ access: { rules: [{ repositories: ['a/**'], actions: ['pull'], groups: ['ghosts'] }] } }, ['no group ghosts']],
      [{ token: { service: 'skiff', lifetime: '5m' } }, ['token.lifetime: unknown setting']],
      [{ token: { ttl: '1s' } }, ['token.ttl']],
      [{ token: { realm: 'ftp://x/token' } }, ['token.realm']],
      [{ failedLogins: { perUser: 10, perHour: 5 } }, ['failedLogins.perHour: unknown setting']],
      [{ externalToken: { realm: 'https://a/token', service: 's', issuer: 'i', rootcertbundle: '/x', kid: 'k' } }, ['externalToken.kid: unknown setting']],
      [{ authScheme: 'digest' }, ['authScheme: must be token or basic']],
    ];
    for (const [settings, expected] of cases) {
      await assert.rejects(resolveServeConfig({ data: data(), ...settings }), configError('flags', ...expected), JSON.stringify(settings));
    }
  });

  test('the same from a YAML file: the message names the file and the key', async () => {
    const file = join(work, 'skiff.yaml');
    await writeFile(file, ['htpasswd: /etc/skiff/htpasswd', 'access:', '  rules:', '    - repositories: [team-a/**]', '      users: [alice]', '      actions: [pull]', '      team: a', 'token:', '  audience: skiff', ''].join('\n'));
    await assert.rejects(resolveServeConfig({ data: data() }, file), configError(`${file}: access.rules[0].team: unknown setting`, `${file}: token.audience: unknown setting`));
  });

  test('a token.key that does not exist is not created: ConfigError naming it', async () => {
    const key = join(work, 'no-such-key.pem');
    await assert.rejects(refusedStart({ htpasswd: goodHtpasswd, token: { key } }), configError(key, 'cannot read'));
    await assert.rejects(stat(key), { code: 'ENOENT' });
    const notAKey = join(work, 'not-a-key.pem');
    await writeFile(notAKey, 'hello\n');
    await assert.rejects(refusedStart({ htpasswd: goodHtpasswd, token: { key: notAKey } }), configError(notAKey, 'not a PEM private key'));
  });
});

describe('the generated token key', () => {
  test('is created 0600 under <data>/auth/ on first start and reused on restart: a token minted before still works', async () => {
    const dataDir = join(work, 'key-data');
    await mkdir(dataDir);
    const keyFile = join(dataDir, 'auth', 'token-key.pem');
    await assert.rejects(stat(keyFile), { code: 'ENOENT' });

    const first = await startTestRegistry({ htpasswd: goodHtpasswd, dataDir });
    let token: string;
    let pem: string;
    const image = await makeImage({ seed: 'auth-start key', layers: 1, layerSize: 128 });
    try {
      const info = await stat(keyFile);
      assert.equal(info.mode & 0o777, 0o600, `mode ${(info.mode & 0o777).toString(8)}`);
      assert.equal((await stat(join(dataDir, 'auth'))).mode & 0o077, 0, 'the auth directory is private');
      pem = await readFile(keyFile, 'utf8');
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
      const answer = await fetch(`${first.url}/token?service=skiff&scope=repository:keep/app:pull,push`, { headers: { Authorization: basic('alice', 'alice-pw') } });
      assert.equal(answer.status, 200);
      token = ((await answer.json()) as { token: string }).token;
      // Use it before the restart.
      const start = await fetch(`${first.url}/v2/keep/app/blobs/uploads/?digest=${image.layers[0]!.descriptor.digest}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: image.layers[0]!.data });
      assert.equal(start.status, 201, await start.text());
    } finally {
      await first.stop();
    }

    const second = await startTestRegistry({ htpasswd: goodHtpasswd, dataDir });
    try {
      assert.equal(await readFile(keyFile, 'utf8'), pem, 'the same key');
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
      const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { kid: string };
      assert.equal(header.kid, (await loadSigningKey(keyFile)).kid, 'the kid of the key on disk');
      const read = await fetch(`${second.url}/v2/keep/app/blobs/${image.layers[0]!.descriptor.digest}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(read.status, 200, await read.text());
      const push = await fetch(`${second.url}/v2/keep/app/blobs/uploads/?digest=${image.config.descriptor.digest}`, { method: 'POST', headers: { Authorization: `Bearer ${token}` }, body: image.config.data });
      assert.equal(push.status, 201, await push.text());
    } finally {
      await second.stop();
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a different data directory makes a different key: its tokens are refused elsewhere', async () => {
    const one = await startTestRegistry({ htpasswd: goodHtpasswd });
    const two = await startTestRegistry({ htpasswd: goodHtpasswd });
    try {
      const answer = await fetch(`${one.url}/token?service=skiff&scope=repository:a/b:pull`, { headers: { Authorization: basic('alice', 'alice-pw') } });
      const { token } = (await answer.json()) as { token: string };
      assert.notEqual(await readFile(join(one.dataDir, 'auth', 'token-key.pem'), 'utf8'), await readFile(join(two.dataDir, 'auth', 'token-key.pem'), 'utf8'));
      const res = await fetch(`${two.url}/v2/a/b/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(res.status, 401);
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
      await res.arrayBuffer();
    } finally {
      await one.stop();
      await two.stop();
    }
  });

  test('without authentication no key is made', async () => {
    const registry = await startTestRegistry({ token: { service: 'skiff' } });
    try {
      await assert.rejects(stat(join(registry.dataDir, 'auth', 'token-key.pem')), { code: 'ENOENT' });
    } finally {
      await registry.stop();
    }
  });
});
