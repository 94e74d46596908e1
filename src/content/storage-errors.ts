/**
 * Failures of the storage under the registry (the blob files and the metadata database), in one
 * place: which low-level errors mean "the disk is full" and which mean "the disk failed", and
 * the message a person reads in the response and in the log. The writers (FsBlobStore,
 * SqliteMetadataStore) wrap what they throw with `storageError`, so every face that uses them
 * (registry, mirror, local store) gets the same typed error; the HTTP layer maps
 * StorageFullError to 507 and any other StorageError to 500.
 */

/** errno codes of a full filesystem or an exhausted quota. */
const FULL_ERRNO = new Set(['ENOSPC', 'EDQUOT']);
/** errno codes of a failing disk or filesystem, recognised even where no operation is known. */
const IO_ERRNO = new Set(['EIO', 'EROFS', 'EFBIG', 'ESTALE', 'EUCLEAN']);

/** SQLite primary result codes (extended codes carry them in the low byte). */
const SQLITE_FULL = 13;
const SQLITE_FAILURE_CODES: Record<number, string> = {
  5: 'SQLITE_BUSY',
  6: 'SQLITE_LOCKED',
  7: 'SQLITE_NOMEM',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  14: 'SQLITE_CANTOPEN',
  15: 'SQLITE_PROTOCOL',
  26: 'SQLITE_NOTADB',
};

export type StorageFailureKind = 'full' | 'failed';

export interface StorageClassification {
  kind: StorageFailureKind;
  /** The low-level code: `ENOSPC`, `EDQUOT`, `SQLITE_FULL`, `EIO`, `SQLITE_IOERR`, … */
  reason: string;
}

/** A failure of the storage itself, not of the request: the disk is full or broken. */
export class StorageError extends Error {
  readonly code: 'STORAGE_FULL' | 'STORAGE_FAILED';
  readonly kind: StorageFailureKind;
  readonly reason: string;
  /** What was being done, e.g. `writing ingest 1b2c…`; part of the message. */
  readonly operation: string;
  /** The message for a client: no file paths or low-level detail, which stay in the log. */
  readonly publicMessage: string;

  constructor(kind: StorageFailureKind, reason: string, operation: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      kind === 'full'
        ? `the registry's storage is full (${reason}) while ${operation}; free space on the data directory and retry`
        : `storage failure (${reason}) while ${operation}: ${detail}; check the disk under the data directory (kernel log, filesystem state)`,
      { cause },
    );
    this.name = kind === 'full' ? 'StorageFullError' : 'StorageFailureError';
    this.code = kind === 'full' ? 'STORAGE_FULL' : 'STORAGE_FAILED';
    this.kind = kind;
    this.reason = reason;
    this.operation = operation;
    this.publicMessage =
      kind === 'full' ? this.message : `storage failure (${reason}) while ${operation}; the registry's operator must check the disk under its data directory`;
  }
}

/** The filesystem or the database is out of space (ENOSPC, EDQUOT, SQLITE_FULL). */
export class StorageFullError extends StorageError {
  constructor(reason: string, operation: string, cause: unknown) {
    super('full', reason, operation, cause);
  }
}

/** The disk or database failed (EIO, SQLITE_IOERR, a read-only filesystem, …). */
export class StorageFailureError extends StorageError {
  constructor(reason: string, operation: string, cause: unknown) {
    super('failed', reason, operation, cause);
  }
}

interface ErrnoLike {
  code?: unknown;
  errcode?: unknown;
  syscall?: unknown;
}

/**
 * Says whether `error` is a storage failure. With `anyErrno`, every error a system call raised
 * counts (inside a writer, an unexpected ENOENT or EACCES is a storage failure too); without it,
 * only the codes that cannot mean anything else (full, EIO, …), so a client's ECONNRESET is not
 * mistaken for a disk problem.
 */
export function classifyStorageError(error: unknown, options: { anyErrno?: boolean } = {}): StorageClassification | undefined {
  if (error instanceof StorageError) return { kind: error.kind, reason: error.reason };
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errcode, syscall } = error as ErrnoLike;
  if (code === 'ERR_SQLITE_ERROR' && typeof errcode === 'number') {
    const primary = errcode & 0xff;
    if (primary === SQLITE_FULL) return { kind: 'full', reason: 'SQLITE_FULL' };
    const name = SQLITE_FAILURE_CODES[primary];
    return name ? { kind: 'failed', reason: errcode === primary ? name : `${name}, extended code ${errcode}` } : undefined;
  }
  if (typeof code !== 'string') return undefined;
  if (FULL_ERRNO.has(code)) return { kind: 'full', reason: code };
  if (IO_ERRNO.has(code)) return { kind: 'failed', reason: code };
  if (options.anyErrno && typeof syscall === 'string' && /^E[A-Z0-9]+$/.test(code)) return { kind: 'failed', reason: code };
  return undefined;
}

/**
 * Wraps a storage failure in StorageFullError / StorageFailureError naming `operation`;
 * returns anything else (a digest mismatch, a client's broken connection) unchanged.
 */
export function storageError(error: unknown, operation: string, options: { anyErrno?: boolean } = { anyErrno: true }): unknown {
  if (error instanceof StorageError) return error;
  const found = classifyStorageError(error, options);
  if (!found) return error;
  return found.kind === 'full' ? new StorageFullError(found.reason, operation, error) : new StorageFailureError(found.reason, operation, error);
}

/** Runs `work`, rethrowing storage failures as StorageError naming `operation`. */
export async function guardStorage<T>(operation: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw storageError(error, operation);
  }
}
