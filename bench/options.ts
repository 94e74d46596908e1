/** Command-line options of `npm run bench`. */
import { parseArgs } from 'node:util';

export const CASES = ['push', 'blob-get', 'manifest-get', 'sync', 'copy-big', 'pull', 'stalled-readers', 'mirror', 'auth', 'gc'] as const;
export type CaseId = (typeof CASES)[number];

export interface Options {
  quick: boolean;
  rounds: number;
  /** Size of each `big` layer in MiB. */
  bigMiB: number;
  /** Seconds of load per manifest GET sample. */
  manifestSeconds: number;
  only: Set<CaseId>;
  /** Where latest.md / latest.json go. */
  outDir: string;
}

const USAGE = `usage: npm run bench -- [--quick] [--only ${CASES.join(',')}] [--rounds N] [--big-mib N] [--out DIR]`;

export function parseOptions(argv: string[], defaultOutDir: string): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      rounds: { type: 'string' },
      'big-mib': { type: 'string' },
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
  for (const name of (values.only ?? CASES.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(CASES as readonly string[]).includes(name)) throw new Error(`unknown case "${name}"; cases: ${CASES.join(', ')}\n${USAGE}`);
    only.add(name as CaseId);
  }
  const positive = (text: string | undefined, fallback: number, flag: string): number => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer\n${USAGE}`);
    return n;
  };
  return {
    quick,
    // The issue asks for at least 5 rounds; --quick trades that for a run under 3 minutes.
    rounds: positive(values.rounds, quick ? 3 : 5, '--rounds'),
    bigMiB: positive(values['big-mib'], quick ? 64 : 200, '--big-mib'),
    manifestSeconds: quick ? 3 : 10,
    only,
    outDir: values.out ?? defaultOutDir,
  };
}
