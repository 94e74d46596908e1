/** What a case produces: rows of samples for skiff and its peer, later turned into the table and JSON. */
export type Better = 'higher' | 'lower';

export interface Series {
  samples: number[];
  /** One message per failed round (a failure never stops the run). */
  errors: string[];
  /** Anything else worth keeping per round (RSS high-water marks, p50s, byte counts…). */
  extra: Record<string, unknown>[];
}

export function series(): Series {
  return { samples: [], errors: [], extra: [] };
}

export interface Row {
  /** Stable id, the key for targets and JSON. */
  id: string;
  title: string;
  unit: string;
  better: Better;
  skiff: Series;
  peerName: string;
  peer: Series;
  /**
   * The machine's limit in the row's unit (a rate for rates, the least possible time for times).
   * `stages`: for a floor built from several stages (loopback, sha256, fsync write), each one's time;
   * `value` is the slowest.
   */
  limit?: { name: string; value: number; samples?: number[]; stages?: Record<string, number> };
  /** Set when skiff cannot be measured yet (e.g. the mirror). */
  status?: string;
  note?: string;
}
