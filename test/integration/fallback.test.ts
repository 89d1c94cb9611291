/**
 * Route fallback end to end (SPEC §3 "Fallback"): fail fast on the primary, finish on the
 * fallback origin with its own retry policy, budget and breaker; never override an HTTP answer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { deadPort, hang, reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

let proxy: TestProxy | undefined;
const upstreams: Upstream[] = [];
afterEach(async () => {
  await proxy?.close();
  await Promise.all(upstreams.map((u) => u.close()));
  proxy = undefined;
  upstreams.length = 0;
});

async function upstreamWith(script: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  const up = await startUpstream(script);
  upstreams.push(up);
  return up;
}

/** A route `artifacts` for the primary authority, failing fast, falling back to `fallback`. */
function config(primary: string, fallback: Upstream, extra = ''): string {
  return `defaults:
  route:
    retry:
      backoff: { base: 1ms, max: 5ms }
routes:
  - name: artifacts
    match: { host: "${primary}" }
    retry: { attempts: 1, perTryTimeout: 100ms, on: [connect-failure] }
    fallback:
      upstream: ${fallback.origin}
      retry: { attempts: 3, on: [connect-failure, reset, 400, 5xx] }
${extra}`;
}

async function metricsText(px: TestProxy): Promise<string> {
  return (await fetch(`http://127.0.0.1:${px.adminPort}/metrics`)).text();
}

