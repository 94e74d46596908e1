import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import {
  ALGORITHMS,
  InvalidDigestError,
  asDigest,
  digestOf,
  isDigest,
  parseDigest,
  shortId,
  type Digest,
} from '../../src/digest/digest.ts';
import { DigestMismatchError, SizeMismatchError } from '../../src/digest/errors.ts';
import { VerifyingStream } from '../../src/digest/verifier.ts';

const HELLO_SHA256 = 'sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
const HELLO_SHA512 =
  'sha512:9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043';
const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('parseDigest: valid digests', () => {
  test('sha256 with 64 lowercase hex', () => {
    assert.deepEqual(parseDigest(HELLO_SHA256), { algorithm: 'sha256', hex: HELLO_SHA256.slice(7) });
    assert.equal(isDigest(HELLO_SHA256), true);
    assert.equal(asDigest(HELLO_SHA256), HELLO_SHA256);
  });

  test('sha512 with 128 lowercase hex', () => {
    assert.deepEqual(parseDigest(HELLO_SHA512), { algorithm: 'sha512', hex: HELLO_SHA512.slice(7) });
    assert.equal(isDigest(HELLO_SHA512), true);
  });

  test('the algorithm table matches the image spec lengths', () => {
    assert.deepEqual({ ...ALGORITHMS }, { sha256: 64, sha512: 128 });
  });
});

describe('parseDigest: bad digests', () => {
  const hex64 = 'a'.repeat(64);
  const cases: [string, string][] = [
    ['empty string', ''],
    ['missing colon', `sha256${hex64}`],
    ['only the hex', hex64],
    ['only the algorithm and colon', 'sha256:'],
    ['colon only', ':'],
    ['empty algorithm', `:${hex64}`],
    ['sha256 too short (63)', `sha256:${'a'.repeat(63)}`],
    ['sha256 too long (65)', `sha256:${'a'.repeat(65)}`],
    ['sha256 with 128 hex', `sha256:${'a'.repeat(128)}`],
    ['sha512 with 64 hex', `sha512:${hex64}`],
    ['sha512 too short (127)', `sha512:${'a'.repeat(127)}`],
    ['uppercase hex', `sha256:${'A'.repeat(64)}`],
    ['one uppercase hex char', `sha256:${'a'.repeat(63)}F`],
    ['non-hex letters', `sha256:${'g'.repeat(64)}`],
    ['uppercase algorithm', `SHA256:${hex64}`],
    ['unknown algorithm', `md5:${'a'.repeat(32)}`],
    ['unknown algorithm with right length', `sha384:${hex64}`],
    ['registered-looking but unknown (sha256+b64u)', `sha256+b64u:${hex64}`],
    ['two colons', `sha256:${hex64}:x`],
    ['leading whitespace', ` sha256:${hex64}`],
    ['trailing whitespace', `sha256:${hex64} `],
    ['trailing newline', `sha256:${hex64}\n`],
    ['unicode hex look-alike', `sha256:${'a'.repeat(63)}\u0430`],
    ['prototype key as algorithm', `__proto__:${hex64}`],
    ['constructor as algorithm', `constructor:${hex64}`],
  ];
  for (const [label, input] of cases) {
    test(label, () => {
      assert.throws(() => parseDigest(input), InvalidDigestError);
      assert.equal(isDigest(input), false);
      assert.throws(() => asDigest(input), InvalidDigestError);
    });
  }

  test('the error carries the input and names the problem', () => {
    assert.throws(() => parseDigest(`md5:${'a'.repeat(32)}`), (e: unknown) => {
      assert.ok(e instanceof InvalidDigestError);
      assert.equal(e.input, `md5:${'a'.repeat(32)}`);
      assert.match(e.message, /unsupported algorithm "md5"/);
      return true;
    });
    assert.throws(() => parseDigest(`sha256:${'A'.repeat(64)}`), /64 lowercase hex/);
  });

  test('huge input is rejected quickly and the message stays short', () => {
    const inputs = [
      `sha256:${'a'.repeat(5_000_000)}`,
      'a'.repeat(5_000_000),
      `${'a-'.repeat(1_000_000)}:${'a'.repeat(64)}`,
      `sha256:${'a'.repeat(64)}${'='.repeat(1_000_000)}!`,
    ];
    for (const input of inputs) {
      const started = performance.now();
      assert.throws(
        () => parseDigest(input),
        (e: unknown) => e instanceof InvalidDigestError && e.message.length < 400,
      );
      assert.ok(performance.now() - started < 1000, 'linear-time rejection');
    }
  });
});

