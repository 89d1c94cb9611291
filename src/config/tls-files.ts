/**
 * The PEM files of `upstreams[].tls` (SPEC §2): read whenever a config is built (start,
 * `reprise check`, every reload, so a rotated certificate is picked up with no restart),
 * checked (it can be read, it parses as PEM, the key matches the certificate), and compiled
 * into UpstreamTls. The only user of node:crypto's X.509 parser.
 */
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PUBLIC_ROOTS } from '../routing/upstream-rule.ts';
import { type ConfigProblem, type KeyPath, readFailureReason } from './config-error.ts';
import { isRecord } from './defaults.ts';
import type { Config, UpstreamTls } from './types.ts';

const FILE_KEYS = ['ca', 'cert', 'key'] as const;
type FileKey = (typeof FILE_KEYS)[number];

/** The PEM texts read for one `upstreams[]` entry. */
export type PemTexts = { readonly [K in FileKey]?: string };

/** The PEM texts of every `upstreams[]` entry that has files, by its index. */
export type TlsPem = ReadonlyMap<number, PemTexts>;

/** The settings as written in `upstreams[].tls` (after the schema). */
export interface WrittenTls {
  readonly port?: number;
  readonly servername?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** A PEM path as written, resolved against the config file's directory (or the working one). */
export function resolveTlsPath(source: string | undefined, path: string): string {
  return resolve(source === undefined ? '.' : dirname(source), path);
}

/**
 * Reads and checks every `upstreams[].tls` file of a document (any document: entries of the
 * wrong shape are left to the schema). Every problem is returned, each at its key.
 */
export function readTlsFiles(
  raw: unknown,
  source: string | undefined,
): { problems: ConfigProblem[]; pem: TlsPem } {
  const problems: ConfigProblem[] = [];
  const pem = new Map<number, PemTexts>();
  const upstreams = isRecord(raw) && Array.isArray(raw.upstreams) ? raw.upstreams : [];
  upstreams.forEach((entry: unknown, i) => {
    const tls = isRecord(entry) ? entry.tls : undefined;
    if (!isRecord(tls)) return;
    const at = (key: FileKey): KeyPath => ['upstreams', i, 'tls', key];
    const texts: { [K in FileKey]?: string } = {};
    for (const key of FILE_KEYS) {
      const path = tls[key];
      if (typeof path !== 'string' || path === '') continue;
      const read = readPem(resolveTlsPath(source, path));
      if (read.problem !== undefined) problems.push({ path: at(key), message: read.problem });
      else texts[key] = read.text;
    }
    if (typeof tls.cert === 'string' && tls.key === undefined)
      problems.push({ path: at('key'), message: 'is required with cert (mutual TLS needs both)' });
    if (typeof tls.key === 'string' && tls.cert === undefined)
      problems.push({ path: at('cert'), message: 'is required with key (mutual TLS needs both)' });
    const checked = checkPem(texts, String(tls.cert));
    problems.push(...checked.map(([key, message]) => ({ path: at(key), message })));
    if (Object.keys(texts).length > 0) pem.set(i, texts);
  });
  return { problems, pem };
}

export function readPem(path: string): { text: string; problem?: undefined } | { problem: string } {
  try {
    return { text: readFileSync(path, 'utf8') };
  } catch (error) {
    return { problem: `cannot read ${path}: ${readFailureReason(error)}` };
  }
}

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

/** Each text parses as what its key holds; a key matches its certificate. */
function checkPem(texts: PemTexts, certPath: string): [FileKey, string][] {
  const problems: [FileKey, string][] = [];
  let leaf: X509Certificate | undefined;
  for (const key of ['ca', 'cert'] as const) {
    const text = texts[key];
    if (text === undefined) continue;
    const parsed = parseCertificates(text);
    if (typeof parsed === 'string') problems.push([key, parsed]);
    else if (key === 'cert') leaf = parsed[0];
  }
  let privateKey: KeyObject | undefined;
  if (texts.key !== undefined) {
    const parsed = parsePrivateKey(texts.key);
    if (typeof parsed === 'string') problems.push(['key', parsed]);
    else privateKey = parsed;
  }
  if (leaf !== undefined && privateKey !== undefined && !leaf.checkPrivateKey(privateKey)) {
    problems.push(['key', `does not match the certificate in ${certPath}`]);
  }
  return problems;
}

/** Every certificate in a PEM bundle, or a message. */
export function parseCertificates(text: string): X509Certificate[] | string {
  const blocks = text.match(CERTIFICATE_BLOCK) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  const certificates: X509Certificate[] = [];
  for (const [n, block] of blocks.entries()) {
    try {
      certificates.push(new X509Certificate(block));
    } catch (error) {
      return `certificate ${n + 1} does not parse: ${(error as Error).message}`;
    }
  }
  return certificates;
}

export function parsePrivateKey(text: string): KeyObject | string {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    return 'holds no PEM private key (-----BEGIN PRIVATE KEY-----)';
  try {
    return createPrivateKey(text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MISSING_PASSPHRASE') return 'is encrypted: give the key without a passphrase';
    return `does not parse as a private key: ${(error as Error).message}`;
  }
}

/** The compiled TLS settings of one `upstreams[]` entry; undefined when it has no `tls`. */
export function compileTls(
  written: WrittenTls | undefined,
  pem: PemTexts | undefined,
): UpstreamTls | undefined {
  if (written === undefined) return undefined;
  const files: { -readonly [K in FileKey]?: string } = {};
  for (const key of FILE_KEYS) if (written[key] !== undefined) files[key] = written[key];
  const settings = {
    port: written.port,
    servername: written.servername?.toLowerCase(),
    ca: pem?.ca,
    cert: pem?.cert,
    key: pem?.key,
  };
  return { ...settings, files, id: tlsId(settings) };
}

/** Equal settings (the PEM contents, not the paths), equal id. */
function tlsId(settings: Omit<UpstreamTls, 'files' | 'id'>): string {
  const { port, servername, ca, cert, key } = settings;
  const values = [port, servername, ca, cert, key];
  if (values.every((value) => value === undefined)) return PUBLIC_ROOTS.id;
  const hash = createHash('sha256').update(JSON.stringify(values));
  return hash.digest('hex').slice(0, 16);
}

/** Every PEM file a config read, resolved: a change to one of them is a reload (watch.ts). */
export function tlsFilePaths(config: Config): string[] {
  const paths = new Set<string>();
  for (const rule of config.upstreams) {
    for (const path of Object.values(rule.tls?.files ?? {}))
      paths.add(resolveTlsPath(config.source, path));
  }
  return [...paths];
}
