import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { serveConfig, type ServeConfig } from '../server/config.ts';
import { startRegistry, type RunningRegistry } from '../server/serve.ts';

export interface TestRegistry extends RunningRegistry {
  dataDir: string;
  /** Closes the server and removes its data directory. */
  stop(): Promise<void>;
}

/** An in-process `skiff serve` on 127.0.0.1 port 0 with a fresh temporary data directory. */
export async function startTestRegistry(options: Partial<Omit<ServeConfig, 'data'>> & { dataDir?: string } = {}): Promise<TestRegistry> {
  const { dataDir: given, ...settings } = options;
  const dataDir = given ?? (await mkdtemp(join(tmpdir(), 'skiff-test-')));
  const running = await startRegistry(serveConfig({ listen: '127.0.0.1:0', logLevel: 'silent', ...settings, data: dataDir }), pino({ level: 'silent' }));
  return {
    ...running,
    dataDir,
    async stop() {
      await running.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
