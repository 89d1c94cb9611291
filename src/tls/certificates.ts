/**
 * Making and reading X.509 certificates: the only user of `@peculiar/x509` and its ASN.1
 * schemas (node:crypto makes and checks keys but cannot sign a certificate). Keys are
 * WebCrypto keys that never leave memory; only certificates come out as PEM.
 */
// the library's dependency injection needs the Reflect metadata API loaded before it
import 'reflect-metadata';
import { createPrivateKey, type KeyObject, randomBytes, webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_nameConstraints,
  NameConstraints,
} from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';

interface SigningAlgorithm {
  readonly name: string;
  readonly hash: string;
  readonly namedCurve?: string;
}

const EC_P256: SigningAlgorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
/** A certificate is valid from a little before it is made, for clocks slightly behind. */
const BACKDATE_MS = 60 * 60 * 1000;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A CA able to sign leaves: its certificate (PEM) and its private key (in memory only). */
export interface SigningCa {
  readonly certPem: string;
  readonly notAfterMs: number;
  readonly cert: x509.X509Certificate;
  readonly privateKey: webcrypto.CryptoKey;
  readonly algorithm: SigningAlgorithm;
}

/** The one key pair every leaf of this process carries; its private key as PEM for node:tls. */
export interface LeafKey {
  readonly keys: webcrypto.CryptoKeyPair;
  readonly privateKeyPem: string;
}

/**
 * A new CA: ECDSA P-256, a key that cannot be exported, CA with pathLen 0, keyCertSign only,
 * and X.509 name constraints (RFC 5280 §4.2.1.10) so that it can vouch for `dnsSubtrees` and
 * nothing else: every IP address is excluded, so a leaf for an address fails too.
 */
export async function generateCa(
  dnsSubtrees: readonly string[],
  nowMs: number,
  validityMs: number,
): Promise<SigningCa> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, false, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const notAfter = new Date(nowMs + validityMs);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=reprise pod-local CA ${randomBytes(4).toString('hex')}, O=reprise`,
    notBefore: new Date(nowMs - BACKDATE_MS),
    notAfter,
    signingAlgorithm: EC_P256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      nameConstraints(dnsSubtrees),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    notAfterMs: notAfter.getTime(),
    cert,
    privateKey: keys.privateKey,
    algorithm: EC_P256,
  };
}

/** A CA from PEM files (checked by config/intercept-files.ts: a CA, its key, EC or RSA). */
export async function importCa(certPem: string, keyPem: string): Promise<SigningCa> {
  const cert = new x509.X509Certificate(certPem);
  const key = createPrivateKey(keyPem);
  const algorithm = signingAlgorithm(key);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return {
    certPem: cert.toString('pem'),
    notAfterMs: cert.notAfter.getTime(),
    cert,
    privateKey,
    algorithm,
  };
}

/** RSA signs with SHA-256; EC with the hash of its curve's size (RFC 5480 §4). */
function signingAlgorithm(key: KeyObject): SigningAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'secp384r1') return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  if (curve === 'secp521r1') return { name: 'ECDSA', namedCurve: 'P-521', hash: 'SHA-512' };
  return EC_P256;
}

export async function generateLeafKey(): Promise<LeafKey> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const base64 = Buffer.from(pkcs8)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n');
  return {
    keys,
    privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${base64}\n-----END PRIVATE KEY-----\n`,
  };
}

/** A server certificate for `host`, signed by `ca`: valid until `notAfterMs` at most. */
export async function mintLeaf(
  ca: SigningCa,
  leafKey: LeafKey,
  host: string,
  nowMs: number,
  notAfterMs: number,
): Promise<string> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${host}`,
    issuer: ca.cert.subject,
    notBefore: new Date(nowMs - BACKDATE_MS),
    notAfter: new Date(Math.min(notAfterMs, ca.notAfterMs)),
    signingAlgorithm: ca.algorithm,
    publicKey: leafKey.keys.publicKey,
    signingKey: ca.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }]),
    ],
  });
  return cert.toString('pem');
}

/**
 * `example.com` permits the name and every name below it; `.example.com` only names below it
 * (RFC 5280 §4.2.1.10, as OpenSSL, Go, NSS and BoringSSL read a leading dot).
 */
function nameConstraints(dnsSubtrees: readonly string[]): x509.Extension {
  const dns = (dNSName: string) => new GeneralSubtree({ base: new GeneralName({ dNSName }) });
  const ip = (iPAddress: string) => new GeneralSubtree({ base: new GeneralName({ iPAddress }) });
  const value = new NameConstraints({
    permittedSubtrees: new GeneralSubtrees(dnsSubtrees.map(dns)),
    excludedSubtrees: new GeneralSubtrees([ip('0.0.0.0/0'), ip('::/0')]),
  });
  return new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(value));
}

/** 16 random bytes, the first bit clear so the serial stays a positive INTEGER (RFC 5280 §4.1.2.2). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}
