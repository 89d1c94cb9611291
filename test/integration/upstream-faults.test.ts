/**
 * Upstream faults, injected in user space (test/helpers/fault-relay.ts): refused and
 * black-holed connects, resets before the answer, bodies cut short, malformed answers,
 * keep-alive races and an upstream killed under load. The client always gets an answer it
 * can trust: a real one, a reprise-made error, or a visibly broken body, never a clean end
 * of a body that was cut.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fireNext, manualClock, until } from '../helpers/clock.ts';
import {
  type BlackHole,
  type FaultRelay,
  type RawUpstream,
  startBlackHole,
  startFaultRelay,
  startRawUpstream,
} from '../helpers/fault-relay.ts';
import { type Answer, FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import {
  reply,
  type Step,
  seededRandom,
  startUpstream,
  type Upstream,
} from '../helpers/upstream.ts';

/** A promise and whether it has settled yet, to check a request is still waiting. */
function settles<T>(promise: Promise<T>): { promise: Promise<T>; readonly done: boolean } {
  const state = { promise, done: false };
  promise.then(
    () => {
      state.done = true;
    },
    () => {
      state.done = true;
    },
  );
  return state;
}

const ONE_TRY = `${FAST}      attempts: 1\n`;

let proxy: TestProxy | undefined;
let upstream: Upstream | undefined;
let relay: FaultRelay | undefined;
let raw: RawUpstream | undefined;
let hole: BlackHole | undefined;
afterEach(async () => {
  await proxy?.close();
  await relay?.close();
  await upstream?.close();
  await raw?.close();
  hole?.close();
  proxy = upstream = relay = raw = hole = undefined;
});

/** An upstream that answers `ok`, behind a relay with the given faults. */
async function relayed(faults: Parameters<typeof startFaultRelay>[1], steps?: Step[]) {
  upstream = await startUpstream(steps ?? [reply(200, 'ok')]);
  relay = await startFaultRelay(upstream.port, faults);
  return relay;
}

const CLEAN_ERRORS = ['connect-failure', 'reset', 'timeout', 'deadline', 'circuit-open'];

describe('connect failures', () => {
  it('retries a refused connect, for POST too, and answers 502 connect-failure', async () => {
    const r = await relayed([{ kind: 'pass' }]);
    await r.refuse();
    proxy = await startProxy(FAST);
    // 127.0.0.2: the freed port on 127.0.0.1 may be taken by a test running beside this one
    const refused = r.origin.replace('127.0.0.1', '127.0.0.2');
    const res = await viaProxy(proxy.port, 'POST', `${refused}/`, { body: 'x' });
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(res.headers['x-reprise-attempts']).toBe('3');
    expect(upstream?.seen).toHaveLength(0);
  });

  it('gives up on a black-holed address after connectTimeout, and retries it', async () => {
    hole = await startBlackHole();
    const clock = manualClock();
    proxy = await startProxy(
      `${FAST}      connectTimeout: 150ms\n      attempts: 2\n`,
      clock.options,
    );
    const answered = settles(viaProxy(proxy.port, 'GET', `http://127.0.0.1:${hole.port}/`));
    for (const attempt of [1, 2]) {
      await until(() => clock.armedFor(150) === 1); // this try's connect is under way
      await clock.advance(149);
      expect(answered.done).toBe(false);
      await clock.advance(1);
      if (attempt === 1) await fireNext(clock, 5); // the back-off
    }
    const res = await answered.promise;
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(res.headers['x-reprise-attempts']).toBe('2');
  });

  it('counts a connect that perTryTimeout cut short as connect-failure, so a POST retries', async () => {
    hole = await startBlackHole();
    const clock = manualClock();
    proxy = await startProxy(
      `${FAST}      attempts: 2\n      connectTimeout: 1s\n      perTryTimeout: 150ms\n`,
      clock.options,
    );
    const answer = viaProxy(proxy.port, 'POST', `http://127.0.0.1:${hole.port}/`, { body: 'x' });
    await until(() => clock.armedFor(150) === 1); // the first try's timer
    await clock.advance(150);
    await fireNext(clock, 5); // the back-off
    await until(() => clock.armedFor(150) === 1);
    await clock.advance(150);
    const res = await answer;
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('connect-failure');
    expect(res.headers['x-reprise-attempts']).toBe('2');
    expect(proxy.requests()[0]).toMatchObject({ retries: ['connect-failure'] });
    // the connects go on, for the pool, until their own connectTimeout: then the proxy can stop
    await clock.advance(1_000);
  });
});

