import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf } from '../../src/digest/digest.ts';
import { InvalidManifestError, MAX_MANIFEST_BYTES, childDescriptors, parseManifest, validateDescriptor } from '../../src/oci/manifest.ts';
import { MediaTypes, bareMediaType } from '../../src/oci/media-types.ts';

const enc = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
const dgst = (s: string) => digestOf(s);

const configDesc = { mediaType: MediaTypes.ociConfig, digest: dgst('config'), size: 6 };
const layerDesc = { mediaType: MediaTypes.ociLayerGzip, digest: dgst('layer'), size: 5 };

function ociManifest(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { schemaVersion: 2, mediaType: MediaTypes.ociManifest, config: { ...configDesc }, layers: [{ ...layerDesc }], ...extra };
}

function ociIndex(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: [
      { mediaType: MediaTypes.ociManifest, digest: dgst('amd64'), size: 100, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MediaTypes.ociManifest, digest: dgst('arm64'), size: 101, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ],
    ...extra,
  };
}

/** Asserts parseManifest throws InvalidManifestError of `kind` whose message matches `pattern`. */
function rejects(bytes: Uint8Array, contentType: string | undefined, pattern: RegExp, kind: 'invalid' | 'unsupported' = 'invalid'): void {
  assert.throws(
    () => parseManifest(bytes, contentType),
    (e: unknown) => {
      assert.ok(e instanceof InvalidManifestError, `expected InvalidManifestError, got ${String(e)}`);
      assert.equal(e.kind, kind, e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('parseManifest: accepted', () => {
  test('OCI image manifest', () => {
    const parsed = parseManifest(enc(ociManifest()), MediaTypes.ociManifest);
    assert.equal(parsed.mediaType, MediaTypes.ociManifest);
    assert.equal(parsed.kind, 'image');
    assert.deepEqual(parsed.config, configDesc);
    assert.deepEqual(parsed.layers, [layerDesc]);
    assert.deepEqual(parsed.manifests, []);
    assert.equal(parsed.artifactType, MediaTypes.ociConfig);
    assert.equal(parsed.subject, undefined);
    assert.deepEqual(childDescriptors(parsed), [configDesc, layerDesc]);
  });

  test('OCI image manifest without a Content-Type, or with a generic or parameterized one', () => {
    for (const ct of [undefined, '', 'application/json', 'application/octet-stream', `${MediaTypes.ociManifest}; charset=utf-8`, MediaTypes.ociManifest.toUpperCase()]) {
      assert.equal(parseManifest(enc(ociManifest()), ct).mediaType, MediaTypes.ociManifest, String(ct));
    }
  });

  test('OCI image index', () => {
    const parsed = parseManifest(enc(ociIndex({ annotations: { 'org.opencontainers.image.ref.name': 'v1' } })), MediaTypes.ociIndex);
    assert.equal(parsed.kind, 'index');
    assert.equal(parsed.mediaType, MediaTypes.ociIndex);
    assert.equal(parsed.manifests.length, 2);
    assert.deepEqual(parsed.layers, []);
    assert.equal(parsed.config, undefined);
    assert.deepEqual(parsed.annotations, { 'org.opencontainers.image.ref.name': 'v1' });
    assert.deepEqual(childDescriptors(parsed).map((d) => d.digest), [dgst('amd64'), dgst('arm64')]);
    assert.equal(parsed.artifactType, undefined);
  });

  test('an empty OCI index is valid', () => {
    const parsed = parseManifest(enc({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [] }));
    assert.equal(parsed.kind, 'index');
    assert.deepEqual(parsed.manifests, []);
  });

  test('Docker schema 2 manifest', () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: MediaTypes.dockerConfig, digest: dgst('c'), size: 1 },
      layers: [
        { mediaType: MediaTypes.dockerLayerGzip, digest: dgst('l1'), size: 2 },
        { mediaType: MediaTypes.dockerForeignLayerGzip, digest: dgst('l2'), size: 3, urls: ['https://example.com/l2'] },
      ],
    };
    const parsed = parseManifest(enc(manifest), MediaTypes.dockerManifest);
    assert.equal(parsed.kind, 'image');
    assert.equal(parsed.mediaType, MediaTypes.dockerManifest);
    assert.equal(parsed.layers.length, 2);
    assert.deepEqual(parsed.layers[1]!.urls, ['https://example.com/l2']);
    assert.equal(parsed.artifactType, MediaTypes.dockerConfig);
  });

  test('Docker manifest list', () => {
    const list = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifestList,
      manifests: [{ mediaType: MediaTypes.dockerManifest, digest: dgst('m'), size: 9, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } }],
    };
    const parsed = parseManifest(enc(list), MediaTypes.dockerManifestList);
    assert.equal(parsed.kind, 'index');
    assert.equal(parsed.mediaType, MediaTypes.dockerManifestList);
    assert.equal(parsed.manifests[0]!.platform?.variant, 'v7');
  });

  test('artifact with artifactType and subject', () => {
    const subject = { mediaType: MediaTypes.ociManifest, digest: dgst('subject'), size: 500 };
    const artifact = ociManifest({
      artifactType: 'application/vnd.example.sbom.v1+json',
      config: { mediaType: MediaTypes.ociEmpty, digest: dgst('{}'), size: 2 },
      layers: [{ mediaType: 'application/spdx+json', digest: dgst('sbom'), size: 4 }],
      subject,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
    });
    const parsed = parseManifest(enc(artifact), MediaTypes.ociManifest);
    assert.equal(parsed.artifactType, 'application/vnd.example.sbom.v1+json');
    assert.deepEqual(parsed.subject, subject);
    assert.deepEqual(parsed.annotations, { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' });
  });

  test('index with artifactType and subject', () => {
    const subject = { mediaType: MediaTypes.ociManifest, digest: dgst('subject'), size: 500 };
    const parsed = parseManifest(enc(ociIndex({ artifactType: 'application/vnd.example.bundle', subject })));
    assert.equal(parsed.artifactType, 'application/vnd.example.bundle');
    assert.deepEqual(parsed.subject, subject);
  });

  test('artifact with the empty config and no artifactType reports the config media type', () => {
    const empty = { mediaType: MediaTypes.ociEmpty, digest: dgst('{}'), size: 2, data: 'e30=' };
    const parsed = parseManifest(enc(ociManifest({ config: empty, layers: [{ ...empty }] })));
    assert.equal(parsed.kind, 'image');
    assert.equal(parsed.config?.mediaType, 'application/vnd.oci.empty.v1+json');
    assert.equal(parsed.artifactType, 'application/vnd.oci.empty.v1+json');
  });

  test('artifact with a custom config media type reports it as artifactType', () => {
    const parsed = parseManifest(enc(ociManifest({ config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: dgst('h'), size: 1 } })));
    assert.equal(parsed.artifactType, 'application/vnd.cncf.helm.config.v1+json');
  });

  test('an OCI manifest with zero layers is accepted (artifacts)', () => {
    const parsed = parseManifest(enc(ociManifest({ layers: [] })));
    assert.deepEqual(parsed.layers, []);
  });

  test('layers of every accepted kind', () => {
    const kinds = [
      MediaTypes.ociLayer,
      MediaTypes.ociLayerGzip,
      MediaTypes.ociLayerZstd,
      MediaTypes.ociLayerNondistributable,
      MediaTypes.ociLayerNondistributableGzip,
      MediaTypes.ociLayerNondistributableZstd,
      MediaTypes.dockerLayerGzip,
      MediaTypes.dockerForeignLayerGzip,
    ];
    const parsed = parseManifest(enc(ociManifest({ layers: kinds.map((mediaType, i) => ({ mediaType, digest: dgst(String(i)), size: i })) })));
    assert.deepEqual(parsed.layers.map((l) => l.mediaType), kinds);
  });

  test('a manifest without mediaType is guessed from its shape', () => {
    const { mediaType: _m, ...image } = ociManifest();
    const { mediaType: _i, ...index } = ociIndex();
    assert.equal(parseManifest(enc(image)).mediaType, MediaTypes.ociManifest);
    assert.equal(parseManifest(enc(image)).kind, 'image');
    assert.equal(parseManifest(enc(index)).mediaType, MediaTypes.ociIndex);
    assert.equal(parseManifest(enc(index)).kind, 'index');
    // With a usable Content-Type, that decides.
    assert.equal(parseManifest(enc(image), MediaTypes.dockerManifest).mediaType, MediaTypes.dockerManifest);
    assert.equal(parseManifest(enc(index), MediaTypes.dockerManifestList).mediaType, MediaTypes.dockerManifestList);
  });

  test('null optional fields (as Go clients send them) are tolerated', () => {
    const manifest = ociManifest({
      annotations: null,
      subject: null,
      artifactType: null,
      config: { ...configDesc, urls: null, annotations: null, platform: null, artifactType: null, data: null },
      layers: [{ ...layerDesc, urls: null, annotations: null }],
    });
    const parsed = parseManifest(enc(manifest));
    assert.equal(parsed.subject, undefined);
    assert.equal(parsed.annotations, undefined);
    assert.equal(parsed.artifactType, MediaTypes.ociConfig);
    assert.deepEqual(parsed.config, configDesc);
    assert.deepEqual(parsed.layers, [layerDesc]);

    const index = ociIndex({ annotations: null, subject: null, artifactType: null });
    (index.manifests as Record<string, unknown>[])[0]!.platform = null;
    const parsedIndex = parseManifest(enc(index));
    assert.equal(parsedIndex.manifests[0]!.platform, undefined);
    assert.equal(parsedIndex.artifactType, undefined);
  });

  test('sha512 descriptor digests are accepted', () => {
    const parsed = parseManifest(enc(ociManifest({ layers: [{ ...layerDesc, digest: digestOf('x', 'sha512') }] })));
    assert.equal(parsed.layers[0]!.digest, digestOf('x', 'sha512'));
  });

  test('exactly 4 MiB is accepted', () => {
    const base = JSON.stringify(ociManifest());
    const padded = base.slice(0, -1) + ' '.repeat(MAX_MANIFEST_BYTES - base.length) + '}';
    const bytes = new TextEncoder().encode(padded);
    assert.equal(bytes.byteLength, MAX_MANIFEST_BYTES);
    assert.equal(parseManifest(bytes).kind, 'image');
  });
});

