import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STRUCT, TO_JSON, TemplateError, goJson, goPrint, parseTemplate } from '../../src/images/template.ts';

const render = (source: string, data: unknown) => parseTemplate(source).render(data);

const inspect = {
  Id: 'sha256:abc',
  RepoTags: ['alpine:latest', 'alpine:3'],
  Size: 7800000,
  Config: { Labels: { maintainer: 'me', 'org.x': 'y' }, Env: ['A=1', 'B=2'], Cmd: null },
  Empty: [],
};

describe('template: fields, pipelines, functions', () => {
  const cases: [string, string][] = [
    ['{{.Id}}', 'sha256:abc'],
    ['id={{ .Id }}!', 'id=sha256:abc!'],
    ['{{.Config.Env}}', '[A=1 B=2]'],
    ['{{.Config.Labels}}', 'map[maintainer:me org.x:y]'],
    ['{{.Config.Cmd}}', '<nil>'],
    ['{{.Config.Missing}}', '<no value>'],
    ['{{.Size}}', '7800000'],
    ['{{json .RepoTags}}', '["alpine:latest","alpine:3"]'],
    ['{{json .Config.Labels}}', '{"maintainer":"me","org.x":"y"}'],
    ['{{.Id | upper}}', 'SHA256:ABC'],
    ['{{upper .Id | lower}}', 'sha256:abc'],
    ['{{index .Config.Labels "org.x"}}', 'y'],
    ['{{index .RepoTags 1}}', 'alpine:3'],
    ['{{len .RepoTags}}', '2'],
    ['{{join .RepoTags ", "}}', 'alpine:latest, alpine:3'],
    ['{{split "a:b" ":"}}', '[a b]'],
    ['{{truncate .Id 6}}', 'sha256'],
    ['{{pad .Id 1 2}}|', ' sha256:abc  |'],
    ['{{title "hello world"}}', 'Hello World'],
    ['{{printf "%s-%d" .Id 5}}', 'sha256:abc-5'],
    ['{{println "a" "b"}}', 'a b\n'],
    ['{{(index .Config.Labels "maintainer") | upper}}', 'ME'],
    ['{{range .RepoTags}}[{{.}}]{{end}}', '[alpine:latest][alpine:3]'],
    ['{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}', '0=alpine:latest 1=alpine:3 '],
    ['{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}', 'maintainer=me;org.x=y;'],
    ['{{range .Empty}}x{{else}}none{{end}}', 'none'],
    ['{{range .RepoTags}}{{$.Id}} {{end}}', 'sha256:abc sha256:abc '],
    ['{{if .Empty}}yes{{else}}no{{end}}', 'no'],
    ['{{if eq .Id "x"}}x{{else if eq .Id "sha256:abc"}}abc{{else}}other{{end}}', 'abc'],
    ['{{if and .RepoTags (not .Empty)}}ok{{end}}', 'ok'],
    ['{{with .Config}}{{.Labels.maintainer}}{{end}}', 'me'],
    ['{{$x := .Id}}{{$x}}', 'sha256:abc'],
    ['a  {{- .Id -}}  b', 'asha256:abcb'],
    ['{{/* a comment */}}x', 'x'],
    ['{{"}}"}}', '}}'],
    ['{{gt .Size 100}}', 'true'],
  ];
  for (const [source, expected] of cases) {
    test(source, () => assert.equal(render(source, inspect), expected));
  }
});

describe('template: errors', () => {
  test('unknown function', () => assert.throws(() => parseTemplate('{{foo .Id}}'), /function "foo" not defined/));
  test('unclosed action', () => assert.throws(() => parseTemplate('{{.Id'), TemplateError));
  test('missing end', () => assert.throws(() => parseTemplate('{{if .Id}}x'), /unexpected EOF/));
  test('stray end', () => assert.throws(() => parseTemplate('x{{end}}'), /unexpected/));
  test('unknown field of a struct-like row', () => {
    assert.throws(() => render('{{.Nope}}', { ID: 'x', [STRUCT]: true }), /can't evaluate field Nope/);
  });
  test('index out of range', () => assert.throws(() => render('{{index .RepoTags 5}}', inspect), /out of range/));
  test('argument to a non-function', () => assert.throws(() => render('{{.Id | .Id}}', inspect), /non-function/));
});

describe('template: json and printing like Go', () => {
  test('json of a row context is its sorted field map, HTML-escaped like Go', () => {
    const row = { B: '<none>', A: 'x', [STRUCT]: true, [TO_JSON]: () => ({ A: 'x', B: '<none>' }) };
    assert.equal(render('{{json .}}', row), '{"A":"x","B":"\\u003cnone\\u003e"}');
    // docker's json function does not escape HTML for plain values
    assert.equal(render('{{json .B}}', row), '"<none>"');
  });
  test('goJson escapes <, > and &', () => {
    assert.equal(goJson({ a: '<a&b>' }), '{"a":"\\u003ca\\u0026b\\u003e"}');
  });
  test('goPrint', () => {
    assert.equal(goPrint([1, 'a', [true]]), '[1 a [true]]');
    assert.equal(goPrint({ b: 1, a: { c: null } }), 'map[a:map[c:<nil>] b:1]');
    assert.equal(goPrint(undefined), '<no value>');
  });
  test('header mode passes column titles through formatting functions', () => {
    const t = parseTemplate('{{upper .ID}}\t{{json .Tag}}\t{{truncate .Size 2}}');
    assert.equal(t.render({ ID: 'IMAGE ID', Tag: 'TAG', Size: 'SIZE' }, { header: true }), 'IMAGE ID\tTAG\tSIZE');
  });
});
