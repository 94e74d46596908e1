/**
 * A `skiff serve --config <file>` replica of a scale-out deployment (docs/scale-out.md): the YAML
 * holds the deployment's shared settings (storage: s3, metadata: postgres, redis, token key; from
 * src/testing/scale-out.ts's `deployment()`) plus its own listen address and local data directory.
 * It runs the harness's private build (skiff-cli.ts), as every other skiff in the benchmark does,
 * not bin/skiff (which would recompile whatever src/ holds at that moment, as the tests' replicas do).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';
import type { SkiffCli } from './skiff-cli.ts';

let counter = 0;

export async function startSkiffReplica(cli: SkiffCli, runDir: string, settings: Record<string, unknown>, name = 'skiff replica'): Promise<Server> {
  const dir = join(runDir, `skiff-replica-${++counter}`);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dir, 'skiff.yaml');
  // logLevel warn: as every skiff in the benchmark (the CNCF registry runs with its access log off).
  await writeFile(config, stringify({ listen: host, data: join(dir, 'data'), logLevel: 'warn', ...settings }));
  const daemon = startDaemon(cli.node, [...cli.argsPrefix, 'serve', '--config', config], { cwd: dir });
  return serverFrom({ name, what: 'skiff serve (replica)', host, daemon, dir, readyPath: '/v2/' });
}
