import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { imageHistory, renderHistory } from '../images/history.ts';
import { inspectImages, renderInspect } from '../images/inspect.ts';
import { imagesText } from '../images/list.ts';
import { PRUNE_ALL_WARNING, PRUNE_WARNING, formatPruneReport, formatRemoveItems, pruneImages, removeImage } from '../images/remove.ts';
import { ImageStore, defaultStoreRoot } from '../images/store.ts';
import { tagImage } from '../images/tag.ts';
import { errorLine } from './error-line.ts';
import { imageGroup } from './image-group.ts';
import { ROOT_FLAG, ROOT_HELP } from './root-option.ts';

/**
 * Docker's local image commands over skiff's image store:
 *   images / image ls, rmi / image rm, image prune, tag / image tag,
 *   inspect / image inspect, history / image history.
 * Each is thin: flags → library call → text. Output goes through `io` so tests can capture it.
 * A failure that stops the command is thrown (main prints it and exits 1); commands over
 * several images (rmi, inspect) report each failure on stderr in main's format (`skiff: …`),
 * go on, and exit 1 at the end.
 */
export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Asks a yes/no question (prune without -f). */
  confirm: (question: string) => Promise<boolean>;
  setExitCode: (code: number) => void;
}

export const processIO: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  confirm: (question) => askYesNo(question),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function parseBool(value: string | boolean | undefined): boolean {
  if (value === undefined || value === true) return true;
  if (value === false) return false;
  const v = value.toLowerCase();
  if (['1', 't', 'true', 'yes'].includes(v)) return true;
  if (['0', 'f', 'false', 'no'].includes(v)) return false;
  throw new Error(`invalid boolean value ${JSON.stringify(value)}`);
}

async function openStore(root: string | undefined): Promise<ImageStore> {
  return ImageStore.open(root ?? defaultStoreRoot());
}

export function registerImages(program: Command, io: CliIO = processIO): void {
  const group = imageGroup(program);

  // ---- images / image ls
  const list = (command: Command) =>
    command
      .argument('[repository]', 'REPOSITORY[:TAG], a reference filter')
      .option('-a, --all', 'show all images (dangling ones are shown anyway)')
      .option('--digests', 'show digests')
      .option('-f, --filter <filter>', 'filter output (dangling, label, before, since, reference); repeatable', collect, [])
      .option('--format <string>', "'table', 'table TEMPLATE', 'json' or a Go template")
      .option('--no-trunc', "don't truncate output")
      .option('-q, --quiet', 'only show image IDs')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (repository: string | undefined, options: ListFlags) => {
        const store = await openStore(options.root);
        io.out(
          await imagesText(store, {
            ...(repository !== undefined ? { reference: repository } : {}),
            filters: options.filter,
            all: options.all ?? false,
            quiet: options.quiet ?? false,
            digests: options.digests ?? false,
            noTrunc: options.trunc === false,
            ...(options.format !== undefined ? { format: options.format } : {}),
          }),
        );
      });
  list(program.command('images').description('list images'));
  list(group.command('ls').alias('list').description('list images'));

  // ---- rmi / image rm
  const rmi = (command: Command) =>
    command
      .argument('<image...>', 'images by name or ID')
      .option('-f, --force', 'remove an image referenced in several repositories by ID')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (inputs: string[], options: { force?: boolean; root?: string }) => {
        const store = await openStore(options.root);
        let failed = false;
        for (const input of inputs) {
          try {
            const result = await removeImage(store, input, { force: options.force ?? false });
            io.out(formatRemoveItems(result.items));
          } catch (error) {
            failed = true;
            io.err(errorLine(error));
          }
        }
        if (failed) io.setExitCode(1);
      });
  rmi(program.command('rmi').description('remove images'));
  rmi(group.command('rm').alias('remove').description('remove images'));

  // ---- image prune
  group
    .command('prune')
    .description('remove dangling images (-a: every image)')
    .option('-a, --all', 'remove all images, not just dangling ones')
    .option('-f, --force', 'do not prompt for confirmation')
    .option(ROOT_FLAG, ROOT_HELP)
    .action(async (options: { all?: boolean; force?: boolean; root?: string }) => {
      const warning = options.all ? PRUNE_ALL_WARNING : PRUNE_WARNING;
      if (!options.force && !(await io.confirm(`${warning}\nAre you sure you want to continue?`))) {
        io.out(formatPruneReport({ items: [], reclaimed: 0 }));
        return;
      }
      const store = await openStore(options.root);
      io.out(formatPruneReport(await pruneImages(store, { all: options.all ?? false })));
    });

  // ---- tag / image tag
  const tag = (command: Command) =>
    command
      .argument('<source>', 'SOURCE_IMAGE[:TAG] or image ID')
      .argument('<target>', 'TARGET_IMAGE[:TAG]')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (source: string, target: string, options: { root?: string }) => {
        await tagImage(await openStore(options.root), source, target);
      });
  tag(program.command('tag').description('create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));
  tag(group.command('tag').description('create a tag TARGET_IMAGE that refers to SOURCE_IMAGE'));

  // ---- inspect / image inspect
  const inspect = (command: Command) =>
    command
      .argument('<image...>', 'images by name or ID')
      .option('-f, --format <string>', 'format the output using a Go template')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (inputs: string[], options: { format?: string; root?: string }) => {
        const { found, errors } = await inspectImages(await openStore(options.root), inputs);
        if (found.length > 0 || !options.format) io.out(renderInspect(found, options.format));
        for (const error of errors) io.err(errorLine(error));
        if (errors.length > 0) io.setExitCode(1);
      });
  inspect(program.command('inspect').description('show low-level information on images'));
  inspect(group.command('inspect').description('show low-level information on images'));

  // ---- history / image history
  const history = (command: Command) =>
    command
      .argument('<image>', 'image by name or ID')
      // docker's -H is a boolean that defaults to true; --human=false turns it off. Short -H takes
      // no value, so `history -H alpine` keeps alpine as the image.
      .option('-H', 'print sizes and dates in human readable format (the default)')
      .option('--human [bool]', 'print sizes and dates in human readable format: --human=false for bytes and RFC 3339', parseBool, true)
      .option('--no-trunc', "don't truncate output")
      .option('-q, --quiet', 'only show image IDs')
      .option('--format <string>', "'table', 'table TEMPLATE', 'json' or a Go template")
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (input: string, options: HistoryFlags) => {
        const rows = await imageHistory(await openStore(options.root), input);
        io.out(
          renderHistory(rows, {
            quiet: options.quiet ?? false,
            noTrunc: options.trunc === false,
            human: options.human,
            ...(options.format !== undefined ? { format: options.format } : {}),
          }),
        );
      });
  history(program.command('history').description('show the history of an image'));
  history(group.command('history').description('show the history of an image'));
}

interface ListFlags {
  all?: boolean;
  digests?: boolean;
  filter: string[];
  format?: string;
  trunc?: boolean;
  quiet?: boolean;
  root?: string;
}

interface HistoryFlags {
  human: boolean;
  trunc?: boolean;
  quiet?: boolean;
  format?: string;
  root?: string;
}

/** docker's PromptForConfirmation: `y` or `yes` confirms; anything else, or end of input, does not. */
async function askYesNo(question: string): Promise<boolean> {
  process.stdout.write(`${question} [y/N] `);
  const lines = createInterface({ input: process.stdin, terminal: false });
  try {
    for await (const line of lines) {
      const answer = line.trim().toLowerCase();
      return answer === 'y' || answer === 'yes';
    }
    return false;
  } finally {
    lines.close();
  }
}
