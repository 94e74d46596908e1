/**
 * A setting that cannot be used: a bad flag, config file, auth.json or images.json. The message
 * names the file (or "flags"), the key and why; the CLI prints it and exits with status 2.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
