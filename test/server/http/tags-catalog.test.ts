import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeImage } from '../../../src/testing/images.ts';
import { pushBlob, pushImage, pushManifest } from '../../../src/testing/push.ts';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { blobOf, expectError } from './helpers.ts';

interface TagList {
  name: string;
  tags: string[];
}

/** `<url>; rel="next"` → the URL. */
function nextFrom(link: string | null): string | undefined {
  if (link === null) return undefined;
  const match = /^<([^>]+)>;\s*rel="next"$/.exec(link);
  assert.ok(match, `Link header ${link}`);
  return match[1];
}

describe('tags list (end-8a/b)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  const repo = 'tags/many';
  // Byte order: digits < uppercase < underscore < lowercase; "1.0" < "10" < "9".
  const tags = ['latest', '9', '10', '1.0', 'B', 'A', '_x', 'a', 'v1.0.0-rc.1', 'v1.0.0'];
  const sorted = [...tags].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));

  before(async () => {
    const image = await makeImage({ seed: 'tags/many' });
    await pushImage(reg.url, repo, image, tags[0]);
    for (const tag of tags.slice(1)) await pushManifest(reg.url, repo, tag, image.manifest);
  });

  async function list(query = '', name = repo): Promise<Response> {
    return fetch(`${reg.url}/v2/${name}/tags/list${query}`);
  }

  test('lists every tag in lexical (byte) order with the repository name', async () => {
    assert.deepEqual(sorted, ['1.0', '10', '9', 'A', 'B', '_x', 'a', 'latest', 'v1.0.0', 'v1.0.0-rc.1']);
    const res = await list();
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('link'), null);
    const body = (await res.json()) as TagList;
    assert.equal(body.name, repo);
    assert.deepEqual(body.tags, sorted);
  });

  test('?n=2 gives two tags and a Link to the next page', async () => {
    const res = await list('?n=2');
    assert.equal(res.status, 200);
    const body = (await res.json()) as TagList;
    assert.deepEqual(body.tags, sorted.slice(0, 2));
    assert.equal(res.headers.get('link'), `</v2/${repo}/tags/list?n=2&last=${sorted[1]}>; rel="next"`);
  });

  test('following the Link pages through every tag, and the last page has no Link', async () => {
    const seen: string[] = [];
    let next: string | undefined = `/v2/${repo}/tags/list?n=3`;
    let pages = 0;
    while (next !== undefined) {
      const res: Response = await fetch(new URL(next, reg.url));
      assert.equal(res.status, 200);
      const body = (await res.json()) as TagList;
      assert.ok(body.tags.length <= 3);
      seen.push(...body.tags);
      next = nextFrom(res.headers.get('link'));
      if (next !== undefined) assert.equal(body.tags.length, 3);
      pages++;
      assert.ok(pages <= 10, 'too many pages');
    }
    assert.equal(pages, 4);
    assert.deepEqual(seen, sorted);
  });

  test('?last= starts after the given tag', async () => {
    const body = (await (await list('?n=2&last=A')).json()) as TagList;
    assert.deepEqual(body.tags, ['B', '_x']);
    const rest = (await (await list('?last=latest')).json()) as TagList;
    assert.deepEqual(rest.tags, ['v1.0.0', 'v1.0.0-rc.1']);
  });

  test('?last= need not be an existing tag', async () => {
    const body = (await (await list('?last=Z')).json()) as TagList;
    assert.deepEqual(body.tags, ['_x', 'a', 'latest', 'v1.0.0', 'v1.0.0-rc.1']);
  });

  test('?last= past every tag gives an empty list without Link', async () => {
    const res = await list('?n=5&last=zzz');
    const body = (await res.json()) as TagList;
    assert.deepEqual(body.tags, []);
    assert.equal(res.headers.get('link'), null);
  });

  test('?n=0 gives an empty list and no Link', async () => {
    const res = await list('?n=0');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('link'), null);
    const body = (await res.json()) as TagList;
    assert.deepEqual(body.tags, []);
  });

  test('?n equal to or above the count gives everything and no Link', async () => {
    for (const n of [sorted.length, sorted.length + 5, 1000]) {
      const res = await list(`?n=${n}`);
      assert.equal(res.headers.get('link'), null, `n=${n}`);
      assert.deepEqual(((await res.json()) as TagList).tags, sorted);
    }
  });

  test('?n=1 then the Link gives the second tag', async () => {
    const first = await list('?n=1');
    assert.deepEqual(((await first.json()) as TagList).tags, [sorted[0]]);
    const next = nextFrom(first.headers.get('link'));
    assert.ok(next);
    const second = await fetch(new URL(next, reg.url));
    assert.deepEqual(((await second.json()) as TagList).tags, [sorted[1]]);
  });

  test('an invalid n is 400', async () => {
    for (const n of ['-1', 'abc', '1.5']) {
      const res = await list(`?n=${n}`);
      assert.equal(res.status, 400, `n=${n}`);
      await res.arrayBuffer();
    }
  });

  test('an unknown repository is 404 NAME_UNKNOWN', async () => {
    await expectError(await list('', 'tags/never-pushed'), 404, 'NAME_UNKNOWN');
  });

  test('a repository whose tags were all deleted gives 200 with an empty list', async () => {
    const name = 'tags/all-deleted';
    const image = await makeImage({ seed: 'tags/all-deleted' });
    await pushImage(reg.url, name, image, 'one');
    await pushManifest(reg.url, name, 'two', image.manifest);
    assert.deepEqual(((await (await list('', name)).json()) as TagList).tags, ['one', 'two']);
    for (const tag of ['one', 'two']) {
      const res = await fetch(`${reg.url}/v2/${name}/manifests/${tag}`, { method: 'DELETE' });
      assert.equal(res.status, 202);
    }
    const res = await list('', name);
    assert.equal(res.status, 200);
    const body = (await res.json()) as TagList;
    assert.equal(body.name, name);
    assert.deepEqual(body.tags, []);
  });

  test('a repository with blobs but no manifest lists no tags', async () => {
    const name = 'tags/blobs-only';
    await pushBlob(reg.url, name, blobOf('only a blob'));
    const res = await list('', name);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as TagList).tags, []);
  });
});

