import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configInFixture } from '../helpers/config-in-fixture.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';

let fixture: TlsFixture;
let ca: { certFile: string; keyFile: string };
let leaf: { certFile: string; keyFile: string };

beforeAll(() => {
  if (!hasOpenssl()) return;
  fixture = tlsFixture();
  ca = makeCa(fixture, 'ca');
  leaf = makeLeaf(fixture, ca, 'leaf');
});
afterAll(() => fixture?.remove());

const { load, errorsOf } = configInFixture(() => fixture);

describe.skipIf(!hasOpenssl())('connect.intercept', () => {
  it('is off unless written', () => {
    expect(load().connect.intercept).toBeUndefined();
  });

  it('compiles hosts, resolves the paths to write and makes no CA from files', () => {
    const config = load(
      'connect:',
      '  intercept:',
      '    hosts: [api.partner.example, "*.s3.amazonaws.com"]',
      '    writeCa: ca.crt',
    );
    const intercept = config.connect.intercept;
    expect(intercept?.hosts.map((h) => h.host)).toEqual([
      'api.partner.example',
      '.s3.amazonaws.com',
    ]);
    expect(intercept?.writeCa).toBe(fixture.file('ca.crt'));
    expect(intercept?.writeBundle).toBeUndefined();
    expect(intercept?.ca).toBeUndefined();
  });

  it('reads a CA from files', () => {
    const config = load(
      'connect:',
      '  intercept:',
      '    hosts: [a.example]',
      `    ca: { cert: ${ca.certFile}, key: ${ca.keyFile} }`,
    );
    expect(config.connect.intercept?.ca?.cert).toContain('BEGIN CERTIFICATE');
  });

  it('refuses an IP address among the hosts, at its line and column', () => {
    expect(errorsOf('connect:', '  intercept:', '    hosts: [a.example, 10.0.0.1]')).toEqual([
      'c.yaml:4:24: connect.intercept.hosts[1]: must be a DNS name such as api.example.com or *.example.com, not an IP address',
    ]);
  });

  it('refuses an empty host list', () => {
    expect(errorsOf('connect:', '  intercept:', '    hosts: []')).toHaveLength(1);
  });

  it('names a CA file that cannot be read', () => {
    expect(
      errorsOf(
        'connect:',
        '  intercept:',
        '    hosts: [a.example]',
        `    ca: { cert: missing.pem, key: ${ca.keyFile} }`,
      ),
    ).toEqual(['c.yaml:5:17: connect.intercept.ca.cert: cannot read missing.pem: no such file']);
  });

  it('refuses a certificate that is not a CA', () => {
    const errors = errorsOf(
      'connect:',
      '  intercept:',
      '    hosts: [a.example]',
      `    ca: { cert: ${leaf.certFile}, key: ${leaf.keyFile} }`,
    );
    expect(errors).toEqual([
      'c.yaml:5:17: connect.intercept.ca.cert: is not a CA certificate (basicConstraints CA:TRUE)',
    ]);
  });

  it('refuses a key that does not match the CA', () => {
    const errors = errorsOf(
      'connect:',
      '  intercept:',
      '    hosts: [a.example]',
      `    ca: { cert: ${ca.certFile}, key: ${leaf.keyFile} }`,
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/connect\.intercept\.ca\.key: does not match the certificate/);
  });
});
