import type { Digest } from '../../digest/digest.ts';
import type { ManifestRecord } from './metadata.ts';

/** A `manifests` row as both stores' schemas have it (SQLite and PostgreSQL: same columns). */
export interface ManifestRow {
  repository: string;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject: string | null;
  /** JSON text of the annotations map. */
  annotations: string | null;
  created_at: number;
}

export function manifestRecordOf(row: ManifestRow): ManifestRecord {
  const record: ManifestRecord = {
    repository: row.repository,
    digest: row.digest as Digest,
    mediaType: row.media_type,
    size: row.size,
    createdAt: row.created_at,
  };
  if (row.artifact_type !== null) record.artifactType = row.artifact_type;
  if (row.subject !== null) record.subject = row.subject as Digest;
  if (row.annotations !== null) record.annotations = JSON.parse(row.annotations) as Record<string, string>;
  return record;
}
