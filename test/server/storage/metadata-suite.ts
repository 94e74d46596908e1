/**
 * A conformance suite for MetadataStore. Each driver (SQLite, PostgreSQL, …) runs it through
 * `metadataSuite(name, open)`, where `open` gives a fresh, empty store plus a way to reopen it.
 */
import { describe, test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf, type Digest } from '../../../src/digest/digest.ts';
import type { ManifestRecord, MetadataStore } from '../../../src/server/storage/metadata.ts';

export interface MetadataHarness {
  store: MetadataStore;
  /** Closes `store` and opens the same persisted data again, as after a restart. */
  reopen(): Promise<MetadataStore>;
  /** Closes whatever is still open and deletes the data. */
  cleanup(): Promise<void>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const d = (s: string): Digest => digestOf(s);

function record(repository: string, name: string, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return { repository, digest: d(name), mediaType: OCI_MANIFEST, size: name.length * 10, createdAt: 1_700_000_000_000, ...extra };
}

async function allTags(store: MetadataStore, repository: string, pageSize: number): Promise<string[][]> {
  const pages: string[][] = [];
  let after: string | undefined;
  for (;;) {
    const page = await store.listTags(repository, pageSize, after);
    pages.push(page.items);
    if (!page.more) return pages;
    assert.ok(page.items.length > 0, 'a page that says more must not be empty');
    after = page.items.at(-1);
  }
}

export function metadataSuite(name: string, open: () => Promise<MetadataHarness>): void {
  describe(`MetadataStore conformance: ${name}`, () => {
    let h: MetadataHarness;
    let store: MetadataStore;

    beforeEach(async () => {
      h = await open();
      store = h.store;
    });
    afterEach(async () => {
      await h.cleanup();
    });

    test('ping answers on a fresh store; nothing exists yet', async () => {
      await store.ping();
      assert.equal(await store.repositoryExists('a'), false);
      assert.deepEqual(await store.listRepositories(undefined, undefined), { items: [], more: false });
      assert.deepEqual(await store.listTags('a', undefined, undefined), { items: [], more: false });
      assert.equal(await store.resolveTag('a', 'latest'), undefined);
      assert.equal(await store.getManifest('a', d('x')), undefined);
    });

    describe('blob links', () => {
      test('link, check, unlink', async () => {
        assert.equal(await store.isBlobLinked('team/app', d('layer')), false);
        await store.linkBlob('team/app', d('layer'));
        assert.equal(await store.isBlobLinked('team/app', d('layer')), true);
        assert.equal(await store.repositoryExists('team/app'), true);
        assert.equal(await store.isBlobLinked('team/other', d('layer')), false, 'links are per repository');
        await store.linkBlob('team/app', d('layer')); // idempotent
        assert.equal(await store.unlinkBlob('team/app', d('layer')), true);
        assert.equal(await store.isBlobLinked('team/app', d('layer')), false);
        assert.equal(await store.unlinkBlob('team/app', d('layer')), false);
      });
    });

    describe('manifests and tags', () => {
      test('putManifest stores the record and points the tags at it', async () => {
        const subject = d('subject');
        const rec = record('app', 'm1', { artifactType: 'application/vnd.example', subject, annotations: { 'a.b': 'c', empty: '' } });
        await store.putManifest(rec, [d('config'), d('layer1')], ['v1', 'latest']);
        assert.deepEqual(await store.getManifest('app', rec.digest), rec);
        assert.equal(await store.resolveTag('app', 'v1'), rec.digest);
        assert.equal(await store.resolveTag('app', 'latest'), rec.digest);
        assert.equal(await store.repositoryExists('app'), true);
        assert.equal(await store.getManifest('other', rec.digest), undefined, 'manifests are per repository');
      });

      test('optional fields come back absent, not null', async () => {
        const rec = record('app', 'plain');
        await store.putManifest(rec, [], []);
        const got = await store.getManifest('app', rec.digest);
        assert.deepEqual(got, rec);
        assert.equal(Object.hasOwn(got!, 'subject'), false);
        assert.equal(Object.hasOwn(got!, 'artifactType'), false);
        assert.equal(Object.hasOwn(got!, 'annotations'), false);
      });

      test('a tag moves when re-put on another manifest', async () => {
        await store.putManifest(record('app', 'old'), [], ['latest', 'stable']);
        await store.putManifest(record('app', 'new'), [], ['latest']);
        assert.equal(await store.resolveTag('app', 'latest'), d('new'));
        assert.equal(await store.resolveTag('app', 'stable'), d('old'));
        assert.deepEqual((await store.listTags('app', undefined, undefined)).items, ['latest', 'stable']);
        // and back again, by re-putting the old manifest
        await store.putManifest(record('app', 'old'), [], ['latest']);
        assert.equal(await store.resolveTag('app', 'latest'), d('old'));
      });

      test('re-putting the same manifest is idempotent', async () => {
        const rec = record('app', 'same', { annotations: { k: 'v' } });
        await store.putManifest(rec, [d('c')], ['t']);
        await store.putManifest(rec, [d('c')], ['t']);
        assert.deepEqual(await store.getManifest('app', rec.digest), rec);
        assert.deepEqual((await store.listTags('app', undefined, undefined)).items, ['t']);
      });

      test('tags are per repository', async () => {
        await store.putManifest(record('a', 'x'), [], ['t']);
        await store.putManifest(record('b', 'y'), [], ['t']);
        assert.equal(await store.resolveTag('a', 't'), d('x'));
        assert.equal(await store.resolveTag('b', 't'), d('y'));
      });

      test('listTags is in lexical (byte) order', async () => {
        const tags = ['b', 'a', 'B', '10', '9', 'a-1', 'a.1', 'a_1', 'A', 'latest', '_x', 'v1.10', 'v1.9'];
        await store.putManifest(record('app', 'm'), [], tags);
        const expected = [...tags].sort((x, y) => (Buffer.compare(Buffer.from(x), Buffer.from(y))));
        assert.deepEqual(await store.listTags('app', undefined, undefined), { items: expected, more: false });
      });

      test('listTags pages with limit and after, and says when more remain', async () => {
        const tags = ['e', 'a', 'd', 'b', 'c'];
        await store.putManifest(record('app', 'm'), [], tags);
        assert.deepEqual(await store.listTags('app', 2, undefined), { items: ['a', 'b'], more: true });
        assert.deepEqual(await store.listTags('app', 2, 'b'), { items: ['c', 'd'], more: true });
        assert.deepEqual(await store.listTags('app', 2, 'd'), { items: ['e'], more: false });
        assert.deepEqual(await store.listTags('app', 5, undefined), { items: ['a', 'b', 'c', 'd', 'e'], more: false });
        assert.deepEqual(await store.listTags('app', 4, 'a'), { items: ['b', 'c', 'd', 'e'], more: false });
        assert.deepEqual(await store.listTags('app', 100, 'e'), { items: [], more: false });
        assert.deepEqual(await store.listTags('app', undefined, 'c'), { items: ['d', 'e'], more: false });
        // `after` need not be an existing tag
        assert.deepEqual(await store.listTags('app', 2, 'bb'), { items: ['c', 'd'], more: true });
        assert.deepEqual(await store.listTags('app', 2, ''), { items: ['a', 'b'], more: true });
        assert.deepEqual((await store.listTags('app', 0, undefined)).items, []);
        assert.deepEqual(await allTags(store, 'app', 1), [['a'], ['b'], ['c'], ['d'], ['e']]);
        assert.deepEqual((await allTags(store, 'app', 3)).flat(), ['a', 'b', 'c', 'd', 'e']);
      });

      test('deleteTag removes only the tag', async () => {
        await store.putManifest(record('app', 'm'), [], ['t1', 't2']);
        assert.equal(await store.deleteTag('app', 't1'), true);
        assert.equal(await store.resolveTag('app', 't1'), undefined);
        assert.equal(await store.resolveTag('app', 't2'), d('m'));
        assert.notEqual(await store.getManifest('app', d('m')), undefined);
        assert.equal(await store.deleteTag('app', 't1'), false);
        assert.equal(await store.deleteTag('nope', 't2'), false);
      });

      test('deleteManifest removes it and every tag on it, and nothing else', async () => {
        await store.putManifest(record('app', 'gone'), [d('c1')], ['a', 'b']);
        await store.putManifest(record('app', 'kept'), [d('c2')], ['c']);
        await store.putManifest(record('other', 'gone'), [], ['a']);
        assert.equal(await store.deleteManifest('app', d('gone')), true);
        assert.equal(await store.getManifest('app', d('gone')), undefined);
        assert.equal(await store.resolveTag('app', 'a'), undefined);
        assert.equal(await store.resolveTag('app', 'b'), undefined);
        assert.deepEqual((await store.listTags('app', undefined, undefined)).items, ['c']);
        assert.notEqual(await store.getManifest('other', d('gone')), undefined, 'the same digest in another repository stays');
        assert.equal(await store.resolveTag('other', 'a'), d('gone'));
        assert.equal(await store.deleteManifest('app', d('gone')), false);
      });
    });

    describe('mirror tag checks and blob links', () => {
      test('getTag gives the digest and when the tag moved; checkedAt only once marked', async () => {
        const before = Date.now();
        await store.putManifest(record('app', 'm'), [], ['t']);
        const tag = await store.getTag('app', 't');
        assert.equal(tag?.digest, d('m'));
        assert.ok(tag.updatedAt >= before && tag.updatedAt <= Date.now());
        assert.equal(tag.checkedAt, undefined);
        assert.equal('checkedAt' in tag, false, 'absent, not null');
        assert.equal(await store.getTag('app', 'nope'), undefined);
        assert.equal(await store.getTag('other', 't'), undefined);
      });

      test('markTagChecked records the time; a moved or re-put tag is unchecked again', async () => {
        await store.putManifest(record('app', 'm1'), [], ['t', 'u']);
        assert.equal(await store.markTagChecked('app', 't', 1_700_000_000_123), true);
        assert.equal((await store.getTag('app', 't'))?.checkedAt, 1_700_000_000_123);
        assert.equal((await store.getTag('app', 'u'))?.checkedAt, undefined, 'per tag');
        assert.equal(await store.markTagChecked('app', 'missing', 1), false);
        await store.putManifest(record('app', 'm2'), [], ['t']);
        assert.deepEqual(await store.getTag('app', 't').then((t) => [t?.digest, t?.checkedAt]), [d('m2'), undefined]);
        await store.markTagChecked('app', 't', 5);
        const reopened = await h.reopen();
        store = reopened;
        assert.equal((await store.getTag('app', 't'))?.checkedAt, 5, 'survives a restart');
        await store.deleteTag('app', 't');
        assert.equal(await store.getTag('app', 't'), undefined);
      });

      test('blobLinks lists the repositories linking a blob, in order, up to the limit', async () => {
        for (const repo of ['zeta', 'alpha/one', 'mid']) await store.linkBlob(repo, d('shared'));
        await store.linkBlob('alpha/one', d('other'));
        assert.deepEqual(await store.blobLinks(d('shared'), 10), ['alpha/one', 'mid', 'zeta']);
        assert.deepEqual(await store.blobLinks(d('shared'), 2), ['alpha/one', 'mid']);
        assert.deepEqual(await store.blobLinks(d('none'), 10), []);
        await store.unlinkBlob('mid', d('shared'));
        assert.deepEqual(await store.blobLinks(d('shared'), 10), ['alpha/one', 'zeta']);
      });
    });

    describe('repositories', () => {
      test('listRepositories pages in lexical order', async () => {
        const names = ['zeta', 'alpha/one', 'alpha', 'beta/x/y', 'alpha-2', 'alpha/two'];
        for (const [i, repo] of names.entries()) {
          if (i % 2 === 0) await store.linkBlob(repo, d(repo));
          else await store.putManifest(record(repo, repo), [], ['t']);
        }
        const sorted = [...names].sort();
        assert.deepEqual(await store.listRepositories(undefined, undefined), { items: sorted, more: false });
        assert.deepEqual(await store.listRepositories(2, undefined), { items: sorted.slice(0, 2), more: true });
        assert.deepEqual(await store.listRepositories(2, sorted[1]), { items: sorted.slice(2, 4), more: true });
        assert.deepEqual(await store.listRepositories(2, sorted[3]), { items: sorted.slice(4, 6), more: false });
        assert.deepEqual(await store.listRepositories(10, 'zeta'), { items: [], more: false });
        assert.deepEqual(await store.listRepositories(3, 'alpha/'), { items: ['alpha/one', 'alpha/two', 'beta/x/y'], more: true });
      });
    });

    describe('referrers', () => {
      test('listReferrers with and without artifactType', async () => {
        const subject = d('image');
        await store.putManifest(record('app', 'image'), [], ['v1']);
        const sbom = record('app', 'sbom', { subject, artifactType: 'application/spdx+json', createdAt: 1, annotations: { kind: 'sbom' } });
        const sig = record('app', 'sig', { subject, artifactType: 'application/vnd.dev.cosign.sig', createdAt: 2 });
        const sbom2 = record('app', 'sbom2', { subject, artifactType: 'application/spdx+json', createdAt: 3 });
        const unrelated = record('app', 'other', { subject: d('another image'), artifactType: 'application/spdx+json', createdAt: 4 });
        const elsewhere = record('other-repo', 'sbom3', { subject, artifactType: 'application/spdx+json', createdAt: 5 });
        for (const r of [sig, sbom2, sbom, unrelated, elsewhere]) await store.putManifest(r, [], []);

        const all = await store.listReferrers('app', subject);
        assert.deepEqual(all.map((r) => r.digest).sort(), [sbom.digest, sig.digest, sbom2.digest].sort());
        assert.deepEqual(all.find((r) => r.digest === sbom.digest), sbom);

        const sboms = await store.listReferrers('app', subject, 'application/spdx+json');
        assert.deepEqual(sboms.map((r) => r.digest).sort(), [sbom.digest, sbom2.digest].sort());
        assert.deepEqual(await store.listReferrers('app', subject, 'application/unknown'), []);
        assert.deepEqual(await store.listReferrers('app', d('no such subject')), []);
        assert.deepEqual((await store.listReferrers('other-repo', subject)).map((r) => r.digest), [elsewhere.digest]);
      });

      test('a referrer may arrive before its subject exists', async () => {
        const subject = d('not pushed yet');
        await store.putManifest(record('app', 'early sig', { subject, artifactType: 'application/sig' }), [], []);
        assert.equal((await store.listReferrers('app', subject)).length, 1);
      });

      test('a deleted referrer is no longer listed', async () => {
        const subject = d('image');
        await store.putManifest(record('app', 'sig', { subject, artifactType: 'application/sig' }), [], []);
        await store.deleteManifest('app', d('sig'));
        assert.deepEqual(await store.listReferrers('app', subject), []);
      });
    });

    describe('garbage collection candidates', () => {
      test('unreferencedBlobs keeps linked, referenced and manifest blobs', async () => {
        await store.linkBlob('app', d('linked'));
        await store.putManifest(record('app', 'manifest'), [d('config'), d('layer')], ['t']);
        const candidates = [d('linked'), d('config'), d('layer'), d('manifest'), d('orphan1'), d('orphan2')];
        assert.deepEqual(await store.unreferencedBlobs(candidates), [d('orphan1'), d('orphan2')]);
        assert.deepEqual(await store.unreferencedBlobs([]), []);
      });

      test('a blob used by any repository is kept', async () => {
        await store.putManifest(record('a', 'm'), [d('shared')], []);
        await store.linkBlob('b', d('shared'));
        await store.deleteManifest('a', d('m'));
        assert.deepEqual(await store.unreferencedBlobs([d('shared')]), []);
        await store.unlinkBlob('b', d('shared'));
        assert.deepEqual(await store.unreferencedBlobs([d('shared')]), [d('shared')]);
      });

      test('deleting the manifest releases its references and itself', async () => {
        await store.putManifest(record('app', 'm'), [d('c'), d('l')], ['t']);
        await store.deleteManifest('app', d('m'));
        assert.deepEqual(await store.unreferencedBlobs([d('c'), d('l'), d('m')]), [d('c'), d('l'), d('m')]);
      });

      test('unlinking a blob makes it collectable', async () => {
        await store.linkBlob('app', d('x'));
        await store.unlinkBlob('app', d('x'));
        assert.deepEqual(await store.unreferencedBlobs([d('x')]), [d('x')]);
      });
    });

    describe('mirror cache (LRU eviction)', () => {
      const blob = (name: string, size: number) => ({ digest: d(name), size });
      const all = { usedBefore: Number.MAX_SAFE_INTEGER, pinned: [], now: 5_000 };
      /** A manifest the mirror cached in `repository`, referencing `children`, last used at `at`; its body is `size` bytes. */
      async function cachedManifest(repository: string, name: string, children: string[], at: number, size = 100): Promise<void> {
        await store.markCachedRepository(repository); // first, as the mirror does: else the manifest is local content
        await store.putManifest(record(repository, name, { size }), children.map(d), []);
        await store.recordCachedManifest(repository, blob(name, size), at);
      }
      const evict = async (bytes: number, extra: { usedBefore?: number; pinned?: string[]; maxSteps?: number } = {}) => {
        const step = await store.evictCache({ ...all, bytes, ...extra, pinned: (extra.pinned ?? []).map(d) });
        return { manifests: step.manifests.map((m) => `${m.repository}@${m.digest}`), released: step.released.map((b) => b.digest), exhausted: step.exhausted };
      };
      const at = (repository: string, ...names: string[]) => names.map((name) => `${repository}@${d(name)}`);

      test('a blob is counted once, however often it is recorded; recording says what it added', async () => {
        assert.equal(await store.cacheSize(), 0);
        assert.equal(await store.recordCachedBlob(blob('layer', 1000), 10), 1000);
        assert.equal(await store.recordCachedBlob(blob('layer', 1000), 20), 0, 'shared by a second repository: counted once');
        await store.markCachedRepository('c/app');
        await store.putManifest(record('c/app', 'm', { size: 50 }), [d('layer')], ['v1']);
        assert.equal(await store.recordCachedManifest('c/app', blob('m', 50), 30), 50);
        assert.equal(await store.cacheSize(), 1050);
      });

      test('the least recently used manifest goes first, then the blobs nothing else uses; a shared blob stays', async () => {
        await store.markCachedRepository('c/a');
        await store.markCachedRepository('c/b');
        for (const [name, size] of [['l1', 1000], ['l2', 1000], ['shared', 5000]] as const) await store.recordCachedBlob(blob(name, size), 1);
        await cachedManifest('c/a', 'm1', ['l1', 'shared'], 10);
        await cachedManifest('c/b', 'm2', ['l2', 'shared'], 20);
        await store.putManifest(record('c/a', 'm1'), [], ['v1']); // a tag on m1
        assert.equal(await store.cacheSize(), 7200);

        const first = await evict(1100);
        assert.deepEqual(first.manifests, at('c/a', 'm1'));
        assert.deepEqual(new Set(first.released), new Set([d('l1'), d('m1')]), 'l1 and the body of m1; shared is still used by m2');
        assert.equal(await store.getManifest('c/a', d('m1')), undefined);
        assert.equal(await store.resolveTag('c/a', 'v1'), undefined, 'its tags go with it');
        assert.equal(await store.cacheSize(), 6100, 'released blobs no longer count');
        assert.ok(await store.getManifest('c/b', d('m2')));

        const second = await evict(6100);
        assert.deepEqual(second.manifests, at('c/b', 'm2'));
        assert.deepEqual(new Set(second.released), new Set([d('l2'), d('m2'), d('shared')]));
        assert.equal(await store.cacheSize(), 0);
        assert.deepEqual(await evict(1), { manifests: [], released: [], exhausted: true });
      });

      test('eviction stops once enough bytes are released, and goes on from there next time', async () => {
        await cachedManifest('c/a', 'old', ['old-layer'], 10);
        await cachedManifest('c/a', 'new', ['new-layer'], 20);
        await store.recordCachedBlob(blob('old-layer', 1000), 10);
        await store.recordCachedBlob(blob('new-layer', 1000), 20);
        const first = await evict(1001);
        assert.deepEqual(first.manifests, at('c/a', 'old'));
        assert.equal(first.exhausted, false);
        assert.ok(await store.getManifest('c/a', d('new')), 'the recent one stays');
        assert.equal(await store.cacheSize(), 1100);
      });

      test('a hit moves an entry to the back; a touch never moves it back in time', async () => {
        await cachedManifest('c/a', 'a', [], 10);
        await cachedManifest('c/a', 'b', [], 20);
        await store.recordCachedBlob(blob('loose', 10), 15); // a blob fetched with no manifest
        await store.touchCache([{ repository: 'c/a', digest: d('a'), at: 30 }], [{ digest: d('loose'), at: 25 }]);
        await store.touchCache([{ repository: 'c/a', digest: d('b'), at: 5 }], []);
        const order: string[] = [];
        for (;;) {
          const step = await evict(1, { maxSteps: 1 });
          if (step.exhausted) break;
          order.push(...step.manifests, ...step.released.map((digest) => `blob ${digest}`));
        }
        assert.deepEqual(order, [`c/a@${d('b')}`, `blob ${d('b')}`, `blob ${d('loose')}`, `c/a@${d('a')}`, `blob ${d('a')}`]);
      });

      test('local content is never counted nor evicted: local manifests, blobs a local repository links or a local manifest references', async () => {
        await store.linkBlob('team/app', d('local-layer'));
        await store.putManifest(record('team/app', 'local'), [d('local-layer'), d('pushed-layer')], ['v1']);
        await store.markCachedRepository('c/a');
        for (const name of ['pushed-layer', 'mounted', 'free']) {
          await store.linkBlob('c/a', d(name)); // a cached repository's link keeps nothing
          await store.recordCachedBlob(blob(name, 10), 1);
        }
        assert.equal(await store.recordCachedBlob(blob('local-layer', 10), 1), 0, 'already local: not the cache\'s');
        assert.equal(await store.cacheSize(), 20, 'pushed-layer is referenced by a local manifest');
        await store.linkBlob('team/mount', d('mounted')); // mounted from the cache into a local repository
        assert.equal(await store.cacheSize(), 10, 'a local link hands it over');
        const step = await evict(1_000_000);
        assert.deepEqual(step, { manifests: [], released: [d('free')], exhausted: true });
        assert.ok(await store.getManifest('team/app', d('local')));
        // Deleting local content never hands it back: what becomes of it is garbage collection's.
        await store.deleteManifest('team/app', d('local'));
        await store.unlinkBlob('team/mount', d('mounted'));
        assert.deepEqual(await evict(1_000_000), { manifests: [], released: [], exhausted: true });
      });

      test('a local push of a cached manifest makes its body local', async () => {
        await cachedManifest('c/a', 'm', [], 10);
        assert.equal(await store.cacheSize(), 100);
        await store.putManifest(record('team/app', 'm', { size: 100 }), [], ['v1']);
        assert.equal(await store.cacheSize(), 0);
        assert.deepEqual((await evict(1_000_000)).released, [], 'the cached manifest goes, its body stays');
        assert.ok(await store.getManifest('team/app', d('m')));
      });

      test('an index takes its child manifests along; a child stays while its index does', async () => {
        await cachedManifest('c/a', 'child', ['layer'], 5);
        await cachedManifest('c/a', 'index', ['child'], 10);
        await store.recordCachedBlob(blob('layer', 1000), 5);
        const pinnedIndex = await evict(1_000_000, { pinned: ['index'] });
        assert.deepEqual(pinnedIndex, { manifests: [], released: [], exhausted: true }, 'the older child is no entry of its own while its index stays');
        const step = await evict(1_000_000);
        assert.deepEqual(step.manifests, [...at('c/a', 'index'), ...at('c/a', 'child')], 'the index first, then its child by its own last use');
        assert.deepEqual(new Set(step.released), new Set([d('index'), d('child'), d('layer')]));
      });

      test('pinned and recently used entries stay', async () => {
        await cachedManifest('c/a', 'pinned', ['pinned-layer'], 10);
        await cachedManifest('c/a', 'recent', [], 100);
        await store.recordCachedBlob(blob('in-use', 10), 1);
        const step = await evict(1_000_000, { usedBefore: 50, pinned: ['pinned', 'in-use'] });
        assert.deepEqual(step, { manifests: [], released: [], exhausted: true });
        const later = await evict(1_000_000, { usedBefore: 50, pinned: ['in-use'] });
        assert.deepEqual(later.manifests, at('c/a', 'pinned'));
      });

      test('a release is confirmed, undone or forgotten; released blobs survive a restart until forgotten', async () => {
        await store.markCachedRepository('c/a');
        for (const name of ['gone', 'relinked', 'referenced', 'busy']) {
          await store.recordCachedBlob(blob(name, 10), 1);
          await store.linkBlob('c/a', d(name));
        }
        assert.equal((await evict(1_000_000)).released.length, 4);
        assert.equal(await store.cacheSize(), 0);
        store = await h.reopen();
        assert.deepEqual(new Set((await store.releasedBlobs(10)).map((b) => b.digest)), new Set([d('gone'), d('relinked'), d('referenced'), d('busy')]));

        assert.equal(await store.confirmRelease(d('gone')), true);
        await store.forgetCachedBlob(d('gone'));
        assert.equal(await store.isBlobLinked('c/a', d('gone')), false, 'the cached links go with it');

        await store.linkBlob('team/app', d('relinked')); // a push found it and linked it meanwhile: it is local now
        assert.equal(await store.confirmRelease(d('relinked')), false);
        assert.equal(await store.isBlobLinked('c/a', d('relinked')), true);

        await store.putManifest(record('c/a', 'again'), [d('referenced')], []); // a cached manifest needs it again
        assert.equal(await store.confirmRelease(d('referenced')), false);

        await store.restoreCachedBlob(d('busy')); // in use when its turn came
        assert.deepEqual(await store.releasedBlobs(10), []);
        assert.equal(await store.cacheSize(), 20, 'the referenced and the restored ones count again, the local one not');
        assert.equal(await store.confirmRelease(d('busy')), false, 'only a released blob is confirmed');
        assert.deepEqual((await evict(1_000_000)).released, [d('busy')], 'the restored one is an entry again');
        assert.equal(await store.recordCachedBlob(blob('busy', 10), 2), 10, 'filled again before its delete: counted again');
        assert.deepEqual(await store.releasedBlobs(10), []);
      });
    });

    describe('web UI views (repositoryStats, cachedTags, cacheUsage)', () => {
      test('repositoryStats: tags, bytes as repositoryUsage counts them, last push, cached; in the order asked, unknown names left out', async () => {
        await store.linkBlob('team/app', d('layer1'), 1000);
        await store.linkBlob('team/app', d('layer2')); // unknown size: counts 0
        await store.linkBlob('team/app', d('big'), 6 * 1024 ** 3); // beyond 32 bits
        await store.putManifest(record('team/app', 'm1', { size: 300, createdAt: 9_000_000_000_000 }), [d('layer1'), d('layer2')], ['v1', 'latest']);
        await store.putManifest(record('team/app', 'm2', { size: 200 }), [], ['v2']);
        await store.linkBlob('team/links-only', d('layer1'), 1000);
        await store.putManifest(record('team/untagged', 'u1', { size: 10, createdAt: 1_000 }), [], []);
        await store.putManifest(record('team/untagged', 'u2', { size: 20, createdAt: 3_000 }), [], ['gone']);
        await store.deleteTag('team/untagged', 'gone'); // no tag left: the newest manifest says when
        await store.linkBlob('team/emptied', d('x'), 5);
        await store.unlinkBlob('team/emptied', d('x')); // still a repository, with nothing in it
        await store.markCachedRepository('c/mirror');
        await store.putManifest(record('c/mirror', 'cm', { size: 5 }), [], ['t']);
        await store.markCachedRepository('c/marked-only'); // cached, but nothing fetched yet: no repository
        const newestTag = async (repository: string) => Math.max(...(await store.tagsWithTimes(repository)).map((t) => t.updatedAt));

        const stats = await store.repositoryStats(['team/untagged', 'nope', 'c/mirror', 'team/app', 'team/links-only', 'c/marked-only', 'team/emptied', 'team/app']);
        assert.deepEqual(stats, [
          { name: 'team/untagged', tags: 0, bytes: 30, lastPush: 3_000, cached: false },
          { name: 'c/mirror', tags: 1, bytes: 5, lastPush: await newestTag('c/mirror'), cached: true },
          // Its tags decide, not m1's later createdAt; a name asked twice comes once.
          { name: 'team/app', tags: 3, bytes: 1500 + 6 * 1024 ** 3, lastPush: await newestTag('team/app'), cached: false },
          { name: 'team/links-only', tags: 0, bytes: 1000, lastPush: null, cached: false },
          { name: 'team/emptied', tags: 0, bytes: 0, lastPush: null, cached: false },
        ]);
        for (const { name, bytes } of stats) assert.equal(bytes, await store.repositoryUsage(name), name);
        assert.deepEqual(await store.repositoryStats([]), []);
        assert.deepEqual(await store.repositoryStats(['nope', 'c/marked-only']), []);

        // A push moves lastPush and the count; a deleted manifest takes its tags and bytes along.
        await store.putManifest(record('team/untagged', 'u3', { size: 1, createdAt: 2_000 }), [], ['new']);
        await store.deleteManifest('team/app', d('m1'));
        const [untagged, app] = await store.repositoryStats(['team/untagged', 'team/app']);
        assert.deepEqual(untagged, { name: 'team/untagged', tags: 1, bytes: 31, lastPush: await newestTag('team/untagged'), cached: false });
        assert.ok(untagged!.lastPush! > 3_000);
        assert.deepEqual(app, { name: 'team/app', tags: 1, bytes: 1200 + 6 * 1024 ** 3, lastPush: (await store.getTag('team/app', 'v2'))!.updatedAt, cached: false });
      });

      test('repositoryStats answers 200 names at once, in their order', async () => {
        // A permutation (7919 is prime to 200), so that the order asked is not the names' order.
        const names = Array.from({ length: 200 }, (_, i) => `many/r${String((i * 7919) % 200).padStart(3, '0')}`);
        const exists = (i: number) => i % 10 !== 3;
        for (const [i, name] of names.entries()) if (exists(i)) await store.linkBlob(name, d(name), i + 1);
        const stats = await store.repositoryStats(names);
        assert.deepEqual(
          stats.map((s) => [s.name, s.bytes]),
          names.flatMap((name, i) => (exists(i) ? [[name, i + 1]] : [])),
        );
      });

      // One upstream's mirror cache, and what must not count as its: `_` in its prefix is LIKE's
      // any-character, so `127.0.0.1x5000/…` would match `127.0.0.1_5000/%`.
      const P = '127.0.0.1_5000';
      const Q = 'ghcr.io';
      const a = `${P}/lib/a`;
      const b = `${P}/lib/b`;
      const q = `${Q}/x/y`;
      const decoys = ['127.0.0.1x5000/lib/a', `${P}0/lib/a`, `${P}-2/lib/a`, P];
      async function mirrored(): Promise<void> {
        for (const repository of [a, b, `${P}/lib/empty`, q, ...decoys]) await store.markCachedRepository(repository);
        // a: ma (100 bytes) over the shared base layer (its size known to the cache only, as the
        // mirror links it) and la (its size on the link); and 'common' (70), which b holds too.
        await store.linkBlob(a, d('base'));
        await store.recordCachedBlob({ digest: d('base'), size: 1000 }, 1);
        await store.linkBlob(a, d('la'), 200);
        await store.putManifest(record(a, 'ma', { size: 100 }), [d('base'), d('la')], ['v0', 'v1', 'v2']);
        await store.putManifest(record(a, 'common', { size: 70 }), [], ['latest']);
        await store.linkBlob(b, d('base'));
        await store.linkBlob(b, d('lb'));
        await store.recordCachedBlob({ digest: d('lb'), size: 300 }, 1);
        await store.putManifest(record(b, 'mb', { size: 150 }), [d('base'), d('lb')], ['x', 'y']);
        await store.putManifest(record(b, 'common', { size: 70 }), [], []);
        // Another upstream with the same base layer.
        await store.linkBlob(q, d('base'));
        await store.putManifest(record(q, 'mq', { size: 40 }), [d('base')], ['t']);
        for (const repository of decoys) {
          await store.linkBlob(repository, d(`decoy ${repository}`), 10_000);
          await store.putManifest(record(repository, 'decoy', { size: 10 }), [], ['d']);
        }
        // A local repository whose name starts with the prefix.
        await store.linkBlob(`${P}/local`, d('own'), 5_000);
        await store.putManifest(record(`${P}/local`, 'own', { size: 20 }), [d('own')], ['t']);

        for (const [repository, tag, at] of [[a, 'v0', 100], [a, 'v1', 100], [a, 'v2', 300], [b, 'x', 50], [b, 'y', 100], [`${P}/local`, 't', 1]] as const) {
          assert.equal(await store.markTagChecked(repository, tag, at), true);
        }
        await store.putManifest(record(b, 'common', { size: 70 }), [], ['x']); // x moves: unchecked again
      }

      test('cachedTags: one upstream\'s cached tags, stalest first (never checked, then by check, repository, tag), paged, with a total', async () => {
        await mirrored();
        const entry = async (repository: string, tag: string) => {
          const found = (await store.getTag(repository, tag))!;
          return { repository, tag, digest: found.digest, updatedAt: found.updatedAt, checkedAt: found.checkedAt };
        };
        const expected = [await entry(a, 'latest'), await entry(b, 'x'), await entry(a, 'v0'), await entry(a, 'v1'), await entry(b, 'y'), await entry(a, 'v2')];
        assert.deepEqual(
          expected.map((t) => [t.repository, t.tag, t.digest, t.checkedAt]),
          [[a, 'latest', d('common'), undefined], [b, 'x', d('common'), undefined], [a, 'v0', d('ma'), 100], [a, 'v1', d('ma'), 100], [b, 'y', d('mb'), 100], [a, 'v2', d('ma'), 300]],
        );

        assert.deepEqual(await store.cachedTags(P, { offset: 0, limit: 100 }), { tags: expected, total: 6 });
        const pages = [];
        for (let offset = 0; offset < 6; offset += 4) pages.push(await store.cachedTags(P, { offset, limit: 4 }));
        assert.deepEqual(pages, [{ tags: expected.slice(0, 4), total: 6 }, { tags: expected.slice(4), total: 6 }]);
        assert.deepEqual(await store.cachedTags(P, { offset: 2, limit: 1 }), { tags: [expected[2]], total: 6 });
        assert.deepEqual(await store.cachedTags(P, { offset: 6, limit: 10 }), { tags: [], total: 6 }, 'past the end: still the total');
        assert.deepEqual(await store.cachedTags(P, { offset: 0, limit: 0 }), { tags: [], total: 6 });

        // The stale ones: never checked, or checked strictly before.
        assert.deepEqual(await store.cachedTags(P, { offset: 0, limit: 100, checkedBefore: 200 }), { tags: expected.slice(0, 5), total: 5 });
        assert.deepEqual(await store.cachedTags(P, { offset: 1, limit: 2, checkedBefore: 200 }), { tags: expected.slice(1, 3), total: 5 });
        assert.deepEqual(await store.cachedTags(P, { offset: 0, limit: 100, checkedBefore: 100 }), { tags: expected.slice(0, 2), total: 2 });

        assert.deepEqual(await store.cachedTags(Q, { offset: 0, limit: 100 }), { tags: [await entry(q, 't')], total: 1 });
        assert.deepEqual(await store.cachedTags('127.0.0.1', { offset: 0, limit: 100 }), { tags: [], total: 0 });
        assert.deepEqual(await store.cachedTags('nowhere', { offset: 0, limit: 100, checkedBefore: 1 }), { tags: [], total: 0 });
        for (const decoy of ['127.0.0.1x5000', `${P}0`, `${P}-2`]) assert.equal((await store.cachedTags(decoy, { offset: 0, limit: 100 })).total, 1, decoy);

        // Checked now, it goes to the back; a tag deleted upstream-side leaves the list.
        await store.markTagChecked(a, 'latest', 400);
        await store.deleteTag(b, 'y');
        const after = await store.cachedTags(P, { offset: 0, limit: 100 });
        assert.deepEqual(after.tags.map((t) => `${t.repository}:${t.tag}`), [`${b}:x`, `${a}:v0`, `${a}:v1`, `${a}:v2`, `${a}:latest`]);
        assert.equal(after.total, 5);
      });

      test('cacheUsage: one upstream\'s cached repositories, each digest they hold counted once, and its stale tags', async () => {
        await mirrored();
        // ma 100 + common 70 (in a and b: once) + mb 150 + base 1000 (in a and b: once; from the cache)
        // + la 200 (from its link) + lb 300 (from the cache); the decoys and the local repository not at all.
        assert.deepEqual(await store.cacheUsage(P, 200), { repositories: 3, bytes: 1820, staleTags: 5 });
        assert.deepEqual(await store.cacheUsage(P, 100), { repositories: 3, bytes: 1820, staleTags: 2 }, 'checked strictly before');
        assert.deepEqual(await store.cacheUsage(P, 1_000), { repositories: 3, bytes: 1820, staleTags: 6 });
        assert.deepEqual(await store.cacheUsage(Q, 0), { repositories: 1, bytes: 1040, staleTags: 1 }, 'the shared base counts for each upstream');
        assert.deepEqual(await store.cacheUsage('127.0.0.1x5000', 0), { repositories: 1, bytes: 10_010, staleTags: 1 });
        assert.deepEqual(await store.cacheUsage('nowhere', 0), { repositories: 0, bytes: 0, staleTags: 0 });

        // A cached manifest evicted takes its bytes and tags along; what b still holds stays counted.
        assert.equal(await store.deleteManifest(a, d('ma')), true);
        await store.unlinkBlob(a, d('la'));
        assert.deepEqual(await store.cacheUsage(P, 200), { repositories: 3, bytes: 1520, staleTags: 3 });
        await store.unlinkBlob(b, d('base'));
        assert.deepEqual(await store.cacheUsage(P, 200), { repositories: 3, bytes: 1520, staleTags: 3 }, 'a still links base');
        await store.unlinkBlob(a, d('base'));
        assert.deepEqual(await store.cacheUsage(P, 200), { repositories: 3, bytes: 520, staleTags: 3 });
        assert.deepEqual(await store.cacheUsage(Q, 0), { repositories: 1, bytes: 1040, staleTags: 1 });
      });
    });

    describe('upload sessions', () => {
      test('create, get, advance, delete', async () => {
        const session = { id: 'f1a2b3c4-0000-4000-8000-000000000001', repository: 'team/app', offset: 0, startedAt: 1_700_000_000_123, updatedAt: 1_700_000_000_456 };
        assert.equal(await store.getUpload(session.id), undefined);
        await store.createUpload(session);
        assert.deepEqual(await store.getUpload(session.id), session);
        const before = Date.now();
        await store.setUploadOffset(session.id, 5 * 1024 * 1024 * 1024); // beyond 32 bits
        const after = Date.now();
        const advanced = await store.getUpload(session.id);
        assert.deepEqual(advanced, { ...session, offset: 5 * 1024 * 1024 * 1024, updatedAt: advanced?.updatedAt });
        assert.ok(advanced!.updatedAt >= before && advanced!.updatedAt <= after, `setUploadOffset records now as the last activity (${advanced!.updatedAt})`);
        await store.deleteUpload(session.id);
        assert.equal(await store.getUpload(session.id), undefined);
        await store.deleteUpload(session.id); // idempotent
      });

      test('sessions are independent', async () => {
        await store.createUpload({ id: 'u1', repository: 'a', offset: 0, startedAt: 1, updatedAt: 1 });
        await store.createUpload({ id: 'u2', repository: 'b', offset: 7, startedAt: 2, updatedAt: 2 });
        await store.setUploadOffset('u1', 3);
        assert.equal((await store.getUpload('u1'))?.offset, 3);
        assert.equal((await store.getUpload('u2'))?.offset, 7);
        await store.deleteUpload('u1');
        assert.equal((await store.getUpload('u2'))?.repository, 'b');
      });

      test('a duplicate session id is refused', async () => {
        await store.createUpload({ id: 'dup', repository: 'a', offset: 0, startedAt: 1, updatedAt: 1 });
        await assert.rejects(store.createUpload({ id: 'dup', repository: 'b', offset: 0, startedAt: 2, updatedAt: 2 }));
        assert.equal((await store.getUpload('dup'))?.repository, 'a');
      });

      test('staleUploads lists sessions idle since before the cut-off, least recently active first', async () => {
        // updatedAt, not startedAt, decides: 'old-but-busy' started first yet was active recently.
        await store.createUpload({ id: 'c', repository: 'a', offset: 0, startedAt: 3_000, updatedAt: 3_000 });
        await store.createUpload({ id: 'a', repository: 'b', offset: 5, startedAt: 1_000, updatedAt: 1_000 });
        await store.createUpload({ id: 'b', repository: 'a', offset: 0, startedAt: 2_000, updatedAt: 2_000 });
        await store.createUpload({ id: 'old-but-busy', repository: 'a', offset: 0, startedAt: 500, updatedAt: 9_000 });
        await store.createUpload({ id: 'edge', repository: 'a', offset: 0, startedAt: 4_000, updatedAt: 4_000 });
        const ids = async (idleSince: number, limit: number) => (await store.staleUploads(idleSince, limit)).map((s) => s.id);

        assert.deepEqual(await ids(4_000, 100), ['a', 'b', 'c'], 'strictly before idleSince');
        assert.deepEqual(await ids(4_001, 100), ['a', 'b', 'c', 'edge']);
        assert.deepEqual(await ids(4_000, 2), ['a', 'b'], 'limit takes the longest idle');
        assert.deepEqual(await ids(1_000, 100), []);
        assert.deepEqual(await ids(10_000, 0), []);
        assert.deepEqual((await store.staleUploads(1_001, 1))[0], { id: 'a', repository: 'b', offset: 5, startedAt: 1_000, updatedAt: 1_000 }, 'whole sessions');

        await store.setUploadOffset('a', 6); // activity: no longer stale
        await store.deleteUpload('b');
        assert.deepEqual(await ids(4_000, 100), ['c']);
        assert.deepEqual(await ids(Date.now() + 1, 100), ['c', 'edge', 'old-but-busy', 'a']);
      });
    });

    test('upstream listings: the last answer per key, its time moving only when the names change; kept across a reopen', async () => {
      assert.equal(await store.upstreamListing('tags:docker.io/library/alpine'), undefined);
      await store.saveUpstreamListing('tags:docker.io/library/alpine', ['3.19', 'latest'], 100);
      await store.saveUpstreamListing('tags:docker.io/library/alpine', ['3.19', 'latest'], 200);
      assert.deepEqual(await store.upstreamListing('tags:docker.io/library/alpine'), { names: ['3.19', 'latest'], changedAt: 100 });
      await store.saveUpstreamListing('tags:docker.io/library/alpine', ['3.19', '3.20', 'latest'], 300);
      await store.saveUpstreamListing('catalog:ghcr.io', [], 300);
      store = await h.reopen();
      assert.deepEqual(await store.upstreamListing('tags:docker.io/library/alpine'), { names: ['3.19', '3.20', 'latest'], changedAt: 300 });
      assert.deepEqual(await store.upstreamListing('catalog:ghcr.io'), { names: [], changedAt: 300 });
    });

    test('data survives close and reopen', async () => {
      const rec = record('team/app', 'persisted', { subject: d('s'), artifactType: 'application/x', annotations: { k: 'v' } });
      await store.putManifest(rec, [d('cfg')], ['v1']);
      await store.linkBlob('team/app', d('blob'));
      await store.createUpload({ id: 'up', repository: 'team/app', offset: 42, startedAt: 9, updatedAt: 11 });
      const reopened = await h.reopen();
      store = reopened;
      assert.deepEqual(await reopened.getManifest('team/app', rec.digest), rec);
      assert.equal(await reopened.resolveTag('team/app', 'v1'), rec.digest);
      assert.equal(await reopened.isBlobLinked('team/app', d('blob')), true);
      assert.deepEqual(await reopened.getUpload('up'), { id: 'up', repository: 'team/app', offset: 42, startedAt: 9, updatedAt: 11 });
      assert.deepEqual((await reopened.staleUploads(12, 10)).map((s) => s.id), ['up']);
      assert.deepEqual((await reopened.listRepositories(undefined, undefined)).items, ['team/app']);
      assert.deepEqual((await reopened.listReferrers('team/app', d('s'))).map((r) => r.digest), [rec.digest]);
      assert.deepEqual(await reopened.unreferencedBlobs([d('cfg'), d('blob'), d('free')]), [d('free')]);
    });
  });
}
