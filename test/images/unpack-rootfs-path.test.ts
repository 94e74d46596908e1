import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { entryComponents, resolveDirInRoot, UnsafeEntryError } from '../../src/images/rootfs-path.ts';

describe('entryComponents: cleaning layer entry names', () => {
  const ok: [string, string[]][] = [
    ['etc/passwd', ['etc', 'passwd']],
    ['/etc/passwd', ['etc', 'passwd']],
    ['./etc//passwd', ['etc', 'passwd']],
    ['usr/../etc/passwd', ['etc', 'passwd']],
    ['etc/', ['etc']],
    ['./', []],
    ['/', []],
    ['..a/b..', ['..a', 'b..']],
  ];
  for (const [input, expected] of ok) test(`${JSON.stringify(input)} → ${expected.join('/') || '(root)'}`, () => assert.deepEqual(entryComponents(input), expected));

  for (const input of ['..', '../x', 'a/../../x', '/../x', 'a/b/../../..', 'x\0y']) {
    test(`refuses ${JSON.stringify(input)}`, () => assert.throws(() => entryComponents(input), UnsafeEntryError));
  }
});

describe('resolveDirInRoot: symlinks followed as if the root were /', () => {
  let root: string;
  let base: string;
  before(async () => {
    base = await realpath(await mkdtemp(join(tmpdir(), 'skiff-resolve-')));
    root = join(base, 'root');
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await symlink('/usr/lib', join(root, 'abs-lib'));
    await symlink('usr/lib', join(root, 'rel-lib'));
    await symlink('../../../../../../..', join(root, 'usr/lib/up'));
    await symlink(base, join(root, 'host'));
    await writeFile(join(root, 'file'), 'x');
  });
  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  const cases: [string, string][] = [
    ['usr/lib', 'usr/lib'],
    ['abs-lib', 'usr/lib'],
    ['rel-lib', 'usr/lib'],
    ['usr/lib/up', ''],
    ['usr/lib/up/usr/lib', 'usr/lib'],
    ['abs-lib/../..', ''],
  ];
  for (const [input, expected] of cases) {
    test(`${input} → /${expected}`, async () => {
      assert.equal(await resolveDirInRoot(root, input.split('/')), join(root, expected));
    });
  }

  test('a link to a host path is re-rooted; missing parts are created only when asked', async () => {
    const parts = ['host', 'elsewhere'];
    assert.equal(await resolveDirInRoot(root, parts), undefined);
    const made = await resolveDirInRoot(root, parts, { create: true });
    assert.equal(made, join(root, base.slice(1), 'elsewhere'));
    assert.ok((await stat(made!)).isDirectory());
    await assert.rejects(stat(join(base, 'elsewhere')), { code: 'ENOENT' });
  });

  test('a file in the middle of the path is an error, not a silent overwrite', async () => {
    await assert.rejects(resolveDirInRoot(root, ['file', 'x'], { create: true }), /\/file is not a directory/);
  });
});
