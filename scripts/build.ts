/**
 * Builds dist/, what bin/skiff and the benchmarks run: `node scripts/build.ts` (npm run build;
 * `npm ci` runs it as `prepare`; bin/skiff runs it when src/, this script or node_modules changed
 * after dist/cli/main.js was written). It does not type-check: `npm run typecheck` does.
 *
 * Start-up is part of every command's latency, so dist/ is a bundle, not one file per module:
 *
 * - esbuild bundles src/cli/main.ts with the libraries it uses, split per command: the dynamic
 *   imports in main.ts's COMMANDS (and the lazy ones inside commands) become chunks, and a command
 *   loads only its own and the ones it shares. Fewer files to resolve, read and compile.
 * - dist/cli/main.js is a small entry that turns on V8's compile cache before any of skiff's code
 *   is compiled (main.ts's own call comes after its imports are compiled), then imports the
 *   bundle (dist/cli/skiff.js).
 * - Node's built-in modules are taken with `process.getBuiltinModule`, not `import`: an import
 *   makes Node build an ES module facade that reads every export, and some exports are getters
 *   with a price (`fs.ReadStream` loads fs/promises and readline, `process.stdin` opens stdin,
 *   node:http's `WebSocket` loads undici). commander's imports alone cost ~15–20 ms of every
 *   command that way, most of what `skiff --version` took beyond `node -e 0`.
 * - src/images/decode-thread.ts is an entry of its own: its worker runs `new URL(import.meta.url)`,
 *   which in the bundle is the chunk holding that module, so the chunk must hold little else.
 * - The web UI (src/ui, Preact) is built for browsers into dist/ui/ by scripts/build-ui.ts, after
 *   the CLI: hashed assets with brotli and gzip copies beside them, then index.html.
 *
 * Files are written next to the old ones and renamed into place, chunks first and the entry last:
 * a skiff starting during a build runs either the old build or the new one, never half of each.
 * Chunk names carry a content hash; old chunks stay for processes that still import them, and are
 * removed once nothing has written them for an hour.
 */
import { build, type Plugin } from 'esbuild';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeAtomically } from './write-atomically.ts';
import { buildUi } from './build-ui.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** dist/, or the directory given (`node scripts/build.ts /tmp/x` builds elsewhere, for comparisons). */
const DIST = process.argv[2] ? resolve(process.argv[2]) : join(ROOT, 'dist');
/** Files of earlier builds that no build has written for this long are removed. */
const STALE_MS = 60 * 60 * 1000;

const BUILTINS = new Set(builtinModules.flatMap((name) => (name.startsWith('node:') ? [name] : [name, `node:${name}`])));

/**
 * Builtins that one importer uses only through its default import, and only on a path skiff never
 * takes, so they load on first use: commander's `childProcess.spawn` runs executable subcommands
 * (skiff has none), and node:child_process brings node:net and the stream stack with it.
 */
const LAZY: { importer: RegExp; builtin: string }[] = [{ importer: /\/node_modules\/commander\/lib\/command\.js$/, builtin: 'child_process' }];

/** `import x, { a, b as c, type T } from 'node:fs'` (or a part of it): the default and value names it takes. */
function importedNames(source: string, specifier: string): { names: Set<string>; other: boolean } {
  const names = new Set<string>();
  let other = false;
  const quoted = `['"]${specifier.replace(/[/]/g, '\\/')}['"]`;
  for (const match of source.matchAll(new RegExp(`\\b(import|export)\\s+([^;'"]*?)\\s*from\\s*${quoted}`, 'g'))) {
    const [, keyword, clause = ''] = match;
    if (/^type\b/.test(clause)) continue; // import type: erased
    const parts = /^(?:([A-Za-z_$][\w$]*)\s*,?\s*)?(?:\{([^}]*)\})?$/.exec(clause.trim());
    if (keyword !== 'import' || !parts) {
      other = true; // import * as, export … from: takes the whole module
      continue;
    }
    if (parts[1]) names.add('default');
    for (const item of (parts[2] ?? '').split(',')) {
      const name = item.trim().split(/\s+as\s+/)[0]!;
      if (name && !name.startsWith('type ')) names.add(name);
    }
  }
  // import('node:fs') or require('node:fs') beside the import statements: the whole module too.
  if (new RegExp(`\\b(import|require)\\s*\\(\\s*${quoted}\\s*\\)`).test(source)) other = true;
  return { names, other };
}

