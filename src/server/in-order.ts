import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Runs the requests of one connection one at a time, in the order they arrived. node:http hands
 * pipelined requests to the handler as soon as they are parsed, so `PUT <upload>?digest=D`
 * followed by `GET …/blobs/D` in one TCP write would race; RFC 9112 §9.3.2 allows parallel
 * handling only for safe methods, and ordering every request is simpler and costs nothing
 * for clients that do not pipeline.
 */
export class InOrder {
  private readonly tails = new WeakMap<Socket, Promise<void>>();

  run(req: IncomingMessage, res: ServerResponse, handle: () => void): void {
    const socket = req.socket;
    const previous = this.tails.get(socket);
    const done = new Promise<void>((resolve) => res.once('close', resolve));
    this.tails.set(socket, previous ? previous.then(() => done) : done);
    if (previous) void previous.then(handle);
    else handle();
  }
}
