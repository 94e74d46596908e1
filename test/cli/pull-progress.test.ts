import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PullProgress, humanSize } from '../../src/cli/pull-progress.ts';
import type { PullEvent } from '../../src/images/pull.ts';
import { sink } from './tty-sink.ts';

const digest = `sha256:${'ab'.repeat(32)}` as const;
const layer = (status: PullEvent & { type: 'layer' } extends infer E ? E extends { status: infer S } ? S : never : never, extra: { current?: number; total?: number } = {}): PullEvent => ({
  type: 'layer',
  id: 'abababababab',
  digest,
  status,
  ...extra,
});

describe('docker-style pull progress', () => {
  test('sizes use decimal units with three significant digits', () => {
    assert.deepEqual([0, 999, 1000, 12_345, 45_600_000, 1_230_000_000].map((n) => humanSize(n)), ['0B', '999B', '1kB', '12.3kB', '45.6MB', '1.23GB']);
  });

  test('off a TTY: one plain line per status, then Digest and Status', () => {
    const { out, text } = sink(false);
    const progress = new PullProgress(out);
    const events: PullEvent[] = [
      { type: 'start', reference: 'alpine:3.20', repository: 'library/alpine', tag: '3.20' },
      layer('Pulling fs layer'),
      layer('Downloading', { current: 0, total: 3_000_000 }),
      layer('Downloading', { current: 1_500_000, total: 3_000_000 }),
      layer('Verifying Checksum'),
      layer('Download complete'),
      layer('Pull complete'),
      { type: 'done', reference: 'alpine:3.20', digest, updated: true },
    ];
    events.forEach(progress.handle);
    assert.equal(
      text(),
      [
        '3.20: Pulling from library/alpine',
        'abababababab: Pulling fs layer',
        'abababababab: Downloading',
        'abababababab: Verifying Checksum',
        'abababababab: Download complete',
        'abababababab: Pull complete',
        `Digest: ${digest}`,
        'Status: Downloaded newer image for alpine:3.20',
        '',
      ].join('\n'),
    );
  });

  test('on a TTY: each layer keeps one line, redrawn in place with a bar and bytes', () => {
    const { out, text } = sink(true);
    const progress = new PullProgress(out);
    progress.handle(layer('Downloading', { current: 1_500_000, total: 3_000_000 }));
    progress.flush();
    progress.handle(layer('Pull complete'));
    progress.handle({ type: 'done', reference: 'alpine:3.20', digest, updated: false });
    const output = text();
    assert.match(output, /abababababab: Downloading \[=+>\s+\] 1\.5MB\/3MB\n/);
    assert.match(output, /\x1b\[1A\x1b\[2Kabababababab: Pull complete\n/, 'moved up one line and redrew it');
    assert.match(output, /Status: Image is up to date for alpine:3\.20\n$/);
  });

  test('an up-to-date pull off a TTY: "Already exists" per layer and nothing after it (issue 10)', () => {
    const { out, text } = sink(false);
    const progress = new PullProgress(out, 'plain');
    progress.handle({ type: 'start', reference: 'alpine:3.20', repository: 'library/alpine', tag: '3.20' });
    progress.handle(layer('Already exists'));
    progress.handle({ type: 'done', reference: 'alpine:3.20', digest, updated: false });
    assert.equal(text(), `3.20: Pulling from library/alpine\nabababababab: Already exists\nDigest: ${digest}\nStatus: Image is up to date for alpine:3.20\n`);
  });

  test('a resumed layer says where it picked up, off a TTY and on one (issue 10)', () => {
    const plain = sink(false);
    const progress = new PullProgress(plain.out, 'plain');
    progress.handle(layer('Pulling fs layer'));
    progress.handle({ ...layer('Downloading', { current: 48_200_000, total: 100_000_000 }), resumedFrom: 48_200_000 } as PullEvent);
    progress.handle(layer('Downloading', { current: 60_000_000, total: 100_000_000 }));
    progress.handle(layer('Verifying Checksum'));
    assert.equal(plain.text(), 'abababababab: Pulling fs layer\nabababababab: Resuming from 48.2MB\nabababababab: Verifying Checksum\n');

    const tty = sink(true);
    const board = new PullProgress(tty.out, 'tty');
    board.handle({ ...layer('Downloading', { current: 48_200_000, total: 100_000_000 }), resumedFrom: 48_200_000 } as PullEvent);
    board.finish();
    assert.match(tty.text(), /abababababab: Downloading \[=+>\s+\] 48\.2MB\/100MB \(resumed from 48\.2MB\)\n$/);
  });

  test('on a TTY, the next image of pull -a starts its lines under the last one instead of over it', () => {
    const { out, text } = sink(true);
    const progress = new PullProgress(out, 'tty');
    progress.handle({ type: 'start', reference: 'x:1', repository: 'library/x', tag: '1' });
    progress.handle(layer('Pull complete'));
    progress.handle({ type: 'done', reference: 'x:1', digest, updated: true });
    progress.handle({ type: 'start', reference: 'x:2', repository: 'library/x', tag: '2' });
    progress.handle(layer('Already exists'));
    progress.finish();
    const after = text().slice(text().indexOf('2: Pulling from'));
    assert.doesNotMatch(after, /\x1b\[\d+A/, 'no cursor-up past the lines printed for the previous image');
    assert.match(after, /\x1b\[2Kabababababab: Already exists\n$/);
  });

  test('an unknown --progress is refused with the choices', () => {
    assert.throws(() => new PullProgress(sink(false).out, 'fancy'), /invalid --progress "fancy" \(choose auto, plain, json or tty\)/);
  });

  test('--progress json prints one event per line', () => {
    const { out, text } = sink(false);
    const progress = new PullProgress(out, 'json');
    progress.handle(layer('Waiting'));
    assert.deepEqual(JSON.parse(text()), { type: 'layer', id: 'abababababab', digest, status: 'Waiting' });
  });
});
