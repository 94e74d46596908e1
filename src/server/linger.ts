import type { IncomingMessage, ServerResponse } from 'node:http';

/** How much of an unread body is read and dropped after an early answer, and for how long. */
const DRAIN_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 10_000;

/**
 * For an answer sent before the request body was read (an error on a push): go on reading and
 * dropping the body, within bounds, before the connection may close. Closing a socket with
 * unread data makes the kernel send a reset, which can destroy the answer before the client
 * reads it: a client that writes its whole body first saw "connection reset" instead of
 * "507 disk full" or "405 read-only". Within the bounds the connection even stays usable; a
 * client that keeps sending past them is cut. (Go's server does the same with a smaller bound.)
 */
export function drainAfterEarlyAnswer(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete) return;
  let drained = 0;
  const cut = () => req.socket?.destroy();
  const timer = setTimeout(cut, DRAIN_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_BYTES) cut();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  res.once('finish', () => req.resume());
}
