import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CredentialHelperError, helperErase, helperGet, helperList, helperProgram, helperStore } from '../../src/client/credential-helper.ts';
import { installFakeHelpers, type FakeHelpers } from '../../src/testing/fake-credential-helper.ts';

describe('docker-credential-<name> protocol', () => {
  let dir: string;
  let fakes: FakeHelpers;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-helper-'));
    fakes = await installFakeHelpers(dir);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the program is docker-credential-<name>', () => {
    assert.equal(helperProgram('desktop'), 'docker-credential-desktop');
  });

  test('store, get, list, erase round trip through the helper; the URL goes on stdin', async () => {
    const env = fakes.env;
    assert.equal(await helperGet('fake', 'ghcr.io', { env }), undefined, 'nothing stored yet: "credentials not found" means none');
    await helperStore('fake', { ServerURL: 'ghcr.io', Username: 'octo', Secret: 's3cret:with:colons' }, { env });
    assert.deepEqual(await fakes.stored('ghcr.io'), { ServerURL: 'ghcr.io', Username: 'octo', Secret: 's3cret:with:colons' });
    assert.deepEqual(await helperGet('fake', 'ghcr.io', { env }), { username: 'octo', password: 's3cret:with:colons' });
    await helperStore('fake', { ServerURL: 'https://index.docker.io/v1/', Username: 'hubber', Secret: 'pw' }, { env });
    assert.deepEqual(await helperList('fake', { env }), { 'ghcr.io': 'octo', 'https://index.docker.io/v1/': 'hubber' });
    assert.equal(await helperErase('fake', 'ghcr.io', { env }), true);
    assert.equal(await helperGet('fake', 'ghcr.io', { env }), undefined);
    assert.equal(await helperErase('fake', 'ghcr.io', { env }), false, 'erasing what is not there is not an error');
    const calls = await fakes.calls();
    assert.ok(calls.includes('get ghcr.io'), `the server URL arrived on stdin as-is: ${calls.join(' | ')}`);
    assert.ok(calls.includes('store {"ServerURL":"ghcr.io","Username":"octo","Secret":"s3cret:with:colons"}'));
    assert.ok(calls.includes('erase ghcr.io'));
  });

  test('a Username of <token> makes Secret an identity token', async () => {
    assert.deepEqual(await helperGet('token', 'registry.example.com', { env: fakes.env }), { identityToken: 'identity-for-registry.example.com' });
  });

  test('an empty record is "no credentials"', async () => {
    assert.equal(await helperGet('empty', 'ghcr.io', { env: fakes.env }), undefined);
  });

  test('a missing helper is an error naming the program and saying it is not on PATH', async () => {
    await assert.rejects(helperGet('nonexistent', 'ghcr.io', { env: fakes.env }), (error: unknown) => {
      assert.ok(error instanceof CredentialHelperError);
      assert.equal(error.program, 'docker-credential-nonexistent');
      assert.match(error.message, /^docker-credential-nonexistent get: not found on PATH/);
      return true;
    });
  });

  test('a failing helper reports its status and output', async () => {
    await assert.rejects(helperGet('broken', 'ghcr.io', { env: fakes.env }), /docker-credential-broken get: exited with status 3: the keychain is locked/);
    await assert.rejects(helperStore('broken', { ServerURL: 'x', Username: 'u', Secret: 's' }, { env: fakes.env }), /docker-credential-broken store: exited with status 3/);
    await assert.rejects(helperErase('broken', 'x', { env: fakes.env }), /docker-credential-broken erase: exited with status 3/);
  });

  test('output that is not JSON is an error quoting it', async () => {
    await assert.rejects(helperGet('garbage', 'ghcr.io', { env: fakes.env }), /docker-credential-garbage get: printed something that is not JSON: "hello, I am not JSON/);
  });

  test('a helper that hangs is killed after the timeout', async () => {
    const started = Date.now();
    await assert.rejects(helperGet('slow', 'ghcr.io', { env: fakes.env, timeoutMs: 300 }), /docker-credential-slow get: timed out after 300 ms/);
    assert.ok(Date.now() - started < 5000, 'did not wait for the helper');
  });

  test('an abort signal stops the helper', async () => {
    const controller = new AbortController();
    const pending = helperGet('slow', 'ghcr.io', { env: fakes.env, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(pending, { name: 'AbortError' });
  });

  test('helper names that could escape the program name are refused before anything runs', async () => {
    await assert.rejects(helperGet('../../bin/sh', 'ghcr.io', { env: fakes.env }), /invalid helper name/);
    await assert.rejects(helperGet('', 'ghcr.io', { env: fakes.env }), /invalid helper name/);
  });

  test('PATH comes from the env passed in, not from process.env', async () => {
    assert.ok(!(process.env.PATH ?? '').includes(fakes.bin), 'the test did not touch process.env');
    await assert.rejects(helperGet('token', 'ghcr.io'), /not found on PATH/);
    assert.ok(await helperGet('token', 'ghcr.io', { env: fakes.env }));
  });
});
