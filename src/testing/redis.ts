import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { openRedis } from '../server/coordination/redis-connection.ts';
import { freePort, hasCommand, stopChild } from './peers.ts';

/**
 * As peerSkipReason (peers.ts) for Debian's redis-server: in CI a missing one fails the test file,
 * locally it skips with a loud message.
 */
export async function redisSkipReason(): Promise<string | false> {
  if (await hasCommand('redis-server')) return false;
  const message = 'scale-out engine missing: redis-server (apt-get install -y redis-server)';
  if (process.env.CI) throw new Error(`${message}; CI must run the scale-out tests`);
  process.stderr.write(`\n!!! SKIPPING: ${message}\n\n`);
  return message;
}

export interface RedisEngine {
  /** `redis://127.0.0.1:<port>` */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Resolves once something accepts TCP connections on the port, else throws after `timeoutMs`. */
async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * A throwaway redis-server on a free loopback port: no persistence, in the foreground as our
 * child (so it is stopped by PID and dies with a test that forgets it: --oom-score-adj aside).
 */
export async function startRedis(): Promise<RedisEngine> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const failed = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before it listened`))));
  failed.catch(() => undefined);
  await Promise.race([waitForPort(port, 10_000), failed]);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisPair {
  engine: RedisEngine;
  /** Two connections to it, standing for two replicas. */
  a: Redis;
  b: Redis;
  stop(): Promise<void>;
}

/** A throwaway redis-server and two checked connections to it (openRedis), for cross-replica tests. */
export async function startRedisPair(): Promise<RedisPair> {
  const engine = await startRedis();
  const connections: Redis[] = [];
  try {
    for (let i = 0; i < 2; i++) connections.push(await openRedis({ url: engine.url, prefix: 'skiff:' }));
  } catch (error) {
    for (const connection of connections) connection.disconnect();
    await engine.stop();
    throw error;
  }
  const [a, b] = connections as [Redis, Redis];
  return {
    engine,
    a,
    b,
    async stop() {
      a.disconnect();
      b.disconnect();
      await engine.stop();
    },
  };
}
