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

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

/** Certificates for the upstream side of TLS origination, each failing in its own way. */
export interface UpstreamCertificates {
  /** The CA every good certificate below chains to. */
  readonly ca: string;
  /** Names localhost and 127.0.0.1. */
  readonly server: KeyPair;
  /** The same names, valid only during 2020. */
  readonly expired: KeyPair;
  /** Names other.example only. */
  readonly wrongName: KeyPair;
  /** Names localhost and 127.0.0.1, signed by a CA nobody trusts. */
  readonly unknownIssuer: KeyPair;
  /** A client certificate (clientAuth) for mutual TLS. */
  readonly client: KeyPair;
  remove(): void;
}

const SERVER_NAMES = 'subjectAltName=DNS:localhost,IP:127.0.0.1\n';

/** Makes a CA and the certificates of UpstreamCertificates with the openssl CLI. */
export function makeUpstreamCertificates(): UpstreamCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-upstream-tls-'));
  const file = (name: string) => join(dir, name);
  const read = (name: string) => readFileSync(file(name), 'utf8');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string) =>
    openssl(
      'req',
      '-x509',
      ...ec,
      ...['-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2'],
      ...['-subj', `/CN=reprise ${name}`],
      ...['-addext', 'basicConstraints=critical,CA:TRUE'],
      ...['-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    );
  makeCa('ca');
  makeCa('other-ca');
  writeFileSync(file('serial'), '01\n');
  writeFileSync(file('index.txt'), '');
  writeFileSync(
    file('ca.cnf'),
    '[ca]\ndefault_ca = default\n[default]\ndatabase = index.txt\nnew_certs_dir = .\n' +
      'serial = serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n' +
      '[any]\ncommonName = supplied\n',
  );
  /** A key and a certificate for `names`, signed by `issuer`, valid `[start, end]` or 2 days. */
  const issue = (
    name: string,
    issuer: string,
    extensions: string,
    dates: string[] = ['-days', '2'],
  ): KeyPair => {
    openssl(
      'req',
      ...ec,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=${name}`,
    );
    writeFileSync(file(`${name}.ext`), `basicConstraints=CA:FALSE\n${extensions}`);
    openssl(
      'ca',
      '-batch',
      '-notext',
      ...['-config', file('ca.cnf'), '-cert', file(`${issuer}.pem`)],
      ...['-keyfile', file(`${issuer}.key`), '-in', file(`${name}.csr`)],
      ...['-out', file(`${name}.pem`), '-extfile', file(`${name}.ext`)],
      ...dates,
    );
    return { cert: read(`${name}.pem`), key: read(`${name}.key`) };
  };
  const serverAuth = `extendedKeyUsage=serverAuth\n${SERVER_NAMES}`;
  return {
    ca: read('ca.pem'),
    server: issue('server', 'ca', serverAuth),
    expired: issue('expired', 'ca', serverAuth, [
      ...['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'],
    ]),
    wrongName: issue(
      'wrong-name',
      'ca',
      'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example\n',
    ),
    unknownIssuer: issue('unknown-issuer', 'other-ca', serverAuth),
    client: issue('client', 'ca', 'extendedKeyUsage=clientAuth\n'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
