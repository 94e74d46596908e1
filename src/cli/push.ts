import type { Command } from 'commander';
import { Pusher } from '../images/push.ts';
import { ImageStore, defaultStoreRoot } from '../images/store.ts';
import { imageGroup } from './image-group.ts';
import { PushProgress } from './push-progress.ts';
import { clientFactory } from './registry-clients.ts';
import { ROOT_FLAG, ROOT_HELP } from './root-option.ts';

interface PushFlags {
  maxConcurrentUploads: number;
  quiet?: boolean;
  progress: string;
  root?: string;
  insecureRegistry: string[];
  caFile?: string;
}

/** `skiff push` and `skiff image push`: flags → Pusher → docker-style progress. */
export function registerPush(program: Command): void {
  const define = (command: Command) =>
    command
      .description('upload an image from the local store to a registry')
      .argument('<reference>', 'name[:tag]; without a tag, every local tag of the repository')
      .option('--max-concurrent-uploads <n>', 'parallel blob uploads', (v) => Number(v), 5)
      .option('-q, --quiet', 'print nothing but errors')
      .option('--progress <mode>', 'auto|plain|json|tty', 'auto')
      .option(ROOT_FLAG, ROOT_HELP)
      .option('--insecure-registry <host>', 'allow plain HTTP to this host (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
      .option('--ca-file <pem>', 'extra certificate authorities to trust (default $SKIFF_CA_FILE)')
      .action(async (reference: string, options: PushFlags) => {
        const progress = new PushProgress(process.stdout, options.progress);
        const store = await ImageStore.open(options.root ?? defaultStoreRoot());
        const clients = clientFactory({ insecureRegistries: options.insecureRegistry, ...(options.caFile ? { caFile: options.caFile } : {}) });
        try {
          await new Pusher(store, clients.get).push(reference, { maxConcurrentUploads: options.maxConcurrentUploads, ...(options.quiet ? {} : { onEvent: progress.handle }) });
        } finally {
          progress.finish();
          await clients.close();
        }
      });
  define(program.command('push'));
  define(imageGroup(program).command('push'));
}
