import { rm } from 'node:fs/promises';
import { onCleanup } from '../cleanup.ts';
import type { Daemon } from '../proc.ts';
import { waitReady } from './ready.ts';

/** What every benchmarked server looks like to the cases. */
export interface Server {
  name: string;
  /** `127.0.0.1:port`, for image references. */
  host: string;
  url: string;
  /** The process whose memory we sample (the server itself, not a wrapper shell). */
  pid: number;
  stop(): Promise<void>;
}

/**
 * A started daemon as a Server: waits until `readyPath` answers, and ties its stop (and the removal
 * of its directory) to the run's cleanup, so an interrupted run leaves nothing behind.
 */
export async function serverFrom(options: { name: string; what: string; host: string; daemon: Daemon; dir: string; readyPath: string }): Promise<Server> {
  const { name, what, host, daemon, dir } = options;
  const stop = async (): Promise<void> => {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const forget = onCleanup(`${what} ${host}`, stop);
  await waitReady(what, daemon, `http://${host}${options.readyPath}`);
  return {
    name,
    host,
    url: `http://${host}`,
    pid: daemon.pid,
    async stop() {
      forget();
      await stop();
    },
  };
}
