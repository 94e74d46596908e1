import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalFlights, type Flight } from '../../src/proxy/flights.ts';

function flight(): Flight & { finish(): void } {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { done, finish };
}

test('callers of one key while its flight runs share it; start runs once', async () => {
  const flights = new LocalFlights<ReturnType<typeof flight>>();
  let starts = 0;
  const start = () => {
    starts++;
    return flight();
  };
  const joined = await Promise.all(Array.from({ length: 10 }, () => flights.join('sha256:a', start)));
  assert.equal(starts, 1);
  assert.ok(joined.every((f) => f === joined[0]));
  assert.equal(flights.size, 1);
  const other = await flights.join('sha256:b', start);
  assert.notEqual(other, joined[0]);
  assert.equal(starts, 2);
  other.finish();
  joined[0]!.finish();
});

test('the key is free again once the flight is done, and the next caller starts a new one', async () => {
  const flights = new LocalFlights<ReturnType<typeof flight>>();
  const first = await flights.join('k', flight);
  first.finish();
  await first.done;
  await Promise.resolve(); // the map lets go in the flight's own continuation
  assert.equal(flights.size, 0);
  const second = await flights.join('k', flight);
  assert.notEqual(second, first);
  second.finish();
});

test('a start that throws rejects its caller and holds no key', async () => {
  const flights = new LocalFlights<ReturnType<typeof flight>>();
  await assert.rejects(
    flights.join('k', () => {
      throw new Error('cannot start');
    }),
    /cannot start/,
  );
  assert.equal(flights.size, 0);
  const next = await flights.join('k', flight);
  next.finish();
});

test('two instances never share flights (no module global)', async () => {
  const a = new LocalFlights<ReturnType<typeof flight>>();
  const b = new LocalFlights<ReturnType<typeof flight>>();
  const fa = await a.join('k', flight);
  const fb = await b.join('k', flight);
  assert.notEqual(fa, fb);
  fa.finish();
  fb.finish();
});
