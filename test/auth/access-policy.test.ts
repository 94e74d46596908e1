import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AccessPolicy, parseAccessConfig, type AccessConfig } from '../../src/auth/access-policy.ts';
import { ACTIONS, isAction, parseActions, type Action } from '../../src/auth/actions.ts';
import { nameProblem } from '../../src/reference/name.ts';

/** parseAccessConfig's value, failing the test on a problem. */
function config(value: unknown): AccessConfig {
  const parsed = parseAccessConfig(value);
  if ('problem' in parsed) assert.fail(`unexpected problem: ${parsed.problem}`);
  return parsed.value;
}

/** parseAccessConfig's problem text, failing the test when it accepts `value`. */
function problem(value: unknown): string {
  const parsed = parseAccessConfig(value);
  if ('value' in parsed) assert.fail(`expected a problem for ${JSON.stringify(value)}`);
  return parsed.problem;
}

const sorted = (actions: ReadonlySet<Action>): Action[] => [...actions].sort();
const policyOf = (value: unknown, options: { anonymousPull?: boolean } = {}) => new AccessPolicy(config(value), options);

describe('actions', () => {
  test('ACTIONS are pull, push, delete', () => {
    assert.deepEqual([...ACTIONS], ['pull', 'push', 'delete']);
  });

  test('isAction knows only the three', () => {
    for (const action of ACTIONS) assert.equal(isAction(action), true);
    for (const other of ['*', 'PULL', 'read', '', 'pull ', undefined, 1, null]) assert.equal(isAction(other), false, String(other));
  });

  test('parseActions: * is all three, unknown words dropped, whitespace trimmed', () => {
    assert.deepEqual(sorted(parseActions('*')), ['delete', 'pull', 'push']);
    assert.deepEqual(sorted(parseActions('pull, push')), ['pull', 'push']);
    assert.deepEqual(sorted(parseActions('pull,frobnicate,,PUSH')), ['pull']);
    assert.deepEqual(sorted(parseActions('')), []);
  });
});

describe('AccessPolicy without an access: section', () => {
  const policy = new AccessPolicy(undefined);

  test('an authenticated user may do everything on any repository', () => {
    assert.deepEqual(sorted(policy.actionsFor('alice', 'team-a/app')), ['delete', 'pull', 'push']);
    assert.deepEqual(sorted(policy.actionsFor('bob', 'x')), ['delete', 'pull', 'push']);
  });

  test('anonymous may do nothing', () => {
    assert.deepEqual(sorted(policy.actionsFor(undefined, 'team-a/app')), []);
    assert.equal(policy.allows(undefined, 'x', 'pull'), false);
  });

  test('anonymousPull adds pull for anonymous, and only pull', () => {
    const open = new AccessPolicy(undefined, { anonymousPull: true });
    assert.deepEqual(sorted(open.actionsFor(undefined, 'library/alpine')), ['pull']);
    assert.deepEqual(sorted(open.actionsFor('alice', 'library/alpine')), ['delete', 'pull', 'push']);
  });

  test('namedUsers is empty', () => {
    assert.deepEqual(policy.namedUsers(), []);
  });
});

