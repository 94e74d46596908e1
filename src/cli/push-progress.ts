import type { Writable } from 'node:stream';
import { humanSize } from '../images/human.ts';
import type { PushEvent } from '../images/push.ts';
import { ProgressBoard, progressBar, resolveProgressMode, type ProgressMode } from './progress-board.ts';

/**
 * Renders push events the way `docker push` does: `The push refers to repository [...]`, a line
 * per layer (`Preparing`, `Waiting`, `Pushing [==>  ] 1.2MB/3MB`, `Pushed`, `Layer already
 * exists`, `Mounted from <repo>`), then `<tag>: digest: sha256:… size: N`. On a TTY the layer
 * lines redraw in place at most every 100 ms; off a TTY each status change is one line (the
 * byte counts only on a TTY, as docker); `json` prints the events.
 */
export class PushProgress {
  private readonly out: Writable & { isTTY?: boolean };
  private readonly mode: 'tty' | 'plain' | 'json';
  private readonly board: ProgressBoard;
  private readonly printed = new Map<string, string>();

  constructor(out: Writable & { isTTY?: boolean }, mode: ProgressMode | string = 'auto') {
    this.out = out;
    this.mode = resolveProgressMode(mode, out);
    this.board = new ProgressBoard(out);
  }

  readonly handle = (event: PushEvent): void => {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(event)}\n`);
      return;
    }
    if (event.type === 'start') return this.line(`The push refers to repository [${event.repository}]\n`);
    if (event.type === 'done') return this.line(`${event.tag}: digest: ${event.digest} size: ${event.size}\n`);
    const status = event.status === 'Mounted from' ? `Mounted from ${event.from ?? ''}`.trimEnd() : event.status;
    if (this.mode === 'plain') {
      if (this.printed.get(event.id) === event.status) return;
      this.printed.set(event.id, event.status);
      this.out.write(`${event.id}: ${status}\n`);
      return;
    }
    const text =
      event.status === 'Pushing' && event.total !== undefined
        ? `${event.id}: Pushing ${progressBar(event.current ?? 0, event.total)} ${humanSize(event.current ?? 0)}/${humanSize(event.total)}`
        : `${event.id}: ${status}`;
    this.board.set(event.id, text);
  };

  private line(text: string): void {
    if (this.mode === 'tty') this.board.print(text);
    else this.out.write(text);
    this.printed.clear();
  }

  /** The last state drawn and no redraw left pending (a failed push stops between draws). */
  finish(): void {
    this.board.flush();
  }
}
