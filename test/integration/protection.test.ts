/**
 * Issue 3 end to end: the retry budget, the circuit breaker and maxConcurrent protect a real
 * loopback upstream from a real in-process proxy (SPEC §4).
 */
import { Agent, request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { type ManualClock, manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import {
  deadPort,
  delayed,
  failEvery,
  reply,
  slowBody,
  startUpstream,
  switchable,
  type Upstream,
} from '../helpers/upstream.ts';

const FAST_RETRY = `defaults:
  route:
    retry:
      backoff: { base: 1ms, max: 5ms }
`;
/** The classic breaker under test: 5 tries at half failed trip it at once, for 200ms, doubling up to 2s. */
const BREAKER = `${FAST_RETRY}  upstream:
    circuitBreaker: { minRequests: 5, failureRatio: 0.5, failingFor: 0ms, openFor: 200ms, openForRequests: 0, maxOpenFor: 2s }
`;

closeAfterEach();

async function setup(
  script: Parameters<typeof startUpstream>[0],
  yaml: string,
  clock?: ManualClock,
) {
  const upstream = await startUpstream(script);
  const proxy = await startProxy(yaml, { logLevel: 'info', now: clock?.now });
  return { up: upstream, px: proxy };
}

/** Sends `total` GETs to `url` over `concurrency` kept-alive connections; returns the statuses. */
async function runConcurrently(
  px: TestProxy,
  url: string,
  total: number,
  concurrency: number,
): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: px.port, path: url, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject).end();
    });
  const statuses: number[] = [];
  let started = 0;
  const worker = async () => {
    while (started < total) {
      started++;
      statuses.push(await get());
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return statuses;
}

async function circuitState(px: TestProxy, authority: string): Promise<string | undefined> {
  const state = (await (await fetch(`http://127.0.0.1:${px.adminPort}/state`)).json()) as {
    upstreams: { authority: string; state: string }[];
  };
  return state.upstreams.find((u) => u.authority === authority)?.state;
}

async function metricsText(px: TestProxy): Promise<string> {
  return (await fetch(`http://127.0.0.1:${px.adminPort}/metrics`)).text();
}

/** Sends failing requests one by one until the circuit answers; returns when it opened. */
async function tripBreaker(px: TestProxy, up: Upstream): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    if (res.headers['x-reprise-error'] === 'circuit-open') return performance.now();
  }
  throw new Error('the circuit never opened');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls /state until `authority` is in `state`; returns when. */
async function waitForState(px: TestProxy, authority: string, state: string): Promise<number> {
  for (let i = 0; i < 500; i++) {
    if ((await circuitState(px, authority)) === state) return performance.now();
    await sleep(5);
  }
  throw new Error(`the circuit never became ${state}`);
}

describe('retry budget (SPEC §4)', () => {
  // the breaker would stop this outage first: keep it out to measure the budget alone
  const NO_BREAKER = `${FAST_RETRY}  upstream:\n    circuitBreaker: { enabled: false }\n`;

  it('keeps a total outage at or below 1.3 upstream tries per request', async () => {
    const { up, px } = await setup([reply(503)], NO_BREAKER);
    const statuses = await runConcurrently(px, `${up.origin}/`, 3000, 50);
    const ratio = up.seen.length / 3000;
    console.log(`outage, default budget: ${up.seen.length} tries, ${ratio.toFixed(3)} per request`);
    expect(statuses.every((status) => status === 503)).toBe(true);
    expect(ratio).toBeLessThanOrEqual(1.3);
    expect(await metricsText(px)).toMatch(/reprise_retries_suppressed_total\{.*cause="budget"\}/);
  });

  it('without a budget the same outage costs about 3 tries per request', async () => {
    const yaml = `${NO_BREAKER}    budget: { ratio: 1, minPerSecond: 1000000 }\n`;
    const { up, px } = await setup([reply(503)], yaml);
    await runConcurrently(px, `${up.origin}/`, 3000, 50);
    const ratio = up.seen.length / 3000;
    console.log(`outage, no budget: ${up.seen.length} tries, ${ratio.toFixed(3)} per request`);
    expect(ratio).toBeGreaterThan(2.9);
  });

  it('passes the last real answer on when the budget refuses the retry', async () => {
    const yaml = `${FAST_RETRY}  upstream:\n    budget: { ratio: 0, minPerSecond: 0 }\n`;
    const { up, px } = await setup(
      [reply(503, 'busy', { 'x-from': 'upstream' }), reply(200)],
      yaml,
    );
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('busy');
    expect(res.headers['x-from']).toBe('upstream');
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ suppressed: 'budget', attempts: 1 });
    expect(await metricsText(px)).toContain(
      `reprise_retries_suppressed_total{route="default",upstream="${up.authority}",cause="budget"} 1`,
    );
  });

  it('answers the 502 a refused connect would get when the budget refuses the retry', async () => {
    const proxy = await startProxy(
      `${FAST_RETRY}  upstream:\n    budget: { ratio: 0, minPerSecond: 0 }\n`,
    );
    const res = await viaProxy(proxy.port, 'GET', `http://127.0.0.1:${await deadPort()}/`);
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(res.headers['x-reprise-attempts']).toBe('1');
    expect(proxy.requests()[0]).toMatchObject({ suppressed: 'budget' });
  });
});

