import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestOf } from '../../src/digest/digest.ts';
import { parseImageRules, type ImageRule } from '../../src/sync/image-rule.ts';
import { parseInterval } from '../../src/sync/interval.ts';
import { expandRule, RuleError } from '../../src/sync/planner.ts';
import type { SyncClients } from '../../src/sync/sync-clients.ts';
import { formatAddress, taskKey, type SyncTask } from '../../src/sync/sync-task.ts';

const DIGEST = digestOf('pinned manifest');

/** A stand-in for SyncClients: get() hands out a client whose listTags answers from `tags`. */
function fakeClients(tags: Record<string, string[] | Error>): { clients: SyncClients; calls: string[] } {
  const calls: string[] = [];
  const clients = {
    get(registry: string, repository: string) {
      calls.push(`get ${registry}/${repository}`);
      return {
        async listTags(name: string): Promise<string[]> {
          calls.push(`listTags ${registry}/${name}`);
          const answer = tags[`${registry}/${name}`];
          if (answer === undefined) throw new Error(`404 NAME_UNKNOWN ${name}`);
          if (answer instanceof Error) throw answer;
          return [...answer];
        },
      };
    },
  } as unknown as SyncClients;
  return { clients, calls };
}

function rule(source: string, destination: string | string[]): ImageRule {
  const rules = parseImageRules({ [source]: destination }, 'images.json', {});
  assert.equal(rules.length, 1);
  return rules[0]!;
}

/** Tasks as `source -> destination` strings. */
function keys(tasks: SyncTask[]): string[] {
  return tasks.map(taskKey);
}

describe('parseInterval', () => {
  test('units: ms, s, m, h; a plain number is seconds; the result is milliseconds', () => {
    assert.equal(parseInterval('30s'), 30_000);
    assert.equal(parseInterval('5m'), 300_000);
    assert.equal(parseInterval('1h'), 3_600_000);
    assert.equal(parseInterval('500ms'), 500);
    assert.equal(parseInterval('90'), 90_000);
    assert.equal(parseInterval('1.5m'), 90_000);
    assert.equal(parseInterval(' 10m '), 600_000);
  });

  test('bad intervals throw and say what was expected', () => {
    for (const bad of ['', 'soon', '5 minutes', '-5s', '5d', '1h30m', 'm', '0', '0s', '0.0m']) {
      assert.throws(() => parseInterval(bad), /invalid interval/, JSON.stringify(bad));
    }
    assert.throws(() => parseInterval('5d'), /expected e\.g\. 30s, 5m, 1h/);
    assert.throws(() => parseInterval('0s'), /more than zero/);
  });
});

