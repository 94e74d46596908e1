/** The run's setting for the report header: machine, kernel, load, and every tool's version. */
import { cpus, loadavg, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { run } from '../proc.ts';

export interface Machine {
  date: string;
  nproc: number;
  cpuModel: string;
  ramGiB: number;
  kernel: string;
  /** Load averages at the start and end: a busy neighbour shows up here. */
  loadStart: number[];
  loadEnd?: number[];
  versions: Record<string, string>;
}

async function version(command: string, args: string[], pick: RegExp): Promise<string> {
  try {
    // wrk -v exits 1 and nginx -v writes to stderr: read both, ignore the status.
    const result = await run(command, args, { timeoutMs: 15_000, allowFail: true });
    return pick.exec(`${result.stdout}\n${result.stderr}`)?.[1] ?? 'unknown';
  } catch {
    return 'missing';
  }
}

export async function describeMachine(node: string): Promise<Machine> {
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    ramGiB: totalmem() / 1024 ** 3,
    kernel,
    loadStart: loadavg(),
    versions: {
      skopeo: await version('skopeo', ['--version'], /version (\S+)/),
      'docker-registry': await version('docker-registry', ['--version'], /(\d+\.\d+\.\d+\S*)/),
      nginx: await version('nginx', ['-v'], /nginx\/(\S+)/),
      node: await version(node, ['--version'], /v(\S+)/),
      wrk: await version('wrk', ['-v'], /wrk (?:debian\/)?(\S+)/),
      curl: await version('curl', ['--version'], /curl (\S+)/),
      openssl: await version('openssl', ['version'], /OpenSSL (\S+)/),
    },
  };
}
