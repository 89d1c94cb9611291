import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsFilePaths } from '../../src/config/tls-files.ts';
import { PUBLIC_ROOTS } from '../../src/routing/upstream-rule.ts';
import { configInFixture } from '../helpers/config-in-fixture.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';

let fixture: TlsFixture;
let ca: { certFile: string; keyFile: string };
let client: { certFile: string; keyFile: string };

beforeAll(() => {
  fixture = tlsFixture();
  ca = makeCa(fixture, 'ca');
  client = makeLeaf(fixture, ca, 'client', { usage: 'clientAuth' });
  makeLeaf(fixture, ca, 'other', { usage: 'clientAuth' });
  writeFileSync(fixture.file('junk.pem'), 'not a certificate\n');
  writeFileSync(
    fixture.file('broken.pem'),
    '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
  );
});
afterAll(() => fixture?.remove());

const { load, errorsOf } = configInFixture(() => fixture);

describe.skipIf(!hasOpenssl())('upstreams[].tls', () => {
  it('reads the CA and the client certificate and key, paths relative to the config file', () => {
    const config = load(
      'upstreams:',
      '  - match: api.partner.example',
      '    tls: { ca: ca.pem, cert: client.pem, key: client.key }',
    );
    const tls = config.upstreams[0]?.tls;
    expect(tls?.ca).toContain('-----BEGIN CERTIFICATE-----');
    expect(tls?.cert).toContain('-----BEGIN CERTIFICATE-----');
    expect(tls?.key).toContain('PRIVATE KEY-----');
    expect(tls?.files).toEqual({ ca: 'ca.pem', cert: 'client.pem', key: 'client.key' });
    expect(tls?.port).toBeUndefined();
    expect(tls?.servername).toBeUndefined();
    expect(tlsFilePaths(config)).toEqual([ca.certFile, client.certFile, client.keyFile]);
  });

  it('leaves a rule without tls plain', () => {
    expect(load('upstreams:', '  - match: a.example').upstreams[0]?.tls).toBeUndefined();
  });

  it('gives equal settings equal ids, and different settings different ids', () => {
    const config = load(
      'upstreams:',
      '  - { match: a.example, tls: { ca: ca.pem } }',
      `  - { match: b.example, tls: { ca: ${ca.certFile} } }`,
      '  - { match: c.example, tls: { ca: ca.pem, servername: c.example } }',
      '  - { match: d.example, tls: {} }',
    );
    const [a, b, c, d] = config.upstreams.map((rule) => rule.tls?.id);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(d).toBe(PUBLIC_ROOTS.id);
  });

  it('reports a missing file at its key', () => {
    expect(errorsOf('upstreams:', '  - match: a.example', '    tls: { ca: nope.pem }')).toEqual([
      'c.yaml:4:16: upstreams[0].tls.ca: cannot read nope.pem: no such file',
    ]);
  });

  it('reports a file that holds no certificate', () => {
    expect(errorsOf('upstreams:', '  - match: a.example', '    tls: { ca: junk.pem }')).toEqual([
      'c.yaml:4:16: upstreams[0].tls.ca: holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    ]);
  });

  it('reports a certificate that does not parse', () => {
    const errors = errorsOf('upstreams:', '  - match: a.example', '    tls: { ca: broken.pem }');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /^c\.yaml:4:16: upstreams\[0\]\.tls\.ca: certificate 1 does not parse/,
    );
  });

  it('reports a key file that holds no key', () => {
    expect(
      errorsOf('upstreams:', '  - match: a.example', '    tls: { cert: client.pem, key: ca.pem }'),
    ).toEqual([
      'c.yaml:4:35: upstreams[0].tls.key: holds no PEM private key (-----BEGIN PRIVATE KEY-----)',
    ]);
  });

  it('reports a key that does not match the certificate', () => {
    expect(
      errorsOf(
        'upstreams:',
        '  - match: a.example',
        '    tls: { cert: client.pem, key: other.key }',
      ),
    ).toEqual(['c.yaml:4:35: upstreams[0].tls.key: does not match the certificate in client.pem']);
  });

  it('requires key with cert, and cert with key', () => {
    expect(
      errorsOf(
        'upstreams:',
        '  - { match: a.example, tls: { cert: client.pem } }',
        '  - { match: b.example, tls: { key: client.key } }',
      ),
    ).toEqual([
      'c.yaml:3:30: upstreams[0].tls.key: is required with cert (mutual TLS needs both)',
      'c.yaml:4:30: upstreams[1].tls.cert: is required with key (mutual TLS needs both)',
    ]);
  });

  it('rejects a port out of range and a servername that is not a DNS name', () => {
    expect(
      errorsOf('upstreams:', '  - match: a.example', '    tls: { port: 0, servername: "a b" }'),
    ).toEqual([
      'c.yaml:4:18: upstreams[0].tls.port: must be at least 1',
      'c.yaml:4:33: upstreams[0].tls.servername: must be a DNS name such as api.example.com',
    ]);
  });
});

describe('https:// listeners and fallbacks', () => {
  it('connects to an https:// listener upstream with the public roots, port 443 by default', () => {
    const config = load('listeners:', '  - { listen: 127.0.0.1:0, upstream: https://api.example }');
    expect(config.listeners[0]).toMatchObject({
      origin: 'https://api.example:443',
      authority: 'api.example:443',
      hostHeader: 'api.example:443',
      tls: PUBLIC_ROOTS,
    });
  });

  it.skipIf(!hasOpenssl())('takes the matching upstreams[] rule tls for a fallback', () => {
    const config = load(
      'routes:',
      '  - name: r',
      '    match: { host: a.example }',
      '    fallback: { upstream: "https://cache.example:8443" }',
      'upstreams:',
      '  - { match: cache.example, tls: { ca: ca.pem, servername: cache.internal } }',
    );
    const fallback = config.routes[0]?.fallback;
    expect(fallback?.origin).toBe('https://cache.example:8443');
    expect(fallback?.authority).toBe('cache.example:8443');
    expect(fallback?.tls?.servername).toBe('cache.internal');
    expect(fallback?.tls).toBe(config.upstreams[0]?.tls);
  });

  it('sends an http:// listener upstream over TLS when its rule has tls: 80 becomes 443', () => {
    const config = load(
      'listeners:',
      '  - { listen: 127.0.0.1:0, upstream: http://api.example }',
      'upstreams:',
      '  - { match: api.example, tls: {} }',
    );
    expect(config.listeners[0]).toMatchObject({
      origin: 'https://api.example:443',
      authority: 'api.example:80',
      hostHeader: 'api.example:443',
    });
  });

  it('keeps an http:// listener upstream plain without a tls rule', () => {
    const config = load('listeners:', '  - { listen: 127.0.0.1:0, upstream: http://api.example }');
    expect(config.listeners[0]).toMatchObject({ origin: 'http://api.example:80', tls: undefined });
  });
});
