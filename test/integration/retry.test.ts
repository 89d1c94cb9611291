import { describe, expect, it } from 'vitest';
import { manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import {
  deadPort,
  delayed,
  dropConnection,
  hang,
  reply,
  startUpstream,
} from '../helpers/upstream.ts';

closeAfterEach();

async function setup(script: Parameters<typeof startUpstream>[0], yaml = FAST) {
  const upstream = await startUpstream(script);
  const proxy = await startProxy(yaml);
  return { up: upstream, px: proxy };
}

describe('what is retried (SPEC §3)', () => {
  it('retries a GET answered 503 and returns the healed answer', async () => {
    const { up, px } = await setup([reply(503), reply(503), reply(200, 'healed')]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/items`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('healed');
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '3']);
  });

  it('passes the last real answer through unchanged when the tries run out', async () => {
    const { up, px } = await setup([reply(503, 'busy', { 'x-custom': 'kept' })]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(503);
    expect(res.body.toString()).toBe('busy');
    expect(res.headers['x-custom']).toBe('kept');
    expect(res.headers['x-reprise-error']).toBeUndefined();
    expect(up.seen).toHaveLength(3);
  });

  it('does not retry a status that is not in retry.on', async () => {
    const { up, px } = await setup([reply(500), reply(200)]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(500);
    expect(up.seen).toHaveLength(1);
  });

  it('retries a status class given as 5xx', async () => {
    const { up, px } = await setup([reply(500), reply(200)], `${FAST}      on: [5xx]\n`);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it('does not retry POST answered 503', async () => {
    const { up, px } = await setup([reply(503), reply(200)]);
    const res = await viaProxy(px.port, 'POST', `${up.origin}/`, { body: 'x' });
    expect(res.status).toBe(503);
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ suppressed: 'method' });
  });

  it('retries POST carrying an Idempotency-Key', async () => {
    const { up, px } = await setup([reply(503), reply(200)]);
    const res = await viaProxy(px.port, 'POST', `${up.origin}/`, {
      body: 'payload',
      headers: { 'idempotency-key': 'k1' },
    });
    expect(res.status).toBe(200);
    expect(up.seen.map((s) => s.body.toString())).toEqual(['payload', 'payload']);
  });

  it('does not retry POST after a reset, and runs it once', async () => {
    const { up, px } = await setup([dropConnection(), reply(200)]);
    const res = await viaProxy(px.port, 'POST', `${up.origin}/`, { body: 'once' });
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('reset');
    expect(up.seen).toHaveLength(1);
  });

  it('retries GET after a reset', async () => {
    const { up, px } = await setup([dropConnection(), reply(200, 'ok')]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it('retries POST on a refused connect, since nothing was sent', async () => {
    const proxy = await startProxy(FAST);
    const port = await deadPort();
    const res = await viaProxy(proxy.port, 'POST', `http://127.0.0.1:${port}/`, { body: 'x' });
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(res.headers['x-reprise-attempts']).toBe('3');
    const body = JSON.parse(res.body.toString());
    expect(body).toEqual({
      error: 'connect-failure',
      message: expect.any(String),
      attempts: 3,
      upstream: `127.0.0.1:${port}`,
    });
  });

  it('heals a hung upstream with perTryTimeout', async () => {
    const { up, px } = await setup(
      [hang(), reply(200, 'ok')],
      `${FAST}      perTryTimeout: 100ms\n`,
    );
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(200);
    expect(up.seen).toHaveLength(2);
    expect(px.requests()[0]).toMatchObject({ retries: ['timeout'] });
  });

  it('answers 504 timeout when the last try timed out', async () => {
    const { up, px } = await setup(
      [hang()],
      `${FAST}      perTryTimeout: 50ms\n      attempts: 1\n`,
    );
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(504);
    expect(res.headers['x-reprise-error']).toBe('timeout');
  });

  it('answers 504 deadline when the overall timeout passes', async () => {
    const clock = manualClock();
    // the upstream never answers, and the request's 5 s pass while it waits
    const up = await startUpstream([() => clock.advance(6000)]);
    const px = await startProxy(`${FAST}      perTryTimeout: 50ms\n    timeout: 5s\n`, {
      now: clock.now,
    });
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(504);
    expect(res.headers['x-reprise-error']).toBe('deadline');
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ suppressed: 'deadline', durationMs: 6000 });
  });

  it('waits Retry-After before the retry, reading a date against its own clock', async () => {
    const clock = manualClock();
    const inOneSecond = new Date(clock.now() + 1000).toUTCString();
    const up = await startUpstream([reply(503, '', { 'retry-after': inOneSecond }), reply(200)]);
    const px = await startProxy(FAST, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`);
    await until(() => px.logs.some((line) => line.msg === 'retry'));
    expect(px.logs.find((line) => line.msg === 'retry')).toMatchObject({
      reason: '503',
      delayMs: 1000,
    });
    await clock.advance(999);
    expect(up.seen).toHaveLength(1);
    await clock.advance(1);
    expect((await answer).status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it('passes a Retry-After longer than retryAfter.max to the client at once', async () => {
    const { up, px } = await setup([reply(503, 'later', { 'retry-after': '60' }), reply(200)]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('60');
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ suppressed: 'retry-after-too-long' });
  });
});

describe('per-request headers (SPEC §5)', () => {
  it('x-reprise-retry: off makes one try', async () => {
    const { up, px } = await setup([reply(503), reply(200)]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`, {
      headers: { 'x-reprise-retry': 'off' },
    });
    expect(res.status).toBe(503);
    expect(up.seen).toHaveLength(1);
  });

  it('x-reprise-max-attempts narrows the tries but never widens them', async () => {
    const { up, px } = await setup([reply(503)]);
    await viaProxy(px.port, 'GET', `${up.origin}/`, { headers: { 'x-reprise-max-attempts': '2' } });
    expect(up.seen).toHaveLength(2);
    await viaProxy(px.port, 'GET', `${up.origin}/`, { headers: { 'x-reprise-max-attempts': '9' } });
    expect(up.seen).toHaveLength(5);
  });

  it('x-reprise-timeout-ms shortens the overall timeout', async () => {
    const { up, px } = await setup([hang()]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`, {
      headers: { 'x-reprise-timeout-ms': '100' },
    });
    expect(res.status).toBe(504);
    expect(res.headers['x-reprise-error']).toBe('deadline');
  });

  it('strips control and hop-by-hop headers and appends Via both ways', async () => {
    const { up, px } = await setup([
      reply(200, 'ok', { 'keep-alive': 'timeout=5', via: '1.1 origin' }),
    ]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`, {
      headers: {
        'x-reprise-max-attempts': '2',
        'x-keep': 'yes',
        connection: 'x-drop, keep-alive',
        'x-drop': 'secret',
        'proxy-authorization': 'Basic abc',
        te: 'trailers',
        via: '1.0 client-proxy',
      },
    });
    const seen = up.seen[0];
    expect(seen?.headers['x-keep']).toBe('yes');
    for (const name of ['x-reprise-max-attempts', 'x-drop', 'proxy-authorization', 'te']) {
      expect(seen?.headers[name]).toBeUndefined();
    }
    expect(seen?.headers.via).toMatch(/^1\.0 client-proxy, 1\.1 reprise-[0-9a-f]+$/);
    expect(seen?.headers.host).toBe(up.authority);
    // Node adds its own Keep-Alive for the client connection; the upstream's must not pass
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
    expect(res.headers.via).toMatch(/^1\.1 origin, 1\.1 reprise-[0-9a-f]+$/);
  });
});

