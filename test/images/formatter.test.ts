import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FormatError, formatRows } from '../../src/images/formatter.ts';
import { tabwrite } from '../../src/images/tabwriter.ts';

describe('tabwrite (Go tabwriter: minwidth 10, padding 3)', () => {
  test('pads terminated cells to the widest + 3, at least 10; the last cell is left alone', () => {
    assert.equal(
      tabwrite('REPOSITORY\tTAG\tSIZE\nalpine\tlatest\t7.8MB\nghcr.io/o/app\tv1.2.3\t1kB\n'),
      'REPOSITORY      TAG       SIZE\n' + 'alpine          latest    7.8MB\n' + 'ghcr.io/o/app   v1.2.3    1kB\n',
    );
  });
  test('an empty trailing cell leaves the padding of the previous one (as docker history shows)', () => {
    assert.equal(tabwrite('A\tB\t\nxx\ty\t\n'), 'A         B         \nxx        y         \n');
  });
  test('column blocks end at a line without that column', () => {
    assert.equal(tabwrite('aaaaaaaaaaaaaa\tb\nno tabs\nc\td\n'), 'aaaaaaaaaaaaaa   b\nno tabs\nc         d\n');
  });
  test('widths count characters, not UTF-16 units or bytes', () => {
    assert.equal(tabwrite('é…\tx\n'), `é…${' '.repeat(8)}x\n`);
  });
});

describe('formatRows (docker formatter.Context)', () => {
  const headers = { Name: 'NAME', Size: 'SIZE', Created: 'CREATED AT' };
  const rows = [
    { Name: 'alpine', Size: '7.8MB', Created: 'x' },
    { Name: 'user/app', Size: '<none>', Created: 'y' },
  ];

  test('table: header from titles, tabwriter alignment', () => {
    assert.equal(formatRows('table {{.Name}}\\t{{.Size}}', rows, headers), 'NAME       SIZE\nalpine     7.8MB\nuser/app   <none>\n');
  });
  test('table with no rows still prints the header', () => {
    assert.equal(formatRows('table {{.Name}}\t{{.Created}}', [], headers), 'NAME      CREATED AT\n');
  });
  test('a plain template: one line per row, literal \\t becomes a tab, no header', () => {
    assert.equal(formatRows('{{.Name}}\\t{{.Size}}', rows, headers), 'alpine\t7.8MB\nuser/app\t<none>\n');
  });
  test('json: one object per line, keys sorted, <> escaped', () => {
    assert.equal(
      formatRows('json', rows, headers),
      '{"Created":"x","Name":"alpine","Size":"7.8MB"}\n{"Created":"y","Name":"user/app","Size":"\\u003cnone\\u003e"}\n',
    );
  });
  test('errors: parsing and unknown fields', () => {
    assert.throws(() => formatRows('{{.Name', rows, headers), (e: unknown) => e instanceof FormatError && /template parsing error/.test(e.message));
    assert.throws(() => formatRows('{{.Nope}}', rows, headers), /can't evaluate field Nope/);
  });
});
