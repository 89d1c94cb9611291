/**
 * The pod-local CA of `connect.intercept` (SPEC §6): made at start (or read from files), its
 * certificate written for the app to trust, and the leaves it signs: one key for the whole
 * process, one certificate per host, minted on first use and kept in a bounded LRU. A name
 * outside `hosts` is never minted for: the request is refused and counted.
 */
import { rename, writeFile } from 'node:fs/promises';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { InterceptSettings } from '../config/types.ts';
import { isIntercepted } from '../routing/upstream-rule.ts';
import type { CertificateResult } from '../vocabulary.ts';
import {
  generateCa,
  generateLeafKey,
  importCa,
  type LeafKey,
  mintLeaf,
  type SigningCa,
} from './certificates.ts';

/** A generated CA lives as long as a pod usually does; the app trusts it only inside the pod. */
const GENERATED_CA_VALIDITY_MS = 30 * 24 * 60 * 60 * 1000;
/** Leaves are re-minted after this (and never outlive their CA). */
const LEAF_VALIDITY_MS = 7 * 24 * 60 * 60 * 1000;
/**
 * Distinct hosts whose certificate is kept; past it the least recently used is dropped. Each
 * holds some 35 KiB (its TLS context; heap kept after 300 hosts: 9 MiB), and a sidecar talks to
 * a handful of hosts: 256 bounds what a flood of names can hold to ~9 MiB.
 */
export const LEAF_CACHE_SIZE = 256;
/** A leaf is re-minted this long before it expires, so no handshake gets one about to lapse. */
const RENEW_BEFORE_MS = 60 * 60 * 1000;

interface Leaf {
  readonly context: Promise<SecureContext>;
  readonly notAfterMs: number;
}

export interface InterceptCaOptions {
  readonly now: () => number;
  readonly onCertificate?: (result: CertificateResult) => void;
}

export class InterceptCa {
  readonly settings: InterceptSettings;
  readonly ca: SigningCa;
  readonly #leafKey: LeafKey;
  readonly #leaves = new Map<string, Leaf>();
  readonly #options: InterceptCaOptions;

  private constructor(
    settings: InterceptSettings,
    ca: SigningCa,
    leafKey: LeafKey,
    options: InterceptCaOptions,
  ) {
    this.settings = settings;
    this.ca = ca;
    this.#leafKey = leafKey;
    this.#options = options;
  }

  /** Makes (or reads) the CA and the leaf key, and writes writeCa / writeBundle. */
  static async start(
    settings: InterceptSettings,
    options: InterceptCaOptions,
  ): Promise<InterceptCa> {
    const nowMs = options.now();
    const [ca, leafKey] = await Promise.all([
      settings.ca === undefined
        ? generateCa(dnsSubtrees(settings), nowMs, GENERATED_CA_VALIDITY_MS)
        : importCa(settings.ca.cert, settings.ca.key),
      generateLeafKey(),
    ]);
    const authority = new InterceptCa(settings, ca, leafKey, options);
    await authority.#writeFiles();
    return authority;
  }

  /** Whether tunnels to `host:port` are intercepted (the same pattern rules as routes). */
  covers(host: string, port: number): boolean {
    return isIntercepted(this.settings, host, port);
  }

  /**
   * The TLS context to answer a handshake for `host` with; undefined (counted `refused`) when
   * `host:port` is not one the operator listed.
   */
  contextFor(host: string, port: number): Promise<SecureContext> | undefined {
    if (!this.covers(host, port)) {
      this.#options.onCertificate?.('refused');
      return undefined;
    }
    const nowMs = this.#options.now();
    const cached = this.#leaves.get(host);
    if (cached !== undefined && nowMs < cached.notAfterMs - RENEW_BEFORE_MS) {
      // most recently used goes last: the first in the map is the one dropped
      this.#leaves.delete(host);
      this.#leaves.set(host, cached);
      this.#options.onCertificate?.('cached');
      return cached.context;
    }
    const notAfterMs = Math.min(nowMs + LEAF_VALIDITY_MS, this.ca.notAfterMs);
    const context = mintLeaf(this.ca, this.#leafKey, host, nowMs, notAfterMs).then((certPem) =>
      createSecureContext({
        cert: `${certPem}\n${this.ca.certPem}`,
        key: this.#leafKey.privateKeyPem,
        minVersion: 'TLSv1.2',
      }),
    );
    // a failed mint is not kept: the next handshake tries again
    context.catch(() => this.#leaves.delete(host));
    this.#leaves.delete(host);
    if (this.#leaves.size >= LEAF_CACHE_SIZE) {
      const oldest = this.#leaves.keys().next().value;
      if (oldest !== undefined) this.#leaves.delete(oldest);
    }
    this.#leaves.set(host, { context, notAfterMs });
    this.#options.onCertificate?.('minted');
    return context;
  }

  /** Counts a certificate refused before it was asked for (an SNI naming another host). */
  refuse(): void {
    this.#options.onCertificate?.('refused');
  }

  /** Hosts whose certificate is kept now (at most LEAF_CACHE_SIZE). */
  get cachedLeaves(): number {
    return this.#leaves.size;
  }

  /** The certificate first, then the bundle; each replaced whole, never seen half-written. */
  async #writeFiles(): Promise<void> {
    const { writeCa, writeBundle } = this.settings;
    if (writeCa !== undefined) await writeAtomically('writeCa', writeCa, `${this.ca.certPem}\n`);
    if (writeBundle !== undefined) {
      const bundle = `${rootCertificates.join('\n')}\n${this.ca.certPem}\n`;
      await writeAtomically('writeBundle', writeBundle, bundle);
    }
  }
}

/**
 * The DNS subtrees a generated CA is limited to: `api.example.com` as written (it and the
 * names below it), `*.example.com` as `.example.com` (only the names below it).
 */
export function dnsSubtrees(settings: InterceptSettings): string[] {
  return [...new Set(settings.hosts.map((pattern) => pattern.host))];
}

/** Thrown when a file cannot be written: a user error, its message names the key and path. */
export const INTERCEPT_FILE_ERROR = 'ERR_REPRISE_INTERCEPT_FILE';

const WRITE_ERRORS: Readonly<Record<string, string>> = {
  ENOENT: 'its directory does not exist',
  EACCES: 'permission denied',
  EROFS: 'read-only file system (mount a writable volume there, such as an emptyDir)',
};

async function writeAtomically(key: string, path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, text, { mode: 0o644 });
    await rename(temporary, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    const reason = WRITE_ERRORS[code] ?? (error as Error).message;
    const message = `connect.intercept.${key}: cannot write ${path}: ${reason}`;
    throw Object.assign(new Error(message), { code: INTERCEPT_FILE_ERROR });
  }
}
