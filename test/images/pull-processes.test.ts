import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { pushImage } from '../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));

function skiff(args: string[]) {
  const child = spawn(SKIFF, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return { child, output: () => output, exit: once(child, 'exit') as Promise<[number | null, string | null]> };
}

describe('skiff pull as separate processes', () => {
  let registry: TestRegistry;
  let proxy: FaultProxy;
  let host: string;
  let root: string;
  let big: TestImage;
  const small: TestImage[] = [];

  before(async () => {
    registry = await startTestRegistry();
    proxy = new FaultProxy(registry.url);
    host = await proxy.start();
    root = await mkdtemp(join(tmpdir(), 'skiff-pullproc-'));
    big = await makeImage({ seed: 'proc-big', layers: 1, layerSize: 3_000_000 });
    await pushImage(registry.url, 'proc/big', big, 'v1');
    for (let i = 0; i < 2; i++) {
      small.push(await makeImage({ seed: `proc-small-${i}`, layers: 2, layerSize: 200_000 }));
      await pushImage(registry.url, `proc/small${i}`, small[i]!, 'v1');
    }
  });
  after(async () => {
    await proxy.stop();
    await registry.stop();
    await rm(root, { recursive: true, force: true });
  });

  test('kill -9 mid-download keeps the partial layer; the next pull resumes it with Range', async () => {
    const layer = big.layers[0]!;
    proxy.decide = (r) => (r.url.endsWith(`/blobs/${layer.descriptor.digest}`) ? { stallAfterBytes: 1_000_000 } : undefined);
    const first = skiff(['pull', '--root', root, '--progress', 'plain', `${host}/proc/big:v1`]);
    const partial = join(root, '.skiff', 'ingest', layer.descriptor.digest.replace(':', '-'));
    // Up to 60 s: a busy 2-core machine (the whole suite at once) can take seconds to start the pull.
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
      const size = await stat(partial).then((s) => s.size, () => 0);
      if (size >= 1_000_000) break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    first.child.kill('SIGKILL');
    await first.exit;
    assert.equal((await stat(partial)).size, 1_000_000, 'the partial download survived kill -9');
    proxy.decide = () => undefined;
    proxy.requests.length = 0;
    const second = skiff(['pull', '--root', root, '--progress', 'plain', `${host}/proc/big:v1`]);
    const [code] = await second.exit;
    assert.equal(code, 0, second.output());
    const resumed = proxy.requests.find((r) => r.url.endsWith(`/blobs/${layer.descriptor.digest}`));
    assert.equal(resumed?.range, 'bytes=1000000-');
    assert.match(second.output(), /Status: Downloaded newer image for/);
    assert.deepEqual(await readFile(join(root, 'blobs', 'sha256', layer.descriptor.digest.slice(7))), layer.data);
  });

  test('two pulls at once into one store both land; index.json stays whole', async () => {
    const runs = small.map((_, i) => skiff(['pull', '--root', root, '-q', `${host}/proc/small${i}:v1`]));
    const codes = await Promise.all(runs.map((r) => r.exit));
    codes.forEach(([code], i) => assert.equal(code, 0, runs[i]!.output()));
    const index = JSON.parse(await readFile(join(root, 'index.json'), 'utf8')) as { manifests: { annotations?: Record<string, string> }[] };
    const names = index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name']).sort();
    assert.deepEqual(names, [`${host}/proc/big:v1`, `${host}/proc/small0:v1`, `${host}/proc/small1:v1`]);
    assert.deepEqual(await readdir(join(root, '.skiff', 'ingest')), [], 'no partial downloads left');
  });
});