/**
 * Each import of a Node built-in module becomes `process.getBuiltinModule('node:fs')`, in a module
 * of its own for each importer (a shared one would be a chunk of its own):
 * - for `import x, { a, b } from 'node:fs'` (skiff's sources and commander only write these): an ES
 *   module whose default export is the module and whose named exports are the properties imported;
 * - otherwise (`require`, `import * as`): a CommonJS module of `module.exports = <the module>`. Note
 *   that esbuild's `import * as` of a CommonJS module reads every property's descriptor, and
 *   node:util's lazy properties then load what they stand for (~15 ms for node:util alone).
 */
const builtinsWithoutFacades: Plugin = {
  name: 'builtins-without-facades',
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => {
      if (!BUILTINS.has(args.path) && !BUILTINS.has(`node:${args.path}`)) return undefined;
      return { path: `${args.path}|${relative(ROOT, args.importer)}|${args.kind}`, namespace: 'builtin', pluginData: { specifier: args.path, importer: args.importer, kind: args.kind } };
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, async (args) => {
      const { specifier, importer, kind } = args.pluginData as { specifier: string; importer: string; kind: string };
      const id = JSON.stringify(`node:${specifier.replace(/^node:/, '')}`);
      const lazy = LAZY.some((rule) => `node:${rule.builtin}` === JSON.parse(id) && rule.importer.test(importer));
      const { names, other } = kind === 'import-statement' ? importedNames(await readFile(importer, 'utf8'), specifier) : { names: new Set<string>(), other: true };
      if (other) return { contents: `module.exports = process.getBuiltinModule(${id});\n`, loader: 'js' };
      if (lazy && [...names].some((name) => name !== 'default')) throw new Error(`${importer}: LAZY expects only a default import of ${specifier}`);
      const lines = [lazy ? `let m;\nexport default new Proxy({}, { get: (_, key) => (m ??= process.getBuiltinModule(${id}))[key] });` : `const m = process.getBuiltinModule(${id});\nexport default m;`];
      for (const name of names) if (name !== 'default') lines.push(`export const ${name} = m.${name};`);
      return { contents: `${lines.join('\n')}\n`, loader: 'js' };
    });
  },
};

/**
 * `await import('pino')` of a CommonJS package: with code splitting, esbuild's chunk for it has a
 * default export only (esbuild issue #3245), so `const { pino } = await import('pino')` would get
 * undefined. This puts an ES module in between with Node's shape: the default export is
 * `module.exports`, and each of its properties a named export (names read by loading the package
 * here, as Node's loader reads them from its source).
 */
const dynamicCommonJs: Plugin = {
  name: 'dynamic-import-of-commonjs',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.kind !== 'dynamic-import' || args.namespace === 'dynamic-commonjs' || BUILTINS.has(args.path) || BUILTINS.has(`node:${args.path}`)) return undefined;
      // Only skiff's own lazy imports: a package's own `await import(…)` (the AWS SDK's) keeps esbuild's handling.
      if (args.importer.includes(`${sep}node_modules${sep}`)) return undefined;
      const resolved = await build.resolve(args.path, { kind: 'require-call', resolveDir: args.resolveDir });
      if (resolved.errors.length > 0 || !(await isCommonJs(resolved.path))) return undefined;
      return { path: args.path, namespace: 'dynamic-commonjs', pluginData: { resolveDir: args.resolveDir, file: resolved.path } };
    });
    build.onLoad({ filter: /.*/, namespace: 'dynamic-commonjs' }, (args) => {
      const { resolveDir, file } = args.pluginData as { resolveDir: string; file: string };
      const names = Object.keys(createRequire(file)(file) as object).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name) && name !== 'default');
      const contents = `const m = require(${JSON.stringify(args.path)});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`;
      return { contents, loader: 'js', resolveDir };
    });
  },
};

