import { Command, CommanderError } from 'commander';
import { ConfigError } from '../server/config.ts';
import { registerArchive } from './archive.ts';
import { registerImages } from './images.ts';
import { registerLogin } from './login.ts';
import { registerPull } from './pull.ts';
import { registerPush } from './push.ts';
import { registerServe } from './serve.ts';
import { registerSync } from './sync.ts';

const program = new Command('skiff')
  .description('container image distribution: registry, mirror, client and syncer')
  .version('0.1.0')
  .showHelpAfterError();
registerServe(program);
registerPull(program);
registerLogin(program);
registerImages(program);
registerArchive(program);
registerPush(program);
registerSync(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode);
  if (error instanceof ConfigError) {
    process.stderr.write(`skiff: configuration error:\n${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`skiff: ${process.env.SKIFF_DEBUG ? (error as Error).stack : (error as Error).message}\n`);
  process.exit(1);
}
