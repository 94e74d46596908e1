import type { Command } from 'commander';
import { Puller } from '../images/pull.ts';
import { ImageStore, defaultStoreRoot } from '../images/store.ts';
import { parsePlatform } from '../oci/platform.ts';
import { PullProgress } from './pull-progress.ts';
import { clientFactory, loadClientMirrors } from './registry-clients.ts';

/** `skiff pull`: flags → Puller → docker-style progress. */
export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('download an image from a registry into the local store')
    .argument('<reference>', 'image reference, e.g. alpine, alpine:3.20, ghcr.io/o/app@sha256:…')
    .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
    .option('-a, --all-tags', 'download every tagged image of the repository')
    .option('--max-concurrent-downloads <n>', 'parallel layer downloads', (v) => Number(v), 3)
    .option('-q, --quiet', 'print only the image reference')
    .option('--progress <mode>', 'auto|plain|json|tty', 'auto')
    .option('--root <dir>', 'local store (default $SKIFF_ROOT or ~/.local/share/skiff)')
    .option('--mirror-config <file>', 'mirrors per registry (default $SKIFF_MIRROR_CONFIG or ~/.config/skiff/mirrors.yaml)')
    .option('--insecure-registry <host>', 'allow plain HTTP to this host (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--ca-file <pem>', 'extra certificate authorities to trust (default $SKIFF_CA_FILE)')
    .action(async (reference: string, options: { platform?: string; allTags?: boolean; maxConcurrentDownloads: number; quiet?: boolean; progress: string; root?: string; mirrorConfig?: string; insecureRegistry: string[]; caFile?: string }) => {
      const store = await ImageStore.open(options.root ?? defaultStoreRoot());
      const clients = clientFactory({ mirrors: await loadClientMirrors(options.mirrorConfig), insecureRegistries: options.insecureRegistry, ...(options.caFile ? { caFile: options.caFile } : {}) });
      const puller = new Puller(store, clients.pullSource);
      const progress = new PullProgress(process.stdout, options.progress as 'auto');
      const pullOptions = {
        ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
        maxConcurrentDownloads: options.maxConcurrentDownloads,
        ...(options.quiet ? {} : { onEvent: progress.handle }),
      };
      try {
        const results = options.allTags ? await puller.pullAllTags(reference, pullOptions) : [await puller.pull(reference, pullOptions)];
        if (options.quiet) for (const result of results) process.stdout.write(`${result.reference}\n`);
      } finally {
        progress.finish();
        await puller.close();
        await clients.close();
      }
    });
}