/** Whether Node loads this file as CommonJS: .cjs, or .js under a package.json without "type": "module". */
async function isCommonJs(file: string): Promise<boolean> {
  if (file.endsWith('.cjs')) return true;
  if (!file.endsWith('.js')) return false;
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const text = await readFile(join(dir, 'package.json'), 'utf8').catch(() => undefined);
    if (text !== undefined) return (JSON.parse(text) as { type?: string }).type !== 'module';
  }
  return true;
}

/**
 * The entry bin/skiff and the benchmarks run (`node … dist/cli/main.js <args>`). Node's default
 * cache directory, <tmpdir>/node-compile-cache, belongs to whoever created it first (Node adds a
 * directory per user inside, which others then cannot create): they fall back to one in their home.
 */
const ENTRY = `// Written by scripts/build.ts. V8's compile cache first (before any of skiff's code is compiled), then the CLI.
const { enableCompileCache, constants } = process.getBuiltinModule('node:module');
if (enableCompileCache && enableCompileCache().status === constants.compileCacheStatus.FAILED && process.env.HOME) enableCompileCache(\`\${process.env.HOME}/.cache/node-compile-cache\`);
await import('./skiff.js');
`;

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

async function removeStale(keep: Set<string>): Promise<void> {
  const now = Date.now();
  for await (const path of files(DIST)) {
    if (keep.has(path)) continue;
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_MS) await rm(path, { force: true });
  }
}

const started = performance.now();
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { 'cli/skiff': 'src/cli/main.ts', 'images/decode-thread': 'src/images/decode-thread.ts' },
  outdir: DIST,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22.18',
  sourcemap: 'linked',
  write: false,
  logLevel: 'warning',
  plugins: [builtinsWithoutFacades, dynamicCommonJs],
}).catch((error: unknown) => {
  // esbuild has printed what failed (file:line); bin/skiff then runs src/cli/main.ts instead.
  if (!(error instanceof Error && 'errors' in error)) process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});

/**
 * Optional packages that libraries require inside try/catch, and that skiff never installs: pg's
 * `pg.native` (pg-native, a libpq binding), the `debug` package's colours under ioredis, and
 * BullMQ's Valkey GLIDE client (a native addon; skiff's queue runs on ioredis).
 * Unresolved, each stays a require() that throws, which is what those libraries expect.
 */
const OPTIONAL_REQUIRES = new Set(['__require("pg-native")', '__require("supports-color")', '__require("@valkey/valkey-glide")']);
// Any other require() esbuild could not resolve would throw `Dynamic require of "x" is not supported` at run time.
const unbundled = result.outputFiles
  .filter((file) => file.path.endsWith('.js'))
  .flatMap((file) => [...file.text.matchAll(/\b__require\([^)]*\)/g)].filter((call) => !OPTIONAL_REQUIRES.has(call[0])).map((call) => `${relative(DIST, file.path)}: ${call[0]}`));
if (unbundled.length > 0) throw new Error(`a require() left unbundled:\n  ${[...new Set(unbundled)].join('\n  ')}`);

const entry = join(DIST, 'cli', 'main.js');
const outputs = result.outputFiles.map((file) => ({ path: file.path, contents: file.contents }));
// Chunks, then the bundle's entries, then main.js: whoever imports a file finds what it imports.
const rank = (path: string) => (path.includes(`${join(DIST, 'chunks')}/`) ? 0 : 1);
outputs.sort((a, b) => rank(a.path) - rank(b.path));
for (const output of outputs) await writeAtomically(output.path, output.contents);
await writeAtomically(entry, ENTRY);
const ui = await buildUi(DIST).catch((error: unknown) => {
  // esbuild has printed what failed in src/ui (file:line); anything else is printed here.
  if (!(error instanceof Error && 'errors' in error)) process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
await removeStale(new Set([entry, ...outputs.map((output) => output.path), ...ui]));
// Quiet when bin/skiff rebuilds before a command; a line under npm (build, prepare).
if (process.env.npm_lifecycle_event) {
  const count = outputs.filter((output) => output.path.endsWith('.js')).length + 1;
  process.stderr.write(`built ${relative(ROOT, DIST) || DIST}/: ${count} files and the web UI in ${Math.round(performance.now() - started)} ms\n`);
}
