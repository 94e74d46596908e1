import type { Writable } from 'node:stream';
import { humanSize } from '../images/human.ts';
import type { PullEvent } from '../images/pull.ts';
import { ProgressBoard, progressBar, resolveProgressMode, type ProgressMode } from './progress-board.ts';

export { humanSize };

/**
 * Renders pull events the way `docker pull` does: on a TTY one redrawn line per layer (at most
 * every 100 ms), off a TTY a plain line per status change, or JSON lines with `json`.
 * A resumed download says where it picked up (`Resuming from 48.2MB`): docker has no resume to
 * report, and without it a resumed layer looked like one that never started.
 */
export class PullProgress {
  private readonly out: Writable & { isTTY?: boolean };
  private readonly mode: 'tty' | 'plain' | 'json';
  private readonly board: ProgressBoard;
  /** Plain mode: the last status printed per layer, so each change is one line. */
  private readonly printed = new Map<string, string>();
  /** Where each resumed layer picked up, shown beside its bar on a TTY. */
  private readonly resumed = new Map<string, number>();

  constructor(out: Writable & { isTTY?: boolean }, mode: ProgressMode | string = 'auto') {
    this.out = out;
    this.mode = resolveProgressMode(mode, out);
    this.board = new ProgressBoard(out);
  }

  readonly handle = (event: PullEvent): void => {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(event)}\n`);
      return;
    }
    if (event.type === 'start') {
      this.line(`${event.tag ? `${event.tag}: ` : ''}Pulling from ${event.repository}\n`);
      return;
    }
    if (event.type === 'done') {
      this.line(`Digest: ${event.digest}\nStatus: ${event.updated ? 'Downloaded newer image' : 'Image is up to date'} for ${event.reference}\n`);
      return;
    }
    if (event.resumedFrom !== undefined && event.resumedFrom > 0) this.resumed.set(event.id, event.resumedFrom);
    if (this.mode === 'plain') {
      const status = event.resumedFrom ? `Resuming from ${humanSize(event.resumedFrom)}` : event.status;
      if (this.printed.get(event.id) === event.status) return;
      this.printed.set(event.id, event.status);
      this.out.write(`${event.id}: ${status}\n`);
      return;
    }
    const from = this.resumed.get(event.id);
    const text =
      event.status === 'Downloading' && event.total !== undefined
        ? `${event.id}: Downloading ${progressBar(event.current ?? 0, event.total)} ${humanSize(event.current ?? 0)}/${humanSize(event.total)}${from ? ` (resumed from ${humanSize(from)})` : ''}`
        : `${event.id}: ${event.status}`;
    this.board.set(event.id, text);
  };

  /** A line of its own: on a TTY below the layers drawn so far, which the next image starts under. */
  private line(text: string): void {
    if (this.mode === 'tty') this.board.print(text);
    else this.out.write(text);
    this.printed.clear();
    this.resumed.clear();
  }

  flush(): void {
    this.board.flush();
  }

  /** The last state drawn and no redraw left pending (a failed pull stops between draws). */
  finish(): void {
    this.board.flush();
  }
}
