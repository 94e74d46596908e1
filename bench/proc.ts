/**
 * Child processes for the benchmark: every one is tracked, has a time limit, and is stopped by
 * its PID when the run ends (normally, on error or on a signal), so nothing outlives the harness.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

// Last resort: 'exit' handlers must be synchronous, so only SIGKILL by PID is possible here.
process.on('exit', () => {
  for (const child of live) if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
});

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit: what a user waits for, process start included. */
  ms: number;
}

export interface RunOptions {
  timeoutMs: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Resolve with a non-zero exit instead of rejecting. */
  allowFail?: boolean;
}

/** A failed command, with the tail of its stderr: the message shown in the results. */
export class CommandError extends Error {
  readonly result: RunResult | undefined;
  constructor(message: string, result?: RunResult) {
    super(message);
    this.name = 'CommandError';
    this.result = result;
  }
}

function tail(text: string, max = 600): string {
  const trimmed = text.trim();
  return trimmed.length > max ? `…${trimmed.slice(-max)}` : trimmed;
}

/** Runs a command to completion; stdout/stderr are collected (capped) and timing starts at spawn. */
export function run(command: string, args: string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let exitedAt = 0;
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    // Caps keep a chatty child from filling our heap; the tail of stderr is what explains a failure.
    child.stdout.on('data', (chunk: Buffer) => (stdout = (stdout + chunk.toString()).slice(-1_000_000)));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      terminate(child);
    }, options.timeoutMs);
    child.on('exit', () => (exitedAt = performance.now()));
    child.on('error', (error) => {
      clearTimeout(timer);
      live.delete(child);
      reject(new CommandError(`${command}: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      const result: RunResult = { code, signal, stdout, stderr, ms: (exitedAt || performance.now()) - started };
      const label = `${command} ${args.join(' ')}`.slice(0, 300);
      if (timedOut) reject(new CommandError(`timed out after ${options.timeoutMs / 1000} s: ${label}\n${tail(stderr)}`, result));
      else if (code !== 0 && !options.allowFail) reject(new CommandError(`exit ${code ?? signal}: ${label}\n${tail(stderr || stdout)}`, result));
      else resolve(result);
    });
  });
}

/** SIGTERM now, SIGKILL two seconds later if the child is still there. */
function terminate(child: ChildProcess): void {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
  process.kill(child.pid, 'SIGTERM');
  const pid = child.pid;
  setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  }, 2000).unref();
}

export interface Daemon {
  child: ChildProcess;
  pid: number;
  /** Last few KiB of stderr, for error messages. */
  stderrTail(): string;
  stop(): Promise<void>;
}

/**
 * Starts a long-running server; the caller waits for readiness and must call stop(). Its stdout is
 * discarded unless `onStdout` takes it (the CNCF registry writes its access log there).
 */
export function startDaemon(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; onStdout?: (chunk: Buffer) => void } = {}): Daemon {
  const stdout = options.onStdout ? 'pipe' : 'ignore';
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', stdout, 'pipe'] });
  if (options.onStdout) child.stdout?.on('data', options.onStdout);
  if (!child.pid) throw new CommandError(`could not start ${command}`);
  live.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  child.on('error', () => undefined); // reported through readiness or stop()
  child.on('exit', () => live.delete(child));
  const pid = child.pid;
  return {
    child,
    pid,
    stderrTail: () => tail(stderr),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(pid, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