describe('catalog: GET /v2/_catalog', () => {
  let reg: TestRegistry;
  const repos = ['cat/b', 'cat/a', 'other', 'cat/c', 'cat-a', 'zeta/one/two'];
  const sorted = [...repos].sort();
  before(async () => {
    // A registry of its own, so the catalog holds exactly these repositories.
    reg = await startTestRegistry();
    for (const repo of repos) await pushBlob(reg.url, repo, blobOf(`catalog ${repo}`));
  });
  after(async () => {
    await reg.stop();
  });

  test('lists every repository in lexical order', async () => {
    const res = await fetch(`${reg.url}/v2/_catalog`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.headers.get('link'), null);
    assert.deepEqual(((await res.json()) as { repositories: string[] }).repositories, sorted);
    assert.deepEqual(sorted, ['cat-a', 'cat/a', 'cat/b', 'cat/c', 'other', 'zeta/one/two']);
  });

  test('?n=2 gives two repositories and a Link whose last is the second', async () => {
    const res = await fetch(`${reg.url}/v2/_catalog?n=2`);
    const body = (await res.json()) as { repositories: string[] };
    assert.deepEqual(body.repositories, sorted.slice(0, 2));
    const next = nextFrom(res.headers.get('link'));
    assert.ok(next);
    const url = new URL(next, reg.url);
    assert.equal(url.pathname, '/v2/_catalog');
    assert.equal(url.searchParams.get('n'), '2');
    assert.equal(url.searchParams.get('last'), sorted[1]);
  });

  test('following Link pages through every repository', async () => {
    const seen: string[] = [];
    let next: string | undefined = '/v2/_catalog?n=2';
    let pages = 0;
    while (next !== undefined) {
      const res: Response = await fetch(new URL(next, reg.url));
      assert.equal(res.status, 200);
      seen.push(...((await res.json()) as { repositories: string[] }).repositories);
      next = nextFrom(res.headers.get('link'));
      pages++;
      assert.ok(pages <= 10);
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, sorted);
  });

  test('?last= starts after the given repository; ?n=0 is empty without Link', async () => {
    const after = await fetch(`${reg.url}/v2/_catalog?last=cat/b`);
    assert.deepEqual(((await after.json()) as { repositories: string[] }).repositories, ['cat/c', 'other', 'zeta/one/two']);
    const zero = await fetch(`${reg.url}/v2/_catalog?n=0`);
    assert.equal(zero.status, 200);
    assert.equal(zero.headers.get('link'), null);
    assert.deepEqual(((await zero.json()) as { repositories: string[] }).repositories, []);
  });
});
