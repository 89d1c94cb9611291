/**
 * Content-aware retry (SPEC §3): a response whose body breaks or stalls before anything reached
 * the client is a failed try (`body-cut`) and is retried like any other; once the client has a
 * byte, a cut body reaches it visibly broken, and is counted as `body-cut` all the same.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { fireNext, manualClock, until } from '../helpers/clock.ts';
import { type RawUpstream, startRawUpstream } from '../helpers/fault-relay.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';

let proxy: TestProxy | undefined;
let raw: RawUpstream | undefined;
afterEach(async () => {
  await proxy?.close();
  await raw?.close();
  proxy = raw = undefined;
});

const GOOD = Buffer.alloc(5000, 98);

/** A head promising 5,000 bytes, then only `sentBytes` of them, then a close (FIN). */
function cutAfter(socket: Socket, sentBytes: number): void {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n${'a'.repeat(sentBytes)}`);
  setTimeout(() => socket.end(), 20);
}

function good(socket: Socket): void {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${GOOD.length}\r\n\r\n`);
  socket.write(GOOD);
}

/** The first request gets `first`, every later one the good 5,000 bytes. */
function firstThenGood(first: (socket: Socket) => void) {
  return (socket: Socket, n: number) => (n === 0 ? first(socket) : good(socket));
}

