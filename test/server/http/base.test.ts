import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestRegistry, type TestRegistry } from '../../../src/testing/test-registry.ts';
import { expectError, raw } from './helpers.ts';

describe('base endpoints', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.stop();
  });

  test('GET /v2/ answers 200 with the API version header', async () => {
    const res = await fetch(`${reg.url}/v2/`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await res.arrayBuffer();
  });

  test('GET /v2 without the trailing slash also answers 200', async () => {
    const res = await fetch(`${reg.url}/v2`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await res.arrayBuffer();
  });

  test('HEAD /v2/ answers 200 with no body', async () => {
    const res = await raw(reg.url, 'HEAD', '/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0');
    assert.equal(res.body.length, 0);
  });

  test('GET /healthz answers 200', async () => {
    const res = await fetch(`${reg.url}/healthz`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string };
    assert.equal(body.status, 'ready');
  });

  test('error responses also carry the API version header', async () => {
    const res = await fetch(`${reg.url}/v2/base/missing/manifests/latest`);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
    await expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  test('an unknown path answers 404 with an error body', async () => {
    // `/` is the web UI's page (test/server/ui/); with `ui: false` it is unknown too.
    for (const path of ['/v3/', '/v2/base/thing/whatever', '/v2/base/thing/blobs', '/assets/nothing.js', '/api/v2/x']) {
      const res = await fetch(`${reg.url}${path}`);
      assert.equal(res.status, 404, path);
      const body = (await res.json()) as { errors: { code: string }[] };
      assert.ok(Array.isArray(body.errors) && body.errors.length === 1, path);
    }
  });

  test('a wrong method answers 405 UNSUPPORTED with Allow', async () => {
    const cases: [string, string, string][] = [
      ['DELETE', '/v2/', 'GET'],
      ['POST', '/v2/', 'GET'],
      ['POST', '/v2/base/x/tags/list', 'GET'],
      ['PATCH', '/v2/base/x/manifests/latest', 'PUT'],
      ['PUT', `/v2/base/x/blobs/sha256:${'a'.repeat(64)}`, 'GET'],
      ['POST', `/v2/base/x/referrers/sha256:${'a'.repeat(64)}`, 'GET'],
      ['PUT', '/v2/_catalog', 'GET'],
    ];
    for (const [method, path, allowed] of cases) {
      const res = await raw(reg.url, method, path);
      assert.equal(res.status, 405, `${method} ${path}`);
      const body = JSON.parse(res.body.toString()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]?.code, 'UNSUPPORTED', `${method} ${path}`);
      assert.ok(String(res.headers.allow).split(/,\s*/).includes(allowed), `${method} ${path}: Allow ${res.headers.allow}`);
    }
  });
});
