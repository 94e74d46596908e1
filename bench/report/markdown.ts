/** bench/results/latest.md: the header (when, where, with what) and one table row per measurement. */
import type { Machine } from './machine.ts';
import type { Evaluated } from './evaluate.ts';
import type { Summary } from '../stats.ts';

export interface Header {
  machine: Machine;
  skiffRevision: string;
  skiffStartupMs: number;
  mode: string;
  rounds: number;
  bigMiB: number;
  limits: { sha256MBps?: number; ddWriteMBps?: number; loopbackMBps?: number; nodeStartMs?: number };
  warnings: string[];
  seconds: number;
}

function number(value: number, unit: string): string {
  // A multiple of a size (upstream bytes ÷ blob sizes): whole multiples as they are, anything else to the byte or so.
  if (unit === '×') return Number.isInteger(value) ? value.toFixed(1) : value.toFixed(6);
  if (unit === 's' || unit === 'ms') return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function cell(summary: Summary | undefined, unit: string, failed: boolean): string {
  if (!summary) return failed ? 'n/a (failed)' : '—';
  const spread = summary.n > 1 ? ` (${number(summary.min, unit)}–${number(summary.max, unit)})` : '';
  return `${number(summary.median, unit)}${spread}${failed ? ' ⚠' : ''}`;
}

function percent(fraction: number | undefined): string {
  return fraction === undefined ? '—' : `${(fraction * 100).toFixed(0)}%`;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/\|/g, '\\|').slice(0, 400);
}

export function markdown(header: Header, rows: Evaluated[]): string {
  const m = header.machine;
  const v = m.versions;
  const load = (l: number[] | undefined): string => (l ? l.map((x) => x.toFixed(2)).join(' ') : '?');
  const lines = [
    `# skiff benchmark, ${m.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- machine: ${m.nproc} cores (${m.cpuModel}), ${m.ramGiB.toFixed(1)} GiB RAM, Linux ${m.kernel}; load average ${load(m.loadStart)} at start, ${load(m.loadEnd)} at end`,
    `- skiff ${header.skiffRevision} on Node ${v.node} (CLI start-up, \`skiff --version\`: ${header.skiffStartupMs.toFixed(0)} ms); skopeo ${v.skopeo}; docker-registry ${v['docker-registry']}; nginx ${v.nginx}; wrk ${v.wrk}; curl ${v.curl}; OpenSSL ${v.openssl}`,
    `- ${header.mode}: ${header.rounds} interleaved rounds per case (A B A B …), big layers of ${header.bigMiB} MiB; took ${(header.seconds / 60).toFixed(1)} min`,
    `- limits: sha256 on one core ${header.limits.sha256MBps?.toFixed(0) ?? '?'} MB/s (openssl speed, 16 KiB blocks); disk write ${header.limits.ddWriteMBps?.toFixed(0) ?? '?'} MB/s (dd conv=fdatasync)${
      header.limits.loopbackMBps === undefined ? '' : `; loopback transfer ${header.limits.loopbackMBps.toFixed(0)} MB/s (curl of big-0's layer from the CNCF source into /dev/null, best of 3 × ~1 GiB)`
    }${header.limits.nodeStartMs === undefined ? '' : `; process start ${header.limits.nodeStartMs.toFixed(0)} ms (bare node -e 0)`}; nginx sendfile in the blob GET rows`,
    ...(header.limits.loopbackMBps === undefined
      ? []
      : ["- floor of a client row (pull, sync, copy): the slowest of loopback transfer, sha256 and fsync write for its bytes (a stream overlaps them), each stage's time in the row; of a no-op re-sync: the process start"]),
    '- cells: median (min–max); MB/s = 10⁶ bytes/s; ratio = skiff ÷ peer; % of limit = skiff (peer) as a fraction of the limit, 100% = at the limit',
    ...header.warnings.map((w) => `- **warning:** ${oneLine(w)}`),
    '',
    '| case | skiff | peer | ratio | % of limit | target | result |',
    '|---|---|---|---|---|---|---|',
  ];
  const notes: string[] = [];
  for (const e of rows) {
    const r = e.row;
    const title = `${r.title} [${r.unit}, ${r.better} is better]`;
    if (r.status) {
      lines.push(`| ${title} | ${r.status} | ${r.peerName}: — | — | — | ${e.target ?? '—'} | ${r.status} |`);
      continue;
    }
    const limit = e.skiffOfLimit !== undefined || e.peerOfLimit !== undefined ? `${percent(e.skiffOfLimit)} (${percent(e.peerOfLimit)}) of ${r.limit?.name}` : '—';
    const result = e.pass === undefined ? (e.reportOnly ? 'report' : e.target ? 'n/a' : '—') : e.pass ? 'pass' : '**FAIL**';
    const ratio = e.ratio === undefined ? '—' : `${e.ratio.toFixed(2)}×`;
    lines.push(
      `| ${title} | ${cell(e.skiff, r.unit, r.skiff.errors.length > 0)} | ${r.peerName}: ${cell(e.peer, r.unit, r.peer.errors.length > 0)} | ${ratio} | ${limit} | ${e.target ?? '—'} | ${result} |`,
    );
    for (const [who, s] of [['skiff', r.skiff], [r.peerName, r.peer]] as const) {
      if (s.errors.length) notes.push(`- ${r.title}, ${who}: ${oneLine(s.errors[0]!)}${s.errors.length > 1 ? ` (+${s.errors.length - 1} more)` : ''}`);
    }
    if (r.note) notes.push(`- ${r.title}: ${oneLine(r.note)}`);
  }
  if (notes.length) lines.push('', '## Notes and failures', '', ...notes);
  return `${lines.join('\n')}\n`;
}
