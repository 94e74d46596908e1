import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors/config-error.ts';
import { defaultDataDir, openFileLimit, resolveServeConfig, splitListen } from '../../src/server/config.ts';
import { freeSpaceFloor, parseDuration, parseSize } from '../../src/server/units.ts';

let dir: string;
const saved = { SKIFF_DATA: process.env.SKIFF_DATA, XDG_DATA_HOME: process.env.XDG_DATA_HOME };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'skiff-config-'));
  process.env.SKIFF_DATA = join(dir, 'default-data');
});

after(async () => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function configError(promise: Promise<unknown>): Promise<string> {
  let message = '';
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.name, 'ConfigError');
    message = e.message;
    return true;
  });
  return message;
}

describe('resolveServeConfig', () => {
  test('defaults with no flags and no file', async () => {
    const config = await resolveServeConfig({});
    assert.deepEqual(config, {
      listen: '127.0.0.1:5000',
      delete: true,
      readOnly: false,
      ui: true,
      logLevel: 'info',
      data: join(dir, 'default-data'),
      headersTimeout: 30_000,
      idleTimeout: 60_000,
      keepAliveTimeout: 30_000,
      maxConnections: Math.max(64, Math.floor((openFileLimit() - 256) / 2)),
      minFreeSpace: { bytes: 1024 ** 3, orPercent: 1 },
      uploadExpiry: 24 * 3600_000,
      sendBufferMemory: 16 * 1024 * 1024,
      manifestBodyMemory: 64 * 1024 * 1024,
      insecureHttp: false,
      gc: { interval: 3_600_000, grace: 86_400_000 },
    });
  });

  test('undefined flags do not override defaults', async () => {
    const config = await resolveServeConfig({ listen: undefined, delete: undefined, logLevel: undefined });
    assert.equal(config.listen, '127.0.0.1:5000');
    assert.equal(config.delete, true);
    assert.equal(config.logLevel, 'info');
  });

  test('values from a YAML file', async () => {
    const path = await file(
      'full.yaml',
      'listen: 0.0.0.0:6000\ndata: /srv/skiff\ndelete: false\nreadOnly: true\nlogLevel: debug\n' +
        'headersTimeout: 10s\nidleTimeout: 2m\nkeepAliveTimeout: 5\nmaxConnections: 500\nminFreeSpace: 5%\n' +
        'uploadExpiry: 7d\nsendBufferMemory: 16MiB\nmanifestBodyMemory: 1GiB\n',
    );
    assert.deepEqual(await resolveServeConfig({}, path), {
      listen: '0.0.0.0:6000',
      data: '/srv/skiff',
      delete: false,
      readOnly: true,
      ui: true,
      logLevel: 'debug',
      headersTimeout: 10_000,
      idleTimeout: 120_000,
      keepAliveTimeout: 5_000,
      maxConnections: 500,
      minFreeSpace: { percent: 5 },
      uploadExpiry: 7 * 86_400_000,
      sendBufferMemory: 16 * 1024 * 1024,
      manifestBodyMemory: 1024 ** 3,
      insecureHttp: false,
      gc: { interval: 3_600_000, grace: 86_400_000 },
    });
  });

  test('an empty file or a comment-only file gives the defaults', async () => {
    for (const [name, text] of [['empty.yaml', ''], ['comments.yaml', '# nothing here\n']] as const) {
      const config = await resolveServeConfig({}, await file(name, text));
      assert.equal(config.listen, '127.0.0.1:5000');
      assert.equal(config.delete, true);
    }
  });

  test('flags override the file; the file fills in the rest', async () => {
    const path = await file('partial.yaml', 'listen: 0.0.0.0:6000\nlogLevel: warn\ndelete: false\n');
    const config = await resolveServeConfig({ listen: '[::1]:7000', delete: true, readOnly: undefined }, path);
    assert.equal(config.listen, '[::1]:7000');
    assert.equal(config.delete, true);
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.readOnly, false);
  });

  test('an unknown key is a ConfigError naming the file and the key', async () => {
    const path = await file('unknown.yaml', 'listen: 0.0.0.0:6000\nlisten_addr: 1.2.3.4:5\n');
    const message = await configError(resolveServeConfig({}, path));
    assert.ok(message.includes(path), message);
    assert.match(message, /listen_addr/);
  });

  for (const key of ['hasOwnProperty', 'isPrototypeOf', 'valueOf', 'toString', 'constructor', '__proto__']) {
    test(`a key named like an Object.prototype member (${key}) is an unknown-key ConfigError`, async () => {
      const path = await file(`proto-${key}.yaml`, `${key}: 1\n`);
      const message = await configError(resolveServeConfig({}, path));
      assert.ok(message.includes(path), message);
      assert.ok(message.includes(key), message);
      const flagMessage = await configError(resolveServeConfig({ [key]: 1 }));
      assert.ok(flagMessage.includes(key), flagMessage);
    });
  }

  test('an unknown flag is a ConfigError naming it', async () => {
    const message = await configError(resolveServeConfig({ colour: 'blue' }));
    assert.match(message, /colour/);
  });

  const badListen = ['localhost', '127.0.0.1', '127.0.0.1:', '127.0.0.1:port', 'a b:5000', '127.0.0.1:123456', ':'];
  for (const listen of badListen) {
    test(`bad listen ${JSON.stringify(listen)} is a ConfigError naming "listen"`, async () => {
      const message = await configError(resolveServeConfig({ listen }));
      assert.match(message, /listen/);
    });
  }

  for (const listen of ['127.0.0.1:65536', '0.0.0.0:99999']) {
    test(`listen port out of range ${JSON.stringify(listen)} is a ConfigError`, async () => {
      const message = await configError(resolveServeConfig({ listen }));
      assert.match(message, /listen/);
    });
  }

  test('good listen forms', async () => {
    for (const listen of ['127.0.0.1:5000', ':5000', '[::1]:5000', 'localhost:1', 'registry.local:65535']) {
      assert.equal((await resolveServeConfig({ listen })).listen, listen);
    }
  });

  test('bad listen in the file names the file and the key', async () => {
    const path = await file('badlisten.yaml', 'listen: nowhere\n');
    const message = await configError(resolveServeConfig({}, path));
    assert.ok(message.includes(path), message);
    assert.match(message, /listen/);
  });

  test('a bad flag value is not blamed on the file', async () => {
    const path = await file('fine.yaml', 'logLevel: warn\n');
    const message = await configError(resolveServeConfig({ listen: 'nowhere' }, path));
    assert.match(message, /listen/);
    assert.match(message, /flag/i, `the error should say the bad value came from a flag: ${message}`);
  });

  test('wrong types are ConfigErrors naming the key', async () => {
    for (const [name, text, key] of [
      ['delete.yaml', 'delete: "no"\n', 'delete'],
      ['readonly.yaml', 'readOnly: 1\n', 'readOnly'],
      ['loglevel.yaml', 'logLevel: verbose\n', 'logLevel'],
      ['data.yaml', 'data: ""\n', 'data'],
      ['listen.yaml', 'listen: 5000\n', 'listen'],
      ['headers.yaml', 'headersTimeout: soon\n', 'headersTimeout'],
      ['idle.yaml', 'idleTimeout: 10ms\n', 'idleTimeout'],
      ['conns.yaml', 'maxConnections: 0\n', 'maxConnections'],
      ['conns2.yaml', 'maxConnections: 1.5\n', 'maxConnections'],
      ['free.yaml', 'minFreeSpace: 120%\n', 'minFreeSpace'],
      ['free2.yaml', 'minFreeSpace: lots\n', 'minFreeSpace'],
      ['expiry.yaml', 'uploadExpiry: -1h\n', 'uploadExpiry'],
      ['send.yaml', 'sendBufferMemory: 5%\n', 'sendBufferMemory'],
      ['send2.yaml', 'sendBufferMemory: 1KiB\n', 'sendBufferMemory'],
    ] as const) {
      const path = await file(name, text);
      const message = await configError(resolveServeConfig({}, path));
      assert.ok(message.includes(path), message);
      assert.ok(message.includes(key), message);
    }
  });

  test('bad YAML is a ConfigError naming the file', async () => {
    const path = await file('broken.yaml', 'listen: [\n');
    const message = await configError(resolveServeConfig({}, path));
    assert.ok(message.includes(path), message);
    assert.match(message, /YAML/);
  });

  test('YAML that is not a mapping is a ConfigError', async () => {
    for (const [name, text] of [['list.yaml', '- a\n- b\n'], ['scalar.yaml', 'just a string\n'], ['number.yaml', '42\n']] as const) {
      const path = await file(name, text);
      const message = await configError(resolveServeConfig({}, path));
      assert.ok(message.includes(path), message);
    }
  });

  test('a missing file is a ConfigError naming it', async () => {
    const path = join(dir, 'does-not-exist.yaml');
    const message = await configError(resolveServeConfig({}, path));
    assert.ok(message.includes(path), message);
  });
});

