/** Command-line options of `npm run bench`. */
import { parseArgs } from 'node:util';

export const CASES = ['push', 'blob-get', 'manifest-get', 'startup', 'sync', 'copy-big', 'pull', 'stalled-readers', 'mirror', 'auth', 'gc', 'sync-scale', 'scale-out', 'ui'] as const;
export type CaseId = (typeof CASES)[number];
/**
 * Cases a plain `npm run bench` leaves out; `--only` runs them. scale-out starts Ceph, PostgreSQL
 * and Redis and pushes 1 GiB per contestant and round (~70 s a round, ~9 min at 5 rounds). ui
 * (bench/ui.ts, issue 16) drives Chromium against 10,000 repositories (~1.5 min).
 */
export const OPT_IN: readonly CaseId[] = ['scale-out', 'ui'];

export interface Options {
  quick: boolean;
  rounds: number;
  /** Size of each `big` layer in MiB. */
  bigMiB: number;
  /** Big-layer sizes the pull case pulls, one row each, in one run (issue 14: 200 and 64 MiB). */
  pullMiB: number[];
  /** Image counts of the sync-scale case. */
  scaleImages: number[];
  /** Size of the layer the scale-out case pushes in one request while it samples the servers' RSS (MiB). */
  rssPushMiB: number;
  /** Seconds of load per manifest GET sample. */
  manifestSeconds: number;
  only: Set<CaseId>;
  /** Where latest.md / latest.json go. */
  outDir: string;
}

const USAGE = `usage: npm run bench -- [--quick] [--only ${CASES.join(',')}] [--rounds N] [--big-mib N] [--pull-mib N,N] [--scale-images 200,1000,10000] [--rss-push-mib N] [--out DIR]`;

export function parseOptions(argv: string[], defaultOutDir: string): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      'big-mib': { type: 'string' },
      'pull-mib': { type: 'string' },
      'scale-images': { type: 'string' },
      'rss-push-mib': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const only = new Set<CaseId>();
  for (const name of (values.only ?? CASES.filter((id) => !OPT_IN.includes(id)).join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(CASES as readonly string[]).includes(name)) throw new Error(`unknown case "${name}"; cases: ${CASES.join(', ')}\n${USAGE}`);
    only.add(name as CaseId);
  }
  const positive = (text: string | undefined, fallback: number, flag: string): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer\n${USAGE}`);
    return n;
  };
  const bigMiB = positive(values['big-mib'], quick ? 64 : 200, '--big-mib');
  // Issue 14 sets the pull target for the 200 and the 64 MiB image: both are rows of a full run
  // (the --big-mib set first); --quick keeps the --big-mib one only.
  const pullList = values['pull-mib']?.split(',').map((s) => s.trim()).filter(Boolean) ?? [];
  if (values['pull-mib'] !== undefined && pullList.length === 0) throw new Error(`--pull-mib needs at least one size\n${USAGE}`);
  const pullMiB = [...new Set(pullList.length > 0 ? pullList.map((s) => positive(s, 0, '--pull-mib')) : quick ? [bigMiB] : [bigMiB, 64])];
  return {
    quick,
    // The issue asks for at least 5 rounds; --quick trades that for a run under 3 minutes.
    rounds: positive(values.rounds, quick ? 3 : 5, '--rounds'),
    bigMiB,
    pullMiB,
    scaleImages: (() => {
      const text = values['scale-images'];
      if (text === undefined) return [200, 1000, 10_000];
      const list = text.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
      if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 99_999)) throw new Error(`--scale-images takes image counts from 1 to 99999, e.g. 200,1000,10000\n${USAGE}`);
      return list;
    })(),
    // Issue 15: RSS during a 1 GiB push; --quick keeps the row, on a quarter of the bytes.
    rssPushMiB: positive(values['rss-push-mib'], quick ? 256 : 1024, '--rss-push-mib'),
    manifestSeconds: quick ? 3 : 10,
    only,
    outDir: values.out ?? defaultOutDir,
  };
}
