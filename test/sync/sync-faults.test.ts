import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SyncSummary } from '../../src/sync/sync-report.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { peerSkipReason, startCncfRegistry, type Peer } from '../../src/testing/peers.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';
import { pushSimple, runSync, startSync, walkRepository, writeConfig } from './fixtures.ts';

const skip = await peerSkipReason('docker-registry');
const isBlobGet = (r: { method: string; url: string }) => r.method === 'GET' && r.url.includes('/blobs/');
// A bcrypt hash of "s3cret-pass" for the CNCF registry's htpasswd.
const HTPASSWD = 'syncer:$2a$10$BuB3CCWrxAmYdKB9HrV8LemeXRsfL9sCQJlinbfyZtDza3LPSByLe';

async function readReport(file: string): Promise<SyncSummary> {
  return JSON.parse(await readFile(file, 'utf8')) as SyncSummary;
}

describe('skiff sync under faults', { skip }, () => {
  let source: Peer;
  let destination: TestRegistry;
  let proxy: FaultProxy;
  let proxied: string;
  before(async () => {
    source = await startCncfRegistry();
    destination = await startTestRegistry();
    for (let i = 0; i < 4; i++) await pushSimple(source.url, 'team/app', `v${i}`, `fault-${i}`, 2, 256 * 1024);
    proxy = new FaultProxy(source.url);
    proxied = await proxy.start();
  });
  after(async () => {
    await proxy?.stop();
    await source?.stop();
    await destination?.stop();
  });

  test('dropped connections mid-blob, 503s and 429 + Retry-After: the run completes with every digest right', async () => {
    const seen = new Map<string, number>();
    proxy.decide = (req, index) => {
      if (req.url.includes('/tags/list') && index % 2 === 0) return { status: 503 };
      if (!isBlobGet(req)) return undefined;
      const n = (seen.get(req.url) ?? 0) + 1;
      seen.set(req.url, n);
      if (n === 1) return { dropAfterBytes: 100 * 1024 }; // every blob breaks once, mid-stream
      if (n === 2 && !req.range) return { status: 429, retryAfter: '1' };
      if (n === 2) return { status: 503 };
      return undefined;
    };
    const config = await writeConfig({ [`${proxied}/team/app`]: `${destination.address}/faults/app` });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--report', report]);
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const summary = await readReport(report);
      assert.deepEqual(summary.images, { total: 4, synced: 4, skipped: 0, failed: 0 });
      assert.ok(proxy.count((r) => isBlobGet(r) && r.range !== undefined) > 0, 'broken streams resumed with Range');
      const copy = await walkRepository(destination.address, 'faults/app');
      const original = await walkRepository(source.host, 'team/app');
      assert.deepEqual(copy.tags, original.tags);
      assert.deepEqual([...copy.blobs].sort(), [...original.blobs].sort());
      assert.deepEqual(copy.missing, []);
    } finally {
      proxy.decide = () => undefined;
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('a source that lies about blob bytes: the image fails with a digest error and nothing lands', async () => {
    proxy.decide = (req) => (isBlobGet(req) ? { corruptAt: 10 } : undefined);
    const config = await writeConfig({ [`${proxied}/team/app:v0`]: `${destination.address}/lies/app` });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--report', report, '-r', '1']);
      assert.equal(run.code, 1, run.stdout);
      const summary = await readReport(report);
      assert.equal(summary.images.failed, 1);
      assert.match(summary.results[0]!.reason ?? '', /digest/i);
      assert.equal(summary.results[0]!.attempts, 2, 'retried once in a second pass');
      assert.match(run.stdout, /FAILED .*team\/app:v0 -> .*lies\/app:v0: .*digest/i);
      const copy = await walkRepository(destination.address, 'lies/app');
      assert.deepEqual(copy.tags, {}, 'no manifest was pushed');
    } finally {
      proxy.decide = () => undefined;
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('an unrecoverable source: exit 1, and the report names each failed image and why', async () => {
    proxy.decide = (req) => (isBlobGet(req) ? { status: 500 } : undefined);
    const config = await writeConfig({ [`${proxied}/team/app:v1,v2`]: `${destination.address}/down/app`, [`${proxied}/team/missing:v1`]: `${destination.address}/down/missing` });
    const report = join(config.dir, 'report.json');
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--report', report, '-r', '0']);
      assert.equal(run.code, 1);
      const summary = await readReport(report);
      assert.equal(summary.images.failed, 3);
      const reasons = Object.fromEntries(summary.results.map((r) => [r.source.replace(/^[^/]+\//, ''), r.reason ?? '']));
      assert.match(reasons['team/app:v1']!, /500/);
      assert.match(reasons['team/app:v2']!, /500/);
      assert.match(reasons['team/missing:v1']!, /404|MANIFEST_UNKNOWN|NAME_UNKNOWN/);
      assert.match(run.stdout, /Synchronization finished, 3 tasks failed/);
      assert.equal(run.stdout.match(/^FAILED /gm)?.length, 3);
    } finally {
      proxy.decide = () => undefined;
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('killed midway: the destination never holds a manifest whose blobs are missing', async () => {
    let blobGets = 0;
    // The first few blobs flow; after that every blob stalls, so the run is cut mid-transfer.
    proxy.decide = (req) => (isBlobGet(req) && ++blobGets > 3 ? { stallAfterBytes: 1000 } : undefined);
    const config = await writeConfig({ [`${proxied}/team/app`]: `${destination.address}/killed/app` });
    try {
      const { child, done } = startSync(['--auth', config.auth, '--images', config.images, '-p', '2']);
      const deadline = Date.now() + 20_000;
      while (blobGets < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      child.kill('SIGKILL');
      const run = await done;
      assert.equal(run.signal, 'SIGKILL');
      const copy = await walkRepository(destination.address, 'killed/app');
      assert.deepEqual(copy.missing, [], 'every manifest present has all its blobs');
      assert.ok(Object.keys(copy.tags).length < 4, 'the run really was cut short');
    } finally {
      proxy.decide = () => undefined;
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('--dry-run prints the plan with the bytes that would move and copies nothing', async () => {
    const config = await writeConfig({ [`${proxied}/team/app:/^v[01]$/`]: `${destination.address}/dry/app` });
    proxy.requests.length = 0;
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '--dry-run']);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /copy +\S+team\/app:v0 -> \S+dry\/app:v0 sha256:[0-9a-f]{64}: 3 blob\(s\) missing, [\d.]+kB to move/);
      assert.match(run.stdout, /dry run: 2 image\(s\), 2 to copy, 0 up to date, [\d.]+[kM]B would move; nothing was copied/);
      assert.equal(proxy.count(isBlobGet), 0, 'no blob was read');
      assert.deepEqual((await walkRepository(destination.address, 'dry/app')).tags, {});
      const catalog = (await (await fetch(`${destination.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.ok(!catalog.repositories.includes('dry/app'));
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});

describe('skiff sync with credentials', { skip }, () => {
  let secured: Peer;
  let open: TestRegistry;
  before(async () => {
    secured = await startCncfRegistry({ htpasswd: HTPASSWD });
    open = await startTestRegistry();
    await pushSimple(open.url, 'team/app', 'v1', 'creds');
  });
  after(async () => {
    await secured?.stop();
    await open?.stop();
  });

  test('wrong credentials: a clear error that names the registry, exit 1', async () => {
    const config = await writeConfig({ [`${open.address}/team/app:v1`]: `${secured.host}/team/app` }, { [secured.host]: { username: 'syncer', password: 'wrong' } });
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images, '-r', '0']);
      assert.equal(run.code, 1);
      assert.match(run.stdout, new RegExp(`FAILED .* -> ${secured.host.replace(/\./g, '\\.')}/team/app:v1: .*${secured.host.replace(/\./g, '\\.')}.*401.*credentials`));
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });

  test('right credentials from auth.json with $VAR expansion (longest prefix wins) sync the image', async () => {
    const config = await writeConfig(
      { [`${open.address}/team/app:v1`]: `${secured.host}/team/app` },
      { [secured.host]: { username: 'nobody', password: 'nothing' }, [`${secured.host}/team`]: { username: '${SYNC_USER}', password: '$SYNC_PASS' } },
    );
    try {
      const run = await runSync(['--auth', config.auth, '--images', config.images], { SYNC_USER: 'syncer', SYNC_PASS: 's3cret-pass' });
      assert.equal(run.code, 0, run.stdout + run.stderr);
      const auth = `Basic ${Buffer.from('syncer:s3cret-pass').toString('base64')}`;
      const head = await fetch(`${secured.url}/v2/team/app/manifests/v1`, { method: 'HEAD', headers: { authorization: auth, accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(head.status, 200);
    } finally {
      await rm(config.dir, { recursive: true, force: true });
    }
  });
});
