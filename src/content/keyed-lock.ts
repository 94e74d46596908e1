/**
 * One holder at a time per key: an upload session's requests (the offset check and the write must
 * not interleave). In one process it is a KeyedMutex; replicas behind a load balancer share one
 * through Redis (RedisKeyedLock), since a client's next PATCH may land on any of them.
 */
export interface KeyedLock {
  /** Runs `work` holding `key`, after whoever holds it now. */
  run<T>(key: string, work: () => Promise<T>): Promise<T>;
  /**
   * Runs `work` holding `key` only when nobody holds it or waits for it now (a background task
   * skips a busy key instead of queueing behind a slow request); undefined when it was busy.
   */
  tryRun<T>(key: string, work: () => Promise<T>): Promise<T | undefined>;
}
