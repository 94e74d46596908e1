import type { Writable } from 'node:stream';
import { humanSize } from '../images/human.ts';
import type { PullEvent } from '../images/pull.ts';

export { humanSize };

function bar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}]`;
}

/**
 * Renders pull events the way `docker pull` does: on a TTY one redrawn line per layer (at most
 * every 100 ms), off a TTY a plain line per status change, or JSON lines with `json`.
 */
export class PullProgress {
  private readonly out: Writable & { isTTY?: boolean };
  private readonly mode: 'tty' | 'plain' | 'json';
  private readonly lines = new Map<string, string>();
  private drawn = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(out: Writable & { isTTY?: boolean }, mode: 'auto' | 'plain' | 'json' | 'tty' = 'auto') {
    this.out = out;
    this.mode = mode === 'auto' ? (out.isTTY ? 'tty' : 'plain') : mode;
  }

  readonly handle = (event: PullEvent): void => {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify(event)}\n`);
      return;
    }
    if (event.type === 'start') {
      this.out.write(`${event.tag ? `${event.tag}: ` : ''}Pulling from ${event.repository}\n`);
      return;
    }
    if (event.type === 'done') {
      this.flush();
      this.out.write(`Digest: ${event.digest}\nStatus: ${event.updated ? 'Downloaded newer image' : 'Image is up to date'} for ${event.reference}\n`);
      return;
    }
    const text =
      event.status === 'Downloading' && event.total !== undefined
        ? `${event.id}: Downloading ${bar(event.current ?? 0, event.total)} ${humanSize(event.current ?? 0)}/${humanSize(event.total)}`
        : `${event.id}: ${event.status}`;
    if (this.mode === 'plain') {
      if (event.status !== 'Downloading' || event.current === 0) this.out.write(`${event.id}: ${event.status}\n`);
      return;
    }
    this.lines.set(event.id, text);
    this.schedule();
  };

  private schedule(): void {
    const wait = 100 - (Date.now() - this.lastDraw);
    if (wait <= 0) this.draw();
    else this.timer ??= setTimeout(() => this.draw(), wait);
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.lastDraw = Date.now();
    let text = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const line of this.lines.values()) text += `\x1b[2K${line}\n`;
    this.drawn = this.lines.size;
    this.out.write(text);
  }

  flush(): void {
    if (this.mode === 'tty' && this.lines.size > 0) this.draw();
  }

  /** The last state drawn and no redraw left pending (a failed pull stops between draws). */
  finish(): void {
    if (this.timer) this.draw();
  }
}
