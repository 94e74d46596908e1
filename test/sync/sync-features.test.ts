import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { parseManifest } from '../../src/oci/manifest.ts';
import type { SyncSummary } from '../../src/sync/sync-report.ts';
import { makeImage } from '../../src/testing/images.ts';
import { peerSkipReason, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { pushBlob, pushManifest } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushMultiArch, pushSimple, runSync, startSync, walkRepository, writeConfig } from './fixtures.ts';

const skip = await peerSkipReason('docker-registry');

describe('skiff sync: rules, filters and outputs', { skip }, () => {
  let source: Peer;
  let destination: TestRegistry;
  let digests: Record<string, string>;
  before(async () => {
    source = await startCncfRegistry();
    destination = await startTestRegistry();
    digests = {};
    for (const tag of ['v1.0', 'v2.0', 'v1.1', 'aaa', 'latest']) digests[tag] = (await pushSimple(source.url, 'coreos/kube-rbac-proxy', tag, `rbac-${tag}`)).manifest.descriptor.digest;
    await pushMultiArch(source.url, 'library/multi', 'v1', 'filter');
  });
  after(async () => {
    await source?.stop();
    await destination?.stop();
  });

  test("image-syncer's README rule forms, in the deprecated combined --config YAML file", async () => {
    const src = `${source.host}/coreos/kube-rbac-proxy`;
    const dst = `${destination.address}/ruohe`;
    const config = await writeConfig({});
    const file = join(config.dir, 'config.yaml');
    await writeFile(
      file,
      [
        'auth:',
        `  ${source.host}:`,
        '    username: ""',
        '    password: ""',
        '    insecure: true',
        'images:',
        `  ${src}: ${dst}/all`,
        `  ${src}:v1.0: ${dst}/one`,
        `  ${src}:v1.0,v2.0: ${dst}/two`,
        `  ${src}:v1.1: [${dst}/fan1, "$DEST_REGISTRY/ruohe/fan2", ${dst}/fan1]`,
        `  "${src}:/a+/": ${dst}/regex`,
        `  ${src}@${digests['v2.0']}: ${dst}/bydigest`,
        `  ${src}:v1.0,v2.0,aaa: ${dst}/renamed:one,two,three`,
      ].join('\n'),
    );
    try {
      const report = join(config.dir, 'report.json');
      const run = await runSync(['--config', file, '--report', report], { DEST_REGISTRY: destination.address });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const tagsOf = async (repository: string) => (await walkRepository(destination.address, `ruohe/${repository}`)).tags;
      assert.deepEqual(Object.keys(await tagsOf('all')).sort(), ['aaa', 'latest', 'v1.0', 'v1.1', 'v2.0']);
      assert.deepEqual(await tagsOf('one'), { 'v1.0': digests['v1.0'] });
      assert.deepEqual(await tagsOf('two'), { 'v1.0': digests['v1.0'], 'v2.0': digests['v2.0'] });
      assert.deepEqual(await tagsOf('fan1'), { 'v1.1': digests['v1.1'] });
      assert.deepEqual(await tagsOf('fan2'), { 'v1.1': digests['v1.1'] });
      assert.deepEqual(Object.keys(await tagsOf('regex')).sort(), ['aaa', 'latest'], 'unanchored: "latest" contains an a');
      assert.deepEqual(await tagsOf('renamed'), { one: digests['v1.0'], two: digests['v2.0'], three: digests.aaa });
      const byDigest = await new RegistryClient({ registry: destination.address }).headManifest('ruohe/bydigest', digests['v2.0']!);
      assert.equal(byDigest?.digest, digests['v2.0']);
      const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
      assert.equal(summary.images.total, 5 + 1 + 2 + 2 + 2 + 1 + 3);
      assert.equal(summary.images.failed, 0);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('--arch filters an index into a new one, says so in the report, and leaves the other platform behind', async () => {
    const config = await writeConfig({ [`${source.host}/library/multi:v1`]: `${destination.address}/filtered/multi` });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--arch', 'amd64', '--os', 'linux', '--report', report]);
      assert.equal(run.code, 0, run.stderr);
      const client = new RegistryClient({ registry: destination.address });
      const { body, descriptor } = await client.getManifest('filtered/multi', 'v1');
      const original = await new RegistryClient({ registry: source.host }).getManifest('library/multi', 'v1');
      assert.notEqual(descriptor.digest, original.descriptor.digest, 'a filtered index has a new digest');
      const index = parseManifest(body, descriptor.mediaType);
      assert.deepEqual(index.manifests.map((m) => m.platform?.architecture), ['amd64']);
      const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
      assert.match(summary.results[0]!.note ?? '', new RegExp(`index filtered to os linux, arch amd64: 1 of 2 manifests; digest ${original.descriptor.digest} became ${descriptor.digest}`));
      const arm = parseManifest(original.body).manifests.find((m) => m.platform?.architecture === 'arm64')!;
      assert.equal(await client.headManifest('filtered/multi', arm.digest), undefined, 'the arm64 image was not copied');
      assert.deepEqual((await walkRepository(destination.address, 'filtered/multi')).missing, []);
      // Run again: the filtered index is what the destination holds, so nothing is left to do.
      const again = await runSync(['--auth', config.auth, '--images', config.images, '--arch', 'amd64', '--report', report]);
      assert.equal(again.code, 0);
      assert.equal((JSON.parse(await readFile(report, 'utf8')) as SyncSummary).images.skipped, 1);
      // A filter that matches nothing skips the image rather than pushing an empty index.
      const none = await runSync(['--auth', config.auth, '--images', config.images, '--arch', 's390x', '--report', report]);
      assert.equal(none.code, 0);
      assert.match((JSON.parse(await readFile(report, 'utf8')) as SyncSummary).results[0]!.note ?? '', /no manifest matches the platform filter/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('--exclude, --output-success-images (yaml and json) and --log', async () => {
    const config = await writeConfig({ [`${source.host}/coreos/kube-rbac-proxy`]: `${destination.address}/excluded/rbac` });
    const success = join(config.dir, 'success.yaml');
    const log = join(config.dir, 'sync.log');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--exclude', ':v\\d', '--exclude', 'latest$', '--output-success-images', success, '--log', log]);
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(Object.keys((await walkRepository(destination.address, 'excluded/rbac')).tags), ['aaa']);
      assert.deepEqual(parseYaml(await readFile(success, 'utf8')), { [`${source.host}/coreos/kube-rbac-proxy:aaa`]: `${destination.address}/excluded/rbac:aaa` });
      assert.match(await readFile(log, 'utf8'), /synced \S+kube-rbac-proxy:aaa -> \S+excluded\/rbac:aaa sha256:/);
      assert.equal(run.stderr, '', 'with --log, nothing goes to stderr');
      const json = join(config.dir, 'success.json');
      await runSync(['--auth', config.auth, '--images', config.images, '--exclude', ':v\\d', '--exclude', 'latest$', '--output-success-images', json, '--output-images-format', 'json']);
      assert.deepEqual(JSON.parse(await readFile(json, 'utf8')), { [`${source.host}/coreos/kube-rbac-proxy:aaa`]: `${destination.address}/excluded/rbac:aaa` });
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('configuration errors exit 2 and name the file and key', async () => {
    const config = await writeConfig({ [`${source.host}/a/b:v1,v2`]: `${destination.address}/c/d:x` });
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, new RegExp(`${config.images.replace(/\//g, '\\/')}: key "${source.host.replace(/\./g, '\\.')}/a/b:v1,v2": the destination names 1 tag\\(s\\) but the source has 2`));
      const bad = await runSync(['--images', join(config.dir, 'nope.json')]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /nope\.json: cannot read/);
      const proc = await runSync(['--images', config.images, '-p', '0']);
      assert.equal(proc.code, 2);
      assert.match(proc.stderr, /--proc must be an integer ≥ 1/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('--watch re-runs on its interval and exits 0 on SIGTERM', async () => {
    const config = await writeConfig({ [`${source.host}/coreos/kube-rbac-proxy:v1.0`]: `${destination.address}/watched/rbac` });
    try {
      const { child, done } = startSync(['--auth', config.auth, '--images', config.images, '--watch', '300ms']);
      let stdout = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const deadline = Date.now() + 20_000;
      while ((stdout.match(/Synchronization finished/g)?.length ?? 0) < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.ok((stdout.match(/Synchronization finished/g)?.length ?? 0) >= 2, 'ran at least twice');
      child.kill('SIGTERM');
      const run = await done;
      assert.equal(run.code, 0);
      assert.match(run.stderr, /stopped by signal/);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});

describe('skiff sync --referrers', { skip }, () => {
  let source: TestRegistry;
  let cncf: Peer;
  let skiff: TestRegistry;
  before(async () => {
    source = await startTestRegistry();
    cncf = await startCncfRegistry();
    skiff = await startTestRegistry();
  });
  after(async () => {
    await source?.stop();
    await cncf?.stop();
    await skiff?.stop();
  });

  test('signatures and SBOMs follow their image: through the referrers API, or the fallback tag on the CNCF registry', async () => {
    const image = await pushSimple(source.url, 'team/app', 'v1', 'signed');
    // A signature artifact whose subject is the image.
    const signature = await makeImage({ seed: 'signature', layers: 1 });
    const artifact = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 }, layers: signature.layers.map((l) => l.descriptor), subject: image.manifest.descriptor };
    const empty = { descriptor: artifact.config as never, data: Buffer.from('{}') };
    await pushBlob(source.url, 'team/app', empty);
    for (const layer of signature.layers) await pushBlob(source.url, 'team/app', layer);
    const body = Buffer.from(JSON.stringify(artifact));
    const { digestOf } = await import('../../src/digest/digest.ts');
    await pushManifest(source.url, 'team/app', digestOf(body), { descriptor: { mediaType: artifact.mediaType, digest: digestOf(body), size: body.length }, data: body });

    for (const [name, host] of [['skiff', skiff.address], ['cncf', cncf.host]] as const) {
      const config = await writeConfig({ [`${source.address}/team/app:v1`]: `${host}/signed/app` });
      const report = join(config.dir, 'report.json');
      try {
        const run = await runSync(['--auth', config.auth, '--images', config.images, '--referrers', '--report', report]);
        assert.equal(run.code, 0, run.stdout + run.stderr);
        const client = new RegistryClient({ registry: host });
        assert.equal((await client.headManifest('signed/app', digestOf(body)))?.digest, digestOf(body), `${name}: the signature manifest was copied byte for byte`);
        for (const layer of signature.layers) assert.notEqual(await client.headBlob('signed/app', layer.descriptor.digest), undefined);
        if (name === 'skiff') {
          const found = await client.referrers('signed/app', image.manifest.descriptor.digest);
          assert.deepEqual(found.map((d) => d.digest), [digestOf(body)], 'the referrers API lists it');
        } else {
          const fallback = await client.getManifest('signed/app', image.manifest.descriptor.digest.replace(':', '-'));
          assert.deepEqual(parseManifest(fallback.body).manifests.map((d) => d.digest), [digestOf(body)], 'the fallback tag lists it');
        }
      } finally {
        await rm(config.dir, { recursive: true, force: true });
      }
    }
  });
});
