/**
 * image-syncer's `$VAR` / `${VAR}` expansion (Go's os.ExpandEnv): an unset variable becomes the
 * empty string. A lone `$` not followed by a name is kept, so passwords with `$` in them survive.
 */
export function expandEnv(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, braced: string | undefined, bare: string | undefined) => env[braced ?? bare ?? ''] ?? '');
}
