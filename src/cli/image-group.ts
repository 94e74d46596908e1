import type { Command } from 'commander';

/**
 * `skiff image <subcommand>`, docker's management command: each command module adds its own
 * subcommands (pull, push, save, load, ls, rm, …), so main.ts still loads only what is run.
 */
export function imageGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'image');
  return existing ?? program.command('image').description('manage images (docker\'s `image` subcommands: ls, pull, push, save, load, inspect, history, tag, rm, prune)');
}
