/** Turns a row's samples into the numbers the table shows: medians, ratio, % of limit, pass/fail. */
import type { Row } from '../model.ts';
import { summarize, type Summary } from '../stats.ts';
import { targetFor } from './targets.ts';

export interface Evaluated {
  row: Row;
  skiff?: Summary;
  peer?: Summary;
  /** skiff median / peer median. */
  ratio?: number;
  /** skiff's and the peer's fraction of the limit (1 = at the limit). */
  skiffOfLimit?: number;
  peerOfLimit?: number;
  target?: string;
  /** Unset for a row without a target, or with a report-only one (`reportOnly`). */
  pass?: boolean;
  reportOnly?: boolean;
}

function ofLimit(row: Row, median: number | undefined): number | undefined {
  if (median === undefined || !row.limit || median <= 0) return undefined;
  // For rates the limit is the best rate; for times it is the least time: either way 1.0 = at the limit.
  return row.better === 'higher' ? median / row.limit.value : row.limit.value / median;
}

export function evaluate(row: Row): Evaluated {
  const skiff = summarize(row.skiff.samples);
  const peer = summarize(row.peer.samples);
  const ratio = skiff && peer && peer.median > 0 ? skiff.median / peer.median : undefined;
  const skiffOfLimit = ofLimit(row, skiff?.median);
  const peerOfLimit = ofLimit(row, peer?.median);
  const target = targetFor(row.id);
  const pass = target?.pass?.(ratio, skiffOfLimit, skiff);
  return {
    row,
    ...(skiff ? { skiff } : {}),
    ...(peer ? { peer } : {}),
    ...(ratio !== undefined ? { ratio } : {}),
    ...(skiffOfLimit !== undefined ? { skiffOfLimit } : {}),
    ...(peerOfLimit !== undefined ? { peerOfLimit } : {}),
    ...(target ? { target: target.text } : {}),
    ...(pass !== undefined ? { pass } : {}),
    ...(target && !target.pass ? { reportOnly: true } : {}),
  };
}