describe('route fallback (SPEC §3)', () => {
  it('finishes on the fallback when the primary refuses connections', async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(400, 'not yet'), reply(200, 'from cache')]);
    proxy = await startProxy(config(primary, cache));
    const started = performance.now();
    const res = await viaProxy(proxy.port, 'GET', `http://${primary}/pkg/a.tgz?v=1`);
    expect(performance.now() - started).toBeLessThan(300);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('from cache');
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(cache.seen.map((s) => s.url)).toEqual(['/pkg/a.tgz?v=1', '/pkg/a.tgz?v=1']);
    expect(cache.seen.map((s) => s.headers.host)).toEqual([cache.authority, cache.authority]);
    expect(cache.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['2', '3']);
    expect(proxy.requests()[0]).toMatchObject({ fallback: 'connect-failure', status: 200 });
  });

  it('counts reprise_fallbacks_total by route, primary upstream and cause', async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(200, 'ok')]);
    proxy = await startProxy(config(primary, cache));
    await viaProxy(proxy.port, 'GET', `http://${primary}/a`);
    await viaProxy(proxy.port, 'GET', `http://${primary}/b`);
    expect(await metricsText(proxy)).toContain(
      `reprise_fallbacks_total{route="artifacts",upstream="${primary}",cause="connect-failure"} 2`,
    );
  });

  it('goes straight to the fallback while the primary circuit is open', async () => {
    const primary = await upstreamWith([hang()]);
    const cache = await upstreamWith([reply(200, 'from cache')]);
    const rule = `upstreams:
  - match: "${primary.authority}"
    circuitBreaker: { consecutiveFailures: 2, failingFor: 0ms, openFor: 10s, maxOpenFor: 1m }
`;
    proxy = await startProxy(config(primary.authority, cache, rule));
    for (const path of ['/1', '/2']) {
      const res = await viaProxy(proxy.port, 'GET', `${primary.origin}${path}`);
      expect(res.body.toString()).toBe('from cache');
    }
    expect(primary.seen).toHaveLength(2);
    const started = performance.now();
    const res = await viaProxy(proxy.port, 'GET', `${primary.origin}/3`);
    expect(performance.now() - started).toBeLessThan(50);
    expect(res.body.toString()).toBe('from cache');
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(primary.seen).toHaveLength(2);
    const text = await metricsText(proxy);
    const label = `route="artifacts",upstream="${primary.authority}"`;
    expect(text).toContain(`reprise_fallbacks_total{${label},cause="timeout"} 2`);
    expect(text).toContain(`reprise_fallbacks_total{${label},cause="circuit-open"} 1`);
  });

  it("names the fallback in the circuit-open answer when the fallback's circuit is open", async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(503, 'cache down')]);
    const rule = `upstreams:
  - match: "${cache.authority}"
    circuitBreaker: { consecutiveFailures: 1, failingFor: 0ms, openFor: 10s, maxOpenFor: 1m }
`;
    proxy = await startProxy(config(primary, cache, rule));
    await viaProxy(proxy.port, 'GET', `http://${primary}/1`);
    const res = await viaProxy(proxy.port, 'GET', `http://${primary}/2`);
    expect(res.status).toBe(503);
    expect(res.headers['x-reprise-error']).toBe('circuit-open');
    expect(JSON.parse(res.body.toString())).toMatchObject({ upstream: cache.authority });
    expect(cache.seen).toHaveLength(1);
  });

  it('keeps a 404 from the primary: an HTTP answer is final', async () => {
    const primary = await upstreamWith([reply(404, 'no such package')]);
    const cache = await upstreamWith([reply(200, 'from cache')]);
    proxy = await startProxy(config(primary.authority, cache));
    const res = await viaProxy(proxy.port, 'GET', `${primary.origin}/pkg`);
    expect(res.status).toBe(404);
    expect(res.body.toString()).toBe('no such package');
    expect(cache.seen).toHaveLength(0);
    expect(proxy.requests()[0]?.fallback).toBeUndefined();
  });

  it('keeps a 503 from the primary rather than override it with the fallback', async () => {
    const primary = await upstreamWith([reply(503, 'primary busy')]);
    const cache = await upstreamWith([reply(200, 'from cache')]);
    proxy = await startProxy(config(primary.authority, cache));
    const res = await viaProxy(proxy.port, 'GET', `${primary.origin}/pkg`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('primary busy');
    expect(cache.seen).toHaveLength(0);
  });

  it('never sends a POST to the fallback', async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(200, 'from cache')]);
    proxy = await startProxy(config(primary, cache));
    const res = await viaProxy(proxy.port, 'POST', `http://${primary}/upload`, { body: 'data' });
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(cache.seen).toHaveLength(0);
    expect(proxy.requests()[0]?.fallback).toBeUndefined();
  });

  it('answers from the fallback when it fails too, naming the fallback upstream', async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(503, 'cache down')]);
    proxy = await startProxy(config(primary, cache));
    const res = await viaProxy(proxy.port, 'GET', `http://${primary}/pkg`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('cache down');
    expect(res.headers['x-reprise-attempts']).toBe('4');
    expect(cache.seen).toHaveLength(3);
  });

  it.each([
    ['x-reprise-max-attempts', '1'],
    ['x-reprise-retry', 'off'],
  ])('counts %s: %s over both origins: one try in all', async (name, value) => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(200, 'from cache')]);
    proxy = await startProxy(config(primary, cache));
    const res = await viaProxy(proxy.port, 'GET', `http://${primary}/pkg`, {
      headers: { [name]: value },
    });
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(cache.seen).toHaveLength(0);
  });

  it('gives the fallback only the tries x-reprise-max-attempts leaves', async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(503, 'cache down')]);
    proxy = await startProxy(config(primary, cache));
    const res = await viaProxy(proxy.port, 'GET', `http://${primary}/pkg`, {
      headers: { 'x-reprise-max-attempts': '3' },
    });
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(cache.seen).toHaveLength(2);
  });

  it("labels retries made on the fallback with the fallback's upstream", async () => {
    const primary = `127.0.0.1:${await deadPort()}`;
    const cache = await upstreamWith([reply(503), reply(200, 'ok')]);
    proxy = await startProxy(config(primary, cache));
    await viaProxy(proxy.port, 'GET', `http://${primary}/pkg`);
    const text = await metricsText(proxy);
    expect(text).toContain(
      `reprise_retries_total{route="artifacts",upstream="${cache.authority}",reason="503"} 1`,
    );
    // the primary's series exist from its first request, at 0: no retry is counted there
    const onPrimary = text
      .split('\n')
      .filter((line) =>
        line.startsWith(`reprise_retries_total{route="artifacts",upstream="${primary}"`),
      );
    expect(onPrimary.length).toBeGreaterThan(0);
    expect(onPrimary.every((line) => line.endsWith(' 0'))).toBe(true);
  });
});
