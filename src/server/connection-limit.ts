import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';

const REFUSAL_BODY = JSON.stringify({
  errors: [{ code: 'UNAVAILABLE', message: 'too many open connections to this registry; retry shortly' }],
});
const REFUSAL =
  'HTTP/1.1 503 Service Unavailable\r\n' +
  'Retry-After: 1\r\n' +
  'Content-Type: application/json; charset=utf-8\r\n' +
  `Content-Length: ${Buffer.byteLength(REFUSAL_BODY)}\r\n` +
  'Docker-Distribution-API-Version: registry/2.0\r\n' +
  'Connection: close\r\n\r\n' +
  REFUSAL_BODY;

/**
 * Caps open connections. Node's own `server.maxConnections` closes the excess without a word,
 * which clients see as a network failure; here the excess gets a 503 with Retry-After, so
 * clients back off and retry. The refusal is written before the request is read: it is the
 * answer to whatever that connection sends first.
 */
export function limitConnections(server: Server, max: number, log: Logger, onCount?: (open: number) => void, onRefuse?: () => void): { open(): number } {
  const httpListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  let open = 0;
  let refused = 0;
  let lastReport = 0;
  server.on('connection', (socket: Socket) => {
    if (open >= max) {
      refused++;
      onRefuse?.();
      const now = Date.now();
      if (now - lastReport > 10_000) {
        log.warn({ open, maxConnections: max, refused }, 'connection limit reached: answering new connections 503 (maxConnections)');
        lastReport = now;
        refused = 0;
      }
      socket.on('error', () => undefined);
      socket.setTimeout(2000, () => socket.destroy());
      socket.resume(); // read and drop what the client sends, so closing does not reset the connection
      socket.end(REFUSAL);
      return;
    }
    open++;
    onCount?.(open);
    socket.once('close', () => {
      open--;
      onCount?.(open);
    });
    for (const listener of httpListeners) listener.call(server, socket);
  });
  return { open: () => open };
}
