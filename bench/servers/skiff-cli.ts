/**
 * How the harness runs skiff. Other people edit src/ (and rebuild dist/) while a run goes on, so
 * we build once through bin/skiff, then run a private copy of dist/ with the same Node and flags
 * bin/skiff uses: every round measures the same code, and no round pays for a rebuild.
 */
import { execFileSync } from 'node:child_process';
import { cp, readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../proc.ts';

export interface SkiffCli {
  node: string;
  /** Node flags followed by the entry script: `spawn(node, [...argsPrefix, 'serve', …])`. */
  argsPrefix: string[];
  /** git commit, plus `+dirty` when src/ has uncommitted edits (they are in the build). */
  revision: string;
  /** Median wall time of `skiff --version`: the floor under every CLI case (no-op sync above all). */
  startupMs: number;
  warnings: string[];
}

/** The flags between `"$node"` and `"$main"` on bin/skiff's exec line, so we never drift from it. */
async function wrapperNodeFlags(repo: string): Promise<string[]> {
  const script = await readFile(join(repo, 'bin', 'skiff'), 'utf8');
  const match = /^exec "\$node" (.*) "\$main" "\$@"\s*$/m.exec(script);
  return match?.[1] ? match[1].split(/\s+/).filter(Boolean) : ['--disable-warning=ExperimentalWarning'];
}

function git(repo: string, args: string[]): string {
  try {
    return execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export async function prepareSkiff(repo: string, runDir: string): Promise<SkiffCli> {
  const warnings: string[] = [];
  // bin/skiff recompiles dist/ when a src/ file is newer; a failed compile falls back to src/.
  await run(join(repo, 'bin', 'skiff'), ['--version'], { timeoutMs: 300_000 });
  const stale = execFileSync('find', [join(repo, 'src'), '-name', '*.ts', '-newer', join(repo, 'dist', 'cli', 'main.js')], { encoding: 'utf8' }).trim();
  if (stale) warnings.push(`dist/ is older than src/ (does src/ compile?): benchmarking the last good build; newer: ${stale.split('\n').slice(0, 3).join(', ')}`);

  const home = join(runDir, 'skiff-build');
  await cp(join(repo, 'dist'), join(home, 'dist'), { recursive: true });
  await cp(join(repo, 'package.json'), join(home, 'package.json')); // "type": "module"
  await symlink(join(repo, 'node_modules'), join(home, 'node_modules'), 'dir');

  const head = git(repo, ['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = git(repo, ['status', '--porcelain', '--', 'src']) !== '';
  const node = join(repo, 'node_modules', 'node', 'bin', 'node');
  const argsPrefix = [...(await wrapperNodeFlags(repo)), join(home, 'dist', 'cli', 'main.js')];
  const startups: number[] = [];
  for (let i = 0; i < 5; i++) startups.push((await run(node, [...argsPrefix, '--version'], { timeoutMs: 30_000 })).ms);
  return {
    node,
    argsPrefix,
    revision: `${head}${dirty ? ' with uncommitted src/ edits' : ''}`,
    startupMs: startups.sort((a, b) => a - b)[2]!,
    warnings,
  };
}
