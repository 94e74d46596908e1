import { join } from 'node:path';

/**
 * The registry's on-disk layout, in one place (as distribution's paths.go):
 *
 *   <data>/metadata.db            SQLite (WAL): repositories, tags, manifests, blob links,
 *   <data>/metadata.db-wal          referrers, upload sessions
 *   <data>/blobs/<alg>/<2 hex>/<hex>   every blob and manifest, once, by digest
 *   <data>/ingest/<upload uuid>   bytes of an upload session in progress
 *   <data>/ingest/put-<uuid>      a one-shot write in progress (removed at start-up)
 *   <data>/ingest/fill-<uuid>     a mirror's blob fill in progress (removed at start-up)
 *   <data>/gc-trash/<alg>-<hex>   a blob the collector condemned, between its move and its delete
 *   <data>/gc.lock                the running collection cycle's PID (skiff serve's or skiff gc's: one at a time)
 *   <data>/auth/token-key.pem     the token service's signing key (0600), made on first start
 *   <data>/mirror-spool/          with storage: s3 only: mirror fills in progress, before they
 *                                 reach the bucket verified (emptied at start; docs/scale-out.md)
 *
 * Mirror mode caches under the same layout: cached repositories are named `<host>/<name>`, and
 * `tags.checked_at` records when the upstream last confirmed a cached tag.
 */
export function registryLayout(dataDir: string) {
  return {
    root: dataDir,
    metadata: join(dataDir, 'metadata.db'),
    blobs: dataDir,
    ingest: join(dataDir, 'ingest'),
  };
}
