import type { Digest } from '../digest/digest.ts';
import type { SyncTask } from './sync-task.ts';

export type BlobOutcome = 'existing' | 'mounted' | 'copied';
export type ImageOutcome = 'synced' | 'skipped' | 'failed';

/** What the engine reports as it goes; the progress view and the report both listen. */
export type SyncEvent =
  | { type: 'pass'; pass: number; jobs: number }
  | { type: 'planned'; rule: string; tasks: number }
  | { type: 'rule-failed'; rule: string; reason: string; final: boolean }
  // `key` is the task's `taskKey`, computed once by the planner (listeners that keep one per image share the string).
  | { type: 'image-start'; task: SyncTask; key?: string }
  | { type: 'image-done'; task: SyncTask; key?: string; outcome: ImageOutcome; digest?: Digest; reason?: string; note?: string; final: boolean }
  | { type: 'blob-start'; digest: Digest; size: number }
  | { type: 'blob-done'; digest: Digest; size: number; outcome: BlobOutcome }
  | { type: 'bytes'; bytes: number }
  /** What other processes moved for this run (`skiff sync --queue` workers): blob outcomes and bytes, summed. */
  | { type: 'tally'; blobs: Record<BlobOutcome, { count: number; bytes: number }>; bytes: number };

export type SyncListener = (event: SyncEvent) => void;
