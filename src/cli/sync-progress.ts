import type { Writable } from 'node:stream';
import { humanSize } from '../images/human.ts';
import type { SyncEvent } from '../sync/sync-events.ts';
import { formatAddress } from '../sync/sync-task.ts';
import type { SyncSummary } from '../sync/sync-report.ts';

function timestamp(): string {
  return new Date().toISOString();
}

/**
 * What a sync run shows while it works. On a TTY: one live block redrawn at most every 200 ms
 * (bytes moved with rate and ETA of the transfers under way, images done/total, current
 * transfers). Off a TTY: one plain, timestamped line per image and rule outcome, to `log`.
 */
export class SyncProgress {
  private readonly tty: (Writable & { isTTY?: boolean }) | undefined;
  private readonly log: Writable;
  private readonly started = Date.now();
  private imagesTotal = 0;
  private imagesDone = 0;
  private bytes = 0;
  private readonly active = new Map<string, { size: number; at: number }>();
  private pendingBytes = 0;
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `screen` is the terminal for the live view (undefined off a TTY); `log` takes plain lines. */
  constructor(log: Writable, screen?: Writable & { isTTY?: boolean }) {
    this.log = log;
    this.tty = screen?.isTTY ? screen : undefined;
  }

  private line(text: string): void {
    if (this.tty && this.log === this.tty) this.clear();
    this.log.write(`${timestamp()} ${text}\n`);
  }

  readonly handle = (event: SyncEvent): void => {
    switch (event.type) {
      case 'pass':
        if (event.pass > 0) this.line(`retry pass ${event.pass}: ${event.jobs} failed task(s) queued again`);
        break;
      case 'planned':
        this.imagesTotal += event.tasks;
        this.line(`rule ${event.rule}: ${event.tasks} image(s)`);
        break;
      case 'rule-failed':
        this.line(`rule ${event.rule} failed${event.final ? '' : ' (will retry)'}: ${event.reason}`);
        break;
      case 'image-done': {
        if (event.outcome !== 'failed' || event.final) this.imagesDone++;
        const what = `${formatAddress(event.task.source)} -> ${formatAddress(event.task.destination)}`;
        if (event.outcome === 'failed') this.line(`failed${event.final ? '' : ' (will retry)'} ${what}: ${event.reason}`);
        else this.line(`${event.outcome} ${what} ${event.digest}${event.note ? ` (${event.note})` : ''}`);
        break;
      }
      case 'blob-start':
        this.active.set(event.digest, { size: event.size, at: 0 });
        this.pendingBytes += event.size;
        break;
      case 'blob-done':
        if (this.active.delete(event.digest)) this.pendingBytes -= event.size;
        break;
      case 'bytes':
        this.bytes += event.bytes;
        break;
      default:
    }
    if (this.tty) this.timer ??= setTimeout(() => this.draw(), 200);
  };

  private clear(): void {
    if (!this.tty || this.drawn === 0) return;
    this.tty.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private draw(): void {
    this.timer = undefined;
    if (!this.tty) return;
    const seconds = (Date.now() - this.started) / 1000;
    const rate = seconds > 0 ? this.bytes / seconds : 0;
    const inFlight = [...this.active.keys()].slice(0, 5);
    const eta = rate > 0 && this.pendingBytes > 0 ? ` ETA ${Math.ceil(this.pendingBytes / rate)}s` : '';
    const lines = [
      `images ${this.imagesDone}/${this.imagesTotal}  moved ${humanSize(this.bytes)} at ${humanSize(rate)}/s${eta}`,
      ...inFlight.map((digest) => `  transferring ${digest.slice(0, 19)}… ${humanSize(this.active.get(digest)!.size)}`),
    ];
    this.clear();
    this.tty.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }

  finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.clear();
  }
}

/** The end-of-run account: counts, bytes, throughput, and every failure with its reason. */
export function formatSummary(summary: SyncSummary): string {
  const { images, blobs } = summary;
  const lines = [
    `Synchronization finished, ${images.failed + summary.failedRules.length} tasks failed`,
    `images: ${images.total} total, ${images.synced} synced, ${images.skipped} skipped (up to date or filtered), ${images.failed} failed`,
    `blobs: ${blobs.copied.count} copied (${humanSize(blobs.copied.bytes)}), ${blobs.mounted.count} mounted, ${blobs.existing.count} already there`,
    `moved ${humanSize(summary.bytesMoved)} in ${summary.durationSeconds.toFixed(2)}s (${humanSize(summary.bytesPerSecond)}/s), ${summary.passes} pass(es)`,
  ];
  for (const rule of summary.failedRules) lines.push(`FAILED rule ${rule.rule}: ${rule.reason}`);
  for (const result of summary.results) if (result.outcome === 'failed') lines.push(`FAILED ${result.source} -> ${result.destination}: ${result.reason ?? 'unknown error'}`);
  return `${lines.join('\n')}\n`;
}