describe('AccessPolicy rules', () => {
  const access = {
    groups: { devs: ['dave', 'erin'], ops: ['erin', 'olga'] },
    admins: ['root'],
    rules: [
      { repositories: ['team-a/**'], actions: ['pull', 'push'], users: ['alice'] },
      { repositories: ['team-a/**'], actions: ['delete'], users: 'alice' },
      { repositories: ['team-b/**'], actions: ['*'], users: ['bob'] },
      { repositories: ['library/*'], actions: ['pull'], users: ['*'] },
      { repositories: ['public/**'], actions: ['pull'], anonymous: true },
      { repositories: ['dev/**'], actions: ['pull', 'push'], groups: ['devs'] },
      { repositories: ['prod/**'], actions: ['pull'], groups: ['devs', 'ops'] },
      { repositories: ['prod/**'], actions: ['push', 'delete'], groups: 'ops' },
      { repositories: ['shared/one', 'shared/two'], actions: ['pull'], users: ['carol'] },
    ],
  };
  const policy = policyOf(access);

  test('a user named in a rule gets its actions on matching repositories', () => {
    assert.deepEqual(sorted(policy.actionsFor('bob', 'team-b/app')), ['delete', 'pull', 'push']);
    assert.equal(policy.allows('bob', 'team-a/app', 'pull'), false);
  });

  test('several rules matching the same user and repository are unioned', () => {
    assert.deepEqual(sorted(policy.actionsFor('alice', 'team-a/app')), ['delete', 'pull', 'push']);
    assert.deepEqual(sorted(policy.actionsFor('erin', 'prod/api')), ['delete', 'pull', 'push'], 'pull via devs and ops, push/delete via ops');
    assert.deepEqual(sorted(policy.actionsFor('dave', 'prod/api')), ['pull']);
  });

  test('users: ["*"] is every authenticated user, never anonymous', () => {
    for (const user of ['alice', 'bob', 'someone-new']) assert.deepEqual(sorted(policy.actionsFor(user, 'library/alpine')), ['pull']);
    assert.deepEqual(sorted(policy.actionsFor(undefined, 'library/alpine')), []);
  });

  test('anonymous: true applies to requests without credentials', () => {
    assert.deepEqual(sorted(policy.actionsFor(undefined, 'public/tools/jq')), ['pull']);
    assert.deepEqual(sorted(policy.actionsFor(undefined, 'team-a/app')), []);
  });

  test('an anonymous rule does not grant authenticated users (they are not anonymous)', () => {
    assert.deepEqual(sorted(policy.actionsFor('alice', 'public/tools/jq')), []);
  });

  test('groups grant their members, and only them', () => {
    assert.deepEqual(sorted(policy.actionsFor('dave', 'dev/x')), ['pull', 'push']);
    assert.deepEqual(sorted(policy.actionsFor('erin', 'dev/x')), ['pull', 'push']);
    assert.deepEqual(sorted(policy.actionsFor('olga', 'dev/x')), []);
    assert.deepEqual(sorted(policy.actionsFor('alice', 'dev/x')), []);
  });

  test('a user name that equals a group name is not a member of it', () => {
    assert.deepEqual(sorted(policy.actionsFor('devs', 'dev/x')), []);
  });

  test('admins may do everything everywhere, even where no rule matches', () => {
    for (const repository of ['team-a/app', 'team-b/x/y', 'nowhere/at/all', 'x']) {
      assert.deepEqual(sorted(policy.actionsFor('root', repository)), ['delete', 'pull', 'push'], repository);
    }
  });

  test('a user no rule names gets nothing once rules exist', () => {
    assert.deepEqual(sorted(policy.actionsFor('zed', 'team-a/app')), []);
    assert.deepEqual(sorted(policy.actionsFor('zed', 'x')), []);
  });

  test('a rule lists several exact repositories', () => {
    assert.equal(policy.allows('carol', 'shared/one', 'pull'), true);
    assert.equal(policy.allows('carol', 'shared/two', 'pull'), true);
    assert.equal(policy.allows('carol', 'shared/three', 'pull'), false);
    assert.equal(policy.allows('carol', 'shared/one/sub', 'pull'), false);
  });

  test('anonymousPull with rules: pull for everyone on every repository, on top of the rules', () => {
    const open = policyOf(access, { anonymousPull: true });
    assert.deepEqual(sorted(open.actionsFor(undefined, 'team-a/app')), ['pull']);
    assert.deepEqual(sorted(open.actionsFor('zed', 'team-a/app')), ['pull']);
    assert.deepEqual(sorted(open.actionsFor('bob', 'team-b/app')), ['delete', 'pull', 'push']);
  });

  test('an access section with no rules leaves non-admins with nothing', () => {
    const strict = policyOf({ admins: ['root'] });
    assert.deepEqual(sorted(strict.actionsFor('alice', 'x')), []);
    assert.deepEqual(sorted(strict.actionsFor('root', 'x')), ['delete', 'pull', 'push']);
    assert.deepEqual(sorted(strict.actionsFor(undefined, 'x')), []);
  });

  test('answers are stable when asked again (cached) and per (user, repository)', () => {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(sorted(policy.actionsFor('alice', 'team-a/app')), ['delete', 'pull', 'push']);
      assert.deepEqual(sorted(policy.actionsFor('bob', 'team-a/app')), []);
      assert.deepEqual(sorted(policy.actionsFor(undefined, 'team-a/app')), []);
    }
  });

  test('the cache stays correct past its 10,000-entry bound', () => {
    const fresh = policyOf(access);
    for (let i = 0; i < 10_050; i++) assert.equal(fresh.allows('alice', `team-a/r${i}`, 'push'), true);
    assert.equal(fresh.allows('bob', 'team-a/r1', 'push'), false);
    assert.equal(fresh.allows('alice', 'team-a/r1', 'push'), true);
  });

  test(
    'anonymous and a user named "" do not share a cached answer',
    () => {
      const fresh = new AccessPolicy(undefined);
      fresh.actionsFor('', 'team-a/app');
      assert.deepEqual(sorted(fresh.actionsFor(undefined, 'team-a/app')), []);
    },
  );

  test('namedUsers lists admins, group members and rule users, without "*"', () => {
    assert.deepEqual(policy.namedUsers().sort(), ['alice', 'bob', 'carol', 'dave', 'erin', 'olga', 'root']);
  });

  test('embedders may hand over rules without the optional lists', () => {
    const embedded = new AccessPolicy({ groups: {}, admins: [], rules: [{ repositories: ['x/**'], actions: ['pull'], users: ['alice'] } as never] });
    assert.deepEqual(sorted(embedded.actionsFor('alice', 'x/y')), ['pull']);
    assert.deepEqual(sorted(embedded.actionsFor(undefined, 'x/y')), []);
  });
});