describe('answers reprise makes itself (SPEC §5)', () => {
  it('answers 400 to an origin-form request on the proxy port', async () => {
    const proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', '/not-absolute');
    expect(res.status).toBe(400);
    expect(res.headers['x-reprise-error']).toBe('bad-request');
    expect(res.headers['content-type']).toBe('application/json');
  });

  it('answers 508 to a request that already passed this instance', async () => {
    const { up, px } = await setup([reply(200)]);
    const first = await viaProxy(px.port, 'GET', `${up.origin}/`);
    const via = String(first.headers.via).split(', ').at(-1) as string;
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`, { headers: { via } });
    expect(res.status).toBe(508);
    expect(res.headers['x-reprise-error']).toBe('loop');
    expect(up.seen).toHaveLength(1);
  });

  it('answers 508 to a request aimed at its own listen address', async () => {
    const proxy = await startProxy(FAST);
    for (const host of ['127.0.0.1', 'localhost']) {
      const res = await viaProxy(proxy.port, 'GET', `http://${host}:${proxy.port}/`);
      expect(res.status).toBe(508);
    }
  });

  it('keeps the upstream answer when a try got an HTTP answer, even a 502', async () => {
    const { up, px } = await setup([reply(502, 'from upstream')]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.status).toBe(502);
    expect(res.body.toString()).toBe('from upstream');
    expect(res.headers['x-reprise-error']).toBeUndefined();
  });
});

