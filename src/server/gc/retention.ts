import type { MetadataStore } from '../storage/metadata.ts';

/** One retention rule (YAML `retention:`); written by the retention work. */
export interface RetentionRule {
  repositories: string[];
}

export interface RetentionReport {
  tags: { repository: string; tag: string; digest: string }[];
  manifests: { repository: string; digest: string; reason: string }[];
}

/** Applies retention rules; a placeholder until the rules land (no rule, nothing deleted). */
export async function applyRetention(_metadata: MetadataStore, rules: RetentionRule[], _options: { now: number; dryRun: boolean }): Promise<RetentionReport> {
  if (rules.length > 0) throw new Error('retention rules are not implemented yet');
  return { tags: [], manifests: [] };
}

/** Parses `retention:`; a placeholder until the rules land. */
export function parseRetentionRules(v: unknown): { value: RetentionRule[] } | { problem: string } {
  if (!Array.isArray(v)) return { problem: ': expected a list of rules' };
  return { value: v as RetentionRule[] };
}
