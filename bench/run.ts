/**
 * `npm run bench [-- --quick] [-- --only case,…]`: skiff side by side with the CNCF registry, skopeo
 * and the machine's limits, in one run on this machine (issues #5, #14). Writes bench/results/latest.md
 * and latest.json and prints the table.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand } from '../src/testing/peers.ts';
import { authCase } from './cases/auth.ts';
import { blobGetCase } from './cases/blob-get.ts';
import { copyBigCase } from './cases/copy-big.ts';
import { gcCase } from './cases/gc.ts';
import { manifestGetCase } from './cases/manifest-get.ts';
import { mirrorCase } from './cases/mirror.ts';
import { pullCase } from './cases/pull.ts';
import { pushCase } from './cases/push.ts';
import { scaleOutCase } from './cases/scale-out.ts';
import { stalledReadersCase } from './cases/stalled-readers.ts';
import { startupCase } from './cases/startup.ts';
import { syncScaleCase } from './cases/sync-scale.ts';
import { syncCase } from './cases/sync.ts';
import { installSignalHandlers, onCleanup, runCleanup } from './cleanup.ts';
import { uiCase } from './ui.ts';
import { Context } from './context.ts';
import { cacheRoot } from './gen/sets.ts';
import { clientLimits, ddWriteMBps, sha256MBps } from './measure/limits.ts';
import { series, type Row } from './model.ts';
import { parseOptions, type CaseId } from './options.ts';
import { evaluate } from './report/evaluate.ts';
import { describeMachine } from './report/machine.ts';
import { markdown } from './report/markdown.ts';
import { prepareSkiff } from './servers/skiff-cli.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const started = performance.now();
const log = (line: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
};

const CASES: Record<CaseId, { needs: string[]; run: (ctx: Context) => Promise<Row[]> | Row[] }> = {
  push: { needs: ['skopeo', 'docker-registry', 'sync'], run: pushCase },
  'blob-get': { needs: ['skopeo', 'docker-registry', 'nginx', 'curl'], run: blobGetCase },
  'manifest-get': { needs: ['skopeo', 'docker-registry', 'wrk'], run: manifestGetCase },
  startup: { needs: [], run: startupCase },
  // curl: the loopback floor of the client rows.
  sync: { needs: ['skopeo', 'docker-registry', 'curl'], run: syncCase },
  'copy-big': { needs: ['skopeo', 'docker-registry', 'curl'], run: copyBigCase },
  pull: { needs: ['skopeo', 'docker-registry', 'curl'], run: pullCase },
  'stalled-readers': { needs: ['docker-registry'], run: stalledReadersCase },
  mirror: { needs: ['skopeo', 'docker-registry'], run: mirrorCase },
  auth: { needs: ['skopeo', 'docker-registry', 'wrk'], run: authCase },
  gc: { needs: ['wrk', 'cp'], run: gcCase },
  'sync-scale': { needs: ['skopeo', '/usr/bin/time', 'cp'], run: syncScaleCase },
  // Opt-in (options.ts's OPT_IN): Ceph (mon, OSD, radosgw), PostgreSQL and Redis as the scale-out tests start them.
  'scale-out': { needs: ['skopeo', 'docker-registry', 'nginx', 'wrk', 'curl', 'sync', 'ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'redis-server'], run: scaleOutCase },
  // Opt-in too: the web UI at 10,000 repositories in Chromium (/usr/bin/chromium), and /v2/ with and without it.
  ui: { needs: ['wrk', 'cp'], run: uiCase },
};

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2), join(repo, 'bench', 'results'));
  installSignalHandlers();

  const needed = new Set(['openssl', 'dd', ...[...options.only].flatMap((id) => CASES[id].needs)]);
  const missing: string[] = [];
  for (const command of needed) if (!(await hasCommand(command))) missing.push(command);
  if (missing.length) throw new Error(`missing: ${missing.join(', ')} (apt-get install -y skopeo docker-registry nginx wrk curl openssl time)`);

  const runDir = await mkdtemp(join(tmpdir(), 'skiff-bench-run-'));
  onCleanup('run dir', () => rm(runDir, { recursive: true, force: true }));
  log(`run dir ${runDir}; image cache ${cacheRoot()}`);

  const machine = await describeMachine(join(repo, 'node_modules', 'node', 'bin', 'node'));
  log('building skiff (bin/skiff) and taking a private copy of dist/');
  const skiff = await prepareSkiff(repo, runDir);
  for (const warning of skiff.warnings) log(`warning: ${warning}`);
  if (machine.loadStart[0]! > 0.5) skiff.warnings.push(`load average ${machine.loadStart[0]!.toFixed(2)} at start: something else is using this ${machine.nproc}-core machine`);
  const ctx = new Context(options, runDir, skiff, log);

  // The client cases add the loopback transfer and a bare Node start (measure/limits.ts) when they first need them.
  log('limits: sha256 (openssl speed), disk write (dd conv=fdatasync)');
  try {
    ctx.limits.sha256MBps = await sha256MBps();
    ctx.limits.ddWriteMBps = await ddWriteMBps(runDir, options.bigMiB);
    log(`  sha256 ${ctx.limits.sha256MBps.toFixed(0)} MB/s, dd ${ctx.limits.ddWriteMBps.toFixed(0)} MB/s`);
  } catch (error) {
    skiff.warnings.push(`limits: ${(error as Error).message}`);
  }

  const rows: Row[] = [];
  for (const id of Object.keys(CASES) as CaseId[]) {
    if (!options.only.has(id)) continue;
    log(`case ${id}`);
    try {
      rows.push(...(await CASES[id].run(ctx)));
    } catch (error) {
      // A case that cannot even set up (a server that will not start…) is a row of failures, not the end of the run.
      const message = (error as Error).message;
      log(`  case ${id} failed: ${message}`);
      const failed = series();
      failed.errors.push(message);
      rows.push({ id, title: `${id} (case failed)`, unit: '-', better: 'lower', skiff: failed, peerName: 'peer', peer: series() });
    }
  }

  machine.loadEnd = loadavg();
  const evaluated = rows.map(evaluate);
  const header = {
    machine,
    skiffRevision: skiff.revision,
    skiffStartupMs: skiff.startupMs,
    mode: options.quick ? 'quick run (--quick)' : 'full run',
    rounds: options.rounds,
    bigMiB: options.bigMiB,
    limits: { ...ctx.limits, ...clientLimits },
    warnings: skiff.warnings,
    seconds: (performance.now() - started) / 1000,
  };
  const table = markdown(header, evaluated);
  await mkdir(options.outDir, { recursive: true });
  await writeFile(join(options.outDir, 'latest.md'), table);
  await writeFile(join(options.outDir, 'latest.json'), `${JSON.stringify({ ...header, options: { ...options, only: [...options.only] }, results: evaluated }, null, 1)}\n`);
  process.stdout.write(`\n${table}\nwritten to ${join(options.outDir, 'latest.md')} and latest.json\n`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  process.stderr.write(`bench: ${(error as Error).message}\n`);
} finally {
  await runCleanup();
}
process.exit(code);
