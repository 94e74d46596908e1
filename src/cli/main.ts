import { enableCompileCache } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../errors/config-error.ts';

// Start-up is part of every command's latency (a no-op sync is ~100 ms of work): keep V8's
// compiled code between runs, and load only the modules of the command being run.
enableCompileCache();

type Registrar = (program: Command) => void;

/** Commands in help order, each with the names that select it and a loader for its module. */
const COMMANDS: [names: string[], load: () => Promise<Registrar>][] = [
  [['serve'], async () => (await import('./serve.ts')).registerServe],
  [['pull'], async () => (await import('./pull.ts')).registerPull],
  [['login', 'logout'], async () => (await import('./login.ts')).registerLogin],
  [['images', 'image', 'rmi', 'tag', 'inspect', 'history'], async () => (await import('./images.ts')).registerImages],
  [['save', 'load', 'unpack'], async () => (await import('./archive.ts')).registerArchive],
  [['push'], async () => (await import('./push.ts')).registerPush],
  [['sync'], async () => (await import('./sync.ts')).registerSync],
];

/** Commands whose action returns while their work goes on (the server runs until a signal). */
const KEEPS_RUNNING = new Set(['serve']);
/** How long a finished command may take to let go of the event loop before it is made to. */
const EXIT_GRACE_MS = 2000;

/**
 * Every command closes what it opened (decode thread, HTTP agents, files), so the process ends as
 * soon as its action resolves. Should anything still hold the event loop after that, it is a bug,
 * but a cron job must not hang on it (issue 10): after a grace period, name what was left on
 * stderr and exit with the command's own exit code. stdout and stderr are synchronous for files
 * and pipes on Linux, so nothing written is lost.
 */
function exitIfStillRunning(): void {
  setTimeout(() => {
    const left = process.getActiveResourcesInfo().filter((kind) => kind !== 'Timeout');
    process.stderr.write(`skiff: warning: the command finished but ${left.length > 0 ? left.join(', ') : 'something'} kept the process alive; exiting (please report this)\n`);
    process.exit();
  }, EXIT_GRACE_MS).unref();
}

const program = new Command('skiff')
  .description('container image distribution: registry, mirror, client and syncer')
  .version('0.1.0')
  .showHelpAfterError();

try {
  // The first word that is not an option names the command; help, typos and --version load all.
  const word = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
  const chosen = COMMANDS.filter(([names]) => word !== undefined && names.includes(word));
  for (const [, load] of chosen.length > 0 ? chosen : COMMANDS) (await load())(program);
  await program.parseAsync(process.argv);
  if (word === undefined || !KEEPS_RUNNING.has(word)) exitIfStillRunning();
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof ConfigError) {
    process.stderr.write(`skiff: configuration error:\n${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`skiff: ${process.env.SKIFF_DEBUG ? (error as Error).stack : (error as Error).message}\n`);
  process.exit(1);
}
