/**
 * The CA files of `connect.intercept.ca` (SPEC §2): read whenever a config is built, checked
 * (readable, PEM, a CA certificate allowed to sign, a key that matches it and that WebCrypto
 * can sign with), each problem at its key. The paths `writeCa` / `writeBundle` are resolved
 * like every other path in the file.
 */
import { createHash } from 'node:crypto';
import type { HostPattern } from '../routing/host-pattern.ts';
import type { ConfigProblem } from './config-error.ts';
import { isRecord } from './defaults.ts';
import { parseCertificates, parsePrivateKey, readPem, resolveTlsPath } from './tls-files.ts';
import type { InterceptSettings } from './types.ts';

/** The CA's PEM texts, when the document names files and they passed every check. */
export interface CaPem {
  readonly cert: string;
  readonly key: string;
}

/** Key types the leaves can be signed with (WebCrypto ECDSA and RSASSA-PKCS1-v1_5). */
const SIGNING_KEYS = new Set(['ec', 'rsa']);

export function readInterceptFiles(
  raw: unknown,
  source: string | undefined,
): { problems: ConfigProblem[]; ca: CaPem | undefined } {
  const connect = isRecord(raw) ? raw.connect : undefined;
  const intercept = isRecord(connect) ? connect.intercept : undefined;
  const files = isRecord(intercept) ? intercept.ca : undefined;
  if (!isRecord(files) || typeof files.cert !== 'string' || typeof files.key !== 'string') {
    return { problems: [], ca: undefined };
  }
  const at = (key: string) => ['connect', 'intercept', 'ca', key];
  const problems: ConfigProblem[] = [];
  const cert = readPem(resolveTlsPath(source, files.cert));
  const key = readPem(resolveTlsPath(source, files.key));
  if (cert.problem !== undefined) problems.push({ path: at('cert'), message: cert.problem });
  if (key.problem !== undefined) problems.push({ path: at('key'), message: key.problem });
  if (cert.problem !== undefined || key.problem !== undefined) return { problems, ca: undefined };
  const certificates = parseCertificates(cert.text);
  const privateKey = parsePrivateKey(key.text);
  if (typeof certificates === 'string') problems.push({ path: at('cert'), message: certificates });
  if (typeof privateKey === 'string') problems.push({ path: at('key'), message: privateKey });
  if (typeof certificates === 'string' || typeof privateKey === 'string') {
    return { problems, ca: undefined };
  }
  const caCert = certificates[0];
  if (caCert === undefined || !caCert.ca) {
    problems.push({
      path: at('cert'),
      message: 'is not a CA certificate (basicConstraints CA:TRUE)',
    });
  } else if (!caCert.checkPrivateKey(privateKey)) {
    problems.push({ path: at('key'), message: `does not match the certificate in ${files.cert}` });
  } else if (!SIGNING_KEYS.has(privateKey.asymmetricKeyType ?? '')) {
    const type = privateKey.asymmetricKeyType ?? 'unknown';
    problems.push({ path: at('key'), message: `is a ${type} key: give an EC or RSA key` });
  }
  return problems.length > 0
    ? { problems, ca: undefined }
    : { problems, ca: { cert: cert.text, key: key.text } };
}

export interface WrittenIntercept {
  readonly hosts: readonly string[];
  readonly ca?: { readonly cert: string; readonly key: string };
  readonly writeCa?: string;
  readonly writeBundle?: string;
}

export function compileIntercept(
  written: WrittenIntercept | undefined,
  hosts: readonly HostPattern[],
  ca: CaPem | undefined,
  source: string | undefined,
): InterceptSettings | undefined {
  if (written === undefined) return undefined;
  const resolved = (path: string | undefined) =>
    path === undefined ? undefined : resolveTlsPath(source, path);
  const id = createHash('sha256')
    .update(JSON.stringify([hosts.map((h) => h.source), ca?.cert ?? '', ca?.key ?? '']))
    .digest('hex')
    .slice(0, 16);
  return {
    hosts,
    ca,
    writeCa: resolved(written.writeCa),
    writeBundle: resolved(written.writeBundle),
    id,
  };
}
