import type { Command } from 'commander';
import { Puller } from '../images/pull.ts';
import { ImageStore, defaultStoreRoot } from '../images/store.ts';
import { parsePlatform } from '../oci/platform.ts';
import { canonicalName, parseReference } from '../reference/reference.ts';
import { warningLine } from './error-line.ts';
import { imageGroup } from './image-group.ts';
import { PullProgress } from './pull-progress.ts';
import { clientFactory, loadClientMirrors, MIRROR_CONFIG_HELP } from './registry-clients.ts';
import { ROOT_FLAG, ROOT_HELP } from './root-option.ts';

interface PullFlags {
  platform?: string;
  allTags?: boolean;
  maxConcurrentDownloads: number;
  quiet?: boolean;
  progress: string;
  root?: string;
  mirrorConfig?: string;
  insecureRegistry: string[];
  caFile?: string;
}

/** `skiff pull` and `skiff image pull`: flags → Puller → docker-style progress. */
export function registerPull(program: Command): void {
  const define = (command: Command) =>
    command
      .description('download an image from a registry into the local store')
      .argument('<reference>', 'image reference, e.g. alpine, alpine:3.20, ghcr.io/o/app@sha256:…')
      .option('--platform <os/arch[/variant]>', 'platform to pick from a multi-platform image (default: this host)')
      .option('-a, --all-tags', 'download every tagged image of the repository')
      .option('--max-concurrent-downloads <n>', 'parallel layer downloads', (v) => Number(v), 3)
      .option('-q, --quiet', 'print only the image reference')
      .option('--progress <mode>', 'auto|plain|json|tty', 'auto')
      .option(ROOT_FLAG, ROOT_HELP)
      .option('--mirror-config <file>', MIRROR_CONFIG_HELP)
      .option('--insecure-registry <host>', 'allow plain HTTP to this host (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
      .option('--ca-file <pem>', 'extra certificate authorities to trust (default $SKIFF_CA_FILE)')
      .action(async (reference: string, options: PullFlags) => {
        const progress = new PullProgress(process.stdout, options.progress);
        const store = await ImageStore.open(options.root ?? defaultStoreRoot());
        const clients = clientFactory({ mirrors: await loadClientMirrors(options.mirrorConfig), insecureRegistries: options.insecureRegistry, ...(options.caFile ? { caFile: options.caFile } : {}) });
        const puller = new Puller(store, clients.pullSource);
        const pullOptions = {
          ...(options.platform ? { platform: parsePlatform(options.platform) } : {}),
          maxConcurrentDownloads: options.maxConcurrentDownloads,
          ...(options.quiet ? {} : { onEvent: progress.handle }),
        };
        try {
          const results = options.allTags ? await puller.pullAllTags(reference, pullOptions) : [await puller.pull(reference, pullOptions)];
          if (options.quiet) for (const result of results) process.stdout.write(`${result.reference}\n`);
          // docker pulls nothing and says nothing (exit 0); an empty repository deserves a word.
          if (options.allTags && results.length === 0) {
            process.stderr.write(warningLine(`${canonicalName(parseReference(reference, { defaultTag: false }))} has no tags; nothing was pulled`));
          }
        } finally {
          progress.finish();
          await puller.close();
          await clients.close();
        }
      });
  define(program.command('pull'));
  define(imageGroup(program).command('pull'));
}
