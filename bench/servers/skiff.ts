/**
 * `skiff serve` on a loopback port with a fresh data directory and default settings; `serveArgs`
 * adds flags (`--proxy <url>` for a mirror). `options.data` serves an existing data directory
 * instead (the gc case's prepared copy); like a fresh one, it is removed when the server stops.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/testing/peers.ts';
import { startDaemon } from '../proc.ts';
import { serverFrom, type Server } from './server.ts';
import type { SkiffCli } from './skiff-cli.ts';

let counter = 0;

export async function startSkiff(cli: SkiffCli, runDir: string, extraNodeFlags: string[] = [], serveArgs: string[] = [], options: { data?: string } = {}): Promise<Server> {
  const data = options.data ?? join(runDir, `skiff-data-${++counter}`);
  await mkdir(data, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  // --log-level warn: the CNCF registry runs with its access log off, so neither pays for request logs.
  const daemon = startDaemon(cli.node, [...extraNodeFlags, ...cli.argsPrefix, 'serve', '--listen', host, '--data', data, '--log-level', 'warn', ...serveArgs], { cwd: runDir });
  return serverFrom({ name: 'skiff', what: 'skiff serve', host, daemon, dir: data, readyPath: '/v2/' });
}
