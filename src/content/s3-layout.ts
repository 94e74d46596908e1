import { isDigest, parseDigest, type Digest } from '../digest/digest.ts';

/** Ingest refs: the fs driver's grammar, so a ref is always a single safe key segment. */
const INGEST_REF = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The S3 driver's keys in its bucket, in one place (as the fs driver's and distribution's
 * paths.go). `<p>` is the configured prefix ('' or folders ending in `/`), so one bucket can hold
 * several registries.
 *
 *   <p>blobs/<alg>/<2 hex>/<hex>   a committed, verified blob; written only by a server-side copy
 *                                  of verified bytes (or a PutObject of bytes hashed in memory),
 *                                  with user metadata `written` (ms, the writer's clock)
 *   <p>ingest/<ref>/tail           the ingest's record: its body is the bytes after the last full
 *                                  part; its metadata the multipart upload's id, how many parts
 *                                  count and their size, and a generation (a fresh id per write)
 *   <p>ingest/<ref>/data           the key of the ingest's multipart upload (every part exactly
 *                                  `part-size` bytes); once completed, the ingest's whole bytes
 *   <p>gc-trash/<alg>-<hex>        a blob the collector condemned, between its move and its delete
 *   <p>gc-wanted/<alg>-<hex>       a writer's wanted mark (`touch`): metadata `until` (ms)
 *
 * A one-shot `put` larger than one part goes through an ingest named `put-<uuid>`, so whatever a
 * crash leaves is under `ingest/` too. Nothing else is written; objects under other keys are
 * never listed, read or deleted.
 */
export interface S3Layout {
  readonly prefix: string;
  readonly blobsPrefix: string;
  readonly ingestPrefix: string;
  readonly trashPrefix: string;
  blob(digest: Digest): string;
  /** Every object and upload of one ingest is under this. */
  ingest(ref: string): string;
  ingestTail(ref: string): string;
  ingestData(ref: string): string;
  trash(digest: Digest): string;
  wanted(digest: Digest): string;
  /** The digest a blob key names, or undefined for any other key. */
  digestOfBlobKey(key: string): Digest | undefined;
  /** The digest a trash key names, or undefined for any other key. */
  digestOfTrashKey(key: string): Digest | undefined;
}

/** Checks a prefix: '' or key folders ending in `/` (no leading slash, no empty or dot segments). */
export function checkPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  if (!prefix.endsWith('/') || prefix.startsWith('/') || prefix.slice(0, -1).split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw new Error(`invalid S3 key prefix ${JSON.stringify(prefix)}: expected '' or folders ending in a slash, such as registry/`);
  }
  return prefix;
}

export function s3Layout(prefix: string): S3Layout {
  const p = checkPrefix(prefix);
  const blobsPrefix = `${p}blobs/`;
  const ingestPrefix = `${p}ingest/`;
  const trashPrefix = `${p}gc-trash/`;
  const flat = (digest: Digest): string => {
    const { algorithm, hex } = parseDigest(digest);
    return `${algorithm}-${hex}`;
  };
  const ingest = (ref: string): string => {
    if (!INGEST_REF.test(ref)) throw new Error(`invalid ingest ref ${JSON.stringify(ref)}`);
    return `${ingestPrefix}${ref}/`;
  };
  return {
    prefix: p,
    blobsPrefix,
    ingestPrefix,
    trashPrefix,
    blob(digest) {
      const { algorithm, hex } = parseDigest(digest);
      return `${blobsPrefix}${algorithm}/${hex.slice(0, 2)}/${hex}`;
    },
    ingest,
    ingestTail: (ref) => `${ingest(ref)}tail`,
    ingestData: (ref) => `${ingest(ref)}data`,
    trash: (digest) => `${trashPrefix}${flat(digest)}`,
    wanted: (digest) => `${p}gc-wanted/${flat(digest)}`,
    digestOfBlobKey(key) {
      if (!key.startsWith(blobsPrefix)) return undefined;
      const [algorithm, fan, hex, ...rest] = key.slice(blobsPrefix.length).split('/');
      if (rest.length > 0 || hex === undefined || fan !== hex.slice(0, 2)) return undefined;
      const digest = `${algorithm}:${hex}`;
      return isDigest(digest) ? digest : undefined;
    },
    digestOfTrashKey(key) {
      if (!key.startsWith(trashPrefix)) return undefined;
      const name = key.slice(trashPrefix.length);
      const dash = name.indexOf('-');
      const digest = `${name.slice(0, dash)}:${name.slice(dash + 1)}`;
      return dash > 0 && isDigest(digest) ? digest : undefined;
    },
  };
}
