/**
 * The web UI on two replicas of one deployment (S3, PostgreSQL, Redis; docs/scale-out.md): a login
 * on one replica is a session on the other (the cookie holds a token the shared key signs; there is
 * no session table), and the list, tag and manifest views read PostgreSQL's figures and S3's
 * configs wherever the browser lands, behind the balancer too.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import type { ManifestDetail, RepositoryPage, TagPage } from '../../src/server/ui/api-types.ts';
import { ApiBrowser } from '../../src/testing/api-browser.ts';
import { makeImage, type TestImage } from '../../src/testing/images.ts';
import { scaleOutSkipReason, startCluster, startEngines, type Cluster, type Engines } from '../../src/testing/scale-out.ts';

const skip = await scaleOutSkipReason();
const ALICE = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;

/** Blobs then the manifest, with alice's Basic credentials (the registry takes them on /v2/ too). */
async function pushAsAlice(base: string, repo: string, image: TestImage, tag: string): Promise<void> {
  for (const item of image.blobs) {
    const res = await fetch(`${base}/v2/${repo}/blobs/uploads/?digest=${item.descriptor.digest}`, { method: 'POST', headers: { Authorization: ALICE, 'Content-Type': 'application/octet-stream' }, body: item.data });
    assert.equal(res.status, 201, await res.text());
  }
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { Authorization: ALICE, 'Content-Type': image.manifest.descriptor.mediaType }, body: image.manifest.data });
  assert.equal(res.status, 201, await res.text());
}

describe('web UI across replicas', { skip }, () => {
  let engines: Engines;
  let cluster: Cluster;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skiff-scale-out-ui-'));
    const htpasswd = join(dir, 'htpasswd');
    await writeFile(htpasswd, `alice:${bcrypt.hashSync('alice-pw', 4)}\n`);
    engines = await startEngines();
    cluster = await startCluster(engines, 'ui', { settings: { htpasswd, access: { admins: ['alice'] } } });
  });
  after(async () => {
    await cluster?.stop();
    await engines?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('log in on one replica, browse and delete on the other and through the balancer', async () => {
    const [a, b] = cluster.replicas as [(typeof cluster.replicas)[0], (typeof cluster.replicas)[0]];
    const image = await makeImage({ seed: 'scale-out ui', layers: 2, layerSize: 4096, labels: { team: 'ui' } });
    await pushAsAlice(a.url, 'team/app', image, 'v1');
    await pushAsAlice(a.url, 'team/app', image, 'v2');

    const onA = new ApiBrowser(a.url);
    await onA.login('alice', 'alice-pw');
    const onB = onA.at(b.url);
    assert.equal((await onB.session()).user, 'alice', 'the session cookie from replica A is a session on replica B');

    const list = (await onB.request('GET', '/api/v1/repositories')).json as RepositoryPage;
    assert.deepEqual(list.repositories.map((row) => [row.name, row.tags]), [['team/app', 2]]);
    assert.ok(list.repositories[0]!.size >= 8192, `PostgreSQL's figures: ${list.repositories[0]!.size} bytes`);
    const detail = (await onB.request('GET', '/api/v1/repositories/team/app/manifests/v1')).json as ManifestDetail;
    assert.equal(detail.digest, image.manifest.descriptor.digest);
    assert.equal(detail.config?.labels.team, 'ui', 'the config read from S3');
    assert.deepEqual(detail.tags, ['v1', 'v2']);

    const deleted = await onB.request('DELETE', '/api/v1/repositories/team/app/tags/v2');
    assert.equal(deleted.status, 200, deleted.text);
    const viaBalancer = onA.at(cluster.balancer.url);
    const tags = (await viaBalancer.request('GET', '/api/v1/repositories/team/app/tags')).json as TagPage;
    assert.deepEqual(tags.tags.map((tag) => tag.tag), ['v1']);
    const listed = (await (await fetch(`${a.url}/v2/team/app/tags/list`, { headers: { Authorization: ALICE } })).json()) as { tags: string[] };
    assert.deepEqual(listed.tags, ['v1'], 'replica A agrees through /v2/');
  });
});
