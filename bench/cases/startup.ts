/**
 * CLI start-up: `skiff --version` run as the harness runs every skiff command (bench/servers/skiff-cli.ts:
 * the private dist/ copy with bin/skiff's Node flags), against bare `node -e 0` with the same Node,
 * the floor under any command written for Node. Each round alternates them five times; every run
 * is a sample (spawn to exit, as the other client rows are timed).
 */
import { skiff } from '../clients.ts';
import type { Context } from '../context.ts';
import { recordNodeStart } from '../measure/limits.ts';
import { series, type Row } from '../model.ts';
import { run } from '../proc.ts';
import { interleave } from '../rounds.ts';
import { summarize } from '../stats.ts';

const RUNS_PER_ROUND = 5;

export async function startupCase(ctx: Context): Promise<Row[]> {
  const row: Row = {
    id: 'cli-startup',
    title: 'CLI start-up, `skiff --version`',
    unit: 'ms',
    better: 'lower',
    skiff: series(),
    peerName: 'bare node -e 0',
    peer: series(),
    note: `${RUNS_PER_ROUND} runs of each per round, alternating, every run a sample; the same Node binary (${ctx.skiff.node}); skiff with bin/skiff's flags`,
  };
  await interleave(
    ctx.options.rounds,
    [
      {
        name: 'skiff --version and node -e 0',
        series: [row.skiff, row.peer],
        async round() {
          for (let i = 0; i < RUNS_PER_ROUND; i++) {
            const version = await skiff(ctx.skiff, ['--version'], ctx.runDir);
            if (!/^\d+\.\d+\.\d+/.test(version.stdout.trim())) throw new Error(`skiff --version printed ${JSON.stringify(version.stdout.slice(0, 100))}`);
            row.skiff.samples.push(version.ms);
            row.peer.samples.push((await run(ctx.skiff.node, ['-e', '0'], { timeoutMs: 30_000 })).ms);
          }
        },
      },
    ],
    ctx.log,
  );
  recordNodeStart(row.peer.samples);
  const node = summarize(row.peer.samples);
  if (node) row.limit = { name: 'bare node -e 0', value: node.median, samples: row.peer.samples };
  return [row];
}