describe('connections', () => {
  it('reuses upstream connections: 500 sequential requests use a handful', async () => {
    const { up, px } = await setup([reply(200, 'ok')]);
    for (let i = 0; i < 500; i++) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}/${i}`);
      expect(res.status).toBe(200);
    }
    expect(up.connections).toBeLessThanOrEqual(4);
  });

  it('discards the bodies of retried answers without leaking sockets', async () => {
    const script = [];
    for (let i = 0; i < 50; i++) script.push(reply(503, 'x'.repeat(2048)), reply(200, 'ok'));
    // half of all tries fail here: keep the breaker out of this test
    const { up, px } = await setup(
      script,
      `${FAST}  upstream:\n    circuitBreaker: { failureRatio: 1 }\n`,
    );
    for (let i = 0; i < 50; i++) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
      expect(res.status).toBe(200);
    }
    expect(up.seen).toHaveLength(100);
    expect(up.connections).toBeLessThanOrEqual(4);
  });

  it('cancels the backoff wait and every later try when the client leaves', async () => {
    // a one-minute wait: only the client leaving can end this request within the test
    const { up, px } = await setup(
      [reply(503), reply(200)],
      'defaults:\n  route:\n    timeout: 5m\n    retry:\n      backoff: { base: 1m, max: 1m, jitter: none }\n',
    );
    const leave = new AbortController();
    const sent = viaProxy(px.port, 'GET', `${up.origin}/`, { signal: leave.signal });
    await until(() => px.logs.some((line) => line.msg === 'retry'));
    leave.abort();
    await expect(sent).rejects.toThrow();
    await until(() => px.requests().length > 0);
    expect(px.requests()[0]).toMatchObject({ status: 0, attempts: 1, suppressed: 'client-gone' });
    // the exchange is over, so no later try can start
    expect(up.seen).toHaveLength(1);
  });

  it('does not count the retry a client left before, in the log or the metrics', async () => {
    const { up, px } = await setup(
      [reply(503), reply(200)],
      'defaults:\n  route:\n    retry:\n      backoff: { base: 2s, max: 2s, jitter: none }\n',
    );
    await expect(
      viaProxy(px.port, 'GET', `${up.origin}/`, { abortAfterMs: 100 }),
    ).rejects.toThrow();
    await until(() => px.requests().length > 0);
    expect(px.requests()[0]).toMatchObject({ retries: [], suppressed: 'client-gone' });
    const text = await (await fetch(`http://127.0.0.1:${px.adminPort}/metrics`)).text();
    expect(text).not.toMatch(/^reprise_retries_total\{.*\} [1-9]/m);
  });

  it('answers slowly-arriving headers from a delayed upstream', async () => {
    const { up, px } = await setup([delayed(50, reply(200, 'late'))]);
    const res = await viaProxy(px.port, 'GET', `${up.origin}/`);
    expect(res.body.toString()).toBe('late');
  });
});
