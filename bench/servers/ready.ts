/** Waits for a freshly started server to answer HTTP, failing fast (with its stderr) if it exits instead. */
import type { Daemon } from '../proc.ts';

export async function waitReady(name: string, daemon: Daemon, url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) {
      throw new Error(`${name} exited (${daemon.child.exitCode ?? daemon.child.signalCode}) before answering ${url}\n${daemon.stderrTail()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await daemon.stop();
      throw new Error(`${name} did not answer ${url} within ${timeoutMs / 1000} s\n${daemon.stderrTail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