describe('parseManifest: rejected', () => {
  test('Docker schema 1 by Content-Type', () => {
    const body = enc({ schemaVersion: 1, name: 'x', tag: 'latest', fsLayers: [], history: [], signatures: [] });
    for (const ct of [MediaTypes.dockerSchema1, MediaTypes.dockerSchema1Signed, `${MediaTypes.dockerSchema1Signed}; charset=utf-8`]) {
      rejects(body, ct, /schema 1/, 'unsupported');
    }
  });

  test('Docker schema 1 by Content-Type even when the body claims schemaVersion 2', () => {
    rejects(enc(ociManifest({ mediaType: undefined })), MediaTypes.dockerSchema1Signed, /schema 1/, 'unsupported');
  });

  test('Docker schema 1 by schemaVersion 1 alone', () => {
    rejects(enc({ schemaVersion: 1, name: 'x', tag: 'latest', fsLayers: [{ blobSum: dgst('a') }], history: [] }), undefined, /schema 1/, 'unsupported');
    rejects(enc({ schemaVersion: 1, name: 'x' }), 'application/json', /schema 1/, 'unsupported');
  });

  test('Docker schema 1 by mediaType field', () => {
    rejects(enc({ schemaVersion: 2, mediaType: MediaTypes.dockerSchema1 }), undefined, /schema 1/, 'unsupported');
  });

  test('malformed JSON', () => {
    for (const text of ['', '{', '{"schemaVersion":2,}', 'nul', '{"a":1}{"b":2}', "{'a':1}"]) {
      rejects(new TextEncoder().encode(text), MediaTypes.ociManifest, /not valid UTF-8 JSON/);
    }
  });

  test('non-object JSON', () => {
    for (const text of ['[]', '[{"schemaVersion":2}]', '"manifest"', '42', 'null', 'true']) {
      rejects(new TextEncoder().encode(text), MediaTypes.ociManifest, /JSON object/);
    }
  });

  test('invalid UTF-8', () => {
    const good = enc(ociManifest({ annotations: { a: 'xx' } }));
    const text = new TextDecoder().decode(good);
    const at = text.indexOf('xx');
    const bad = Uint8Array.from(good);
    bad[at] = 0xff; // not valid anywhere in UTF-8
    bad[at + 1] = 0xfe;
    rejects(bad, MediaTypes.ociManifest, /UTF-8/);
    rejects(Uint8Array.from([0x7b, 0xc3, 0x7d]), undefined, /UTF-8/); // truncated 2-byte sequence
  });

  test('oversized: one byte over 4 MiB', () => {
    const base = JSON.stringify(ociManifest());
    const padded = base.slice(0, -1) + ' '.repeat(MAX_MANIFEST_BYTES - base.length + 1) + '}';
    const bytes = new TextEncoder().encode(padded);
    assert.equal(bytes.byteLength, MAX_MANIFEST_BYTES + 1);
    rejects(bytes, MediaTypes.ociManifest, /limit/);
  });

  test('unknown media type is "unsupported"', () => {
    rejects(enc(ociManifest({ mediaType: 'application/vnd.example.thing+json' })), undefined, /unsupported manifest media type/, 'unsupported');
    const { mediaType: _m, ...bare } = ociManifest();
    rejects(enc(bare), 'application/vnd.example.thing+json', /unsupported manifest media type/, 'unsupported');
    rejects(enc(ociManifest({ mediaType: MediaTypes.ociConfig })), undefined, /unsupported manifest media type/, 'unsupported');
    // Nothing to go on: no mediaType, no Content-Type, neither config nor manifests.
    rejects(enc({ schemaVersion: 2, layers: [] }), undefined, /unsupported manifest media type/, 'unsupported');
  });

  test('Content-Type that contradicts the mediaType field', () => {
    rejects(enc(ociManifest()), MediaTypes.ociIndex, /does not match/);
    rejects(enc(ociManifest()), MediaTypes.dockerManifest, /does not match/);
    rejects(enc(ociIndex()), MediaTypes.ociManifest, /does not match/);
  });

  test('mediaType that is not a string', () => {
    rejects(enc(ociManifest({ mediaType: 5 })), undefined, /mediaType must be a string/);
  });

  test('schemaVersion other than 2', () => {
    const { schemaVersion: _s, ...missing } = ociManifest();
    rejects(enc(missing), undefined, /schemaVersion must be 2/);
    rejects(enc(ociManifest({ schemaVersion: '2' })), undefined, /schemaVersion must be 2/);
    rejects(enc(ociManifest({ schemaVersion: 3 })), undefined, /schemaVersion must be 2/);
  });

  const badDescriptors: [string, Record<string, unknown>, RegExp][] = [
    ['short digest', { ...layerDesc, digest: 'sha256:abc' }, /layers\[0\]\.digest/],
    ['uppercase digest', { ...layerDesc, digest: layerDesc.digest.toUpperCase() }, /layers\[0\]\.digest/],
    ['unknown algorithm', { ...layerDesc, digest: `md5:${'a'.repeat(32)}` }, /layers\[0\]\.digest/],
    ['missing digest', { mediaType: layerDesc.mediaType, size: 5 }, /layers\[0\]\.digest/],
    ['negative size', { ...layerDesc, size: -1 }, /layers\[0\]\.size/],
    ['fractional size', { ...layerDesc, size: 1.5 }, /layers\[0\]\.size/],
    ['size as string', { ...layerDesc, size: '5' }, /layers\[0\]\.size/],
    ['unsafe size', { ...layerDesc, size: 2 ** 53 }, /layers\[0\]\.size/],
    ['missing size', { mediaType: layerDesc.mediaType, digest: layerDesc.digest }, /layers\[0\]\.size/],
    ['mediaType without slash', { ...layerDesc, mediaType: 'layer' }, /layers\[0\]\.mediaType/],
    ['empty mediaType', { ...layerDesc, mediaType: '' }, /layers\[0\]\.mediaType/],
    ['mediaType with spaces', { ...layerDesc, mediaType: 'application/ x' }, /layers\[0\]\.mediaType/],
    ['missing mediaType', { digest: layerDesc.digest, size: 5 }, /layers\[0\]\.mediaType/],
    ['urls not strings', { ...layerDesc, urls: [1] }, /layers\[0\]\.urls/],
    ['annotations not strings', { ...layerDesc, annotations: { a: 1 } }, /layers\[0\]\.annotations/],
    ['platform without os', { ...layerDesc, platform: { architecture: 'amd64' } }, /layers\[0\]\.platform/],
    ['artifactType not a string', { ...layerDesc, artifactType: 7 }, /layers\[0\]\.artifactType/],
  ];
  for (const [label, descriptor, pattern] of badDescriptors) {
    test(`bad layer descriptor: ${label}`, () => {
      rejects(enc(ociManifest({ layers: [descriptor] })), undefined, pattern);
    });
  }

  test('bad descriptors elsewhere name their place', () => {
    rejects(enc(ociManifest({ config: { ...configDesc, size: -3 } })), undefined, /config\.size/);
    rejects(enc(ociManifest({ layers: [layerDesc, 'x'] })), undefined, /layers\[1\] must be an object/);
    rejects(enc(ociManifest({ subject: { ...configDesc, digest: 'nope' } })), undefined, /subject\.digest/);
    const index = ociIndex();
    (index.manifests as Record<string, unknown>[])[1]!.size = -1;
    rejects(enc(index), undefined, /manifests\[1\]\.size/);
  });

  test('missing config or layers', () => {
    const { config: _c, ...noConfig } = ociManifest();
    const { layers: _l, ...noLayers } = ociManifest();
    rejects(enc(noConfig), undefined, /config/);
    rejects(enc(noLayers), undefined, /layers/);
    rejects(enc(ociManifest({ layers: {} })), undefined, /layers/);
    rejects(enc(ociManifest({ config: null })), undefined, /config/);
  });

  test('an index without a manifests array', () => {
    rejects(enc({ schemaVersion: 2, mediaType: MediaTypes.ociIndex }), undefined, /manifests/);
    rejects(enc({ schemaVersion: 2, mediaType: MediaTypes.dockerManifestList, manifests: {} }), undefined, /manifests/);
  });

  test('Docker schema 2 with zero layers', () => {
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: MediaTypes.dockerConfig, digest: dgst('c'), size: 1 },
      layers: [],
    };
    rejects(enc(manifest), MediaTypes.dockerManifest, /at least one layer/);
  });

  test('bad top-level artifactType and annotations', () => {
    rejects(enc(ociManifest({ artifactType: 'not a media type' })), undefined, /artifactType/);
    rejects(enc(ociManifest({ artifactType: 12 })), undefined, /artifactType/);
    rejects(enc(ociManifest({ annotations: { a: 1 } })), undefined, /annotations/);
    rejects(enc(ociManifest({ annotations: ['a'] })), undefined, /annotations/);
  });
});

