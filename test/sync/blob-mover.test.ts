/**
 * BlobMover's copies between two real registries, the destination behind a proxy that cuts
 * uploads: the copy resumes and lands whole, and the GET of the attempt that was cut is closed
 * (a paused GET left open would hold its connection and read batches until the process ends).
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { digestOf } from '../../src/digest/digest.ts';
import { Limiter } from '../../src/graph/limiter.ts';
import type { Descriptor } from '../../src/oci/descriptor.ts';
import { BlobMover } from '../../src/sync/blob-mover.ts';
import { recordBlobSources } from '../../src/testing/blob-sources.ts';
import { FaultProxy } from '../../src/testing/fault-proxy.ts';
import { seededBytes } from '../../src/testing/images.ts';
import { startTestRegistry, type TestRegistry } from '../../src/testing/test-registry.ts';

const MiB = 1024 * 1024;
const fast = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };

describe('BlobMover: a copy whose upload is cut', () => {
  let source: TestRegistry;
  let destination: TestRegistry;
  let proxy: FaultProxy;
  let sourceClient: RegistryClient;
  let destinationClient: RegistryClient;
  /** Every stream the mover opened at the source, in order. */
  let opened: Readable[] = [];

  before(async () => {
    source = await startTestRegistry();
    destination = await startTestRegistry();
    proxy = new FaultProxy(`http://${destination.address}`);
    sourceClient = new RegistryClient({ registry: source.address, retry: fast });
    destinationClient = new RegistryClient({ registry: await proxy.start(), retry: fast });
    opened = recordBlobSources(sourceClient);
  });
  after(async () => {
    await sourceClient.close();
    await destinationClient.close();
    await proxy.stop();
    await source.stop();
    await destination.stop();
  });

  async function copyCut(name: string, size: number, method: 'PUT' | 'PATCH'): Promise<Descriptor> {
    const data = seededBytes(name, size);
    const blob: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(data), size };
    await sourceClient.pushBlob('src/app', blob, () => Readable.from([data]));
    opened.length = 0;
    let cut = false;
    // The proxy stops reading the upload after 1 MiB, then breaks it: the source is mid-stream.
    proxy.decide = (r) => (r.method === method && r.url.includes('/blobs/uploads/') && !cut ? ((cut = true), { stallRequestAfterBytes: MiB }) : undefined);
    const mover = new BlobMover({ transfers: new Limiter(2), requests: new Limiter(8), emit: () => undefined });
    try {
      assert.equal(await mover.ensure({ client: sourceClient, repository: 'src/app' }, { client: destinationClient, repository: `dst/${name}` }, blob), 'copied');
    } finally {
      proxy.decide = () => undefined;
    }
    assert.ok(cut, `a ${method} was cut`);
    const reader = new RegistryClient({ registry: destination.address });
    try {
      const copy = Buffer.concat(await Array.fromAsync(reader.openBlob(`dst/${name}`, blob) as AsyncIterable<Buffer>));
      assert.equal(digestOf(copy), blob.digest, 'the copy is whole');
    } finally {
      await reader.close();
    }
    return blob;
  }

  test("a PATCH cut midway (a blob above the monolithic limit): resumed, and the cut attempt's GET closed", async () => {
    await copyCut('patch-cut', 48 * MiB, 'PATCH');
    assert.ok(opened.length >= 2, `the source was opened again: ${opened.length}`);
    assert.ok(!opened[0]!.readableEnded, 'the cut came while the source was mid-stream');
    assert.ok(opened[0]!.destroyed, "the cut attempt's source stream was destroyed");
    assert.ok(opened.every((stream) => stream.destroyed || stream.readableEnded), 'no source stream is left open');
  });

  test('a monolithic PUT cut midway: the upload is redone through PATCH and lands whole, no source stream left open', async () => {
    // At most 8 MiB ride on a PUT: socket buffers take that whole, so the source has ended here.
    await copyCut('put-cut', 8 * MiB, 'PUT');
    assert.ok(opened.length >= 2, `the source was opened again: ${opened.length}`);
    assert.ok(opened.every((stream) => stream.destroyed), 'no source stream is left open');
  });
});
