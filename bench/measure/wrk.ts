/**
 * HTTP load with wrk (one thread, N connections): a C load generator leaves more of the 2 cores to
 * the server than a Node one would, and both servers face the same client.
 */
import { run } from '../proc.ts';

export interface Load {
  rps: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function toMs(value: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(value);
  if (!match) throw new Error(`unreadable wrk latency "${value}"`);
  const n = Number(match[1]);
  return match[2] === 'us' ? n / 1000 : match[2] === 'ms' ? n : match[2] === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(out: string): Load {
  const number = (re: RegExp): number => Number(re.exec(out)?.[1] ?? NaN);
  const percentile = (p: string): number => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return match?.[1] ? toMs(match[1]) : NaN;
  };
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    rps: number(/Requests\/sec:\s+([\d.]+)/),
    p50ms: percentile('50'),
    p99ms: percentile('99'),
    requests: number(/(\d+) requests in/),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

export async function load(url: string, options: { connections: number; seconds: number; headers: Record<string, string> }): Promise<Load> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.seconds}s`, '--latency', '--timeout', '5s'];
  for (const [name, value] of Object.entries(options.headers)) args.push('-H', `${name}: ${value}`);
  args.push(url);
  const result = await run('wrk', args, { timeoutMs: (options.seconds + 30) * 1000 });
  const parsed = parseWrk(result.stdout);
  if (!Number.isFinite(parsed.rps) || !Number.isFinite(parsed.p99ms)) throw new Error(`unreadable wrk output:\n${result.stdout}`);
  if (parsed.non2xx > 0 || parsed.socketErrors > 0) {
    throw new Error(`wrk ${url}: ${parsed.non2xx} non-2xx responses and ${parsed.socketErrors} socket errors of ${parsed.requests} requests`);
  }
  return parsed;
}
