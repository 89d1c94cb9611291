/**
 * A flood of CONNECTs with distinct names (SPEC §6): no certificate is ever made for a name
 * outside `connect.intercept.hosts`, and the leaves kept for names inside stay bounded.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { LEAF_CACHE_SIZE } from '../../src/tls/intercept-ca.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, type TestProxy } from '../helpers/proxy.ts';
import { requestOn, tlsInTunnel } from '../helpers/tunnel-client.ts';
import { deadPort } from '../helpers/upstream.ts';

closeAfterEach();

const dir = mkdtempSync(join(tmpdir(), 'reprise-flood-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function metric(proxy: TestProxy, series: string): Promise<number> {
  const text = (await proxy.app.metrics?.text()) ?? '';
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Heap in use once garbage is collected: what is still held. */
function heapAfterCollection(): number {
  collect();
  return process.memoryUsage().heapUsed;
}

/** Runs `task(i)` for i in [0, count), `width` at a time. */
async function inBatches(count: number, width: number, task: (i: number) => Promise<unknown>) {
  for (let start = 0; start < count; start += width) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + width); i++) batch.push(task(i));
    await Promise.all(batch);
  }
}

describe('a flood of distinct names', () => {
  it('mints none outside hosts and keeps the leaves inside bounded', async () => {
    // nothing listens there: the handshakes are all this test needs
    const port = await deadPort();
    const caFile = join(dir, 'ca.crt');
    const proxy = await startProxy(
      `connect:\n  allowedPorts: [${port}]\n  intercept:\n    hosts: [localhost, "*.localhost"]\n    writeCa: ${caFile}\n`,
      { logLevel: 'error' },
    );
    const ca = readFileSync(caFile, 'utf8');
    const strangers = 500;
    await inBatches(strangers, 50, (i) =>
      tlsInTunnel(proxy.port, `localhost:${port}`, { ca, servername: `n${i}.bank.example` }).then(
        (tls) => tls.destroy(),
        () => {},
      ),
    );
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(0);
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="refused"}')).toBe(strangers);

    const listed = LEAF_CACHE_SIZE + 44;
    const heapBefore = heapAfterCollection();
    await inBatches(listed, 50, (i) =>
      tlsInTunnel(proxy.port, `h${i}.localhost:${port}`, {
        ca,
        servername: `h${i}.localhost`,
      }).then(async (tls) => {
        // one request inside, as a real client sends: nothing listens there, so 502 at once
        const authority = `h${i}.localhost:${port}`;
        const res = await requestOn(tls, authority, { headers: { 'x-reprise-retry': 'off' } });
        expect(res.status).toBe(502);
        tls.destroy();
      }),
    );
    expect(await metric(proxy, 'reprise_tls_certificates_total{result="minted"}')).toBe(listed);
    expect(await metric(proxy, 'reprise_tls_handshakes_total{side="client",result="ok"}')).toBe(
      listed,
    );
    // the LRU keeps LEAF_CACHE_SIZE contexts: what stays on the heap is bounded by that, not
    // by every name seen
    const grownMiB = (heapAfterCollection() - heapBefore) / 1024 ** 2;
    expect(grownMiB).toBeLessThan(24);
  }, 120_000);
});
