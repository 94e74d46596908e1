import type { Writable } from 'node:stream';

/**
 * Writes `chunk` and resolves once the destination has handed it to its resource (a socket, a
 * file), so the buffer may be reused; rejects with the write's error, or when the destination
 * closes first.
 */
export function writeAndWait(destination: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (destination.destroyed) {
      reject(new Error('the destination closed before the blob was sent'));
      return;
    }
    const onClose = (): void => reject(new Error('the destination closed before the blob was sent'));
    destination.once('close', onClose);
    destination.write(chunk, (error) => {
      destination.off('close', onClose);
      if (error) reject(error);
      else resolve();
    });
  });
}
