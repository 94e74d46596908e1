import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { DEFAULT_TAG_TTL, type UpstreamConfig } from '../proxy/upstream-config.ts';
import { serveConfig, type ServeConfig } from '../server/config.ts';
import { startRegistry } from '../server/serve.ts';
import type { TestRegistry } from './test-registry.ts';

export interface TestMirror extends TestRegistry {
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
}

/** An upstream entry with the defaults the config parser gives. */
export function upstream(settings: Partial<UpstreamConfig> & Pick<UpstreamConfig, 'host' | 'url'>): UpstreamConfig {
  return { tagTTL: DEFAULT_TAG_TTL, allow: [], deny: [], default: false, ...settings };
}

/**
 * An in-process `skiff serve` in mirror mode on 127.0.0.1 port 0, with a fresh data directory
 * (unless given) and its log lines captured (level info).
 */
export async function startTestMirror(settings: Partial<Omit<ServeConfig, 'data'>> & { dataDir?: string } = {}): Promise<TestMirror> {
  const { dataDir: given, ...rest } = settings;
  const dataDir = given ?? (await mkdtemp(join(tmpdir(), 'skiff-mirror-')));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const running = await startRegistry(serveConfig({ listen: '127.0.0.1:0', logLevel: 'info', ...rest, data: dataDir }), log);
  return {
    ...running,
    dataDir,
    logs,
    async stop() {
      await running.close();
      if (!given) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
