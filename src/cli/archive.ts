import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { AmbiguousImageError, NoSuchImageError } from '../images/resolve.ts';
import { load } from '../images/load.ts';
import { save } from '../images/save.ts';
import { defaultStoreRoot, ImageStore } from '../images/store.ts';
import { unpack, UnpackTargetError } from '../images/unpack.ts';
import { warningLine } from './error-line.ts';
import { imageGroup } from './image-group.ts';
import { ROOT_FLAG, ROOT_HELP } from './root-option.ts';

/** Where the commands read and write; tests pass their own streams. */
export interface ArchiveIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable;
}

/** Resolves once a destroyed file stream has closed its descriptor. */
function closed(stream: Readable | Writable): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((resolve) => stream.once('close', () => resolve()));
}

/**
 * `skiff save`, `skiff load` and `skiff unpack` (save and load also as `skiff image save|load`):
 * thin wrappers over src/images/{save,load,unpack}.ts.
 */
export function registerArchive(program: Command, io: ArchiveIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }): void {
  const defineSave = (command: Command) =>
    command
      .description('save images to a tar archive (an OCI image layout plus docker\'s manifest.json), streamed to stdout by default')
      .argument('<image...>', 'names (a repository without a tag saves all its tags), name@digest, or image IDs')
      .option('-o, --output <file>', 'write to a file instead of stdout')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (images: string[], options: { output?: string; root?: string }) => {
        const store = await ImageStore.open(options.root ?? defaultStoreRoot());
        if (options.output === undefined || options.output === '-') {
          if (io.stdout.isTTY) throw new Error('cowardly refusing to write an image archive to a terminal; use -o <file> or redirect stdout');
          await save(store, images, io.stdout).catch((error: NodeJS.ErrnoException) => {
            throw error.code === 'EPIPE' ? new Error('the reader of stdout went away before the archive was complete (broken pipe)', { cause: error }) : error;
          });
          return;
        }
        // Write beside the target and rename, so a failed save never leaves a truncated archive behind.
        const temp = join(dirname(options.output), `.${basename(options.output)}.${randomUUID()}.tmp`);
        const output = createWriteStream(temp, { flush: true });
        try {
          await save(store, images, output);
          await rename(temp, options.output);
        } catch (error) {
          // save() may fail before it used the stream (no such image): close the file ourselves, and
          // only then remove it, or its pending open would create it again after the rm.
          output.destroy();
          await closed(output);
          await rm(temp, { force: true });
          throw error;
        }
      });
  defineSave(program.command('save'));
  defineSave(imageGroup(program).command('save'));

  const defineLoad = (command: Command) =>
    command
      .description('load images from a tar archive (docker save, skiff save, skopeo oci-archive: or docker-archive:), read from stdin by default')
      .option('-i, --input <file>', 'read from a file instead of stdin (gzip and zstd are recognised)')
      .option(ROOT_FLAG, ROOT_HELP)
      .action(async (options: { input?: string; root?: string }) => {
        const store = await ImageStore.open(options.root ?? defaultStoreRoot());
        let input: Readable;
        if (options.input === undefined || options.input === '-') {
          if (io.stdin.isTTY) throw new Error('requested load from stdin, but stdin is a terminal; use -i <file> or redirect stdin');
          input = io.stdin;
        } else {
          input = createReadStream(options.input);
        }
        try {
          await load(store, input, { onMessage: (line) => io.stdout.write(`${line}\n`) });
        } finally {
          // A load that stopped early (not an archive, a bad entry) leaves the file open otherwise.
          if (input !== io.stdin) {
            input.destroy();
            await closed(input);
          }
        }
      });
  defineLoad(program.command('load'));
  defineLoad(imageGroup(program).command('load'));

  program
    .command('unpack')
    .description('unpack an image\'s layers into a directory as a root filesystem (whiteouts applied, DiffIDs verified)')
    .argument('<image>', 'name, name@digest or image ID')
    .argument('<dir>', 'new or empty directory to unpack into')
    .option(ROOT_FLAG, ROOT_HELP)
    .action(async (image: string, dir: string, options: { root?: string }) => {
      const store = await ImageStore.open(options.root ?? defaultStoreRoot());
      try {
        const result = await unpack(store, image, dir);
        for (const skipped of result.skipped) io.stderr.write(warningLine(`skipped ${skipped.type} ${skipped.path}: ${skipped.reason}`));
      } catch (error) {
        if (error instanceof NoSuchImageError || error instanceof AmbiguousImageError || error instanceof UnpackTargetError) throw error;
        throw new Error(`${(error as Error).message}\n(the tree in ${dir} is incomplete; remove it before trying again)`, { cause: error });
      }
    });
}
