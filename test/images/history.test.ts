import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { shortId } from '../../src/digest/digest.ts';
import { imageHistory, renderHistory, MISSING } from '../../src/images/history.ts';
import type { ImageRecord, ImageStore } from '../../src/images/store.ts';
import { seededBytes, tarOf, type TestImage } from '../../src/testing/images.ts';
import { NOW, buildImage, put, tempStore } from './fixtures.ts';

const LONG = '/bin/sh -c apk add --no-cache ca-certificates curl git openssh-client';

describe('history', () => {
  let store: ImageStore;
  let close: () => Promise<void>;
  let image: TestImage;
  let record: ImageRecord;
  let sizes: number[];

  before(async () => {
    ({ store, close } = await tempStore());
    const layers = [
      { seed: 'h-base', size: 1000 },
      { seed: 'h-big', size: 2_000_000 },
    ];
    sizes = [];
    for (const l of layers) sizes.push((await tarOf([{ name: `${l.seed}.bin`, data: seededBytes(l.seed, l.size) }])).length);
    image = await buildImage({
      layers,
      created: '2026-01-01T01:00:00Z',
      history: [
        { created: '2025-12-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in / ' },
        { created: '2025-12-01T00:00:01Z', created_by: '/bin/sh -c #(nop)  ENV X=1', empty_layer: true },
        { created: '2026-01-01T00:30:00Z', created_by: LONG },
        { created: '2026-01-01T01:00:00Z', created_by: 'CMD ["sh"]\twith a tab', empty_layer: true, comment: 'buildkit.dockerfile.v0' },
      ],
    });
    record = await put(store, image, ['docker.io/library/hist:1']);
  });
  after(() => close());

  test('rows newest first; the ID on the top row only; layer sizes on non-empty entries', async () => {
    const rows = await imageHistory(store, 'hist:1');
    assert.deepEqual(
      rows.map((r) => [r.id, r.createdBy, r.size, r.comment]),
      [
        [image.config.descriptor.digest, 'CMD ["sh"]\twith a tab', 0, 'buildkit.dockerfile.v0'],
        [MISSING, LONG, sizes[1], ''],
        [MISSING, '/bin/sh -c #(nop)  ENV X=1', 0, ''],
        [MISSING, '/bin/sh -c #(nop) ADD file:abc in / ', sizes[0], ''],
      ],
    );
    assert.equal(rows[1]?.size, sizes[1]);
    assert.equal((sizes[0] ?? 0) + (sizes[1] ?? 0), record.unpackedSize);
    assert.deepEqual(rows[0]?.tags, ['hist:1']);
  });

  test('default table: docker’s columns, CREATED BY cut to 45, sizes in decimal units', async () => {
    const out = renderHistory(await imageHistory(store, shortId(image.config.descriptor.digest)), { now: NOW });
    const lines = out.split('\n');
    assert.equal(lines.pop(), '');
    const cells = lines.map((l) => l.split(/ {3,}/).map((c) => c.trimEnd()));
    assert.deepEqual(cells, [
      ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'],
      [shortId(image.config.descriptor.digest), 'About an hour ago', 'CMD ["sh"] with a tab', '0B', 'buildkit.dockerfile.v0'],
      [MISSING, '2 hours ago', `${LONG.slice(0, 44)}…`, '2MB', ''],
      [MISSING, '4 weeks ago', '/bin/sh -c #(nop)  ENV X=1', '0B', ''],
      [MISSING, '4 weeks ago', '/bin/sh -c #(nop) ADD file:abc in /', '2.56kB', ''],
    ]);
  });

  test('--no-trunc: full ID and command; -q: IDs only', async () => {
    const rows = await imageHistory(store, 'hist:1');
    const full = renderHistory(rows, { noTrunc: true, now: NOW });
    assert.ok(full.includes(image.config.descriptor.digest));
    assert.ok(full.includes(LONG));
    assert.equal(renderHistory(rows, { quiet: true }), `${shortId(image.config.descriptor.digest)}\n${MISSING}\n${MISSING}\n${MISSING}\n`);
  });

  test('--human=false: RFC 3339 dates and sizes in bytes', async () => {
    const rows = await imageHistory(store, 'hist:1');
    assert.equal(renderHistory(rows, { human: false, format: '{{.CreatedSince}}|{{.Size}}' }), `2026-01-01T01:00:00Z|0\n2026-01-01T00:30:00Z|${sizes[1]}\n2025-12-01T00:00:01Z|0\n2025-12-01T00:00:00Z|${sizes[0]}\n`);
  });

  test('--format template and json', async () => {
    const rows = await imageHistory(store, 'hist:1');
    assert.equal(renderHistory(rows.slice(0, 1), { format: '{{.ID}} {{.CreatedAt}} {{.Comment}}' }), `${shortId(image.config.descriptor.digest)} 2026-01-01T01:00:00Z buildkit.dockerfile.v0\n`);
    const json = renderHistory(rows, { format: 'json', now: NOW }).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    assert.equal(json.length, 4);
    assert.deepEqual(Object.keys(json[1] ?? {}), ['Comment', 'CreatedAt', 'CreatedBy', 'CreatedSince', 'ID', 'Size']);
    assert.equal(json[1]?.Size, '2MB');
  });

  test('a single-layer image uses the recorded size; unknown images fail', async () => {
    const single = await buildImage({ layers: [{ seed: 'h-single', size: 5000 }] });
    const rec = await put(store, single, ['docker.io/library/single:1']);
    const rows = await imageHistory(store, 'single:1');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.size, rec.unpackedSize);
    assert.equal(rows[0]?.id, single.config.descriptor.digest);
    await assert.rejects(imageHistory(store, 'nope'), /No such image: nope:latest/);
  });
});
