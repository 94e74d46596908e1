/**
 * Blob download throughput with curl writing to /dev/null: C on the client side, so on 2 cores the
 * client takes as little CPU from the server as possible. All streams run in one curl (--parallel,
 * all connected at once), and time comes from curl's own per-transfer clock, so process start-up is
 * not counted: that matters when a transfer takes 30–100 ms. One stream repeats its GET `repeat`
 * times over the same connection and adds up the transfer times, so a sample lasts long enough to
 * rise above scheduling noise on a shared 2-core VM.
 */
import { run } from '../proc.ts';

export interface Download {
  /** Aggregate MB/s (10^6 bytes per second) over all streams. */
  mbps: number;
  bytes: number;
  seconds: number;
}

export async function downloadMany(url: string, streams: number, expectedSize: number, repeat = 1, timeoutMs = 120_000): Promise<Download> {
  const parallel = streams > 1;
  const transfers = parallel ? streams : repeat;
  const args = ['--silent', '--show-error', '--noproxy', '*', '--write-out', '%{http_code} %{size_download} %{time_total}\\n'];
  if (parallel) args.push('--parallel', '--parallel-immediate', '--parallel-max', String(streams));
  for (let i = 0; i < transfers; i++) args.push('--output', '/dev/null', url);
  const result = await run('curl', args, { timeoutMs });
  const lines = result.stdout.trim().split('\n').filter(Boolean);
  if (lines.length !== transfers) throw new Error(`curl reported ${lines.length} transfers, expected ${transfers}: ${result.stdout}`);
  let bytes = 0;
  let seconds = 0;
  for (const line of lines) {
    const [code, size, time] = line.split(' ');
    if (code !== '200' || Number(size) !== expectedSize) throw new Error(`GET ${url}: HTTP ${code}, ${size} of ${expectedSize} bytes`);
    bytes += Number(size);
    // Parallel streams start together, so the slowest one's duration is the batch's wall time;
    // sequential transfers simply add up.
    seconds = parallel ? Math.max(seconds, Number(time)) : seconds + Number(time);
  }
  return { mbps: bytes / seconds / 1e6, bytes, seconds };
}
