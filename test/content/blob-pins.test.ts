/**
 * BlobPins: a delete never runs while the blob is pinned, and a pin asked for during a delete
 * waits for it to end (then finds the blob gone, instead of half-gone).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlobPins } from '../../src/content/blob-pins.ts';
import { digestOf } from '../../src/digest/digest.ts';

const a = digestOf('a');
const b = digestOf('b');

test('a pinned blob is not deleted; once every pin is let go it is', async () => {
  const pins = new BlobPins();
  const first = await pins.pin(a);
  const second = await pins.pin(a);
  let ran = 0;
  const remove = async () => {
    ran++;
    return true;
  };
  assert.equal(await pins.deleteUnpinned(a, remove), 'pinned');
  first();
  first(); // idempotent: the other pin still holds
  assert.deepEqual(pins.pinned(), [a]);
  assert.equal(await pins.deleteUnpinned(a, remove), 'pinned');
  second();
  assert.equal(pins.isPinned(a), false);
  assert.equal(await pins.deleteUnpinned(a, remove), 'deleted');
  assert.equal(ran, 1);
  assert.equal(await pins.deleteUnpinned(b, async () => false), 'kept', 'the remover may decide to keep it');
});

test('a pin asked for during a delete waits until the delete is over', async () => {
  const pins = new BlobPins();
  const order: string[] = [];
  let finish!: () => void;
  const deleting = pins.deleteUnpinned(a, async () => {
    order.push('delete starts');
    await new Promise<void>((resolve) => (finish = resolve));
    order.push('delete ends');
    return true;
  });
  const pinned = pins.pin(a).then((release) => {
    order.push('pinned');
    return release;
  });
  const other = await pins.pin(b); // another digest is not held up
  order.push('other pinned');
  assert.equal(await pins.deleteUnpinned(a, async () => true), 'pinned', 'one delete at a time');
  finish();
  assert.equal(await deleting, 'deleted');
  (await pinned)();
  other();
  assert.deepEqual(order, ['delete starts', 'other pinned', 'delete ends', 'pinned']);
  assert.deepEqual(pins.pinned(), []);
});

test('hold lets go when the work fails', async () => {
  const pins = new BlobPins();
  await assert.rejects(pins.hold(a, async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(pins.isPinned(a), false);
  assert.equal(await pins.hold(a, async () => pins.isPinned(a)), true);
});
