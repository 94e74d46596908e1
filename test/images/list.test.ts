import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { shortId } from '../../src/digest/digest.ts';
import { FilterError } from '../../src/images/filters.ts';
import { BadPatternError } from '../../src/images/glob.ts';
import { humanSize } from '../../src/images/human.ts';
import { imagesText, listImages } from '../../src/images/list.ts';
import { NoSuchImageError } from '../../src/images/resolve.ts';
import type { ImageRecord, ImageStore } from '../../src/images/store.ts';
import { NOW, buildImage, put, tempStore } from './fixtures.ts';

const REPO_DIGEST = `sha256:${'1'.repeat(64)}`;
const BUSYBOX_DIGEST = `sha256:${'2'.repeat(64)}`;

describe('images (docker images)', () => {
  let store: ImageStore;
  let close: () => Promise<void>;
  /** alpine:3.20 + alpine:latest, 01:00, label tier=base, a repo digest */
  let alpine: ImageRecord;
  /** user/app:v1, 00:30, tier=app team=a, 3 MB, plus a busybox repo digest */
  let app: ImageRecord;
  /** ghcr.io/o/app:v2, 01:30, team=b */
  let ghcr: ImageRecord;
  /** untagged, 2025-12-31 */
  let dangling: ImageRecord;
  /** localhost:5000/nocreated:1, no config created: sorted by storedAt (01:45) */
  let nocreated: ImageRecord;

  const text = (options: Parameters<typeof imagesText>[1] = {}) => imagesText(store, { now: NOW, ...options });
  const ids = async (options: Parameters<typeof listImages>[1] = {}) => (await listImages(store, options)).map((r) => `${r.repository}:${r.tag}`);

  before(async () => {
    ({ store, close } = await tempStore());
    alpine = await put(
      store,
      await buildImage({ layers: [{ seed: 'base' }, { seed: 'a1' }], created: '2026-01-01T01:00:00Z', labels: { tier: 'base' } }),
      ['docker.io/library/alpine:3.20', 'docker.io/library/alpine:latest'],
      [`docker.io/library/alpine@${REPO_DIGEST}`],
    );
    app = await put(
      store,
      await buildImage({ layers: [{ seed: 'base' }, { seed: 'b1', size: 3_000_000 }], created: '2026-01-01T00:30:00Z', labels: { tier: 'app', team: 'a' } }),
      ['docker.io/user/app:v1'],
      [`docker.io/library/busybox@${BUSYBOX_DIGEST}`],
    );
    ghcr = await put(store, await buildImage({ layers: [{ seed: 'c1' }], created: '2026-01-01T01:30:00Z', labels: { team: 'b' } }), ['ghcr.io/o/app:v2']);
    dangling = await put(store, await buildImage({ layers: [{ seed: 'd1' }], created: '2025-12-31T00:00:00Z' }));
    const noCreatedImage = await buildImage({ layers: [{ seed: 'e1' }], extra: { created: undefined } });
    nocreated = await put(store, noCreatedImage, ['localhost:5000/nocreated:1']);
    assert.equal(nocreated.created, undefined);
    nocreated = { ...nocreated, storedAt: Date.parse('2026-01-01T01:45:00Z') };
    await store.putRecord(nocreated);
  });
  after(() => close());

  test('default table: columns, familiar names, one row per tag, newest first, <none> for dangling', async () => {
    const s = (r: ImageRecord) => humanSize(r.unpackedSize);
    const expected = [
      ['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE'],
      ['localhost:5000/nocreated', '1', shortId(nocreated.config.digest), '15 minutes ago', s(nocreated)],
      ['ghcr.io/o/app', 'v2', shortId(ghcr.config.digest), '30 minutes ago', s(ghcr)],
      ['alpine', '3.20', shortId(alpine.config.digest), 'About an hour ago', s(alpine)],
      ['alpine', 'latest', shortId(alpine.config.digest), 'About an hour ago', s(alpine)],
      ['user/app', 'v1', shortId(app.config.digest), '2 hours ago', s(app)],
      ['busybox', '<none>', shortId(app.config.digest), '2 hours ago', s(app)],
      ['<none>', '<none>', shortId(dangling.config.digest), '26 hours ago', s(dangling)],
    ];
    const lines = (await text()).split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, expected.length);
    lines.forEach((line, i) => assert.deepEqual(line.split(/ {3,}/), expected[i], line));
    // columns are aligned by tabwriter: every IMAGE ID starts at the same offset
    const idColumn = (lines[0] as string).indexOf('IMAGE ID');
    for (const line of lines.slice(1)) assert.match(line.slice(idColumn, idColumn + 12), /^[0-9a-f]{12}$/);
    assert.equal(s(app), '3MB');
  });

  test('SIZE is the unpacked size in decimal units, CreatedAt as docker prints it', async () => {
    const out = await text({ format: '{{.Repository}} {{.Size}} {{.CreatedAt}}', reference: 'user/app' });
    assert.equal(out, `user/app 3MB 2026-01-01 00:30:00 +0000 UTC\n`);
  });

  test('-q prints each ID once, in listing order', async () => {
    const out = await text({ quiet: true });
    assert.deepEqual(
      out.trimEnd().split('\n'),
      [nocreated, ghcr, alpine, app, dangling].map((r) => shortId(r.config.digest)),
    );
  });

  test('-q --no-trunc prints full IDs', async () => {
    const out = await text({ quiet: true, noTrunc: true, filters: ['reference=alpine'] });
    assert.equal(out, `${alpine.config.digest}\n`);
  });

  test('--no-trunc shows sha256: and the whole ID', async () => {
    const out = await text({ noTrunc: true, reference: 'ghcr.io/o/app:v2' });
    assert.match(out, new RegExp(`^ghcr.io/o/app\\s+v2\\s+${ghcr.config.digest}\\s`, 'm'));
  });

  test('--digests adds DIGEST from the repo digests of that repository', async () => {
    const out = await text({ digests: true });
    const lines = out.trimEnd().split('\n');
    assert.deepEqual(lines[0]?.split(/ {3,}/), ['REPOSITORY', 'TAG', 'DIGEST', 'IMAGE ID', 'CREATED', 'SIZE']);
    const row = (repo: string, tag: string) => lines.find((l) => l.startsWith(`${repo} `) && l.split(/ {3,}/)[1] === tag)?.split(/ {3,}/);
    assert.equal(row('alpine', '3.20')?.[2], REPO_DIGEST);
    assert.equal(row('alpine', 'latest')?.[2], REPO_DIGEST);
    assert.equal(row('ghcr.io/o/app', 'v2')?.[2], '<none>');
    assert.equal(row('user/app', 'v1')?.[2], '<none>');
    // a repo digest in a repository without a tag gets its own <none> row, as in docker
    assert.equal(row('busybox', '<none>')?.[2], BUSYBOX_DIGEST);
    assert.equal(row('<none>', '<none>')?.[2], '<none>');
  });

  test('without --digests a digest-only repository still shows as a <none> tag row', async () => {
    assert.deepEqual(await ids({ filters: ['label=team=a'] }), ['user/app:v1', 'busybox:<none>']);
  });

  describe('filters', () => {
    test('dangling=true / dangling=false', async () => {
      assert.deepEqual(await ids({ filters: ['dangling=true'] }), ['<none>:<none>']);
      assert.deepEqual(await ids({ filters: ['dangling=false'] }), [
        'localhost:5000/nocreated:1',
        'ghcr.io/o/app:v2',
        'alpine:3.20',
        'alpine:latest',
        'user/app:v1',
        'busybox:<none>',
      ]);
      await assert.rejects(ids({ filters: ['dangling=maybe'] }), (e: unknown) => e instanceof FilterError && e.message === "invalid filter 'dangling=maybe': dangling takes true or false (or 1 or 0)");
    });

    test('dangling takes docker\'s 1 and 0 too, repeated when they agree; yes and a conflict say what is accepted (issue 10)', async () => {
      assert.deepEqual(await ids({ filters: ['dangling=1'] }), await ids({ filters: ['dangling=true'] }));
      assert.deepEqual(await ids({ filters: ['dangling=0'] }), await ids({ filters: ['dangling=false'] }));
      assert.deepEqual(await ids({ filters: ['dangling=true', 'dangling=1'] }), await ids({ filters: ['dangling=true'] }));
      await assert.rejects(ids({ filters: ['dangling=yes'] }), { name: 'FilterError', message: "invalid filter 'dangling=yes': dangling takes true or false (or 1 or 0)" });
      await assert.rejects(ids({ filters: ['dangling=true', 'dangling=yes'] }), { message: "invalid filter 'dangling=true,yes': dangling takes true or false (or 1 or 0)" });
      await assert.rejects(ids({ filters: ['dangling=true', 'dangling=0'] }), { message: "invalid filter 'dangling=true,0': dangling cannot be both true and false" });
    });

    test('label=k and label=k=v, several ANDed', async () => {
      assert.deepEqual(await ids({ filters: ['label=tier'] }), ['alpine:3.20', 'alpine:latest', 'user/app:v1', 'busybox:<none>']);
      assert.deepEqual(await ids({ filters: ['label=tier=base'] }), ['alpine:3.20', 'alpine:latest']);
      assert.deepEqual(await ids({ filters: ['label=tier', 'label=team'] }), ['user/app:v1', 'busybox:<none>']);
      assert.deepEqual(await ids({ filters: ['label=team=b'] }), ['ghcr.io/o/app:v2']);
      assert.deepEqual(await ids({ filters: ['label=tier=nope'] }), []);
    });

    test('before / since: strictly earlier / later than the named image (name or ID)', async () => {
      assert.deepEqual(await ids({ filters: ['before=alpine:latest'] }), ['user/app:v1', 'busybox:<none>', '<none>:<none>']);
      assert.deepEqual(await ids({ filters: ['since=alpine'] }), ['localhost:5000/nocreated:1', 'ghcr.io/o/app:v2']);
      assert.deepEqual(await ids({ filters: [`before=${shortId(app.config.digest)}`] }), ['<none>:<none>']);
      assert.deepEqual(await ids({ filters: [`since=${ghcr.config.digest}`] }), ['localhost:5000/nocreated:1']);
      assert.deepEqual(await ids({ filters: ['since=user/app:v1', 'before=ghcr.io/o/app:v2'] }), ['alpine:3.20', 'alpine:latest']);
      await assert.rejects(ids({ filters: ['before=nothere'] }), NoSuchImageError);
    });

    test('reference=<glob>: familiar and canonical, name and name:tag; rows that do not match are dropped', async () => {
      const cases: [string[], string[]][] = [
        [['reference=alpine'], ['alpine:3.20', 'alpine:latest']],
        [['reference=alpine:3*'], ['alpine:3.20']],
        [['reference=*:latest'], ['alpine:latest']],
        [['reference=docker.io/library/alpine:latest'], ['alpine:latest']],
        [['reference=docker.io/library/*'], ['alpine:3.20', 'alpine:latest', 'busybox:<none>']],
        [['reference=busybox'], ['busybox:<none>']],
        [['reference=*/*'], ['localhost:5000/nocreated:1', 'user/app:v1']],
        [['reference=*/app'], ['user/app:v1']],
        [['reference=*'], ['alpine:3.20', 'alpine:latest', 'busybox:<none>']],
        [['reference=ghcr.io/*/*'], ['ghcr.io/o/app:v2']],
        [['reference=docker.io/*/*'], ['alpine:3.20', 'alpine:latest', 'user/app:v1', 'busybox:<none>']],
        [['reference=alpine:latest', 'reference=ghcr.io/o/app'], ['ghcr.io/o/app:v2', 'alpine:latest']],
        [['reference=nothing*'], []],
      ];
      for (const [filters, expected] of cases) assert.deepEqual(await ids({ filters }), expected, filters.join(' '));
    });

    test('a positional REPO[:TAG] is a reference filter', async () => {
      assert.deepEqual(await ids({ reference: 'alpine' }), ['alpine:3.20', 'alpine:latest']);
      assert.deepEqual(await ids({ reference: 'alpine:latest' }), ['alpine:latest']);
      assert.deepEqual(await ids({ reference: 'alpine', filters: ['reference=user/app'] }), ['alpine:3.20', 'alpine:latest', 'user/app:v1']);
    });

    test('unknown keys, missing "=" and bad globs are errors', async () => {
      await assert.rejects(ids({ filters: ['foo=bar'] }), (e: unknown) => e instanceof FilterError && e.message === "invalid filter 'foo' (accepted: dangling, label, before, since, reference)");
      await assert.rejects(ids({ filters: ['dangling'] }), /bad format of filter \(expected name=value\)/);
      await assert.rejects(ids({ filters: ['reference=[a-'] }), BadPatternError);
    });

    test('filter keys are case-insensitive, as docker parses them', async () => {
      assert.deepEqual(await ids({ filters: ['Dangling=true'] }), ['<none>:<none>']);
    });
  });

  describe('--format', () => {
    test('a template prints one line per row', async () => {
      const out = await text({ format: '{{.ID}} {{.Repository}}:{{.Tag}}', reference: 'alpine' });
      const id = shortId(alpine.config.digest);
      assert.equal(out, `${id} alpine:3.20\n${id} alpine:latest\n`);
    });

    test('table TEMPLATE prints a header and aligns columns', async () => {
      const out = await text({ format: 'table {{.Repository}}\\t{{.Tag}}', filters: ['reference=*/app'] });
      assert.equal(out, 'REPOSITORY   TAG\nuser/app     v1\n');
    });

    test('table TEMPLATE with --digests gets a DIGEST column added', async () => {
      const out = await text({ format: 'table {{.Repository}}\t{{.Tag}}', digests: true, reference: 'alpine:latest' });
      assert.equal(out, `REPOSITORY   TAG       DIGEST\nalpine       latest    ${REPO_DIGEST}\n`);
    });

    test('a template using .Digest gets the repo digests without --digests', async () => {
      const out = await text({ format: '{{.Repository}}@{{.Digest}}', reference: 'alpine:3.20' });
      assert.equal(out, `alpine@${REPO_DIGEST}\n`);
    });

    test('table alone is the default table; -q with table is IDs only', async () => {
      assert.equal(await text({ format: 'table' }), await text());
      assert.equal(await text({ format: 'table', quiet: true }), await text({ quiet: true }));
    });

    test('json prints one object per line with docker’s fields', async () => {
      const out = await text({ format: 'json', reference: 'ghcr.io/o/app' });
      const lines = out.trimEnd().split('\n');
      assert.equal(lines.length, 1);
      assert.deepEqual(JSON.parse(lines[0] as string), {
        Containers: 'N/A',
        CreatedAt: '2026-01-01 01:30:00 +0000 UTC',
        CreatedSince: '30 minutes ago',
        Digest: '<none>',
        ID: shortId(ghcr.config.digest),
        Repository: 'ghcr.io/o/app',
        SharedSize: 'N/A',
        Size: humanSize(ghcr.unpackedSize),
        Tag: 'v2',
        UniqueSize: 'N/A',
        VirtualSize: humanSize(ghcr.unpackedSize, 4),
      });
      assert.match(lines[0] as string, /"Digest":"\\u003cnone\\u003e"/);
      const all = (await text({ format: 'json' })).trimEnd().split('\n');
      assert.equal(all.length, 7);
      assert.equal(JSON.parse(all[5] as string).Digest, '', 'a digest-only row has an empty Digest without --digests, as in docker');
    });

    test('an unknown field is an error', async () => {
      await assert.rejects(text({ format: '{{.Nope}}' }), /can't evaluate field Nope/);
    });
  });

  test('-a is accepted and shows the same images (no intermediate images here)', async () => {
    assert.equal(await text({ all: true }), await text());
  });
});
