/**
 * The one shape of every message skiff prints on stderr: `skiff: <what failed>` (docker's wording
 * where docker has one, e.g. `No such image: x:latest`, without docker's `Error response from
 * daemon:` since there is no daemon), and `skiff: warning: <what>` for what does not stop a command.
 * Commands that go on after a failure (rmi, inspect) and main.ts's last word all go through here.
 */
export function errorLine(error: unknown, options: { debug?: boolean } = {}): string {
  const text = error instanceof Error ? (options.debug && error.stack ? error.stack : error.message) : String(error);
  return `skiff: ${text}\n`;
}

export function warningLine(message: string): string {
  return `skiff: warning: ${message}\n`;
}

/** commander prints `error: unknown option '--x'`: the same prefix as everything else. */
export function commanderErrorLine(text: string): string {
  return text.replace(/^error: /, 'skiff: ');
}