describe('validateDescriptor and media type helpers', () => {
  test('validateDescriptor returns a valid descriptor unchanged', () => {
    const d = { mediaType: MediaTypes.ociLayer, digest: dgst('z'), size: 0, annotations: { k: 'v' }, platform: { os: 'linux', architecture: 'amd64' } };
    assert.deepEqual(validateDescriptor(structuredClone(d), 'd'), d);
    assert.throws(() => validateDescriptor(null, 'd'), InvalidManifestError);
    assert.throws(() => validateDescriptor([], 'd'), InvalidManifestError);
  });

  test('bareMediaType strips parameters and case', () => {
    assert.equal(bareMediaType('Application/JSON; charset=UTF-8'), 'application/json');
    assert.equal(bareMediaType(undefined), '');
    assert.equal(bareMediaType('  application/vnd.oci.image.index.v1+json  '), MediaTypes.ociIndex);
  });
});

describe('parseManifest: foreign layer URLs', () => {
  const withUrls = (urls: unknown[]) => enc(ociManifest({ layers: [{ ...layerDesc, mediaType: MediaTypes.dockerForeignLayerGzip, urls }] }));

  test('absolute http and https URLs are accepted, in any scheme case, with ports, queries and IPv6 hosts', () => {
    const urls = ['https://example.com/layer.tar.gz', 'http://example.com:8080/a/b?sig=x&t=1', 'HTTPS://EXAMPLE.COM/l', 'http://[::1]/l', 'https://mcr.microsoft.com/v2/windows/blobs/sha256:abc'];
    assert.deepEqual(parseManifest(withUrls(urls)).layers[0]!.urls, urls);
  });

  test('anything else is refused, naming the descriptor and the URL', () => {
    const bad: [string, RegExp][] = [
      ['not a url at all', /layers\[0\]\.urls\[0\] "not a url at all" is not an absolute http or https URL/],
      ['ftp://example.com/layer', /"ftp:\/\/example\.com\/layer" is not an absolute http or https URL/],
      ['file:///etc/passwd', /is not an absolute http or https URL/],
      ['//example.com/layer', /is not an absolute http or https URL/],
      ['/v2/x/blobs/sha256:abc', /is not an absolute http or https URL/],
      ['http:example.com/layer', /is not an absolute http or https URL/],
      ['http://', /is not an absolute http or https URL/],
      ['https://example.com/layer#part', /has a fragment/],
      ['https://exa mple.com/layer', /is not an absolute http or https URL/],
      [' https://example.com/layer', /is not an absolute http or https URL/],
      ['https://example.com/la\nyer', /is not an absolute http or https URL/],
      ['', /is not an absolute http or https URL/],
    ];
    for (const [url, pattern] of bad) rejects(withUrls([url]), undefined, pattern);
    rejects(withUrls(['https://example.com/ok', 'gopher://example.com/no']), undefined, /layers\[0\]\.urls\[1\] "gopher:/);
  });

  test('the check covers every descriptor, since the registry skips the presence check for any with urls', () => {
    rejects(enc(ociManifest({ config: { ...configDesc, urls: ['nope'] } })), undefined, /config\.urls\[0\] "nope"/);
    rejects(enc(ociIndex({ manifests: [{ mediaType: MediaTypes.ociManifest, digest: dgst('m'), size: 1, urls: ['nope'] }] })), undefined, /manifests\[0\]\.urls\[0\]/);
  });

  test('a long bad URL is echoed bounded, with an ellipsis', () => {
    const url = `x${'y'.repeat(5000)}`;
    assert.throws(
      () => parseManifest(withUrls([url])),
      (e: unknown) => {
        assert.ok(e instanceof InvalidManifestError);
        assert.ok(e.message.length < 400, `message of ${e.message.length} chars`);
        assert.match(e.message, /"xy+…" is not an absolute/);
        return true;
      },
    );
  });
});

describe('parseManifest: byte-order mark', () => {
  test('a manifest starting with a UTF-8 BOM is refused, not stored for Go clients to choke on', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const body = Buffer.concat([bom, Buffer.from(JSON.stringify(ociManifest()))]);
    rejects(body, MediaTypes.ociManifest, /manifest starts with a UTF-8 byte-order mark/);
  });

  test('a BOM character inside a string value is still fine', () => {
    const parsed = parseManifest(enc(ociManifest({ annotations: { note: '\uFEFFhello' } })));
    assert.equal(parsed.annotations?.note, '\uFEFFhello');
  });
});

describe('parseManifest: bounded echoes', () => {
  test('a huge Content-Type or mediaType is echoed at most 100 characters', () => {
    const huge = `application/vnd.${'a'.repeat(5000)}+json`;
    for (const [bytes, ct] of [
      [enc(ociManifest()), huge],
      [enc(ociManifest({ mediaType: huge })), undefined],
      [enc(ociManifest({ layers: [{ ...layerDesc, digest: `sha256:${'z'.repeat(5000)}` }] })), undefined],
    ] as [Uint8Array, string | undefined][]) {
      assert.throws(
        () => parseManifest(bytes, ct),
        (e: unknown) => {
          assert.ok(e instanceof InvalidManifestError);
          assert.ok(e.message.length < 600, `message of ${e.message.length} chars: ${e.message.slice(0, 200)}`);
          return true;
        },
      );
    }
  });
});
