import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { peerSkipReason, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushSimple, runSync, writeConfig } from './fixtures.ts';

const skip = await peerSkipReason('docker-registry');
// A bcrypt hash of "s3cret-pass" for the CNCF registry's htpasswd.
const HTPASSWD = 'syncer:$2a$10$BuB3CCWrxAmYdKB9HrV8LemeXRsfL9sCQJlinbfyZtDza3LPSByLe';
const TAGS = ['v0', 'v1', 'v2', 'v3', 'v4'];
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Issue 10: a destination answering 401 was counted "up to date" by --dry-run, and every 401 said
// "skiff login, or ~/.docker/config.json" wherever the credentials had really come from.
describe('skiff sync against a registry that answers 401', { skip }, () => {
  let secured: Peer;
  let open: TestRegistry;
  let rule: Record<string, string>;
  before(async () => {
    secured = await startCncfRegistry({ htpasswd: HTPASSWD });
    open = await startTestRegistry();
    for (const tag of TAGS) await pushSimple(open.url, 'team/app', tag, `unauth-${tag}`, 1);
    rule = { [`${open.address}/team/app`]: `${secured.host}/team/app` };
  });
  after(async () => {
    await secured?.stop();
    await open?.stop();
  });

  test('--dry-run counts and prints the 401s as failed, not up to date, and exits 1', async () => {
    const config = await writeConfig(rule, { [secured.host]: { username: 'syncer', password: 'wrong' } });
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--dry-run']);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.equal(run.stdout.match(/^failed +\S+team\/app:v\d -> \S+team\/app:v\d: .*401/gm)?.length, 5, run.stdout);
      assert.match(run.stdout, /^dry run: 5 image\(s\), 0 to copy, 0 up to date, 5 failed, 0B would move; nothing was copied$/m);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('credentials from auth.json: the hint names that file and its key', async () => {
    const config = await writeConfig(rule, { [secured.host]: { username: 'syncer', password: 'wrong' } });
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--dry-run']);
      assert.match(run.stdout, new RegExp(`401.*check the credentials under "${escape(secured.host)}" in ${escape(config.auth)}`));
      assert.doesNotMatch(run.stdout, /~\/\.docker\/config\.json/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('credentials from $DOCKER_CONFIG: the hint names that config.json', async () => {
    const config = await writeConfig(rule);
    const dockerConfig = await mkdtemp(join(tmpdir(), 'skiff-docker-config-'));
    await writeFile(join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('syncer:wrong').toString('base64') } } }));
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--dry-run'], { DOCKER_CONFIG: dockerConfig });
      assert.equal(run.code, 1);
      assert.match(run.stdout, new RegExp(`401.*check the credentials for ${escape(secured.host)} in ${escape(join(dockerConfig, 'config.json'))} \\(\\$DOCKER_CONFIG\\)`));
      assert.doesNotMatch(run.stdout, /~\/\.docker\/config\.json/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
      await rm(dockerConfig, { recursive: true, force: true });
    }
  });

  test('no credentials anywhere: the hint says where they were looked for and how to add them', async () => {
    const config = await writeConfig(rule);
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--dry-run']);
      assert.equal(run.code, 1);
      assert.match(run.stdout, new RegExp(`401.*no credentials for ${escape(secured.host)} in ${escape(config.auth)} or /nonexistent-skiff-test/config\\.json \\(\\$DOCKER_CONFIG\\): add a username and password for ${escape(secured.host)} to ${escape(config.auth)}, or run skiff login ${escape(secured.host)}`));
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});
