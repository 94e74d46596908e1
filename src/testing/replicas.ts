import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { startNginx, type NginxFront } from './nginx.ts';
import { freePort, stopChild, waitForHttp } from './peers.ts';

const SKIFF = fileURLToPath(new URL('../../bin/skiff', import.meta.url));

export interface Replica {
  url: string;
  /** `127.0.0.1:port`, for image references and nginx's upstream block. */
  host: string;
  child: ChildProcess;
  /** What the replica wrote to stdout and stderr so far (its JSON log lines). */
  output(): string;
  /** SIGTERM and wait: a graceful stop. */
  stop(): Promise<void>;
  /** kill -9, as a crash or an OOM kill would. */
  kill(): Promise<void>;
}

/**
 * `skiff serve --config <file>` as a child process on a free loopback port, `settings` written as
 * the YAML file (plus its own listen and data directory): a replica as an operator runs it.
 */
export async function startReplica(settings: Record<string, unknown>): Promise<Replica> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-replica-'));
  const port = await freePort();
  const config = join(dir, 'skiff.yaml');
  await writeFile(config, stringify({ listen: `127.0.0.1:${port}`, data: join(dir, 'data'), logLevel: 'warn', ...settings }));
  const child = spawn(SKIFF, ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-64_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) => child.once('exit', (code, signal) => reject(new Error(`replica exited (${code ?? signal}) before it answered:\n${output}`))));
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForHttp(`${url}/v2/`, 30_000), exited]);
  } catch (error) {
    await stopChild(child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const gone = async () => rm(dir, { recursive: true, force: true });
  return {
    url,
    host: `127.0.0.1:${port}`,
    child,
    output: () => output,
    async stop() {
      await stopChild(child);
      await gone();
    },
    async kill() {
      await stopChild(child, 'SIGKILL');
      await gone();
    },
  };
}

/** nginx in front of the replicas; its access log lines are `<status> <upstream address> "<request line>"`. */
export type Balancer = NginxFront;

/**
 * The ```nginx block of docs/scale-out.md ("Behind nginx") with `replicas` in its upstream block
 * and its own listen address: the tests run what the documentation gives.
 */
export async function documentedBalancerConfig(options: { listen: string; replicas: string[] }): Promise<string> {
  const doc = await readFile(new URL('../../docs/scale-out.md', import.meta.url), 'utf8');
  const block = /^## Behind nginx[^]*?^```nginx\n([^]*?)^```$/m.exec(doc)?.[1];
  if (block === undefined) throw new Error('docs/scale-out.md: no ```nginx block under "## Behind nginx"');
  const servers = [...block.matchAll(/^ *server 127\.0\.0\.1:\d+ (.*)$/gm)];
  if (servers.length === 0) throw new Error("docs/scale-out.md's nginx example lists no server in its upstream block");
  const options_ = servers[0]![1]!;
  const first = servers[0]!.index;
  const last = servers.at(-1)!;
  const end = last.index + last[0].length;
  const upstream = options.replicas.map((replica) => `  server ${replica} ${options_}`).join('\n');
  let config = block.slice(0, first) + upstream + block.slice(end);
  if (config.split('listen 80;').length !== 2) throw new Error("docs/scale-out.md's nginx example no longer has exactly one `listen 80;`");
  config = config.replace('listen 80;', `listen ${options.listen};`);
  return config;
}

/** Debian's nginx on a free loopback port in front of `replicas`, with docs/scale-out.md's configuration. */
export async function startBalancer(replicas: string[]): Promise<Balancer> {
  return startNginx({
    prefix: 'skiff-balancer-',
    workerConnections: 1024,
    logFormat: '$status $upstream_addr "$request"',
    server: (listen) => documentedBalancerConfig({ listen, replicas }),
  });
}
