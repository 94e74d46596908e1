/**
 * Garbage collection across replicas (docs/scale-out.md, docs/gc.md): both replicas' collectors
 * run every second under the shared lease while pushers on both replicas push images and delete
 * some; afterwards every acknowledged image that was not deleted pulls intact, garbage went, and no
 * cycle failed. `skiff migrate` and `skiff gc --config` work against the same deployment.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { scaleOutSkipReason, startCluster, startEngines, type Cluster, type Engines } from '../../src/testing/scale-out.ts';

const skip = await scaleOutSkipReason();
const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));
const run = promisify(execFile);
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The gc_* counters of every replica, summed. */
async function gcCounters(cluster: Cluster): Promise<{ ok: number; failed: number; deleted: number }> {
  const texts = await Promise.all(cluster.replicas.map(async (replica) => (await fetch(`${replica.url}/metrics`)).text()));
  const sum = (pattern: RegExp) => texts.reduce((total, text) => total + [...text.matchAll(pattern)].reduce((s, m) => s + Number(m[1]), 0), 0);
  return {
    ok: sum(/^skiff_gc_cycles_total\{outcome="ok"\} (\d+)/gm),
    failed: sum(/^skiff_gc_cycles_total\{outcome="failed"\} (\d+)/gm),
    deleted: sum(/^skiff_gc_blobs_deleted_total (\d+)/gm),
  };
}

describe('garbage collection across replicas on S3 and PostgreSQL', { skip }, () => {
  let engines: Engines;
  let cluster: Cluster;
  let work: string;
  let config: string;

  before(async () => {
    engines = await startEngines();
    cluster = await startCluster(engines, 'gc', { settings: { delete: true, gc: { interval: '1s', grace: '2s' } } });
    work = await mkdtemp(join(tmpdir(), 'skiff-scale-out-gc-'));
    config = join(work, 'skiff.yaml');
    await writeFile(config, stringify({ data: join(work, 'data'), ...cluster.settings }));
  });
  after(async () => {
    await cluster?.stop();
    await engines?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('skiff migrate finds the schema the replicas applied, and exits', async () => {
    const { stdout } = await run(SKIFF, ['migrate', '--config', config], { timeout: 30_000 });
    assert.match(stdout, /schema version \d+, nothing to apply/);
    assert.doesNotMatch(stdout, /skiff-test-secret/, 'no password in the output');
  });

  test('pushes and deletes on both replicas while both collect: nothing acknowledged and kept is lost', async () => {
    const kept: { repo: string; tag: string; image: TestImage }[] = [];
    const deleted: { repo: string; image: TestImage }[] = [];
    const pusher = async (p: number): Promise<void> => {
      const replica = cluster.replicas[p % 2]!;
      for (let i = 0; i < 8; i++) {
        const repo = `gc/p${p}`;
        // Every image shares its first layer with the others of its pusher: a blob that stays referenced while its siblings go.
        const image = await makeImage({ seed: `gc-${p}-${i}`, layerSeeds: [`gc-${p}-base`, `gc-${p}-${i}-own`], layerSize: 64 * 1024 });
        await pushImage(replica.url, repo, image, `t${i}`);
        if (i % 3 === 1) {
          const res = await fetch(`${cluster.replicas[(p + 1) % 2]!.url}/v2/${repo}/manifests/${image.manifest.descriptor.digest}`, { method: 'DELETE' });
          assert.equal(res.status, 202);
          deleted.push({ repo, image });
        } else kept.push({ repo, tag: `t${i}`, image });
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    };
    await Promise.all([0, 1, 2, 3].map(pusher));
    // Past the grace period, with cycles on either replica in between.
    const before = await gcCounters(cluster);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const now = await gcCounters(cluster);
      if (now.ok >= before.ok + 3 && now.deleted > 0) break;
      assert.ok(Date.now() < deadline, `cycles: ${JSON.stringify(now)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const counters = await gcCounters(cluster);
    assert.equal(counters.failed, 0, 'no cycle failed');
    assert.ok(counters.deleted >= deleted.length, `the deleted images' own blobs went (${counters.deleted} blobs deleted)`);

    for (const { repo, tag, image } of kept) {
      const manifest = await fetch(`${cluster.balancer.url}/v2/${repo}/manifests/${tag}`, { headers: { Accept: image.manifest.descriptor.mediaType } });
      assert.equal(manifest.status, 200, `${repo}:${tag}`);
      assert.equal(sha256(Buffer.from(await manifest.arrayBuffer())), image.manifest.descriptor.digest);
      for (const blob of image.blobs) {
        const res = await fetch(`${cluster.balancer.url}/v2/${repo}/blobs/${blob.descriptor.digest}`);
        assert.equal(res.status, 200, `${repo} ${blob.descriptor.digest}`);
        assert.equal(sha256(Buffer.from(await res.arrayBuffer())), blob.descriptor.digest);
      }
    }
    for (const { repo, image } of deleted) {
      const own = image.layers[1]!.descriptor.digest;
      const res = await fetch(`${cluster.balancer.url}/v2/${repo}/blobs/${own}`);
      assert.equal(res.status, 404, `a deleted image's own layer ${own} is gone`);
    }
  });

  test('skiff gc --config --dry-run reviews the shared store under the lease, and exits', async () => {
    const { stdout } = await run(SKIFF, ['gc', '--config', config, '--dry-run', '--no-sweep'], { timeout: 60_000 });
    assert.match(stdout, /^gc \(dry run\): reviewed \d+ digests; would delete/m);
  });
});

test('skiff migrate without metadata: postgres exits 2: SQLite brings its own schema up to date', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-migrate-'));
  try {
    const file = join(dir, 'skiff.yaml');
    await writeFile(file, stringify({ data: join(dir, 'data') }));
    const failed = await run(SKIFF, ['migrate', '--config', file], { timeout: 30_000 }).then(
      () => undefined,
      (error: { code?: number; stderr?: string }) => error,
    );
    assert.equal(failed?.code, 2);
    assert.match(failed?.stderr ?? '', /metadata: no postgres database to migrate/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
