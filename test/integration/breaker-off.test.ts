/**
 * `circuitBreaker.enabled: false` (SPEC §2): an upstream that fails every try keeps getting
 * every request, and /state and /metrics say its breaker is off. The clock is the app's
 * injected one, stepped past failingFor, so the test does not wait.
 */
import { describe, expect, it } from 'vitest';
import { parsePrometheus, samplesOf } from '../helpers/cli.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

closeAfterEach();

const once = { headers: { 'x-reprise-retry': 'off' } };

/** 50 failed tries (minRequests), the span of failingFor, then 20 more. */
async function failFor(proxy: TestProxy, upstream: Upstream, step: () => void): Promise<number[]> {
  const statuses: number[] = [];
  const send = async () =>
    statuses.push((await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, once)).status);
  for (let i = 0; i < 50; i++) await send();
  step();
  for (let i = 0; i < 20; i++) await send();
  return statuses;
}

async function circuitOf(proxy: TestProxy, upstream: Upstream) {
  const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/state`);
  const body = (await res.json()) as {
    upstreams: { authority: string; circuit: Record<string, unknown> }[];
  };
  return body.upstreams.find((u) => u.authority === upstream.authority)?.circuit;
}

async function enabledGauge(proxy: TestProxy, upstream: Upstream): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
  const samples = samplesOf(parsePrometheus(text), 'reprise_circuit_enabled', {
    upstream: upstream.authority,
  });
  return samples[0]?.value;
}

describe('circuitBreaker.enabled: false', () => {
  it('never opens: every request reaches the failing upstream, and /state and /metrics say off', async () => {
    let nowMs = Date.now();
    const upstream = await startUpstream([reply(503, 'down')]);
    const proxy = await startProxy(`${FAST}  upstream:\n    circuitBreaker: { enabled: false }\n`, {
      now: () => nowMs,
    });
    const statuses = await failFor(proxy, upstream, () => {
      nowMs += 2_000;
    });
    expect(statuses.every((status) => status === 503)).toBe(true);
    expect(upstream.seen).toHaveLength(70);
    expect(proxy.requests().filter((line) => line.error === 'circuit-open')).toEqual([]);
    expect(await circuitOf(proxy, upstream)).toMatchObject({ enabled: false, state: 'closed' });
    expect(await enabledGauge(proxy, upstream)).toBe(0);
  });

  it('opens on the same failures when left on (so the test above can fail)', async () => {
    let nowMs = Date.now();
    const upstream = await startUpstream([reply(503, 'down')]);
    const proxy = await startProxy(FAST, { now: () => nowMs });
    await failFor(proxy, upstream, () => {
      nowMs += 2_000;
    });
    expect(upstream.seen.length).toBeLessThan(70);
    expect(await circuitOf(proxy, upstream)).toMatchObject({ enabled: true, state: 'open' });
    expect(await enabledGauge(proxy, upstream)).toBe(1);
  });
});