describe('expandRule', () => {
  test('a bare repository takes every listed tag, to each destination', async () => {
    const { clients, calls } = fakeClients({ 'quay.io/coreos/kube-rbac-proxy': ['v1.0', 'v2.0', 'latest'] });
    const tasks = await expandRule(rule('quay.io/coreos/kube-rbac-proxy', ['quay.io/ruohe/a', 'quay.io/ruohe/b']), clients);
    assert.deepEqual(keys(tasks), [
      'quay.io/coreos/kube-rbac-proxy:v1.0 -> quay.io/ruohe/a:v1.0',
      'quay.io/coreos/kube-rbac-proxy:v2.0 -> quay.io/ruohe/a:v2.0',
      'quay.io/coreos/kube-rbac-proxy:latest -> quay.io/ruohe/a:latest',
      'quay.io/coreos/kube-rbac-proxy:v1.0 -> quay.io/ruohe/b:v1.0',
      'quay.io/coreos/kube-rbac-proxy:v2.0 -> quay.io/ruohe/b:v2.0',
      'quay.io/coreos/kube-rbac-proxy:latest -> quay.io/ruohe/b:latest',
    ]);
    assert.ok(tasks.every((task) => task.rule === 'quay.io/coreos/kube-rbac-proxy'));
    // Listed once, through the client for the source repository.
    assert.deepEqual(calls, ['get quay.io/coreos/kube-rbac-proxy', 'listTags quay.io/coreos/kube-rbac-proxy']);
  });

  test('a regex keeps the tags it finds anywhere in the tag (unanchored)', async () => {
    const { clients } = fakeClients({ 'quay.io/coreos/kube-rbac-proxy': ['v1.0', 'alpha', 'v2.0-aa', 'beta', 'latest'] });
    const tasks = await expandRule(rule('quay.io/coreos/kube-rbac-proxy:/a+/', 'quay.io/ruohe/kube-rbac-proxy'), clients);
    assert.deepEqual(
      tasks.map((t) => t.source.reference),
      ['alpha', 'v2.0-aa', 'beta', 'latest'],
    );
    const anchored = await expandRule(rule('quay.io/coreos/kube-rbac-proxy:/^v\\d/', 'quay.io/ruohe/kube-rbac-proxy'), clients);
    assert.deepEqual(
      anchored.map((t) => t.source.reference),
      ['v1.0', 'v2.0-aa'],
    );
  });

  test('a tag list and a digest need no listing', async () => {
    const { clients, calls } = fakeClients({});
    const listed = await expandRule(rule('a.io/x/y:v1,v2', 'b.io/x/y'), clients);
    assert.deepEqual(keys(listed), ['a.io/x/y:v1 -> b.io/x/y:v1', 'a.io/x/y:v2 -> b.io/x/y:v2']);
    const pinned = await expandRule(rule(`a.io/x/y@${DIGEST}`, ['b.io/x/y', 'c.io/x/y:pinned', `d.io/x/y@${DIGEST}`]), clients);
    assert.deepEqual(keys(pinned), [`a.io/x/y@${DIGEST} -> b.io/x/y@${DIGEST}`, `a.io/x/y@${DIGEST} -> c.io/x/y:pinned`, `a.io/x/y@${DIGEST} -> d.io/x/y@${DIGEST}`]);
    assert.deepEqual(calls, []);
  });

  test('destination tags rename in order', async () => {
    const { clients } = fakeClients({ 'a.io/x/y': ['1.0', '2.0'] });
    assert.deepEqual(keys(await expandRule(rule('a.io/x/y:v1,v2', 'b.io/x/z:one,two'), clients)), ['a.io/x/y:v1 -> b.io/x/z:one', 'a.io/x/y:v2 -> b.io/x/z:two']);
    assert.deepEqual(keys(await expandRule(rule('a.io/x/y', 'b.io/x/z:old,new'), clients)), ['a.io/x/y:1.0 -> b.io/x/z:old', 'a.io/x/y:2.0 -> b.io/x/z:new']);
  });

  test('--exclude matches registry/repository:tag of the source', async () => {
    const { clients } = fakeClients({ 'docker.io/library/nginx': ['1.25', '1.25-alpine', '1.26', 'latest'] });
    const nginx = rule('nginx', 'registry.example.com/mirror/nginx');
    const tasks = await expandRule(nginx, clients, { exclude: [/-alpine$/, /^docker\.io\/library\/nginx:latest$/] });
    assert.deepEqual(
      tasks.map((t) => formatAddress(t.source)),
      ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.26'],
    );
    // The pattern sees the whole address, registry included.
    const seen: string[] = [];
    const byRegistry = await expandRule(nginx, clients, {
      exclude: [
        {
          test: (text: string) => {
            seen.push(text);
            return false;
          },
        } as unknown as RegExp,
      ],
    });
    assert.equal(byRegistry.length, 4);
    assert.deepEqual(seen, ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25-alpine', 'docker.io/library/nginx:1.26', 'docker.io/library/nginx:latest']);
    // A list source is filtered too, and a pattern for another registry leaves it alone.
    const list = await expandRule(rule('a.io/x/y:v1,v2', 'b.io/x/y'), clients, { exclude: [/^a\.io\/x\/y:v2$/, /^b\.io\//] });
    assert.deepEqual(keys(list), ['a.io/x/y:v1 -> b.io/x/y:v1']);
  });

  test('the rename count is checked against the tags that were listed (after --exclude)', async () => {
    const { clients } = fakeClients({ 'a.io/x/y': ['v1', 'v2', 'v3'] });
    await assert.rejects(expandRule(rule('a.io/x/y', 'b.io/x/y:one,two'), clients), (error: unknown) => {
      assert.ok(error instanceof RuleError, `expected a RuleError, got ${String(error)}`);
      assert.equal(error.rule, 'a.io/x/y');
      assert.match(error.message, /b\.io\/x\/y names 2 tag\(s\) but the source matched 3 \(v1, v2, v3\); they rename in order/);
      return true;
    });
    await assert.rejects(expandRule(rule('a.io/x/y:/^nothing/', 'b.io/x/y:one'), clients), (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.match(error.message, /matched 0 \(none\)/);
      return true;
    });
    // With v3 excluded, the two names line up.
    const tasks = await expandRule(rule('a.io/x/y', 'b.io/x/y:one,two'), clients, { exclude: [/:v3$/] });
    assert.deepEqual(keys(tasks), ['a.io/x/y:v1 -> b.io/x/y:one', 'a.io/x/y:v2 -> b.io/x/y:two']);
  });

  test('a listing failure is a RuleError naming the rule, with the cause kept', async () => {
    const failure = new Error('401 UNAUTHORIZED');
    const { clients } = fakeClients({ 'a.io/x/y': failure });
    await assert.rejects(expandRule(rule('a.io/x/y', 'b.io/x/y'), clients), (error: unknown) => {
      assert.ok(error instanceof RuleError);
      assert.equal(error.rule, 'a.io/x/y');
      assert.match(error.message, /cannot list the tags of a\.io\/x\/y: 401 UNAUTHORIZED/);
      assert.equal(error.cause, failure);
      return true;
    });
  });

  test('no tags listed: no tasks', async () => {
    const { clients } = fakeClients({ 'a.io/x/empty': [] });
    assert.deepEqual(await expandRule(rule('a.io/x/empty', 'b.io/x/empty'), clients), []);
  });

  test('listing goes through options.request (the bounded pool)', async () => {
    const { clients } = fakeClients({ 'a.io/x/y': ['v1'] });
    let wrapped = 0;
    const tasks = await expandRule(rule('a.io/x/y', 'b.io/x/y'), clients, {
      request: async (call) => {
        wrapped++;
        return call();
      },
    });
    assert.equal(wrapped, 1);
    assert.deepEqual(keys(tasks), ['a.io/x/y:v1 -> b.io/x/y:v1']);
  });
});
