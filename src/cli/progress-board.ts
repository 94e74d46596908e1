import type { Writable } from 'node:stream';

export type ProgressMode = 'auto' | 'plain' | 'json' | 'tty';

/** `auto` is `tty` on a terminal, else `plain`; anything else is refused with the choices. */
export function resolveProgressMode(mode: string, out: { isTTY?: boolean }): 'tty' | 'plain' | 'json' {
  if (mode === 'auto') return out.isTTY ? 'tty' : 'plain';
  if (mode === 'tty' || mode === 'plain' || mode === 'json') return mode;
  throw new Error(`invalid --progress ${JSON.stringify(mode)} (choose auto, plain, json or tty)`);
}

/** docker's progress bar: 50 columns, `=` done, `>` at the front. */
export function progressBar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}]`;
}

/**
 * One line per id, kept in first-seen order and redrawn in place (cursor up, clear line) at most
 * every 100 ms: a progress event per chunk would otherwise repaint the terminal thousands of
 * times a second. Lines written with `print` scroll above the board.
 */
export class ProgressBoard {
  private readonly out: Writable;
  private readonly lines = new Map<string, string>();
  private drawn = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(out: Writable) {
    this.out = out;
  }

  set(id: string, text: string): void {
    this.lines.set(id, text);
    const wait = 100 - (Date.now() - this.lastDraw);
    if (wait <= 0) this.draw();
    else this.timer ??= setTimeout(() => this.draw(), wait);
  }

  /**
   * Draws a change still waiting for its 100 ms, and cancels that wait: before a final line (no
   * layer left at a stale state), and at the end (a failed command stops between draws).
   */
  flush(): void {
    if (this.timer) this.draw();
  }

  /** A line under the board; the board starts again below it. */
  print(text: string): void {
    this.flush();
    this.out.write(text);
    this.lines.clear();
    this.drawn = 0;
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
}
