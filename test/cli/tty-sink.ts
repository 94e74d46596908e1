/** A Writable that collects what a progress renderer writes, posing as a TTY or not. Not a test file. */
import { Writable } from 'node:stream';

export function sink(isTTY: boolean) {
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
