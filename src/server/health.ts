import { access, constants, statfs } from 'node:fs/promises';
import type { Registry } from './registry.ts';
import { freeSpaceFloor, type FreeSpaceRule } from './units.ts';

const PING_TIMEOUT_MS = 5000;

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type HealthStatus = { status: 'ready' } | { status: 'unavailable'; reason: string };

/**
 * Readiness for /healthz: the metadata store answers, the data directory is writable, and its
 * filesystem has at least the `minFreeSpace` floor free, so a load balancer stops sending pushes
 * to a replica before its disk fills instead of after (a full disk answers writes with 507).
 */
export async function checkHealth(registry: Registry, dataDir: string, minFreeSpace: FreeSpaceRule): Promise<HealthStatus> {
  try {
    // A database that has gone silent must make the probe fail, not hang it (the balancer's probe would time out instead of reading why).
    await withTimeout(registry.metadata.ping(), PING_TIMEOUT_MS, `no answer within ${PING_TIMEOUT_MS / 1000} s`);
  } catch (error) {
    return { status: 'unavailable', reason: `the metadata store does not answer: ${(error as Error).message}` };
  }
  try {
    await access(dataDir, constants.W_OK);
  } catch (error) {
    return { status: 'unavailable', reason: `the data directory ${dataDir} is not writable: ${(error as Error).message}` };
  }
  let stats;
  try {
    stats = await statfs(dataDir);
  } catch (error) {
    return { status: 'unavailable', reason: `cannot read the free space of the data directory ${dataDir}: ${(error as Error).message}` };
  }
  const free = stats.bavail * stats.bsize;
  const total = stats.blocks * stats.bsize;
  const floor = freeSpaceFloor(minFreeSpace, total);
  if (free < floor) {
    return {
      status: 'unavailable',
      reason:
        `only ${formatBytes(free)} free of ${formatBytes(total)} on the data directory ${dataDir}, below the floor of ${formatBytes(floor)} ` +
        `(minFreeSpace: ${describeRule(minFreeSpace)}); free space there or lower minFreeSpace`,
    };
  }
  return { status: 'ready' };
}

/** `1 GiB or 1%, the smaller`, `5%`, `64 MiB`: the rule as the config file spells it. */
export function describeRule(rule: FreeSpaceRule): string {
  if ('percent' in rule) return `${rule.percent}%`;
  if (rule.orPercent === undefined) return formatBytes(rule.bytes);
  return `${formatBytes(rule.bytes)} or ${rule.orPercent}%, the smaller`;
}

const BINARY_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/** Binary units with up to one decimal: `0 B`, `200 KiB`, `19.4 MiB`, `1 GiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BINARY_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const rounded = unit === 0 ? String(value) : String(Math.round(value * 10) / 10);
  return `${rounded} ${BINARY_UNITS[unit]}`;
}
