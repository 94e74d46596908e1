/** Everything a case needs: options, the skiff build, image sets, the shared source registry, the limits. */
import type { ImageSet } from './gen/sets.ts';
import { imageSet } from './gen/sets.ts';
import type { Options } from './options.ts';
import { expectSet, pushSet } from './registry.ts';
import { startCncf } from './servers/cncf.ts';
import type { Server } from './servers/server.ts';
import type { SkiffCli } from './servers/skiff-cli.ts';

export interface Limits {
  sha256MBps?: number;
  ddWriteMBps?: number;
}

export class Context {
  readonly options: Options;
  readonly runDir: string;
  readonly skiff: SkiffCli;
  readonly limits: Limits = {};
  readonly log: (line: string) => void;
  private readonly sets = new Map<string, Promise<ImageSet>>();
  private sourceServer: Promise<Server> | undefined;
  private readonly loaded = new Set<string>();

  constructor(options: Options, runDir: string, skiff: SkiffCli, log: (line: string) => void) {
    this.options = options;
    this.runDir = runDir;
    this.skiff = skiff;
    this.log = log;
  }

  set(name: ImageSet['name']): Promise<ImageSet> {
    let set = this.sets.get(name);
    if (!set) {
      set = imageSet(name, this.options.bigMiB, this.log);
      this.sets.set(name, set);
    }
    return set;
  }

  /**
   * One CNCF registry that the client cases (sync, copy, pull) read from: the same source for skiff
   * and skopeo, so only the client differs. Sets are loaded on first use.
   */
  async source(...names: ImageSet['name'][]): Promise<Server> {
    this.sourceServer ??= startCncf(this.runDir, 'source');
    const server = await this.sourceServer;
    for (const name of names) {
      if (this.loaded.has(name)) continue;
      const set = await this.set(name);
      this.log(`  loading ${name} into the source registry ${server.host}`);
      await pushSet(set, server.host);
      await expectSet(server.host, set);
      this.loaded.add(name);
    }
    return server;
  }
}
