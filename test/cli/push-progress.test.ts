import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PushProgress } from '../../src/cli/push-progress.ts';
import type { PushEvent, PushStatus } from '../../src/images/push.ts';
import { sink } from './tty-sink.ts';

const digest = `sha256:${'cd'.repeat(32)}` as const;
const layer = (id: string, status: PushStatus, extra: { from?: string; current?: number; total?: number } = {}): PushEvent => ({ type: 'layer', id, digest, status, ...extra });
const start: PushEvent = { type: 'start', repository: '127.0.0.1:5000/team/app' };
const done: PushEvent = { type: 'done', tag: 'v1', digest, size: 1234 };

/** Issue 10 §3: `docker push`'s display for `skiff push`. */
describe('docker-style push progress', () => {
  test('off a TTY: one line per status change, docker\'s words, then `<tag>: digest: … size: N`', () => {
    const { out, text } = sink(false);
    const progress = new PushProgress(out);
    const events: PushEvent[] = [
      start,
      layer('aaaaaaaaaaaa', 'Preparing'),
      layer('bbbbbbbbbbbb', 'Preparing'),
      layer('cccccccccccc', 'Preparing'),
      layer('bbbbbbbbbbbb', 'Waiting'),
      layer('aaaaaaaaaaaa', 'Pushing', { current: 0, total: 3_000_000 }),
      layer('aaaaaaaaaaaa', 'Pushing', { current: 1_200_000, total: 3_000_000 }),
      layer('cccccccccccc', 'Layer already exists'),
      layer('aaaaaaaaaaaa', 'Pushed'),
      layer('bbbbbbbbbbbb', 'Mounted from', { from: 'library/alpine' }),
      done,
    ];
    events.forEach(progress.handle);
    progress.finish();
    assert.equal(
      text(),
      [
        'The push refers to repository [127.0.0.1:5000/team/app]',
        'aaaaaaaaaaaa: Preparing',
        'bbbbbbbbbbbb: Preparing',
        'cccccccccccc: Preparing',
        'bbbbbbbbbbbb: Waiting',
        'aaaaaaaaaaaa: Pushing',
        'cccccccccccc: Layer already exists',
        'aaaaaaaaaaaa: Pushed',
        'bbbbbbbbbbbb: Mounted from library/alpine',
        `v1: digest: ${digest} size: 1234`,
        '',
      ].join('\n'),
    );
  });

  test('on a TTY: a line per layer redrawn in place with a bar and bytes, at most every 100 ms', async () => {
    const { out, text } = sink(true);
    const progress = new PushProgress(out, 'auto');
    progress.handle(start);
    progress.handle(layer('aaaaaaaaaaaa', 'Preparing'));
    progress.handle(layer('bbbbbbbbbbbb', 'Preparing'));
    progress.handle(layer('aaaaaaaaaaaa', 'Pushing', { current: 1_200_000, total: 3_000_000 }));
    const early = text();
    assert.doesNotMatch(early, /Pushing/, 'changes within 100 ms of the last draw wait for the next one');
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.match(text(), /\x1b\[1A\x1b\[2Kaaaaaaaaaaaa: Pushing \[=+>\s+\] 1\.2MB\/3MB\n\x1b\[2Kbbbbbbbbbbbb: Preparing\n$/);
    progress.handle(layer('aaaaaaaaaaaa', 'Pushed'));
    progress.handle(layer('bbbbbbbbbbbb', 'Layer already exists'));
    progress.handle(done);
    progress.finish();
    assert.match(text(), /\x1b\[2Kaaaaaaaaaaaa: Pushed\n\x1b\[2Kbbbbbbbbbbbb: Layer already exists\nv1: digest: sha256:(cd)+ size: 1234\n$/, 'the final state is drawn before the digest line');
  });

  test('--progress json prints the events, one per line', () => {
    const { out, text } = sink(true);
    const progress = new PushProgress(out, 'json');
    progress.handle(layer('aaaaaaaaaaaa', 'Pushing', { current: 5, total: 10 }));
    progress.handle(done);
    assert.deepEqual(text().trimEnd().split('\n').map((line) => JSON.parse(line) as unknown), [
      { type: 'layer', id: 'aaaaaaaaaaaa', digest, status: 'Pushing', current: 5, total: 10 },
      { type: 'done', tag: 'v1', digest, size: 1234 },
    ]);
  });

  test('--progress tty draws even when stdout is not a terminal; plain never draws', () => {
    const forced = sink(false);
    new PushProgress(forced.out, 'tty').handle(layer('aaaaaaaaaaaa', 'Preparing'));
    assert.equal(forced.text(), '\x1b[2Kaaaaaaaaaaaa: Preparing\n');
    const plain = sink(true);
    new PushProgress(plain.out, 'plain').handle(layer('aaaaaaaaaaaa', 'Preparing'));
    assert.equal(plain.text(), 'aaaaaaaaaaaa: Preparing\n');
  });
});
