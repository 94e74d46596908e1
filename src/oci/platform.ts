import type { Platform } from './descriptor.ts';

/** `linux/arm64/v8` → Platform. os and architecture are required. */
export function parsePlatform(spec: string): Platform {
  const parts = spec.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === '')) {
    throw new Error(`invalid platform ${JSON.stringify(spec)}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7`);
  }
  const platform: Platform = { os: parts[0]!.toLowerCase(), architecture: normalizeArch(parts[1]!.toLowerCase()) };
  if (parts[2] !== undefined) platform.variant = parts[2].toLowerCase();
  return normalizePlatform(platform);
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

function normalizeArch(arch: string): string {
  const aliases: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386' };
  return aliases[arch] ?? arch;
}

/** containerd's normalization: arm64 without variant is v8, arm without variant is v7. */
export function normalizePlatform(platform: Platform): Platform {
  const out: Platform = { ...platform, architecture: normalizeArch(platform.architecture) };
  if (out.architecture === 'arm64' && out.variant === undefined) out.variant = 'v8';
  if (out.architecture === 'arm' && out.variant === undefined) out.variant = 'v7';
  if (out.architecture === 'amd64' && out.variant === 'v1') delete out.variant;
  return out;
}

/** The host's platform in OCI terms. */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const osMap: Record<string, string> = { win32: 'windows', linux: 'linux', darwin: 'darwin', freebsd: 'freebsd' };
  return normalizePlatform({ os: osMap[process.platform] ?? process.platform, architecture: archMap[process.arch] ?? process.arch });
}

/**
 * Platforms a host of `wanted` can run, best first (containerd's platforms.Only):
 * arm/v7 also runs v6 and v5; arm64/v8 also runs arm/v7…; amd64 also runs 386.
 */
export function compatiblePlatforms(wanted: Platform): Platform[] {
  const p = normalizePlatform(wanted);
  const list: Platform[] = [p];
  const armVariants = ['v8', 'v7', 'v6', 'v5'];
  if (p.architecture === 'arm' && p.variant) {
    for (const v of armVariants.slice(armVariants.indexOf(p.variant) + 1)) list.push({ os: p.os, architecture: 'arm', variant: v });
  }
  if (p.architecture === 'arm64') {
    for (const v of ['v7', 'v6', 'v5']) list.push({ os: p.os, architecture: 'arm', variant: v });
  }
  if (p.architecture === 'amd64') {
    // amd64/v4 runs v3, v2 and plain amd64 (v1) images, as containerd's platformVector says.
    const level = /^v([2-4])$/.exec(p.variant ?? '')?.[1];
    for (let v = Number(level ?? 1) - 1; v >= 1; v--) list.push(v === 1 ? { os: p.os, architecture: 'amd64' } : { os: p.os, architecture: 'amd64', variant: `v${v}` });
    list.push({ os: p.os, architecture: '386' });
  }
  return list;
}

function samePlatform(a: Platform, b: Platform): boolean {
  const x = normalizePlatform(a);
  const y = normalizePlatform(b);
  return x.os === y.os && x.architecture === y.architecture && (x.variant ?? '') === (y.variant ?? '');
}

/**
 * Rank of `candidate` for a host of `wanted`: 0 is best, higher is a worse fallback,
 * undefined means it cannot run. A descriptor with no platform matches anything, last.
 */
export function platformRank(wanted: Platform, candidate: Platform | undefined): number | undefined {
  const list = compatiblePlatforms(wanted);
  if (candidate === undefined) return list.length;
  const index = list.findIndex((p) => samePlatform(p, candidate));
  return index === -1 ? undefined : index;
}

/** Picks the best entry of an index for `wanted`, or undefined. */
export function bestMatch<T extends { platform?: Platform }>(wanted: Platform, entries: readonly T[]): T | undefined {
  let best: { entry: T; rank: number } | undefined;
  for (const entry of entries) {
    const rank = platformRank(wanted, entry.platform);
    if (rank !== undefined && (best === undefined || rank < best.rank)) best = { entry, rank };
  }
  return best?.entry;
}
