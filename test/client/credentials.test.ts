import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CredentialHelperError, helperStore } from '../../src/client/credential-helper.ts';
import { credentialSource, credentialsFor } from '../../src/client/credentials.ts';
import { DOCKER_HUB_CONFIG_KEY } from '../../src/client/docker-config.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { installFakeHelpers, type FakeHelpers } from '../../src/testing/fake-credential-helper.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

describe('credentialsFor', () => {
  let root: string;
  let fakes: FakeHelpers;
  let n = 0;
  /** A fresh config dir holding `config`. */
  async function configDir(config: unknown): Promise<string> {
    const dir = join(root, `cfg-${n++}`);
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    return dir;
  }
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'skiff-creds-'));
    fakes = await installFakeHelpers(join(root, 'helpers'));
    await helperStore('fake', { ServerURL: 'ghcr.io', Username: 'from-helper', Secret: 'helper-secret' }, { env: fakes.env });
    await helperStore('fake', { ServerURL: DOCKER_HUB_CONFIG_KEY, Username: 'hub-helper', Secret: 'hub-secret' }, { env: fakes.env });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('auths: base64 user:pass, identity token, Hub aliases', async () => {
    const dir = await configDir({
      auths: { [DOCKER_HUB_CONFIG_KEY]: { auth: b64('hub:pw') }, 'https://quay.io': { auth: b64('q:p'), identitytoken: 'tok' }, 'onlytoken.io': { identitytoken: 't2' } },
    });
    assert.deepEqual(await credentialsFor('docker.io', { configDir: dir }), { username: 'hub', password: 'pw' });
    assert.deepEqual(await credentialsFor('registry-1.docker.io', { configDir: dir }), { username: 'hub', password: 'pw' });
    assert.deepEqual(await credentialsFor('quay.io', { configDir: dir }), { username: 'q', password: 'p', identityToken: 'tok' });
    assert.deepEqual(await credentialsFor('onlytoken.io', { configDir: dir }), { identityToken: 't2' });
    assert.equal(await credentialsFor('ghcr.io', { configDir: dir }), undefined);
  });

  test('no config file at all: anonymous', async () => {
    assert.equal(await credentialsFor('ghcr.io', { configDir: join(root, 'nothing-here') }), undefined);
  });

  test('credsStore beats auths; the helper is asked with the config key (Hub: its legacy URL)', async () => {
    const dir = await configDir({ credsStore: 'fake', auths: { 'ghcr.io': { auth: b64('file:pw') }, [DOCKER_HUB_CONFIG_KEY]: {} } });
    assert.deepEqual(await credentialsFor('ghcr.io', { configDir: dir, env: fakes.env }), { username: 'from-helper', password: 'helper-secret' });
    assert.deepEqual(await credentialsFor('index.docker.io', { configDir: dir, env: fakes.env }), { username: 'hub-helper', password: 'hub-secret' });
    assert.ok((await fakes.calls()).includes(`get ${DOCKER_HUB_CONFIG_KEY}`));
  });

  test('credHelpers[host] beats credsStore', async () => {
    const dir = await configDir({ credsStore: 'broken', credHelpers: { 'ghcr.io': 'fake', 'tok.example.com': 'token' } });
    assert.deepEqual(await credentialsFor('ghcr.io', { configDir: dir, env: fakes.env }), { username: 'from-helper', password: 'helper-secret' });
    assert.deepEqual(await credentialsFor('tok.example.com', { configDir: dir, env: fakes.env }), { identityToken: 'identity-for-tok.example.com' });
    await assert.rejects(credentialsFor('quay.io', { configDir: dir, env: fakes.env }), /docker-credential-broken/, 'other hosts go to credsStore');
  });

  test('a helper with nothing for the host falls back to a clear-text auths entry', async () => {
    const dir = await configDir({ credsStore: 'fake', auths: { 'quay.io': { auth: b64('file:pw') } } });
    assert.deepEqual(await credentialsFor('quay.io', { configDir: dir, env: fakes.env }), { username: 'file', password: 'pw' });
    assert.equal(await credentialsFor('gcr.io', { configDir: dir, env: fakes.env }), undefined);
  });

  test('a failing helper is an error naming the helper and where it was configured', async () => {
    const dir = await configDir({ credsStore: 'desktop-missing' });
    await assert.rejects(credentialsFor('ghcr.io', { configDir: dir, env: fakes.env }), (error: unknown) => {
      assert.ok(error instanceof CredentialHelperError);
      assert.equal(error.message, `docker-credential-desktop-missing get: not found on PATH (is the credential helper installed?) (configured by credsStore in ${join(dir, 'config.json')})`);
      return true;
    });
  });

  test('with onHelperError, a failing helper is reported and the lookup goes on', async () => {
    const dir = await configDir({ credsStore: 'broken', auths: { 'ghcr.io': { auth: b64('file:pw') } } });
    const reported: string[] = [];
    const found = await credentialsFor('ghcr.io', { configDir: dir, env: fakes.env, onHelperError: (error) => reported.push(error.message) });
    assert.deepEqual(found, { username: 'file', password: 'pw' });
    assert.equal(reported.length, 1);
    assert.match(reported[0]!, /docker-credential-broken get: exited with status 3: the keychain is locked \(configured by credsStore/);
  });

  test('credentialSource looks up once for a client that asks on every request, and feeds RegistryClient', async () => {
    const seen: (string | undefined)[] = [];
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(req.headers.authorization);
      if (req.headers.authorization !== `Basic ${b64('from-helper:helper-secret')}`) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await helperStore('fake', { ServerURL: `127.0.0.1:${port}`, Username: 'from-helper', Secret: 'helper-secret' }, { env: fakes.env });
    const dir = await configDir({ credHelpers: { [`127.0.0.1:${port}`]: 'fake' } });
    const before = (await fakes.calls()).filter((line) => line.startsWith('get ')).length;
    const client = new RegistryClient({ registry: `127.0.0.1:${port}`, credentials: credentialSource(`127.0.0.1:${port}`, { configDir: dir, env: fakes.env }), retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    try {
      await client.ping();
      await client.ping();
      await client.ping();
    } finally {
      await client.close();
      server.close();
    }
    assert.deepEqual(seen.slice(0, 2), [undefined, `Basic ${b64('from-helper:helper-secret')}`]);
    const gets = (await fakes.calls()).filter((line) => line.startsWith('get ')).length - before;
    assert.equal(gets, 1, 'the helper ran once for three pings');
  });

  test('credentialSource forgets a failed lookup so the next request tries again', async () => {
    const dir = join(root, 'late');
    const source = credentialSource('ghcr.io', { configDir: dir });
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), '{not json');
    await assert.rejects(source(), /not valid JSON/);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'ghcr.io': { auth: b64('a:b') } } }));
    assert.deepEqual(await source(), { username: 'a', password: 'b' });
  });
});