describe('a healthy upstream with occasional failures', () => {
  it('heals 1 failure in 20 with retries and never opens the circuit', async () => {
    const step = failEvery(20, reply(503), reply(200, 'ok'));
    const { up, px } = await setup([step], FAST_RETRY);
    const statuses = await runConcurrently(px, `${up.origin}/`, 400, 10);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    expect(up.seen.length).toBeGreaterThan(400);
    expect(px.logs.filter((line) => line.msg === 'circuit')).toEqual([]);
    expect(await circuitState(px, up.authority)).toBe('closed');
  });
});

describe('circuit breaker (SPEC §4)', () => {
  it('lets nothing reach the upstream while open, answering 503 circuit-open at once', async () => {
    const { up, px } = await setup([reply(503)], BREAKER);
    const openedAt = await tripBreaker(px, up);
    const before = up.seen.length;
    const logged = px.requests().length;
    let answers = 0;
    while (performance.now() - openedAt < 150) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
      expect(res.status).toBe(503);
      expect(res.headers['x-reprise-error']).toBe('circuit-open');
      expect(res.headers['retry-after']).toBe('1');
      answers++;
    }
    expect(up.seen.length).toBe(before);
    // at once: no try made, so no connect, no back-off and no timer to wait on
    await until(() => px.requests().length >= logged + answers);
    const open = px.requests().slice(logged);
    expect(open).toHaveLength(answers);
    for (const line of open) {
      expect(line).toMatchObject({ status: 503, error: 'circuit-open', attempts: 0, retries: [] });
    }
  });

  it('stops the retries of a request as soon as the circuit opens', async () => {
    const yaml = `${FAST_RETRY}  upstream:\n    circuitBreaker: { consecutiveFailures: 2, failingFor: 0ms, openFor: 10s, maxOpenFor: 1m }\n`;
    const { up, px } = await setup([reply(503, 'down')], yaml);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('down');
    expect(up.seen).toHaveLength(2);
    expect(px.requests()[0]).toMatchObject({ suppressed: 'circuit-open' });
  });

  it('answers 503 circuit-open when the circuit opened during the backoff wait', async () => {
    const yaml = `defaults:
  route:
    retry:
      backoff: { base: 200ms, max: 200ms, jitter: none }
  upstream:
    circuitBreaker: { consecutiveFailures: 2, failingFor: 0ms, openFor: 10s, maxOpenFor: 1m }
`;
    const clock = manualClock();
    const up = await startUpstream([reply(503, 'down')]);
    const px = await startProxy(yaml, { logLevel: 'info', ...clock.options });
    const waiting = viaProxy(px.port, 'GET', `${up.origin}/a`);
    await until(() => clock.armedFor(200) === 1);
    // a second failure in a row opens the circuit while the first request waits to retry
    await viaProxy(px.port, 'GET', `${up.origin}/b`, { headers: { 'x-reprise-retry': 'off' } });
    await clock.advance(200);
    const res = await waiting;
    expect(res.status).toBe(503);
    expect(res.headers['x-reprise-error']).toBe('circuit-open');
    expect(res.complete).toBe(true);
    expect(up.seen).toHaveLength(2);
    expect(px.requests().find((l) => l.path === '/a')).toMatchObject({
      suppressed: 'circuit-open',
    });
  });

  it('closes again when a probe succeeds after openFor, and traffic flows', async () => {
    const clock = manualClock();
    const step = switchable(reply(503));
    const { up, px } = await setup([step], BREAKER, clock);
    await tripBreaker(px, up);
    step.set(reply(200, 'back'));
    clock.advance(200);
    const before = up.seen.length;
    for (let i = 0; i < 10; i++) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
      expect(res.body.toString()).toBe('back');
    }
    expect(up.seen.length).toBe(before + 10);
    expect(await circuitState(px, up.authority)).toBe('closed');
  });

  it('closes on the response head of the probe, not when its long body ends', async () => {
    const clock = manualClock();
    const step = switchable(reply(503));
    const { up, px } = await setup([step], BREAKER, clock);
    await tripBreaker(px, up);
    step.set(slowBody(1000, 'long download'));
    clock.advance(200);
    const probe = viaProxy(px.port, 'GET', `${up.origin}/big`);
    await until(() => up.seen.length > 0 && up.seen.at(-1)?.url === '/big');
    step.set(reply(200, 'next'));
    await waitForState(px, up.authority, 'closed');
    const next = await viaProxy(px.port, 'GET', `${up.origin}/small`);
    expect(next.body.toString()).toBe('next');
    expect((await probe).body.toString()).toBe('long download');
  });

  it('lets exactly one probe through when 20 requests arrive in half-open', async () => {
    const clock = manualClock();
    const step = switchable(reply(503));
    const { up, px } = await setup([step], BREAKER, clock);
    await tripBreaker(px, up);
    step.set(delayed(300, reply(200, 'probe')));
    clock.advance(200);
    const before = up.seen.length;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => viaProxy(px.port, 'GET', `${up.origin}/`)),
    );
    expect(up.seen.length).toBe(before + 1);
    expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
    const refused = answers.filter((a) => a.headers['x-reprise-error'] === 'circuit-open');
    expect(refused).toHaveLength(19);
    expect(await circuitState(px, up.authority)).toBe('closed');
  });

  it('reopens for twice as long after a failed probe', async () => {
    const clock = manualClock();
    const { up, px } = await setup([reply(503)], BREAKER, clock);
    await tripBreaker(px, up);
    clock.advance(199);
    expect(await circuitState(px, up.authority)).toBe('open');
    clock.advance(1);
    expect(await circuitState(px, up.authority)).toBe('half-open');
    const before = up.seen.length;
    const probe = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(probe.headers['x-reprise-error']).toBeUndefined();
    expect(up.seen.length).toBe(before + 1);
    expect(await circuitState(px, up.authority)).toBe('open');
    clock.advance(399);
    expect(await circuitState(px, up.authority)).toBe('open');
    clock.advance(1);
    expect(await circuitState(px, up.authority)).toBe('half-open');
  });
});

