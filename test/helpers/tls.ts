/**
 * A throwaway certificate authority and a server certificate it signed, made at test time with
 * the `openssl` CLI (node:crypto cannot issue X.509 certificates). The server certificate names
 * `localhost` and 127.0.0.1, so curl accepts it with `--cacert caFile`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  /** PEM file of the CA certificate, for `curl --cacert`. */
  readonly caFile: string;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** Deletes the files. */
  remove(): void;
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-tls-'));
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=reprise test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  openssl(
    'req',
    ...ec,
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(
    file('server.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  openssl(
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca.key'),
    '-CAcreateserial',
    '-out',
    file('server.pem'),
    '-days',
    '2',
    '-extfile',
    file('server.ext'),
  );
  return {
    caFile: file('ca.pem'),
    ca: readFileSync(file('ca.pem'), 'utf8'),
    cert: readFileSync(file('server.pem'), 'utf8'),
    key: readFileSync(file('server.key'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsFixture {
  readonly dir: string;
  /** The path of a file in `dir`. */
  file(name: string): string;
  /** Runs `openssl` in `dir`. */
  openssl(...args: string[]): void;
  remove(): void;
}

/** An empty directory for certificates made with the `openssl` CLI. */
export function tlsFixture(): TlsFixture {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-tls-'));
  return {
    dir,
    file: (name) => join(dir, name),
    openssl: (...args) => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA written to `NAME.pem` and `NAME.key` in the fixture's directory. */
export function makeCa(fixture: TlsFixture, name: string): { certFile: string; keyFile: string } {
  const [certFile, keyFile] = [fixture.file(`${name}.pem`), fixture.file(`${name}.key`)];
  fixture.openssl(
    ...['req', '-x509', ...EC_KEY, '-keyout', keyFile, '-out', certFile, '-days', '2'],
    ...['-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE'],
    ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
  );
  return { certFile, keyFile };
}

export interface LeafOptions {
  /** subjectAltName entries; default `DNS:localhost,IP:127.0.0.1`. */
  readonly names?: string;
  /** `serverAuth` (default) or `clientAuth`. */
  readonly usage?: 'serverAuth' | 'clientAuth';
}

/** A certificate signed by `ca`, written to `NAME.pem` and `NAME.key`. */
export function makeLeaf(
  fixture: TlsFixture,
  ca: { certFile: string; keyFile: string },
  name: string,
  options: LeafOptions = {},
): { certFile: string; keyFile: string } {
  const [certFile, keyFile] = [fixture.file(`${name}.pem`), fixture.file(`${name}.key`)];
  const csr = fixture.file(`${name}.csr`);
  fixture.openssl('req', ...EC_KEY, '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`);
  const ext = fixture.file(`${name}.ext`);
  writeFileSync(
    ext,
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=${options.usage ?? 'serverAuth'}\n` +
      `subjectAltName=${options.names ?? 'DNS:localhost,IP:127.0.0.1'}\n`,
  );
  fixture.openssl(
    ...['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile],
    ...['-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext],
  );
  return { certFile, keyFile };
}
