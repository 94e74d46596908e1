/**
 * Samples a process's resident memory from /proc while a case runs (VmHWM alone would remember
 * earlier cases). VmRSS counts the mapped executable too (a Node binary's code is ~35–50 MiB of it),
 * so RssAnon, the process's own heap and buffers, is kept beside it.
 */
import { readFileSync } from 'node:fs';

type Field = 'VmRSS' | 'VmHWM' | 'RssAnon';

function statusKiB(pid: number): Partial<Record<Field, number>> {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const out: Partial<Record<Field, number>> = {};
    for (const field of ['VmRSS', 'VmHWM', 'RssAnon'] as const) {
      const match = new RegExp(`${field}:\\s+(\\d+)`).exec(status);
      if (match) out[field] = Number(match[1]);
    }
    return out;
  } catch {
    return {};
  }
}

export interface Memory {
  /** Peak sampled VmRSS, MiB. */
  peakMiB: number;
  /** Peak sampled RssAnon, MiB. */
  peakAnonMiB: number;
  /** Lifetime VmHWM at the end, MiB. */
  hwmMiB: number;
  samples: number;
}

export interface RssSampler {
  stop(): Memory;
}

export function sampleRss(pid: number, everyMs = 5): RssSampler {
  let peak = 0;
  let peakAnon = 0;
  let samples = 0;
  const sample = (): Partial<Record<Field, number>> => {
    const now = statusKiB(pid);
    peak = Math.max(peak, now.VmRSS ?? 0);
    peakAnon = Math.max(peakAnon, now.RssAnon ?? 0);
    samples++;
    return now;
  };
  sample();
  // A synchronous read every few ms costs us little and catches short peaks of a 100 ms transfer.
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const last = sample();
      return { peakMiB: peak / 1024, peakAnonMiB: peakAnon / 1024, hwmMiB: (last.VmHWM ?? NaN) / 1024, samples };
    },
  };
}

export function rssMiB(pid: number): { rss: number; anon: number } {
  const now = statusKiB(pid);
  return { rss: (now.VmRSS ?? NaN) / 1024, anon: (now.RssAnon ?? NaN) / 1024 };
}
