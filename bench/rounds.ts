/**
 * Runs contestants interleaved, A B A B …, so drift on a shared machine (other jobs, page cache,
 * thermal state) falls on both sides alike. A contestant that fails before it ever succeeded is
 * dropped for the remaining rounds: the failure is systematic (e.g. a command that does not exist yet).
 */
import type { Series } from './model.ts';

export interface Contestant {
  name: string;
  /** Where a failure is recorded (the first series the contestant writes to). */
  series: Series[];
  round(index: number): Promise<void>;
}

/**
 * `rotate`: round i starts with contestant i mod n (A B C, B C A, C A B, …), for cases of three or
 * more where whoever always goes first or last after a given other would carry its after-effects.
 */
export async function interleave(rounds: number, contestants: Contestant[], log: (line: string) => void, options: { rotate?: boolean } = {}): Promise<void> {
  const dropped = new Set<string>();
  const succeeded = new Set<string>();
  for (let i = 0; i < rounds; i++) {
    const shift = options.rotate ? i % contestants.length : 0;
    for (const contestant of [...contestants.slice(shift), ...contestants.slice(0, shift)]) {
      if (dropped.has(contestant.name)) continue;
      try {
        await contestant.round(i);
        succeeded.add(contestant.name);
      } catch (error) {
        const message = (error as Error).message;
        for (const s of contestant.series) s.errors.push(`round ${i + 1}: ${message}`);
        log(`  ${contestant.name} round ${i + 1} failed: ${message.split('\n').slice(0, 3).join(' | ')}`);
        if (!succeeded.has(contestant.name)) {
          dropped.add(contestant.name);
          log(`  ${contestant.name}: no successful round; skipping its remaining rounds`);
        }
      }
    }
  }
}
