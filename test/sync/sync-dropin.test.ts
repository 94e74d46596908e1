import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushSimple, runSync, walkRepository } from './fixtures.ts';

/**
 * Cron lines written for image-syncer, run unchanged against `skiff sync` in a working directory
 * that holds image-syncer's default files.
 */
describe('skiff sync as a drop-in for an image-syncer cron line', () => {
  let source: TestRegistry;
  let destination: TestRegistry;
  const digests: Record<string, string> = {};
  const dirs: string[] = [];
  // No stray defaults from the environment the tests run in.
  const clean = { DEFAULT_REGISTRY: '', DEFAULT_NAMESPACE: '' };

  before(async () => {
    source = await startTestRegistry();
    destination = await startTestRegistry();
    for (const tag of ['v1.0', 'v2.0']) digests[tag] = (await pushSimple(source.url, 'coreos/kube-rbac-proxy', tag, `dropin-${tag}`)).manifest.descriptor.digest;
  });
  after(async () => {
    await source?.stop();
    await destination?.stop();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  /** A working directory with these files (JSON-encoded unless already text). */
  async function workdir(files: Record<string, unknown>): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'skiff-sync-cron-'));
    dirs.push(dir);
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return dir;
  }

  const tagsOf = async (repository: string) => (await walkRepository(destination.address, repository)).tags;

  test("the README's example line: --proc=6 --auth=./auth.json --images=./images.json --namespace=ruohe --registry=… --retries=3", async () => {
    const dir = await workdir({ 'auth.json': { [source.address]: { insecure: true } }, 'images.json': { [`${source.address}/coreos/kube-rbac-proxy:v1.0,v2.0`]: '' } });
    const run = await runSync(['--proc=6', '--auth=./auth.json', '--images=./images.json', '--namespace=ruohe', `--registry=${destination.address}`, '--retries=3'], clean, { cwd: dir });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.deepEqual(await tagsOf('ruohe/kube-rbac-proxy'), { 'v1.0': digests['v1.0'], 'v2.0': digests['v2.0'] });
  });

  test('no flags at all: ./images.json and ./auth.json, with DEFAULT_REGISTRY and DEFAULT_NAMESPACE', async () => {
    const dir = await workdir({ 'auth.json': { [source.address]: { insecure: true } }, 'images.json': { [`${source.address}/coreos/kube-rbac-proxy`]: '' } });
    const run = await runSync([], { DEFAULT_REGISTRY: destination.address, DEFAULT_NAMESPACE: 'fromenv' }, { cwd: dir });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /Synchronization finished, 0 tasks failed/);
    assert.deepEqual(await tagsOf('fromenv/kube-rbac-proxy'), { 'v1.0': digests['v1.0'], 'v2.0': digests['v2.0'] });
  });

  test('--namespace beats DEFAULT_NAMESPACE, and ./auth.json may be absent', async () => {
    const dir = await workdir({ 'images.json': { [`${source.address}/coreos/kube-rbac-proxy:v1.0`]: '' } });
    const run = await runSync(['--namespace', 'fromflag', '--dry-run'], { DEFAULT_REGISTRY: destination.address, DEFAULT_NAMESPACE: 'notthis' }, { cwd: dir });
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`copy +\\S+/coreos/kube-rbac-proxy:v1.0 -> ${destination.address.replace(/\./g, '\\.')}/fromflag/kube-rbac-proxy:v1.0`));
    assert.doesNotMatch(run.stdout, /notthis/);
  });

  test('--records is accepted with a deprecation warning, and no records file is written', async () => {
    const dir = await workdir({ 'images.json': { [`${source.address}/coreos/kube-rbac-proxy:v1.0`]: `${destination.address}/records/kube-rbac-proxy` } });
    for (const args of [['--records', './records'], ['--records=./records']]) {
      const run = await runSync(args, clean, { cwd: dir });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      assert.match(run.stderr, /^skiff: warning: --records is deprecated and ignored \(image-syncer has not used a records file since v1\.1\.0/m);
    }
    assert.deepEqual(await tagsOf('records/kube-rbac-proxy'), { 'v1.0': digests['v1.0'] });
    assert.deepEqual((await readdir(dir)).sort(), ['images.json']);
    const help = await runSync(['--help'], clean);
    assert.doesNotMatch(help.stdout, /--records/, 'kept out of --help');
    assert.match(help.stdout, /--registry <host>/);
    assert.match(help.stdout, /--namespace <namespace>/);
  });

  test('configuration errors exit 2: no ./images.json, or an empty destination with no defaults', async () => {
    const empty = await workdir({ 'auth.json': {} });
    const none = await runSync([], clean, { cwd: empty });
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /no image rules: give --images <file> \(and --auth <file>\), or --config <file>; without them skiff reads \.\/images\.json, and there is none in /);
    assert.ok(none.stderr.includes(empty), none.stderr);

    const dir = await workdir({ 'images.json': { [`${source.address}/coreos/kube-rbac-proxy`]: '' } });
    const unset = await runSync([], clean, { cwd: dir });
    assert.equal(unset.code, 2, unset.stderr);
    assert.ok(unset.stderr.includes(`${join(dir, 'images.json')}: key "${source.address}/coreos/kube-rbac-proxy": the destination is empty`), unset.stderr);
    assert.match(unset.stderr, /give --registry and --namespace, or set DEFAULT_REGISTRY and DEFAULT_NAMESPACE/);

    const bad = await runSync(['--registry', 'https://example.com', '--namespace', 'ruohe'], clean, { cwd: dir });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /the default registry "https:\/\/example\.com" \(from --registry\) is not a registry host/);
  });
});
