import type { Command } from 'commander';
import type { PushEvent } from '../images/push.ts';
import { Pusher } from '../images/push.ts';
import { ImageStore, defaultStoreRoot } from '../images/store.ts';
import { clientFactory } from './registry-clients.ts';

/** Docker's push lines: `<id>: Pushed`, `<id>: Mounted from x`, `<tag>: digest: … size: …`. */
function printPushEvent(event: PushEvent): void {
  if (event.type === 'start') process.stdout.write(`The push refers to repository [${event.repository}]\n`);
  else if (event.type === 'done') process.stdout.write(`${event.tag}: digest: ${event.digest} size: ${event.size}\n`);
  else if (event.status !== 'Pushing' && event.status !== 'Waiting') {
    process.stdout.write(`${event.id}: ${event.status}${event.from ? ` ${event.from}` : ''}\n`);
  }
}

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('upload an image from the local store to a registry')
    .argument('<reference>', 'name[:tag]; without a tag, every local tag of the repository')
    .option('--max-concurrent-uploads <n>', 'parallel blob uploads', (v) => Number(v), 5)
    .option('-q, --quiet', 'print nothing but errors')
    .option('--root <dir>', 'local store (default $SKIFF_ROOT or ~/.local/share/skiff)')
    .option('--insecure-registry <host>', 'allow plain HTTP to this host (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--ca-file <pem>', 'extra certificate authorities to trust (default $SKIFF_CA_FILE)')
    .action(async (reference: string, options: { maxConcurrentUploads: number; quiet?: boolean; root?: string; insecureRegistry: string[]; caFile?: string }) => {
      const store = await ImageStore.open(options.root ?? defaultStoreRoot());
      const clients = clientFactory({ insecureRegistries: options.insecureRegistry, ...(options.caFile ? { caFile: options.caFile } : {}) });
      try {
        await new Pusher(store, clients.get).push(reference, { maxConcurrentUploads: options.maxConcurrentUploads, ...(options.quiet ? {} : { onEvent: printPushEvent }) });
      } finally {
        await clients.close();
      }
    });
}
