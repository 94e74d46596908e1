/**
 * Cleanup steps (stop servers, delete temp dirs) run once, in reverse order of registration,
 * at the normal end of the run or on SIGINT/SIGTERM/SIGHUP, so an interrupted run leaves nothing behind.
 */
const steps: { label: string; fn: () => Promise<void> }[] = [];
let running: Promise<void> | undefined;

export function onCleanup(label: string, fn: () => Promise<void>): () => void {
  const step = { label, fn };
  steps.push(step);
  // Returned so a step finished early (a per-round server) can be dropped again.
  return () => {
    const index = steps.indexOf(step);
    if (index >= 0) steps.splice(index, 1);
  };
}

export function runCleanup(): Promise<void> {
  running ??= (async () => {
    while (steps.length > 0) {
      const step = steps.pop()!;
      try {
        await step.fn();
      } catch (error) {
        process.stderr.write(`cleanup ${step.label}: ${(error as Error).message}\n`);
      }
    }
  })();
  return running;
}

export function installSignalHandlers(): void {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping servers and removing temp dirs…\n`);
      // A second signal during cleanup exits at once (the 'exit' hook still SIGKILLs children).
      process.once(signal, () => process.exit(130));
      void runCleanup().finally(() => process.exit(130));
    });
  }
}