describe('AccessPolicy globs', () => {
  const policy = policyOf({
    rules: [
      { repositories: ['one/*'], actions: ['pull'], users: ['single'] },
      { repositories: ['deep/**'], actions: ['pull'], users: ['deep'] },
      { repositories: ['org/**/app'], actions: ['pull'], users: ['middle'] },
      { repositories: ['v?/x'], actions: ['pull'], users: ['question'] },
      { repositories: ['exact'], actions: ['pull'], users: ['exact'] },
    ],
  });

  test('* is one path component: one/* matches one/a, not one/a/b nor one', () => {
    assert.equal(policy.allows('single', 'one/a', 'pull'), true);
    assert.equal(policy.allows('single', 'one/a-b.c_d', 'pull'), true);
    assert.equal(policy.allows('single', 'one/a/b', 'pull'), false);
    assert.equal(policy.allows('single', 'one', 'pull'), false);
    assert.equal(policy.allows('single', 'one-more/a', 'pull'), false);
  });

  test('** is any depth: deep/** matches deep/a and deep/a/b/c, not deep itself nor deeper/a', () => {
    assert.equal(policy.allows('deep', 'deep/a', 'pull'), true);
    assert.equal(policy.allows('deep', 'deep/a/b', 'pull'), true);
    assert.equal(policy.allows('deep', 'deep/a/b/c/d', 'pull'), true);
    assert.equal(policy.allows('deep', 'deep', 'pull'), false);
    assert.equal(policy.allows('deep', 'deeper/a', 'pull'), false);
  });

  test('**/ in the middle matches zero or more components', () => {
    assert.equal(policy.allows('middle', 'org/app', 'pull'), true);
    assert.equal(policy.allows('middle', 'org/x/app', 'pull'), true);
    assert.equal(policy.allows('middle', 'org/x/y/app', 'pull'), true);
    assert.equal(policy.allows('middle', 'org/x/app2', 'pull'), false);
    assert.equal(policy.allows('middle', 'org/myapp', 'pull'), false);
  });

  test('? is one character within a component', () => {
    assert.equal(policy.allows('question', 'v1/x', 'pull'), true);
    assert.equal(policy.allows('question', 'v12/x', 'pull'), false);
    assert.equal(policy.allows('question', 'v/x', 'pull'), false);
  });

  test('a glob without wildcards matches only that name', () => {
    assert.equal(policy.allows('exact', 'exact', 'pull'), true);
    assert.equal(policy.allows('exact', 'exact/sub', 'pull'), false);
    assert.equal(policy.allows('exact', 'exactly', 'pull'), false);
    assert.equal(policy.allows('exact', 'not-exact', 'pull'), false);
  });

  test('"." and "-" in a glob are literal, not regular-expression syntax', () => {
    const literal = policyOf({ rules: [{ repositories: ['a.b/c-d'], actions: ['pull'], users: ['u'] }] });
    assert.equal(literal.allows('u', 'a.b/c-d', 'pull'), true);
    assert.equal(literal.allows('u', 'axb/c-d', 'pull'), false);
  });
});