describe('a reset before the answer', () => {
  it('retries a GET on a new connection', async () => {
    const r = await relayed([{ kind: 'reset-before-headers' }, { kind: 'pass' }]);
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${r.origin}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
    expect(r.connections).toBe(2);
    expect(proxy.requests()[0]).toMatchObject({ retries: ['reset'] });
  });

  it('does not retry a POST the upstream may have run: it ran exactly once', async () => {
    const r = await relayed([{ kind: 'reset-before-headers' }, { kind: 'pass' }]);
    proxy = await startProxy(FAST);
    // no body, so only the method rule stands between a reset and a second run
    const res = await viaProxy(proxy.port, 'POST', `${r.origin}/orders/1`);
    expect(res.status).toBe(502);
    expect(res.headers['x-reprise-error']).toBe('reset');
    const posts = upstream?.seen.filter((s) => s.method === 'POST') ?? [];
    expect(posts.map((s) => s.url)).toEqual(['/orders/1']);
  });
});

/** Head and a first part of the body, then `end`: a reset (RST) or a close (FIN). */
function cut(head: string, part: string, end: 'reset' | 'close') {
  return (socket: Socket, n: number) => {
    if (n > 0) {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
      return;
    }
    socket.write(`${head}\r\n\r\n${part}`);
    setTimeout(() => (end === 'reset' ? socket.resetAndDestroy() : socket.end()), 30);
  };
}

describe('a body cut short', () => {
  it.each([
    ['content-length', 'HTTP/1.1 200 OK\r\ncontent-length: 100000', 'a'.repeat(500), 'close'],
    ['content-length', 'HTTP/1.1 200 OK\r\ncontent-length: 100000', 'a'.repeat(500), 'reset'],
    [
      'chunked',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked',
      '1f4\r\n'.concat('a'.repeat(500), '\r\n'),
      'close',
    ],
    [
      'chunked',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked',
      '1f4\r\n'.concat('a'.repeat(500), '\r\n'),
      'reset',
    ],
    ['close-delimited', 'HTTP/1.1 200 OK\r\nconnection: close', 'a'.repeat(500), 'reset'],
  ] as const)(
    'with no try left, breaks the client response promptly (%s, then a %s)',
    async (_framing, head, part, end) => {
      raw = await startRawUpstream(cut(head, part, end));
      proxy = await startProxy(ONE_TRY);
      const started = Date.now();
      const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
      expect(res.status).toBe(200);
      expect(res.complete).toBe(false);
      expect(res.body.toString()).toBe('a'.repeat(500));
      expect(Date.now() - started).toBeLessThan(1000);
      // the next request is answered on a new upstream connection
      const next = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
      expect(next.body.toString()).toBe('next');
      expect(raw.connections).toBe(2);
      expect(proxy.requests()[0]).toMatchObject({ status: 200, error: 'body-cut' });
    },
  );

  it('ends a close-delimited body cleanly when the upstream closes (FIN) after it', async () => {
    raw = await startRawUpstream(cut('HTTP/1.1 200 OK\r\nconnection: close', 'whole', 'close'));
    proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(true);
    expect(res.body.toString()).toBe('whole');
  });

  it('cuts a streamed body that stalls past streamIdleTimeout and drops that connection', async () => {
    const stalled: Socket[] = [];
    raw = await startRawUpstream((socket, n) => {
      if (n > 0) return socket.write('HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
      stalled.push(socket);
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc');
    });
    proxy = await startProxy(`${ONE_TRY}      streamIdleTimeout: 300ms\n`);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('abc');
    const next = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(next.body.toString()).toBe('next');
    expect(raw.connections).toBe(2);
    expect(stalled[0]?.destroyed || stalled[0]?.readableEnded).toBe(true);
  });
});

const MALFORMED: readonly (readonly [string, string])[] = [
  [
    'two different Content-Lengths',
    'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!',
  ],
  [
    'Content-Length with chunked',
    'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
  ],
  [
    'an invalid chunk size',
    'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n',
  ],
  ['a negative Content-Length', 'HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok'],
  [
    'a control byte in a header value',
    'HTTP/1.1 200 OK\r\nx-h: a\x01b\r\ncontent-length: 2\r\n\r\nok',
  ],
  ['an obs-folded header', 'HTTP/1.1 200 OK\r\nx-h: a\r\n b\r\ncontent-length: 2\r\n\r\nok'],
  ['status 000', 'HTTP/1.1 000 Zero\r\ncontent-length: 2\r\n\r\nok'],
  [
    'an unsolicited 100 Continue (undici refuses it)',
    'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
  ],
];

describe('malformed answers', () => {
  it.each(MALFORMED)('answers 502 before anything reaches the client: %s', async (name, bytes) => {
    raw = await startRawUpstream((socket) => socket.write(bytes));
    proxy = await startProxy(ONE_TRY);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    // a head that parsed, with a body that did not, is a body cut short
    const error = name === 'an invalid chunk size' ? 'body-cut' : 'reset';
    expect(res.status).toBe(502);
    expect(res.complete).toBe(true);
    expect(res.headers['x-reprise-error']).toBe(error);
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.headers['content-length']).toBe(String(res.body.length));
    expect(JSON.parse(res.body.toString())).toMatchObject({ error });
  });

  it('passes interim 102 and 103 answers by and relays the final one', async () => {
    raw = await startRawUpstream((socket) =>
      socket.write(
        'HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n' +
          'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
      ),
    );
    proxy = await startProxy(ONE_TRY);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('ok');
  });

  it('relays header values that are not ASCII byte for byte', async () => {
    const value = Buffer.concat([Buffer.from('€ café '), Buffer.from([0xe9, 0xff])]);
    raw = await startRawUpstream((socket) =>
      socket.write(
        Buffer.concat([
          Buffer.from('HTTP/1.1 200 OK\r\nx-name: '),
          value,
          Buffer.from('\r\ncontent-length: 2\r\n\r\nok'),
        ]),
      ),
    );
    proxy = await startProxy(ONE_TRY);
    const res = await viaProxy(proxy.port, 'GET', `${raw.origin}/`);
    expect(res.status).toBe(200);
    // node:http hands header bytes over as latin1
    expect(Buffer.from(String(res.headers['x-name']), 'latin1').equals(value)).toBe(true);
  });
});

