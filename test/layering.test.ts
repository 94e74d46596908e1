/**
 * Dependencies run downward only (DESIGN.md §1): each top-level folder of src/ may import only
 * the folders listed for it. `client` and `server` never import each other; no face imports a
 * sibling face; only `cli` (and the test support in `testing`) sees everything.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const BASE = ['digest', 'reference', 'oci', 'errors', 'platform'];
const ALLOWED: Record<string, string[]> = {
  digest: ['errors'],
  errors: [],
  platform: [],
  reference: ['digest', 'errors'],
  oci: ['digest', 'errors', 'reference'],
  content: BASE,
  graph: [...BASE, 'content'],
  client: [...BASE, 'content', 'graph'],
  // The mirror's fallback to upstreams lives in proxy, the only part of the server that reaches `client`.
  // Credentials, policy and tokens: plain logic the server (and later the web UI) asks.
  auth: [...BASE],
  server: [...BASE, 'content', 'graph', 'proxy', 'auth'],
  images: [...BASE, 'content', 'graph', 'client'],
  sync: [...BASE, 'content', 'graph', 'client'],
  proxy: [...BASE, 'content', 'graph', 'client'],
  testing: ['*'],
  cli: ['*'],
  // The browser app: it runs in a browser, so of the server it reads only the API's types (checked below).
  ui: ['server'],
};
/** The one server file the browser app may import: the /api/v1/ contract, types only. */
const UI_CONTRACT = 'server/ui/api-types.ts';

function* sources(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sources(path);
    else if (name.endsWith('.ts') || name.endsWith('.tsx')) yield path;
  }
}

test('src/ folders import only the layers below them', () => {
  const violations: string[] = [];
  for (const file of sources(SRC)) {
    const from = relative(SRC, file).split(sep)[0]!;
    const allowed = ALLOWED[from];
    assert.ok(allowed, `src/${from}/ is not in the layering table of test/layering.test.ts: add it`);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = relative(SRC, resolve(file, '..', match[1]!)).split(sep)[0]!;
      if (from === 'ui' && target === 'server' && relative(SRC, resolve(file, '..', match[1]!)) !== UI_CONTRACT) {
        violations.push(`${relative(SRC, file)} imports ${match[1]}: the browser app may import only src/${UI_CONTRACT}`);
        continue;
      }
      if (target === from || allowed.includes('*') || allowed.includes(target)) continue;
      violations.push(`${relative(SRC, file)} imports src/${target}/ (${match[1]})`);
    }
  }
  assert.deepEqual(violations, []);
});