describe('AccessPolicy: path tricks never reach another team\'s rule', () => {
  const policy = policyOf({
    rules: [
      { repositories: ['team-a/**'], actions: ['*'], users: ['alice'] },
      { repositories: ['team-b/**'], actions: ['*'], users: ['bob'] },
    ],
  });
  const tricks = ['team-a/../team-b/x', 'team-a/./x', 'team-a//x', 'TEAM-A/x', 'team-a/x/', 'team-ab/x', 'team-b/../team-a/x', 'TEAM-B/x', 'team-b/./x', './team-b/x', '/team-b/x', 'x/team-b/y'];

  test('team-a/** does not match look-alike names outside team-a', () => {
    for (const name of ['TEAM-A/x', 'team-ab/x', 'team-a', 'team/a/x', 'xteam-a/x', '/team-a/x', './team-a/x']) {
      assert.deepEqual(sorted(policy.actionsFor('alice', name)), [], name);
    }
  });

  test('bob (team-b/**) gets nothing on names that do not start with team-b/', () => {
    for (const name of tricks.filter((trick) => !trick.startsWith('team-b/'))) assert.deepEqual(sorted(policy.actionsFor('bob', name)), [], name);
  });

  test('alice (team-a/**) gets nothing on names that do not start with team-a/', () => {
    for (const name of tricks.filter((trick) => !trick.startsWith('team-a/'))) assert.deepEqual(sorted(policy.actionsFor('alice', name)), [], name);
  });

  test('names with ./.. or empty segments, upper case or a trailing slash are refused by the name check the edge applies before the policy', () => {
    // The policy matches names literally and relies on this: `team-a/../team-b/x` literally starts with team-a/.
    for (const name of ['team-a/../team-b/x', 'team-a/./x', 'team-a//x', 'TEAM-A/x', 'team-a/x/', 'team-b/../team-a/x', '/team-b/x', './team-b/x']) {
      assert.notEqual(nameProblem(name), undefined, name);
    }
    assert.equal(nameProblem('team-ab/x'), undefined, 'a valid name, and team-a/** rightly does not match it');
  });
});

describe('parseAccessConfig: accepted shapes', () => {
  test('an empty mapping is a policy with no rules', () => {
    assert.deepEqual(config({}), { groups: {}, rules: [], admins: [] });
  });

  test('lists and single strings are both accepted for names', () => {
    const parsed = config({ groups: { g: 'erin' }, admins: 'root', rules: [{ repositories: 'x/**', actions: 'pull', users: 'alice', groups: 'g' }] });
    assert.deepEqual(parsed.groups, { g: ['erin'] });
    assert.deepEqual(parsed.admins, ['root']);
    assert.deepEqual(parsed.rules, [{ repositories: ['x/**'], actions: ['pull'], users: ['alice'], groups: ['g'], anonymous: false }]);
  });

  test('* as an action expands to pull, push, delete', () => {
    const parsed = config({ rules: [{ repositories: ['x/**'], actions: ['*'], users: ['alice'] }] });
    assert.deepEqual(parsed.rules[0]!.actions, ['pull', 'push', 'delete']);
    const mixed = config({ rules: [{ repositories: ['x/**'], actions: ['pull', '*'], users: ['alice'] }] });
    assert.deepEqual(mixed.rules[0]!.actions, ['pull', 'push', 'delete']);
  });

  test('missing users/groups default to empty lists and anonymous to false', () => {
    const parsed = config({ rules: [{ repositories: ['x/**'], actions: ['pull'], anonymous: true }] });
    assert.deepEqual(parsed.rules[0], { repositories: ['x/**'], actions: ['pull'], users: [], groups: [], anonymous: true });
  });

  test('a rule may name a group declared in groups', () => {
    const parsed = config({ groups: { devs: ['dave'] }, rules: [{ repositories: ['x/**'], actions: ['pull'], groups: ['devs'] }] });
    assert.deepEqual(parsed.rules[0]!.groups, ['devs']);
  });
});