describe('keep-alive races', () => {
  /**
   * A server that closes idle keep-alive connections: a request that arrives on a reused
   * connection finds it closing half of the time (the request was read, never answered);
   * otherwise it is answered and the connection may close 0–2 ms later.
   */
  function closesIdle(): Step {
    const random = seededRandom(7);
    const served = new WeakMap<object, number>();
    return (req, res) => {
      const count = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, count);
      if (count > 1 && random() < 0.5) return req.socket.destroy();
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok', () => {
        if (random() < 0.3) setTimeout(() => req.socket.destroy(), random() * 2);
      });
    };
  }

  it('never fails a GET and runs each POST at most once', async () => {
    upstream = await startUpstream([closesIdle()]);
    proxy = await startProxy(FAST);
    const gets: Answer[] = [];
    const posts: Answer[] = [];
    for (let i = 0; i < 100; i++) {
      gets.push(await viaProxy(proxy.port, 'GET', `${upstream.origin}/g${i}`));
      posts.push(await viaProxy(proxy.port, 'POST', `${upstream.origin}/p${i}`));
    }
    expect(gets.filter((a) => a.status !== 200)).toEqual([]);
    const ids = upstream.seen.filter((s) => s.method === 'POST').map((s) => s.url);
    expect(new Set(ids).size).toBe(ids.length);
    for (const a of posts) expect([200, 502]).toContain(a.status);
    // the race did happen: GETs were retried after a reset, POSTs were not
    const lines = proxy.requests();
    expect(
      lines.filter((l) => l.method === 'GET' && (l.retries as string[]).includes('reset')).length,
    ).toBeGreaterThan(5);
    expect(posts.filter((a) => a.status === 502).length).toBeGreaterThan(5);
  });
});

describe('an upstream killed under load and restarted', () => {
  it('answers every request with a real answer or a clean error; the breaker opens and recovers', async () => {
    const r = await relayed([{ kind: 'pass' }]);
    // the breaker runs on test time: it stays open until the clock passes openFor
    const clock = manualClock();
    proxy = await startProxy(
      `${FAST}upstreams:\n  - match: "127.0.0.1"\n    circuitBreaker: { consecutiveFailures: 5, failingFor: 0ms, openFor: 300ms, maxOpenFor: 600ms }\n`,
      { now: clock.now },
    );
    const px = proxy;
    const wave = () =>
      Promise.all(Array.from({ length: 10 }, () => viaProxy(px.port, 'GET', `${r.origin}/`)));
    const isOpen = () => px.logs.some((line) => line.msg === 'circuit' && line.to === 'open');

    const healthy = await wave();
    // killed with requests in flight: open connections reset, new connects refused
    const during = wave();
    await r.refuse();
    const down = await during;
    for (let i = 0; i < 5 && !isOpen(); i++) down.push(...(await wave()));
    expect(isOpen()).toBe(true);
    const shed = await wave();
    await r.restore();
    clock.advance(700);
    const probing = await wave();
    const recovered = await wave();

    for (const answer of [...healthy, ...down, ...shed, ...probing, ...recovered]) {
      expect(answer.complete).toBe(true);
      if (answer.status !== 200) {
        expect(CLEAN_ERRORS).toContain(answer.headers['x-reprise-error']);
      }
    }
    expect(healthy.map((a) => a.status)).toEqual(Array(10).fill(200));
    expect(shed.map((a) => a.headers['x-reprise-error'])).toEqual(Array(10).fill('circuit-open'));
    expect(probing.some((a) => a.status === 200)).toBe(true);
    expect(recovered.map((a) => a.status)).toEqual(Array(10).fill(200));
    const transitions = px.logs.filter((l) => l.msg === 'circuit').map((l) => l.to);
    expect(transitions).toEqual(['open', 'half-open', 'closed']);
  });
});