describe('maxConcurrent', () => {
  const LIMIT_5 = `${FAST_RETRY}  upstream:\n    maxConcurrent: 5\n`;

  it('answers 503 overflow past 5 slow requests in flight', async () => {
    const { up, px } = await setup([delayed(300, reply(200, 'ok'))], LIMIT_5);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => viaProxy(px.port, 'GET', `${up.origin}/`)),
    );
    expect(answers.filter((a) => a.status === 200)).toHaveLength(5);
    const overflow = answers.filter((a) => a.headers['x-reprise-error'] === 'overflow');
    expect(overflow.map((a) => a.status)).toEqual([503, 503, 503, 503, 503]);
    expect(up.seen).toHaveLength(5);
  });

  it('keeps the slot of a request through its backoff wait: a new request overflows', async () => {
    const yaml = `defaults:
  route:
    retry:
      backoff: { base: 200ms, max: 200ms, jitter: none }
  upstream:
    maxConcurrent: 1
`;
    const clock = manualClock();
    const up = await startUpstream([reply(503, 'busy'), reply(200, 'retried')]);
    const px = await startProxy(yaml, { logLevel: 'info', ...clock.options });
    const waiting = viaProxy(px.port, 'GET', `${up.origin}/a`);
    await until(() => clock.armedFor(200) === 1);
    const refused = await viaProxy(px.port, 'GET', `${up.origin}/b`);
    expect(refused.status).toBe(503);
    expect(refused.headers['x-reprise-error']).toBe('overflow');
    await clock.advance(200);
    const res = await waiting;
    expect(res.body.toString()).toBe('retried');
    expect(up.seen.map((s) => s.url)).toEqual(['/a', '/a']);
  });

  it('counts a request in flight until its response body has been relayed', async () => {
    const { up, px } = await setup([slowBody(300, 'done')], LIMIT_5);
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => viaProxy(px.port, 'GET', `${up.origin}/`)),
    );
    expect(answers.filter((a) => a.body.toString() === 'done')).toHaveLength(5);
    expect(answers.filter((a) => a.headers['x-reprise-error'] === 'overflow')).toHaveLength(5);
    expect(up.seen).toHaveLength(5);
  });
});

describe('the embedded breaker on /state (SPEC §4, §7)', () => {
  it('shows how long the trip rule has held, then the open period and refusals left', async () => {
    let nowMs = Date.now();
    const upstream = await startUpstream([reply(503, 'down')]);
    const proxy = await startProxy('', { logLevel: 'info', now: () => nowMs });
    const once = { headers: { 'x-reprise-retry': 'off' } };
    const state = async () => {
      const body = (await (await fetch(`http://127.0.0.1:${proxy.adminPort}/state`)).json()) as {
        upstreams: { authority: string; circuit: Record<string, unknown> }[];
      };
      return body.upstreams.find((u) => u.authority === upstream.authority)?.circuit;
    };
    for (let i = 0; i < 50; i++) await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, once);
    nowMs += 1_000;
    expect(await state()).toEqual({
      enabled: true,
      state: 'closed',
      recentTries: 50,
      recentFailures: 50,
      failingForMs: 1_000,
    });
    nowMs += 500;
    // the trip rule has now held for failingFor: the next failed try opens the circuit
    await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, once);
    const refused = await viaProxy(proxy.port, 'GET', `${upstream.origin}/`, once);
    expect(refused.headers['x-reprise-error']).toBe('circuit-open');
    expect(refused.headers['retry-after']).toBe('4');
    expect(await state()).toMatchObject({
      state: 'open',
      failingForMs: 0,
      halfOpenInMs: 4_000,
      refusalsBeforeProbe: 99,
    });
    expect(upstream.seen).toHaveLength(51);
  });
});