describe('parseAccessConfig: every wrong shape is named', () => {
  const rule = { repositories: ['x/**'], actions: ['pull'], users: ['alice'] };

  test('not a mapping', () => {
    for (const value of [null, undefined, 'rules', 42, [], [rule], true]) {
      assert.match(problem(value), /expected a mapping with groups, rules and admins/, String(value));
    }
  });

  test('unknown top-level keys', () => {
    const text = problem({ rules: [rule], users: ['alice'], Rules: [] });
    assert.match(text, /^\.users: unknown setting \(known: groups, rules, admins\)$/m);
    assert.match(text, /^\.Rules: unknown setting/m);
  });

  test('groups that are not a mapping of name lists', () => {
    assert.match(problem({ groups: ['devs'] }), /\.groups: expected a mapping of group name to a list of user names/);
    assert.match(problem({ groups: 'devs' }), /\.groups: expected a mapping/);
    assert.match(problem({ groups: null }), /\.groups: expected a mapping/);
    assert.match(problem({ groups: { devs: 42 } }), /\.groups\.devs: expected a list of user names/);
    assert.match(problem({ groups: { devs: ['dave', 7] } }), /\.groups\.devs: expected a list of user names/);
    assert.match(problem({ groups: { devs: ['dave', ''] } }), /\.groups\.devs: expected a list of user names/);
  });

  test('admins that are not a list of names', () => {
    assert.match(problem({ admins: 42 }), /\.admins: expected a list of user names/);
    assert.match(problem({ admins: [''] }), /\.admins: expected a list of user names/);
    assert.match(problem({ admins: { root: true } }), /\.admins: expected a list of user names/);
  });

  test('rules that are not a list', () => {
    assert.match(problem({ rules: rule }), /\.rules: expected a list of rules/);
    assert.match(problem({ rules: 'all' }), /\.rules: expected a list of rules/);
  });

  test('a rule that is not a mapping', () => {
    const text = problem({ rules: [rule, 'pull', null, [rule]] });
    assert.match(text, /\.rules\[1\]: expected a mapping with repositories, actions and users, groups or anonymous/);
    assert.match(text, /\.rules\[2\]: expected a mapping/);
    assert.match(text, /\.rules\[3\]: expected a mapping/);
    assert.doesNotMatch(text, /\.rules\[0\]/);
  });

  test('unknown keys in a rule', () => {
    const text = problem({ rules: [{ ...rule, repository: 'x', action: 'pull' }] });
    assert.match(text, /\.rules\[0\]\.repository: unknown setting \(known: repositories, actions, users, groups, anonymous\)/);
    assert.match(text, /\.rules\[0\]\.action: unknown setting/);
  });

  test('missing or empty repositories', () => {
    assert.match(problem({ rules: [{ actions: ['pull'], users: ['alice'] }] }), /\.rules\[0\]\.repositories: expected a list of repository globs such as team-a\/\*\* or library\/\*/);
    assert.match(problem({ rules: [{ ...rule, repositories: [] }] }), /\.rules\[0\]\.repositories: expected a list of repository globs/);
    assert.match(problem({ rules: [{ ...rule, repositories: [''] }] }), /\.rules\[0\]\.repositories: expected a list/);
    assert.match(problem({ rules: [{ ...rule, repositories: 7 }] }), /\.rules\[0\]\.repositories: expected a list/);
  });

  test('bad globs', () => {
    assert.match(problem({ rules: [{ ...rule, repositories: ['Team-A/**'] }] }), /\.rules\[0\]\.repositories: pattern "Team-A\/\*\*" may hold only lowercase repository characters/);
    assert.match(problem({ rules: [{ ...rule, repositories: ['a b'] }] }), /\.rules\[0\]\.repositories: pattern "a b" may hold only/);
    assert.match(problem({ rules: [{ ...rule, repositories: ['team/***'] }] }), /\.rules\[0\]\.repositories: pattern "team\/\*\*\*": use \* \(one path component\) or \*\* \(any depth\), not \*\*\*/);
    assert.match(problem({ rules: [{ ...rule, repositories: ['ok/**', 'x[0-9]'] }] }), /pattern "x\[0-9\]" may hold only/);
  });

  test('missing, empty or unknown actions', () => {
    assert.match(problem({ rules: [{ repositories: ['x'], users: ['alice'] }] }), /\.rules\[0\]\.actions: expected a list of pull, push, delete \(or \*\)$/m);
    assert.match(problem({ rules: [{ ...rule, actions: [] }] }), /\.rules\[0\]\.actions: expected a list of pull, push, delete \(or \*\)$/m);
    assert.match(problem({ rules: [{ ...rule, actions: ['pull', 'write', 'PUSH'] }] }), /\.rules\[0\]\.actions: expected a list of pull, push, delete \(or \*\); not write, PUSH/);
    assert.match(problem({ rules: [{ ...rule, actions: 'all' }] }), /\.rules\[0\]\.actions: .*; not all/);
    assert.match(problem({ rules: [{ ...rule, actions: [1] }] }), /\.rules\[0\]\.actions: expected a list/);
  });

  test('users and groups that are not name lists', () => {
    assert.match(problem({ rules: [{ ...rule, users: 5 }] }), /\.rules\[0\]\.users: expected a list of user names \(\* for every authenticated user\)/);
    assert.match(problem({ rules: [{ ...rule, users: [''] }] }), /\.rules\[0\]\.users: expected a list of user names/);
    assert.match(problem({ rules: [{ ...rule, groups: { devs: true } }] }), /\.rules\[0\]\.groups: expected a list of group names/);
  });

  test('a rule naming a group that does not exist', () => {
    const text = problem({ groups: { devs: ['dave'] }, rules: [{ ...rule, groups: ['devs', 'ops'] }] });
    assert.match(text, /\.rules\[0\]\.groups: no group ops under access\.groups/);
    assert.doesNotMatch(text, /no group devs/);
    assert.match(problem({ rules: [{ repositories: ['x'], actions: ['pull'], groups: ['toString'] }] }), /no group toString under access\.groups/, 'no inherited Object keys count as groups');
  });

  test('anonymous that is not a boolean', () => {
    assert.match(problem({ rules: [{ ...rule, anonymous: 'yes' }] }), /\.rules\[0\]\.anonymous: must be true or false/);
    assert.match(problem({ rules: [{ ...rule, anonymous: 1 }] }), /\.rules\[0\]\.anonymous: must be true or false/);
  });

  test('a rule that names nobody', () => {
    assert.match(problem({ rules: [{ repositories: ['x'], actions: ['pull'] }] }), /\.rules\[0\]: names nobody; give users, groups or anonymous: true/);
    assert.match(problem({ rules: [{ repositories: ['x'], actions: ['pull'], users: [], groups: [] }] }), /\.rules\[0\]: names nobody/);
    assert.match(problem({ rules: [{ repositories: ['x'], actions: ['pull'], anonymous: false }] }), /\.rules\[0\]: names nobody/);
  });

  test('problems of several rules are all reported, each at its index, one per line', () => {
    const text = problem({
      bogus: 1,
      rules: [rule, { repositories: [], actions: ['pull'], users: ['x'] }, { repositories: ['x'], actions: ['fly'], users: ['x'] }],
    });
    const lines = text.split('\n');
    assert.equal(lines.length, 3, text);
    assert.match(lines[0]!, /^\.bogus:/);
    assert.match(lines[1]!, /^\.rules\[1\]\.repositories:/);
    assert.match(lines[2]!, /^\.rules\[2\]\.actions:.*not fly/);
  });
});