/** The first body bytes of a response that does not end, then the request is dropped. */
function firstBodyBytes(proxyPort: number, url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxyPort, path: url, agent: false }, (res) => {
      res.once('data', (chunk: Buffer) => {
        resolve(chunk.toString());
        req.destroy();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(px: TestProxy, line: string): Promise<boolean> {
  const text = await (await fetch(`http://127.0.0.1:${px.adminPort}/metrics`)).text();
  return text.split('\n').includes(line);
}

describe('a body cut before the client saw any of it', () => {
  it.each([3, 0])(
    'heals a 5,000-byte response cut at %i bytes: the client gets one clean 200',
    async (sentBytes) => {
      raw = await startRawUpstream(firstThenGood((s) => cutAfter(s, sentBytes)));
      proxy = await startProxy(FAST);
      const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/doc`);
      expect(res.status).toBe(200);
      expect(res.complete).toBe(true);
      expect(res.body.equals(GOOD)).toBe(true);
      expect(res.headers['x-reprise-attempts']).toBe('2');
      expect(proxy.requests()[0]).toMatchObject({ status: 200, retries: ['body-cut'] });
      expect(proxy.requests()[0]?.error).toBeUndefined();
      const up = `route="default",upstream="${raw.origin.slice(7)}"`;
      expect(await metric(proxy, `reprise_attempts_total{${up},outcome="body-cut"} 1`)).toBe(true);
      expect(await metric(proxy, `reprise_attempts_total{${up},outcome="2xx"} 1`)).toBe(true);
      expect(await metric(proxy, `reprise_retries_total{${up},reason="body-cut"} 1`)).toBe(true);
    },
  );

  it('heals a reset in the middle of a chunked body', async () => {
    raw = await startRawUpstream(
      firstThenGood((s) => {
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r\n');
        setTimeout(() => s.resetAndDestroy(), 20);
      }),
    );
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(true);
    expect(res.body.equals(GOOD)).toBe(true);
    expect(proxy.requests()[0]).toMatchObject({ retries: ['body-cut'] });
  });

  it('heals bad chunk framing after the first chunk', async () => {
    raw = await startRawUpstream(
      firstThenGood((s) =>
        s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n'),
      ),
    );
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(true);
    expect(res.body.equals(GOOD)).toBe(true);
  });

  it('heals a close-delimited body cut by a reset', async () => {
    raw = await startRawUpstream(
      firstThenGood((s) => {
        s.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc');
        setTimeout(() => s.resetAndDestroy(), 20);
      }),
    );
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.body.equals(GOOD)).toBe(true);
  });

  it('retries a held body that stalls past bodyTimeout', async () => {
    raw = await startRawUpstream(
      firstThenGood((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc')),
    );
    const clock = manualClock();
    proxy = await startProxy(`${FAST}      bodyTimeout: 200ms\n`, clock.options);
    const answer = viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    // the head is in and the body held: its stall timer runs
    await until(() => clock.armedFor(200) === 1);
    await clock.advance(200);
    await fireNext(clock, 5); // the back-off: the retry goes out
    const res = await answer;
    expect(res.complete).toBe(true);
    expect(res.body.equals(GOOD)).toBe(true);
    expect(proxy.requests()[0]).toMatchObject({ retries: ['body-cut'] });
  });

  // SPEC §3: while nothing has reached the client, a stalled held body is a failed try,
  // whichever timer noticed it first: here perTryTimeout is shorter than bodyTimeout
  it.each([100, 500])(
    'retries a held body that stalls after 10 of 4,811 bytes with perTryTimeout: %i ms',
    async (perTryTimeoutMs) => {
      const whole = Buffer.alloc(4811, 99);
      raw = await startRawUpstream((s, n) => {
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${whole.length}\r\n\r\n`);
        s.write(n === 0 ? whole.subarray(0, 10) : whole);
      });
      const clock = manualClock();
      proxy = await startProxy(
        `${FAST}      perTryTimeout: ${perTryTimeoutMs}ms\n      bodyTimeout: 3s\n`,
        clock.options,
      );
      const answer = viaProxy(proxy.port, 'GET', `${raw.origin}/doc`);
      // the head is in and the body held (bodyTimeout's timer runs): perTryTimeout notices first
      await until(() => clock.armedFor(3_000) === 1);
      await clock.advance(perTryTimeoutMs);
      await fireNext(clock, 5); // the back-off: the retry goes out
      const res = await answer;
      expect(res.status).toBe(200);
      expect(res.complete).toBe(true);
      expect(res.body.equals(whole)).toBe(true);
      expect(res.headers['x-reprise-attempts']).toBe('2');
      expect(proxy.requests()[0]).toMatchObject({ status: 200, retries: ['body-cut'] });
    },
  );

  it('lets a cut on the last try reach the client broken, logged as body-cut', async () => {
    raw = await startRawUpstream((s) => cutAfter(s, 3));
    // the last try is not held (no retry could follow it), so only the first is healed
    proxy = await startProxy(`${FAST}      attempts: 2\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(proxy.requests()[0]).toMatchObject({ retries: ['body-cut'], error: 'body-cut' });
  });

  it('charges a held cut body to the breaker as a failed try', async () => {
    raw = await startRawUpstream((s) => cutAfter(s, 3));
    proxy = await startProxy(
      `${FAST}      attempts: 2\nupstreams:\n  - match: "127.0.0.1"\n    circuitBreaker: { consecutiveFailures: 1, failingFor: 0ms, openFor: 10s, maxOpenFor: 1m }\n`,
    );
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    // the first try's cut opened the circuit: the retry was not made
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('body-cut');
    expect(proxy.requests()[0]).toMatchObject({ suppressed: 'circuit-open' });
    expect(raw.heads).toHaveLength(1);
  });
});

describe('a body that streams past the buffer', () => {
  it('is not held when its length is over responseBuffer: a cut reaches the client broken', async () => {
    raw = await startRawUpstream(firstThenGood((s) => cutAfter(s, 3)));
    proxy = await startProxy(`${FAST}      responseBuffer: 4KiB\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('aaa');
  });

  it('streams a body of no length once the buffer is full: a later cut reaches the client', async () => {
    const part = 'x'.repeat(3000);
    raw = await startRawUpstream(
      firstThenGood((s) => {
        s.write(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nbb8\r\n${part}\r\n`);
        setTimeout(() => s.resetAndDestroy(), 50);
      }),
    );
    proxy = await startProxy(`${FAST}      responseBuffer: 2KiB\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe(part);
  });

  it('streams a held body of no length that pauses past bodyTimeout, on the one try', async () => {
    raw = await startRawUpstream((s) => {
      s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n');
      setTimeout(() => s.write('3\r\ndef\r\n0\r\n\r\n'), 300);
    });
    proxy = await startProxy(`${FAST}      bodyTimeout: 100ms\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(true);
    expect(res.body.toString()).toBe('abcdef');
    expect(raw.heads).toHaveLength(1);
  });

  it('never holds an event stream: its first event reaches the client at once', async () => {
    raw = await startRawUpstream((s) =>
      s.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n' +
          'b\r\ndata: one\n\n\r\n',
      ),
    );
    // a held body would wait for bodyTimeout (5 s): the event must come long before
    proxy = await startProxy(`${FAST}      bodyTimeout: 5s\n`);
    const held = delay(1_000).then(() => 'held');
    const first = await Promise.race([firstBodyBytes(proxy.port, `${raw.origin}/events`), held]);
    expect(first).toBe('data: one\n\n');
    expect(raw.heads).toHaveLength(1);
  });

  it('streams as before with responseBuffer: 0', async () => {
    raw = await startRawUpstream(firstThenGood((s) => cutAfter(s, 3)));
    proxy = await startProxy(`${FAST}      responseBuffer: 0\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('aaa');
  });
});

describe('a cut body that reached the client', () => {
  it('shows as body-cut in the log and the metrics, not as a clean 2xx (POST, not retryable)', async () => {
    raw = await startRawUpstream((s) => cutAfter(s, 3));
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'POST', `${raw.origin}/`);
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(proxy.requests()[0]).toMatchObject({ status: 200, error: 'body-cut', retries: [] });
    const up = `route="default",upstream="${raw.origin.slice(7)}"`;
    expect(await metric(proxy, `reprise_attempts_total{${up},outcome="body-cut"} 1`)).toBe(true);
    // the series starts at 0 and stays there: the cut try is not a clean 2xx
    expect(await metric(proxy, `reprise_attempts_total{${up},outcome="2xx"} 0`)).toBe(true);
  });

  it('cuts a streamed body at streamIdleTimeout', async () => {
    raw = await startRawUpstream((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nabc'));
    const clock = manualClock();
    proxy = await startProxy(
      `${FAST}      attempts: 1\n      streamIdleTimeout: 1s\n`,
      clock.options,
    );
    const answer = viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    // the last try is not held: its body streams, and its idle timer runs
    await until(() => clock.armedFor(1_000) === 1);
    await clock.advance(999);
    expect(proxy.requests()).toHaveLength(0);
    await clock.advance(1);
    const res = await answer;
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('abc');
    expect(proxy.requests()[0]).toMatchObject({ error: 'body-cut' });
  });
});
