import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/**
 * Fake `docker-credential-*` programs for tests, as small shell scripts in `<dir>/bin`:
 *
 * - `fake`: a working store keeping one JSON file per server URL in `<dir>/store`, logging every
 *   call (`<verb> <stdin>`) to `<dir>/calls.log`; "credentials not found in native keychain" when empty
 * - `token`: answers every get with Username `<token>` (an identity token)
 * - `empty`: answers get with an empty record (exit 0)
 * - `broken`: fails with a message on stderr, status 3
 * - `garbage`: prints something that is not JSON, status 0
 * - `slow`: never answers within a test's patience
 *
 * `env` is process.env with `<dir>/bin` first on PATH; pass it to the code under test rather than
 * changing process.env.
 */
export interface FakeHelpers {
  bin: string;
  storeDir: string;
  env: NodeJS.ProcessEnv;
  /** Lines of `<verb> <stdin>` in call order. */
  calls(): Promise<string[]>;
  /** What `store` saved for a server URL, parsed; undefined when nothing. */
  stored(serverURL: string): Promise<{ ServerURL: string; Username: string; Secret: string } | undefined>;
}

const FAKE = String.raw`#!/bin/sh
dir="$FAKE_HELPER_DIR"
input=$(cat)
printf '%s %s\n' "$1" "$input" >> "$dir/calls.log"
key() { printf '%s' "$1" | tr -c 'A-Za-z0-9.-' '_'; }
field() { printf '%s' "$2" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
case "$1" in
  get)
    f="$dir/store/$(key "$input").json"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    url=$(field ServerURL "$input")
    [ -n "$url" ] || { echo "no ServerURL in input" >&2; exit 1; }
    printf '%s' "$input" > "$dir/store/$(key "$url").json" ;;
  erase)
    f="$dir/store/$(key "$input").json"
    if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  list)
    printf '{'; sep=''
    for f in "$dir"/store/*.json; do
      [ -f "$f" ] || continue
      c=$(cat "$f")
      printf '%s"%s":"%s"' "$sep" "$(field ServerURL "$c")" "$(field Username "$c")"; sep=','
    done
    printf '}' ;;
  *) echo "unknown verb $1" >&2; exit 2 ;;
esac
`;

const OTHERS: Record<string, string> = {
  token: `#!/bin/sh\nurl=$(cat)\nprintf '{"ServerURL":"%s","Username":"<token>","Secret":"identity-for-%s"}' "$url" "$url"\n`,
  empty: `#!/bin/sh\ncat >/dev/null\nprintf '{"ServerURL":"","Username":"","Secret":""}'\n`,
  broken: `#!/bin/sh\ncat >/dev/null\necho "the keychain is locked" >&2\nexit 3\n`,
  garbage: `#!/bin/sh\ncat >/dev/null\necho "hello, I am not JSON"\n`,
  slow: `#!/bin/sh\nexec sleep 30\n`,
};

export async function installFakeHelpers(dir: string): Promise<FakeHelpers> {
  const bin = join(dir, 'bin');
  const storeDir = join(dir, 'store');
  await mkdir(bin, { recursive: true });
  await mkdir(storeDir, { recursive: true });
  for (const [name, script] of Object.entries({ fake: FAKE, ...OTHERS })) {
    const file = join(bin, `docker-credential-${name}`);
    await writeFile(file, script);
    await chmod(file, 0o755);
  }
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? '/usr/bin:/bin'}`, FAKE_HELPER_DIR: dir };
  return {
    bin,
    storeDir,
    env,
    async calls() {
      try {
        return (await readFile(join(dir, 'calls.log'), 'utf8')).split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
    async stored(serverURL: string) {
      try {
        return JSON.parse(await readFile(join(storeDir, `${serverURL.replace(/[^A-Za-z0-9.-]/g, '_')}.json`), 'utf8')) as { ServerURL: string; Username: string; Secret: string };
      } catch {
        return undefined;
      }
    },
  };
}
