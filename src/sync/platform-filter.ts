import type { Descriptor, ImageIndex, Platform } from '../oci/descriptor.ts';
import { normalizePlatform } from '../oci/platform.ts';

/**
 * image-syncer's `--os os[:osversion]` and `--arch arch[:variant]` filters. An empty list means
 * any; an entry without a version or variant matches every version or variant.
 */
export interface PlatformFilter {
  os: { os: string; version?: string }[];
  arch: { architecture: string; variant?: string }[];
}

function pair(spec: string, flag: string): [string, string | undefined] {
  const [head, ...rest] = spec.split(':');
  const tail = rest.join(':');
  if (!head) throw new Error(`${flag} ${JSON.stringify(spec)}: expected ${flag === '--os' ? 'os[:osversion]' : 'arch[:variant]'}`);
  return [head.toLowerCase(), tail === '' ? undefined : tail];
}

export function parsePlatformFilter(osSpecs: string[] = [], archSpecs: string[] = []): PlatformFilter {
  return {
    os: osSpecs.map((spec) => {
      const [os, version] = pair(spec, '--os');
      return version === undefined ? { os } : { os, version };
    }),
    arch: archSpecs.map((spec) => {
      const [architecture, variant] = pair(spec, '--arch');
      return variant === undefined ? { architecture } : { architecture, variant: variant.toLowerCase() };
    }),
  };
}

export function isFilterEmpty(filter: PlatformFilter): boolean {
  return filter.os.length === 0 && filter.arch.length === 0;
}

export function describeFilter(filter: PlatformFilter): string {
  const os = filter.os.map((o) => (o.version ? `${o.os}:${o.version}` : o.os));
  const arch = filter.arch.map((a) => (a.variant ? `${a.architecture}:${a.variant}` : a.architecture));
  return [os.length ? `os ${os.join('|')}` : '', arch.length ? `arch ${arch.join('|')}` : ''].filter(Boolean).join(', ');
}

export function platformMatches(filter: PlatformFilter, platform: Platform | undefined): boolean {
  if (isFilterEmpty(filter)) return true;
  if (!platform) return false;
  const normal = normalizePlatform(platform);
  const osOk = filter.os.length === 0 || filter.os.some((o) => o.os === normal.os.toLowerCase() && (o.version === undefined || o.version === normal['os.version']));
  const archOk =
    filter.arch.length === 0 ||
    filter.arch.some((a) => {
      const wanted = normalizePlatform({ os: normal.os, architecture: a.architecture, ...(a.variant ? { variant: a.variant } : {}) });
      return wanted.architecture === normal.architecture && (a.variant === undefined || wanted.variant === normal.variant);
    });
  return osOk && archOk;
}

export interface FilteredIndex {
  /** The bytes to push: the original when nothing was dropped, else a re-serialized index. */
  body: Buffer;
  kept: Descriptor[];
  /** True when children were dropped, so the digest differs from the source's. */
  changed: boolean;
}

/** Keeps the index children whose platform passes the filter. */
export function filterIndex(body: Buffer, index: ImageIndex, filter: PlatformFilter): FilteredIndex {
  const kept = index.manifests.filter((child) => platformMatches(filter, child.platform));
  if (kept.length === index.manifests.length) return { body, kept, changed: false };
  const rewritten = { ...(JSON.parse(body.toString('utf8')) as ImageIndex), manifests: kept };
  return { body: Buffer.from(JSON.stringify(rewritten, null, 2)), kept, changed: true };
}
