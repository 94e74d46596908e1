/**
 * The issues' targets (issue #5, the mirror's #11, the client data path's #14, …) as checks on a
 * row's ratio and % of limit. A target without `pass` is reported only: its row is shown beside one
 * that has the target.
 */
import type { Summary } from '../stats.ts';

export interface Target {
  text: string;
  /**
   * ratio = skiff median / peer median; ofLimit = skiff's fraction of the machine's limit; skiff =
   * skiff's samples summarized, for targets on every round rather than the median.
   */
  pass?(ratio: number | undefined, ofLimit: number | undefined, skiff: Summary | undefined): boolean | undefined;
}

const atLeast = (min: number) => (ratio: number | undefined) => (ratio === undefined ? undefined : ratio >= min);
const atMost = (max: number) => (ratio: number | undefined) => (ratio === undefined ? undefined : ratio <= max);

export const TARGETS: Record<string, Target> = {
  'manifest-tag-rps': { text: '≥ 5× CNCF', pass: atLeast(5) },
  'manifest-digest-rps': { text: '≥ 5× CNCF', pass: atLeast(5) },
  'manifest-tag-p99': { text: '< CNCF', pass: (r) => (r === undefined ? undefined : r < 1) },
  'manifest-digest-p99': { text: '< CNCF', pass: (r) => (r === undefined ? undefined : r < 1) },
  'blob-get-1': {
    text: '≥ 1.0× CNCF and ≥ 85% nginx',
    pass: (r, l) => (r === undefined || l === undefined ? undefined : r >= 1 && l >= 0.85),
  },
  'blob-get-8': { text: '≥ 1.0× CNCF', pass: atLeast(1) },
  // Issue 14: the sync process's peak RSS at 10,000 images (its limit is 200 MiB; ofLimit ≥ 1 is within it).
  'sync-scale-10000-rss': { text: '≤ 200 MiB', pass: (_r, l) => (l === undefined ? undefined : l >= 1) },
  'sync-scale-10000-noop-rss': { text: '≤ 200 MiB', pass: (_r, l) => (l === undefined ? undefined : l >= 1) },
  'sync-scale-10000-auth-rss': { text: '≤ 200 MiB', pass: (_r, l) => (l === undefined ? undefined : l >= 1) },
  'rss-blob-get-8': { text: '≤ CNCF', pass: atMost(1) },
  // Issue 14 (client data path): the targets are into a `skiff serve` destination; the CNCF → CNCF
  // rows are reported beside them. The pull rows (`pull-<N>mib`) are matched in targetFor.
  'sync-small-serve': { text: '≤ 0.5× skopeo sync', pass: atMost(0.5) },
  'sync-small': { text: 'report (target on the skiff serve row)' },
  'sync-noop-serve': { text: '≤ 0.7× skopeo sync', pass: atMost(0.7) },
  'sync-noop': { text: '≤ 0.7× skopeo sync', pass: atMost(0.7) },
  'copy-big-serve': { text: '≤ 0.6× skopeo copy', pass: atMost(0.6) },
  'copy-big': { text: 'report (target on the skiff serve row)' },
  'cli-startup': { text: '≤ 60 ms', pass: (_r, _l, s) => (s === undefined ? undefined : s.median <= 60) },
  // Absolute targets: the row's limit is the target, so "% of limit" ≥ 100% passes.
  'stalled-readers-rss': { text: '< 300 MiB', pass: (_r, l) => (l === undefined ? undefined : l >= 1) },
  'stalled-readers-after': { text: '≤ 50 MiB above idle', pass: (_r, l) => (l === undefined ? undefined : l >= 1) },
  // The mirror rows' limit is the direct pull from the upstream (cold) and the blob sizes (bytes).
  'mirror-cold': { text: '≤ 1.1× direct pull', pass: (_r, l) => (l === undefined ? undefined : l >= 1 / 1.1) },
  'mirror-cold-bytes': { text: 'exactly 1× the blob sizes, every round', pass: (_r, _l, s) => (s === undefined ? undefined : s.min === 1 && s.max === 1) },
  'mirror-warm': { text: '≤ CNCF proxy', pass: atMost(1) },
  // Issue 11 names its targets on the 200 MiB image; the small images show the per-request cost beside them.
  'mirror-cold-small': { text: 'report (the cold target is on the 200 MiB row)' },
  // The auth case's peer on this row is skiff itself without authentication, in the same rounds.
  'auth-bearer-vs-open': { text: '≥ 0.8× unauthenticated', pass: atLeast(0.8) },
  // The GC case: an absolute time (the row's limit is the 10 s target), and GET throughput during a
  // cycle against the same server without one (the row's peer), both from the GC issue.
  'gc-cycle': { text: '< 10 s', pass: (_r, _l, s) => (s === undefined ? undefined : s.median < 10) },
  'gc-during-rps': { text: '≥ 0.8× without GC', pass: atLeast(0.8) },
  'gc-in-server-rps': { text: '≥ 0.8× without GC', pass: atLeast(0.8) },
  // Issue 15 (scale-out, `--only scale-out`): skiff on S3, PostgreSQL and Redis vs the CNCF registry on the same radosgw.
  'scale-out-push': { text: '≤ 1.0× CNCF on S3', pass: atMost(1) },
  'scale-out-pull': { text: '≤ 1.0× CNCF on S3', pass: atMost(1) },
  'scale-out-pull-proxied': { text: 'report (target on the row above)' },
  'scale-out-push-raw': { text: 'report' },
  // Every round under the limit (the row's limit is the 200 MiB target).
  'scale-out-push-rss': { text: '< 200 MiB per replica, every round', pass: (_r, _l, s) => (s === undefined ? undefined : s.max < 200) },
  'scale-out-manifest-rps': { text: '≥ 5× CNCF on S3', pass: atLeast(5) },
  'scale-out-manifest-rps-nginx': { text: 'report (target on the row above)' },
};

const PULL: Target = { text: '≤ 0.67× skopeo (1.5× faster), DiffID check included', pass: atMost(0.67) };

/** The row's target: by id, or for a pull row of any size (`pull-200mib`, `pull-64mib`, …) issue 14's pull target. */
export function targetFor(id: string): Target | undefined {
  return TARGETS[id] ?? (/^pull-\d+mib$/.test(id) ? PULL : undefined);
}
