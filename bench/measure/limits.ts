/** The machine's own limits, measured in the same run: one core's sha256 rate and the disk's durable write rate. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../proc.ts';

/** `openssl speed -evp sha256` at 16 KiB blocks, in MB/s (openssl prints thousands of bytes per second). */
export async function sha256MBps(): Promise<number> {
  const result = await run('openssl', ['speed', '-evp', 'sha256', '-bytes', '16384', '-seconds', '2'], { timeoutMs: 60_000 });
  const match = /^sha256\s+([\d.]+)k\s*$/m.exec(result.stdout);
  if (!match) throw new Error(`unreadable openssl speed output:\n${result.stdout.slice(-500)}`);
  return (Number(match[1]) * 1000) / 1e6;
}

/** `dd … conv=fdatasync` of `mib` MiB of zeros into the run dir (same disk as the registries' data), in MB/s. */
export async function ddWriteMBps(runDir: string, mib: number): Promise<number> {
  const file = join(runDir, 'dd.bin');
  try {
    const result = await run('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fdatasync'], { timeoutMs: 300_000 });
    const match = /(\d+) bytes .* copied, ([\d.]+) s/.exec(result.stderr);
    if (!match) throw new Error(`unreadable dd output: ${result.stderr}`);
    return Number(match[1]) / Number(match[2]) / 1e6;
  } finally {
    await rm(file, { force: true });
  }
}