describe('digestOf', () => {
  test('known vectors for sha256 and sha512', () => {
    assert.equal(digestOf('hello'), HELLO_SHA256);
    assert.equal(digestOf(new TextEncoder().encode('hello')), HELLO_SHA256);
    assert.equal(digestOf('hello', 'sha512'), HELLO_SHA512);
    assert.equal(digestOf(''), EMPTY_SHA256);
  });

  test('shortId is the first 12 hex characters', () => {
    assert.equal(shortId(HELLO_SHA256), '2cf24dba5fb0');
    assert.equal(shortId(HELLO_SHA512), '9b71d224bd62');
  });

  test('property: digestOf always yields a parseable digest matching node:crypto', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.constantFrom('sha256' as const, 'sha512' as const), (bytes, algorithm) => {
        const digest = digestOf(bytes, algorithm);
        const parsed = parseDigest(digest);
        assert.equal(parsed.algorithm, algorithm);
        assert.equal(parsed.hex, createHash(algorithm).update(bytes).digest('hex'));
      }),
      { numRuns: 200 },
    );
  });
});

/** Runs `chunks` through a VerifyingStream and returns what came out. */
async function verify(chunks: Uint8Array[], expected: Digest, expectedSize?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks.map((c) => Buffer.from(c))),
    new VerifyingStream(expected, expectedSize),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('VerifyingStream', () => {
  test('a good stream passes through unchanged (with and without size)', async () => {
    const chunks = [Buffer.from('hel'), Buffer.from('lo')];
    assert.equal((await verify(chunks, HELLO_SHA256, 5)).toString(), 'hello');
    assert.equal((await verify(chunks, HELLO_SHA256)).toString(), 'hello');
    assert.equal((await verify(chunks, HELLO_SHA512 as Digest, 5)).toString(), 'hello');
  });

  test('an empty stream verifies against the empty digest', async () => {
    assert.equal((await verify([], EMPTY_SHA256 as Digest, 0)).length, 0);
  });

  test('counts bytes seen', async () => {
    const verifier = new VerifyingStream(HELLO_SHA256 as Digest, 5);
    await pipeline(Readable.from([Buffer.from('hello')]), verifier, new PassThrough().resume());
    assert.equal(verifier.bytesSeen, 5);
  });

  test('a wrong digest fails with DigestMismatchError at EOF', async () => {
    await assert.rejects(verify([Buffer.from('hellO')], HELLO_SHA256 as Digest, 5), (e: unknown) => {
      assert.ok(e instanceof DigestMismatchError);
      assert.equal(e.expected, HELLO_SHA256);
      assert.equal(e.actual, digestOf('hellO'));
      assert.equal(e.code, 'DIGEST_MISMATCH');
      return true;
    });
    await assert.rejects(verify([Buffer.from('hellO')], HELLO_SHA256 as Digest), DigestMismatchError);
  });

  test('too many bytes fail with SizeMismatchError before EOF, without passing the excess on', async () => {
    const source = new PassThrough();
    const verifier = new VerifyingStream(HELLO_SHA256 as Digest, 5);
    const passed: Buffer[] = [];
    verifier.on('data', (chunk: Buffer) => passed.push(chunk));
    const failed = once(verifier, 'error');
    source.pipe(verifier);
    source.write(Buffer.from('hel'));
    source.write(Buffer.from('lo!')); // 6 bytes > 5; the source is never ended
    const [error] = (await failed) as [unknown];
    assert.ok(error instanceof SizeMismatchError);
    assert.equal(error.expected, 5);
    assert.equal(error.actual, 6);
    assert.equal(Buffer.concat(passed).toString(), 'hel');
    assert.ok(Buffer.concat(passed).length <= 5);
    source.destroy();
  });

  test('too few bytes fail with SizeMismatchError at EOF', async () => {
    await assert.rejects(verify([Buffer.from('hell')], HELLO_SHA256 as Digest, 5), (e: unknown) => {
      assert.ok(e instanceof SizeMismatchError);
      assert.equal(e.expected, 5);
      assert.equal(e.actual, 4);
      return true;
    });
  });

  test('refuses to be built on an invalid digest', () => {
    assert.throws(() => new VerifyingStream('sha256:nope' as Digest), InvalidDigestError);
  });

  test('property: any bytes in, the same bytes out, and verification passes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.constantFrom('sha256' as const, 'sha512' as const),
        fc.boolean(),
        async (chunks, algorithm, withSize) => {
          const whole = Buffer.concat(chunks);
          const out = await verify(chunks, digestOf(whole, algorithm), withSize ? whole.length : undefined);
          assert.deepEqual(out, whole);
        },
      ),
      { numRuns: 100 },
    );
  });

  test('property: any other content under the same digest fails', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), fc.integer({ min: 1, max: 255 }), async (bytes, at, flip) => {
        const tampered = Buffer.from(bytes);
        const i = at % tampered.length;
        tampered[i] = (tampered[i]! ^ flip) & 0xff;
        await assert.rejects(verify([tampered], digestOf(bytes), bytes.length), DigestMismatchError);
      }),
      { numRuns: 100 },
    );
  });
});
