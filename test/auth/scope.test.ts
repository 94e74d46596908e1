import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatScope, parseScopes, repositoryActions } from '../../src/auth/scope.ts';

const plain = (map: Map<string, Set<string>>): Record<string, string[]> => Object.fromEntries([...map].map(([name, actions]) => [name, [...actions].sort()]));

describe('parseScopes', () => {
  test('one scope', () => {
    assert.deepEqual(parseScopes(['repository:alpine:pull']), [{ type: 'repository', name: 'alpine', actions: ['pull'] }]);
  });

  test('several actions stay in order, empty ones dropped', () => {
    assert.deepEqual(parseScopes(['repository:a:pull,push,,delete']), [{ type: 'repository', name: 'a', actions: ['pull', 'push', 'delete'] }]);
  });

  test('several scopes in one parameter, space separated', () => {
    assert.deepEqual(parseScopes(['repository:a/b:pull repository:c/d:push,pull registry:catalog:*']), [
      { type: 'repository', name: 'a/b', actions: ['pull'] },
      { type: 'repository', name: 'c/d', actions: ['push', 'pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  test('several scope parameters, and several scopes in each', () => {
    const scopes = parseScopes(['repository:a:pull', 'repository:b:push repository:c:delete']);
    assert.deepEqual(scopes.map((scope) => scope.name), ['a', 'b', 'c']);
  });

  test('repeated spaces between scopes are harmless', () => {
    assert.deepEqual(parseScopes(['  repository:a:pull   repository:b:pull ']).map((scope) => scope.name), ['a', 'b']);
  });

  test('names with slashes and many components', () => {
    assert.deepEqual(parseScopes(['repository:org/team/sub/app:pull']), [{ type: 'repository', name: 'org/team/sub/app', actions: ['pull'] }]);
  });

  test('the name is everything between the first and the last colon (a host:port prefix survives)', () => {
    assert.deepEqual(parseScopes(['repository:localhost:5000/app:pull']), [{ type: 'repository', name: 'localhost:5000/app', actions: ['pull'] }]);
  });

  test('a resource class stays in the type: repository(plugin):name:pull', () => {
    const [scope] = parseScopes(['repository(plugin):vieux/sshfs:pull']);
    assert.deepEqual(scope, { type: 'repository(plugin)', name: 'vieux/sshfs', actions: ['pull'] });
  });

  test('* as actions is kept as written', () => {
    assert.deepEqual(parseScopes(['repository:a:*']), [{ type: 'repository', name: 'a', actions: ['*'] }]);
  });

  test('malformed scopes are dropped, well-formed neighbours kept', () => {
    const malformed = [
      '', // empty
      'repository', // no colon
      'repository:alpine', // no actions part
      'repository:alpine:', // empty actions
      ':alpine:pull', // empty type
      'repository::pull', // empty name
      ':', // nothing
      '::', // nothing
    ];
    for (const text of malformed) assert.deepEqual(parseScopes([text]), [], JSON.stringify(text));
    assert.deepEqual(parseScopes([`${malformed.join(' ')} repository:ok:pull`]).map((scope) => scope.name), ['ok']);
  });

  test('actions that are only commas are kept as an empty list (they grant nothing)', () => {
    assert.deepEqual(parseScopes(['repository:a:,']), [{ type: 'repository', name: 'a', actions: [] }]);
  });

  test('no scope parameter: no scopes', () => {
    assert.deepEqual(parseScopes([]), []);
  });

  test('any iterable of strings is accepted (URLSearchParams.getAll)', () => {
    const params = new URLSearchParams('scope=repository:a:pull&scope=repository:b:push&service=skiff');
    assert.deepEqual(parseScopes(params.getAll('scope')).map((scope) => scope.name), ['a', 'b']);
    assert.deepEqual(parseScopes(new Set(['repository:c:pull'])).map((scope) => scope.name), ['c']);
  });
});

describe('repositoryActions', () => {
  test('merges actions per repository name', () => {
    const scopes = parseScopes(['repository:a:pull repository:b:push repository:a:push', 'repository:a:delete']);
    assert.deepEqual(plain(repositoryActions(scopes)), { a: ['delete', 'pull', 'push'], b: ['push'] });
  });

  test('* expands to pull, push, delete', () => {
    assert.deepEqual(plain(repositoryActions(parseScopes(['repository:a:*']))), { a: ['delete', 'pull', 'push'] });
  });

  test('unknown action words are dropped; the repository stays with what is left (possibly nothing)', () => {
    assert.deepEqual(plain(repositoryActions(parseScopes(['repository:a:pull,fly repository:b:fly']))), { a: ['pull'], b: [] });
  });

  test('only repository scopes count: registry and repository(plugin) are left out', () => {
    const scopes = parseScopes(['registry:catalog:* repository(plugin):p/q:pull repository:r:pull']);
    assert.deepEqual(plain(repositoryActions(scopes)), { r: ['pull'] });
  });

  test('names are taken as written: case and path tricks are not normalised here', () => {
    const scopes = parseScopes(['repository:A:pull repository:a:push repository:a/../b:pull']);
    assert.deepEqual(plain(repositoryActions(scopes)), { A: ['pull'], a: ['push'], 'a/../b': ['pull'] });
  });

  test('no scopes: an empty map', () => {
    assert.equal(repositoryActions([]).size, 0);
  });
});

describe('formatScope', () => {
  test('type:name:actions, actions comma separated', () => {
    assert.equal(formatScope('repository', 'org/app', ['pull', 'push']), 'repository:org/app:pull,push');
    assert.equal(formatScope('registry', 'catalog', ['*']), 'registry:catalog:*');
  });

  test('takes any iterable of actions (a Set)', () => {
    assert.equal(formatScope('repository', 'a', new Set(['pull', 'delete'])), 'repository:a:pull,delete');
  });

  test('round trips through parseScopes', () => {
    const text = formatScope('repository', 'org/team/app', ['pull', 'push', 'delete']);
    assert.deepEqual(parseScopes([text]), [{ type: 'repository', name: 'org/team/app', actions: ['pull', 'push', 'delete'] }]);
  });
});
