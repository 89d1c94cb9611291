import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { InterceptSettings } from '../../src/config/types.ts';
import { parseHostPattern } from '../../src/routing/host-pattern.ts';
import { generateLeafKey, mintLeaf } from '../../src/tls/certificates.ts';
import { InterceptCa, LEAF_CACHE_SIZE } from '../../src/tls/intercept-ca.ts';
import type { CertificateResult } from '../../src/vocabulary.ts';
import { hasOpenssl } from '../helpers/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'reprise-ca-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function settings(hosts: string[], files = true): InterceptSettings {
  return {
    hosts: hosts.map(
      (h) => parseHostPattern(h) as Exclude<ReturnType<typeof parseHostPattern>, string>,
    ),
    ca: undefined,
    writeCa: files ? join(dir, 'ca.crt') : undefined,
    writeBundle: files ? join(dir, 'bundle.crt') : undefined,
    id: hosts.join(','),
  };
}

async function start(hosts: string[], files = true) {
  const results: CertificateResult[] = [];
  const ca = await InterceptCa.start(settings(hosts, files), {
    now: Date.now,
    onCertificate: (result) => results.push(result),
  });
  return { ca, results };
}

describe('a generated CA', () => {
  it.skipIf(!hasOpenssl())('carries name constraints for the listed hosts only', async () => {
    await start(['api.partner.example', '*.s3.amazonaws.com']);
    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'ca.crt')], {
      encoding: 'utf8',
    });
    expect(text).toMatch(
      /X509v3 Name Constraints: critical\s+Permitted:\s+DNS:api\.partner\.example\s+DNS:\.s3\.amazonaws\.com\s+Excluded:\s+IP:0\.0\.0\.0\/0\.0\.0\.0\s+IP:0:0:0:0:0:0:0:0\/0:0:0:0:0:0:0:0/,
    );
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign/);
    expect(text).toMatch(/Public-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/);
  });

  it('writes its certificate and a bundle of the public roots with it, and no key', async () => {
    const { ca } = await start(['a.example']);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe(`${ca.ca.certPem}\n`);
    const bundle = readFileSync(join(dir, 'bundle.crt'), 'utf8');
    expect(bundle.endsWith(`${ca.ca.certPem}\n`)).toBe(true);
    expect(bundle.split('BEGIN CERTIFICATE').length).toBeGreaterThan(100);
    const written = readdirSync(dir).map((name) => readFileSync(join(dir, name), 'utf8'));
    expect(written.some((text) => text.includes('PRIVATE KEY'))).toBe(false);
  });

  it('lives 30 days and is valid from a moment ago', async () => {
    const { ca } = await start(['a.example'], false);
    const cert = new X509Certificate(ca.ca.certPem);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
  });

  it.skipIf(!hasOpenssl())(
    'signs for a listed name; a leaf for another name fails verification',
    async () => {
      const { ca } = await start(['a.example'], true);
      const key = await generateLeafKey();
      const good = await mintLeaf(ca.ca, key, 'a.example', Date.now(), Date.now() + 86_400_000);
      const bad = await mintLeaf(ca.ca, key, 'evil.example', Date.now(), Date.now() + 86_400_000);
      const verify = (pem: string) => {
        const file = join(dir, 'leaf.pem');
        writeFileSync(file, pem);
        try {
          return execFileSync('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), file], {
            encoding: 'utf8',
            stdio: 'pipe',
          });
        } catch (error) {
          return (
            String((error as { stdout?: string }).stdout) +
            String((error as { stderr?: string }).stderr)
          );
        }
      };
      expect(verify(good)).toMatch(/OK/);
      expect(verify(bad)).toMatch(/name constraint|permitted subtree/i);
    },
  );
});

describe('leaves', () => {
  it('mints one per host, then serves it from the cache', async () => {
    const { ca, results } = await start(['*.example.com'], false);
    await ca.contextFor('a.example.com', 443);
    await ca.contextFor('a.example.com', 443);
    await ca.contextFor('b.example.com', 443);
    expect(results).toEqual(['minted', 'cached', 'minted']);
  });

  it('never mints for a host outside the list', async () => {
    const { ca, results } = await start(['*.example.com'], false);
    expect(ca.contextFor('example.com', 443)).toBeUndefined();
    expect(ca.contextFor('evil.test', 443)).toBeUndefined();
    expect(results).toEqual(['refused', 'refused']);
    expect(ca.cachedLeaves).toBe(0);
  });

  it('keeps at most LEAF_CACHE_SIZE hosts', async () => {
    const { ca } = await start(['*.example.com'], false);
    const contexts = [];
    for (let i = 0; i < LEAF_CACHE_SIZE + 20; i++)
      contexts.push(ca.contextFor(`h${i}.example.com`, 443));
    await Promise.all(contexts);
    expect(ca.cachedLeaves).toBe(LEAF_CACHE_SIZE);
  });
});
