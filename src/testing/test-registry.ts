import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startRegistry, type RunningRegistry } from '../server/serve.ts';

export interface TestRegistry extends RunningRegistry {
  dataDir: string;
  /** Closes the server and removes its data directory. */
  stop(): Promise<void>;
}

/** An in-process `skiff serve` on 127.0.0.1 port 0 with a fresh temporary data directory. */
export async function startTestRegistry(options: { delete?: boolean; readOnly?: boolean; dataDir?: string } = {}): Promise<TestRegistry> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'skiff-test-')));
  const running = await startRegistry(
    { listen: '127.0.0.1:0', data: dataDir, delete: options.delete ?? true, readOnly: options.readOnly ?? false, logLevel: 'silent' },
    pino({ level: 'silent' }),
  );
  return {
    ...running,
    dataDir,
    async stop() {
      await running.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
