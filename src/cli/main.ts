import { enableCompileCache } from 'node:module';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../errors/config-error.ts';
import { commanderErrorLine, errorLine, warningLine } from './error-line.ts';

// Start-up is part of every command's latency (a no-op sync is ~100 ms of work): keep V8's
// compiled code between runs, and load only the modules of the command being run. In dist/ the
// entry (written by scripts/build.ts) has turned the cache on before this bundle was compiled;
// this call serves `node src/cli/main.ts`, where it covers the commands' modules.
enableCompileCache();

type Registrar = (program: Command) => void;

/**
 * Commands in help order, each with the names that select it, the `image` subcommands its module
 * adds (docker's `image pull|push|ls|…`), and a loader for its module.
 */
const COMMANDS: [names: string[], imageSubcommands: string[], load: () => Promise<Registrar>][] = [
  [['serve'], [], async () => (await import('./serve.ts')).registerServe],
  [['pull'], ['pull'], async () => (await import('./pull.ts')).registerPull],
  [['login', 'logout'], [], async () => (await import('./login.ts')).registerLogin],
  [['images', 'rmi', 'tag', 'inspect', 'history'], ['ls', 'list', 'rm', 'remove', 'prune', 'tag', 'inspect', 'history'], async () => (await import('./images.ts')).registerImages],
  [['save', 'load', 'unpack'], ['save', 'load'], async () => (await import('./archive.ts')).registerArchive],
  [['push'], ['push'], async () => (await import('./push.ts')).registerPush],
  [['sync'], [], async () => (await import('./sync.ts')).registerSync],
  [['gc'], [], async () => (await import('./gc.ts')).registerGc],
  [['migrate'], [], async () => (await import('./migrate.ts')).registerMigrate],
];

/**
 * The modules that define `skiff <args>`: all of them for help, typos and --version; for
 * `image` without a known subcommand (`skiff image --help`), every module that adds one.
 */
function chooseCommands(args: string[]): typeof COMMANDS {
  // The first two words that are not options name the command (and the `image` subcommand).
  const [word, sub] = args.filter((arg) => !arg.startsWith('-'));
  if (word === 'image') {
    const chosen = COMMANDS.filter(([, imageSubcommands]) => sub !== undefined && imageSubcommands.includes(sub));
    return chosen.length > 0 ? chosen : COMMANDS.filter(([, imageSubcommands]) => imageSubcommands.length > 0);
  }
  const chosen = COMMANDS.filter(([names]) => word !== undefined && names.includes(word));
  return chosen.length > 0 ? chosen : COMMANDS;
}

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
    process.stderr.write(warningLine(`the command finished but ${left.length > 0 ? left.join(', ') : 'something'} kept the process alive; exiting (please report this)`));
    process.exit();
  }, EXIT_GRACE_MS).unref();
}

const program = new Command('skiff')
  .description('container image distribution: registry, mirror, client and syncer')
  .version('0.1.0')
  .showHelpAfterError()
  // Subcommands inherit this (they copy it when created): every error line starts `skiff: `.
  .configureOutput({ outputError: (text, write) => write(commanderErrorLine(text)) });

try {
  const args = process.argv.slice(2);
  const word = args.find((arg) => !arg.startsWith('-'));
  // `skiff --version` needs no command's module: the root program answers it.
  const versionOnly = args.length === 1 && (args[0] === '--version' || args[0] === '-V');
  if (!versionOnly) for (const [, , load] of chooseCommands(args)) (await load())(program);
  await program.parseAsync(process.argv);
  if (word === undefined || !KEEPS_RUNNING.has(word)) exitIfStillRunning();
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof ConfigError) {
    process.stderr.write(`skiff: configuration error:\n${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(errorLine(error, { debug: Boolean(process.env.SKIFF_DEBUG) }));
  process.exit(1);
}