describe('defaultDataDir and splitListen', () => {
  test('SKIFF_DATA wins, then XDG_DATA_HOME, then ~/.local/share', () => {
    const skiff = process.env.SKIFF_DATA;
    try {
      process.env.SKIFF_DATA = '/explicit';
      process.env.XDG_DATA_HOME = '/xdg';
      assert.equal(defaultDataDir(), '/explicit');
      delete process.env.SKIFF_DATA;
      assert.equal(defaultDataDir(), join('/xdg', 'skiff-registry'));
      delete process.env.XDG_DATA_HOME;
      assert.equal(defaultDataDir(), join(homedir(), '.local', 'share', 'skiff-registry'));
    } finally {
      process.env.SKIFF_DATA = skiff;
      if (saved.XDG_DATA_HOME === undefined) delete process.env.XDG_DATA_HOME;
      else process.env.XDG_DATA_HOME = saved.XDG_DATA_HOME;
    }
  });

  test('splitListen', () => {
    assert.deepEqual(splitListen('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(splitListen(':5000'), { host: '0.0.0.0', port: 5000 });
    assert.deepEqual(splitListen('[::1]:6000'), { host: '::1', port: 6000 });
    assert.deepEqual(splitListen('registry.local:80'), { host: 'registry.local', port: 80 });
  });
});

describe('units', () => {
  test('durations: units, bare numbers are seconds, nonsense is undefined', () => {
    const table: [unknown, number | undefined][] = [
      ['250ms', 250], ['30s', 30_000], ['5m', 300_000], ['24h', 86_400_000], ['7d', 604_800_000], ['1.5s', 1500],
      [30, 30_000], ['30', 30_000], [' 2m ', 120_000], ['', undefined], ['-1s', undefined], ['1w', undefined], [true, undefined], [Number.NaN, undefined],
    ];
    for (const [input, expected] of table) assert.equal(parseDuration(input), expected, JSON.stringify(input));
  });

  test('sizes: binary and decimal units, bare numbers are bytes, percents only where allowed', () => {
    assert.deepEqual(parseSize('64MiB'), { bytes: 64 * 1024 ** 2 });
    assert.deepEqual(parseSize('1G'), { bytes: 1024 ** 3 });
    assert.deepEqual(parseSize('500MB'), { bytes: 500e6 });
    assert.deepEqual(parseSize(4096), { bytes: 4096 });
    assert.equal(parseSize('5%'), undefined);
    assert.deepEqual(parseSize('5%', { percent: true }), { percent: 5 });
    assert.equal(parseSize('101%', { percent: true }), undefined);
    assert.equal(parseSize('many'), undefined);
    assert.equal(parseSize(-1), undefined);
  });

  test('free-space floor: bytes, percent, or the smaller of both', () => {
    const gib = 1024 ** 3;
    assert.equal(freeSpaceFloor({ bytes: gib }, 1000 * gib), gib);
    assert.equal(freeSpaceFloor({ percent: 10 }, 1000), 100);
    assert.equal(freeSpaceFloor({ bytes: gib, orPercent: 1 }, 1000 * gib), gib);
    assert.equal(freeSpaceFloor({ bytes: gib, orPercent: 1 }, 20 * 1024 ** 2), Math.ceil(0.2 * 1024 ** 2));
  });
});

describe('scale-out settings: storage, metadata, redis (docs/scale-out.md)', () => {
  test('a full set parses, with defaults filled in', async () => {
    const path = await file(
      'scale-out.yaml',
      [
        'storage:',
        '  s3: {endpoint: "http://127.0.0.1:7480/", bucket: skiff, accessKey: ak, secretKey: sk}',
        'metadata:',
        '  postgres: {url: "postgres://skiff:pw@db:5432/registry"}',
        'redis: redis://127.0.0.1:6379/0',
      ].join('\n'),
    );
    const config = await resolveServeConfig({}, path);
    assert.deepEqual(config.storage, {
      s3: { endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', bucket: 'skiff', accessKey: 'ak', secretKey: 'sk', forcePathStyle: true, prefix: '', partSize: 8 * 1024 * 1024, redirect: 20 * 60_000 },
    });
    assert.deepEqual(config.metadata, { postgres: { url: 'postgres://skiff:pw@db:5432/registry', poolSize: 10 } });
    const noRedirect = await resolveServeConfig({}, await file('no-redirect.yaml', 'storage: {s3: {bucket: skiff, redirect: false}}'));
    assert.equal(noRedirect.storage?.s3.redirect, undefined, 'redirect: false: the replica sends the bytes');
    const shorter = await resolveServeConfig({}, await file('redirect-5m.yaml', 'storage: {s3: {bucket: skiff, redirect: 5m}}'));
    assert.equal(shorter.storage?.s3.redirect, 5 * 60_000);
    assert.deepEqual(config.redis, { url: 'redis://127.0.0.1:6379/0', prefix: 'skiff:' });
  });

  test('each mistake names its key and what is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['storage: {s3: {endpoint: "http://x:1"}}', /storage\.s3\.bucket: required/],
      ['storage: {s3: {bucket: Skiff_Bucket}}', /storage\.s3\.bucket: required: a bucket name of 3–63 lower-case/],
      ['storage: {s3: {bucket: skiff, accessKey: ak}}', /storage\.s3: accessKey and secretKey go together/],
      ['storage: {s3: {bucket: skiff, partSize: 1MiB}}', /storage\.s3\.partSize: expected a size from 5MiB to 5GiB/],
      ['storage: {s3: {bucket: skiff, endpoint: "ftp://x"}}', /storage\.s3\.endpoint: expected an http:\/\/ or https:\/\/ URL/],
      ['storage: {s3: {bucket: skiff, region: eu, colour: blue}}', /storage\.s3\.colour: unknown setting/],
      ['storage: {gcs: {}}', /storage\.gcs: unknown setting \(known: s3\)/],
      ['metadata: {postgres: {url: "mysql://x/y"}}', /metadata\.postgres\.url: required: a URL such as postgres:\/\//],
      ['metadata: {postgres: {url: "postgres://x/y", poolSize: 1}}', /metadata\.postgres\.poolSize: must be a whole number of connections from 2 to 1000/],
      ['redis: "http://127.0.0.1:6379"', /redis\.url: required: a URL such as redis:\/\//],
      ['redis: {url: "redis://x", prefix: "has space"}', /redis\.prefix: expected up to 64 letters/],
    ];
    for (const [i, [text, expected]] of cases.entries()) {
      const message = await configError(resolveServeConfig({}, await file(`bad-${i}.yaml`, text)));
      assert.match(message, expected, `${text}\n→ ${message}`);
    }
  });

  test('settings that do not fit the storage are refused at start', async () => {
    const accel = await configError(resolveServeConfig({ xAccelRedirect: '/_skiff_blobs' }, await file('accel-s3.yaml', 'storage: {s3: {bucket: skiff}}')));
    assert.match(accel, /xAccelRedirect .* storage: s3 .* storage\.s3\.redirect/);
    const htpasswd = await file('users.htpasswd', 'alice:$2y$04$abcdefghijklmnopqrstuu5cH0CHNwXJIVtnOQyN3tXmS0K6/Jy2\n');
    const key = await configError(resolveServeConfig({ htpasswd }, await file('pg-no-key.yaml', 'metadata: {postgres: {url: "postgres://x/y"}}')));
    assert.match(key, /token\.key: required with metadata: postgres/);
  });

  test('${NAME} in a value is the environment variable; one that is not set is an error naming the key', async () => {
    process.env.SKIFF_TEST_S3_SECRET = 'from-the-env';
    try {
      const path = await file('env.yaml', 'storage: {s3: {bucket: skiff, accessKey: ak, secretKey: "${SKIFF_TEST_S3_SECRET}"}}\nmetadata: {postgres: {url: "postgres://skiff:p$ss@db/r"}}');
      const config = await resolveServeConfig({}, path);
      assert.equal(config.storage?.s3.secretKey, 'from-the-env');
      assert.equal(config.metadata?.postgres.url, 'postgres://skiff:p$ss@db/r', 'a bare $ is left alone');
      const unset = await configError(resolveServeConfig({}, await file('unset.yaml', 'redis: {url: "redis://:${SKIFF_TEST_UNSET_VAR}@h:6379"}')));
      assert.match(unset, /unset\.yaml: redis\.url: \$\{SKIFF_TEST_UNSET_VAR\} names an environment variable that is not set/);
    } finally {
      delete process.env.SKIFF_TEST_S3_SECRET;
    }
  });
});
