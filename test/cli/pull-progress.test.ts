import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { PullProgress, humanSize } from '../../src/cli/pull-progress.ts';
import type { PullEvent } from '../../src/images/pull.ts';

function sink(isTTY: boolean) {
  let text = '';
  const out = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    }),
    { isTTY },
  );
  return { out, text: () => text };
}

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

  test('--progress json prints one event per line', () => {
    const { out, text } = sink(false);
    const progress = new PullProgress(out, 'json');
    progress.handle(layer('Waiting'));
    assert.deepEqual(JSON.parse(text()), { type: 'layer', id: 'abababababab', digest, status: 'Waiting' });
  });
});
