import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SyncSummary } from '../../src/sync/sync-report.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { peerSkipReason, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushMultiArch, pushSimple, runSync, walkRepository, writeConfig } from './fixtures.ts';

const skip = await peerSkipReason('docker-registry');
const isBlobGet = (r: { method: string; url: string }) => r.method === 'GET' && r.url.includes('/blobs/');

/** Syncs a few repositories from `source` to `destination` and checks every digest matches. */
async function roundTrip(sourceUrl: string, sourceHost: string, destinationHost: string) {
  await pushMultiArch(sourceUrl, 'team/multi', 'v1', 'multi-oci');
  await pushMultiArch(sourceUrl, 'team/multi', 'v2-docker', 'multi-docker', 'docker');
  for (let i = 0; i < 3; i++) await pushSimple(sourceUrl, 'team/app', `1.${i}`, `app-${i}`);
  // Count what the second run asks of the source.
  const proxy = new FaultProxy(sourceUrl);
  const proxied = await proxy.start();
  const config = await writeConfig({
    [`${proxied}/team/multi`]: `${destinationHost}/mirror/multi`,
    [`${proxied}/team/app`]: `${destinationHost}/mirror/app`,
  });
  const report = join(config.dir, 'report.json');
  try {
    const first = await runSync(['--auth', config.auth, '--images', config.images, '--report', report]);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
    assert.equal(summary.images.synced, 5);
    assert.equal(summary.images.failed, 0);
    for (const [from, to] of [['team/multi', 'mirror/multi'], ['team/app', 'mirror/app']] as const) {
      const source = await walkRepository(sourceHost, from);
      const copy = await walkRepository(destinationHost, to);
      assert.deepEqual(copy.tags, source.tags, `${to}: same tags, same digests`);
      assert.deepEqual([...copy.manifests].sort(), [...source.manifests].sort(), `${to}: every manifest digest identical`);
      assert.deepEqual([...copy.blobs].sort(), [...source.blobs].sort(), `${to}: every blob digest identical`);
      assert.deepEqual(copy.missing, []);
    }

    proxy.requests.length = 0;
    const second = await runSync(['--auth', config.auth, '--images', config.images, '--report', report]);
    assert.equal(second.code, 0, second.stderr);
    const again = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
    assert.deepEqual(again.images, { total: 5, synced: 0, skipped: 5, failed: 0 });
    assert.equal(again.bytesMoved, 0);
    assert.equal(proxy.count(isBlobGet), 0, 'a no-op re-run makes zero blob GETs');
    assert.equal(proxy.count((r) => r.url.includes('/blobs/')), 0, 'nor any other blob request');
    const manifestReads = proxy.count((r) => r.url.includes('/manifests/'));
    assert.equal(manifestReads, 5, 'one source manifest read per image');
  } finally {
    await proxy.stop();
    await rm(config.dir, { recursive: true, force: true });
  }
}

describe('skiff sync between real registries', { skip }, () => {
  let cncf: Peer;
  let skiff: TestRegistry;
  before(async () => {
    cncf = await startCncfRegistry();
    skiff = await startTestRegistry();
  });
  after(async () => {
    await cncf?.stop();
    await skiff?.stop();
  });

  test('CNCF registry → skiff serve: identical digests, indexes included; the re-run only reads manifests', async () => {
    await roundTrip(cncf.url, cncf.host, skiff.address);
  });

  test('skiff serve → CNCF registry: identical digests; the re-run only reads manifests', async () => {
    const source = await startTestRegistry();
    const destination = await startCncfRegistry();
    try {
      await roundTrip(source.url, source.address, destination.host);
    } finally {
      await source.stop();
      await destination.stop();
    }
  });

  test('a blob needed by several destinations on one registry is fetched once and mounted for the rest', async () => {
    const source = await startCncfRegistry();
    const destination = await startCncfRegistry();
    const proxy = new FaultProxy(source.url);
    const proxied = await proxy.start();
    const image = await pushSimple(source.url, 'base/os', 'v1', 'shared', 3, 64 * 1024);
    const config = await writeConfig({ [`${proxied}/base/os:v1`]: [`${destination.host}/a/os`, `${destination.host}/b/os`, `${destination.host}/c/os:renamed`] });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--report', report]);
      assert.equal(run.code, 0, run.stderr);
      const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
      assert.equal(summary.images.synced, 3);
      assert.equal(proxy.count(isBlobGet), image.blobs.length, 'each blob crossed from the source once');
      assert.equal(summary.blobs.copied.count, image.blobs.length);
      assert.equal(summary.blobs.mounted.count, image.blobs.length * 2, 'the other two repositories mounted');
      const totalBytes = image.blobs.reduce((sum, b) => sum + b.descriptor.size, 0);
      assert.equal(summary.bytesMoved, totalBytes, 'bytes moved once');
      for (const repository of ['a/os', 'b/os', 'c/os']) assert.deepEqual((await walkRepository(destination.host, repository)).missing, []);
      assert.deepEqual(Object.keys((await walkRepository(destination.host, 'c/os')).tags), ['renamed']);
    } finally {
      await proxy.stop();
      await source.stop();
      await destination.stop();
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('source and destination on the same registry: blobs are mounted, never downloaded', async () => {
    const registry = await startCncfRegistry();
    const proxy = new FaultProxy(registry.url);
    const proxied = await proxy.start();
    await pushSimple(registry.url, 'team/app', 'v1', 'same-registry', 2, 32 * 1024);
    const config = await writeConfig({ [`${proxied}/team/app:v1`]: `${proxied}/copy/app` });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--report', report]);
      assert.equal(run.code, 0, run.stderr);
      const summary = JSON.parse(await readFile(report, 'utf8')) as SyncSummary;
      assert.equal(summary.blobs.mounted.count, 3);
      assert.equal(summary.bytesMoved, 0);
      assert.equal(proxy.count(isBlobGet), 0);
      assert.deepEqual((await walkRepository(registry.host, 'copy/app')).missing, []);
    } finally {
      await proxy.stop();
      await registry.stop();
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});
