/**
 * `retry.observeOnly` (SPEC §2): no retries on that route, but every retry it would have
 * made is counted as `reprise_retries_suppressed_total{cause="observe-only"}`.
 */
import { describe, expect, it } from 'vitest';
import { countedOf, parsePrometheus, type Sample, samplesOf } from '../helpers/cli.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream } from '../helpers/upstream.ts';

/** The `observed` route (paths under /observed/) only watches; the default route retries. */
const OBSERVED = `defaults:
  route:
    retry:
      backoff: { base: 1ms, max: 5ms }
routes:
  - name: observed
    match: { host: 127.0.0.1, path: /observed/ }
    retry: { observeOnly: true }
`;

closeAfterEach();

async function setup(script: Parameters<typeof startUpstream>[0]) {
  const upstream = await startUpstream(script);
  const proxy = await startProxy(OBSERVED);
  return { up: upstream, px: proxy };
}

async function metrics(px: TestProxy): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${px.adminPort}/metrics`);
  return parsePrometheus(await res.text());
}

describe('observeOnly', () => {
  it('passes the 503 to the client after one try, and counts the retry it would have made', async () => {
    const { up, px } = await setup([reply(503, 'busy'), reply(200, 'ok')]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/observed/a`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('busy');
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(up.seen).toHaveLength(1);

    const samples = await metrics(px);
    expect(countedOf(samples, 'reprise_retries_suppressed_total')).toEqual([
      {
        name: 'reprise_retries_suppressed_total',
        labels: { route: 'observed', upstream: up.authority, cause: 'observe-only' },
        value: 1,
      },
    ]);
    expect(countedOf(samples, 'reprise_retries_total')).toEqual([]);
    expect(px.requests()).toMatchObject([
      { route: 'observed', status: 503, attempts: 1, retries: [], suppressed: 'observe-only' },
    ]);
  });

  it('counts nothing when the answer would not have been retried', async () => {
    const { up, px } = await setup([reply(500), reply(200)]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/observed/b`);
    expect(res.status).toBe(500);
    const samples = await metrics(px);
    expect(countedOf(samples, 'reprise_retries_suppressed_total')).toEqual([]);
  });

  it('leaves other routes retrying', async () => {
    const { up, px } = await setup([reply(503), reply(200, 'healed')]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/elsewhere`);
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(2);
    const samples = await metrics(px);
    expect(countedOf(samples, 'reprise_retries_suppressed_total')).toEqual([]);
    expect(
      samplesOf(samples, 'reprise_retries_total', { route: 'default', reason: '503' }),
    ).toEqual([expect.objectContaining({ value: 1 })]);
  });

  it('counts each observed request once, over many', async () => {
    const { up, px } = await setup([reply(503)]);
    for (let i = 0; i < 5; i++) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}/observed/${i}`);
      expect(res.status).toBe(503);
    }
    expect(up.seen).toHaveLength(5);
    const samples = await metrics(px);
    const suppressed = samplesOf(samples, 'reprise_retries_suppressed_total', {
      cause: 'observe-only',
    });
    expect(suppressed.map((s) => s.value)).toEqual([5]);
  });
});
