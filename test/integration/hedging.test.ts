/**
 * Hedging (SPEC §3): a second try of a safe request while the first still waits; the first
 * final answer wins and the other is cancelled. Real proxy, real loopback upstream.
 */
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { type ManualClock, manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startRawUpstream } from '../helpers/fault-relay.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { delayed, echo, reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

closeAfterEach();

const HEDGED = `${FAST}      hedge: { after: 50ms, max: 2 }\n`;

/**
 * hedge.after passes on the proxy's clock once the first try is sent: its head at the upstream
 * (a hedge timer that ran out before that would wait for the send, and start again).
 */
async function hedgeAfter(clock: ManualClock, up: Upstream): Promise<void> {
  await until(() => up.heads === 1 && clock.armedFor(50) === 1);
  await clock.advance(50);
}

/** While the one try is at the upstream, a second of the proxy's time passes: any hedge would start. */
async function passWhileWaiting(clock: ManualClock, up: Upstream) {
  await until(() => up.heads === 1);
  await clock.advance(1_000);
}

async function metrics(adminPort: number): Promise<string[]> {
  return (await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).split('\n');
}

/** Tries in flight to every upstream together. */
async function inFlight(adminPort: number): Promise<number> {
  const state = (await (await fetch(`http://127.0.0.1:${adminPort}/state`)).json()) as {
    upstreams: { inFlight: number }[];
  };
  return state.upstreams.reduce((sum, u) => sum + u.inFlight, 0);
}

/** Tries in flight to every upstream together, once that is 0 (the test's timeout bounds it). */
async function settledInFlight(adminPort: number): Promise<number> {
  for (;;) {
    const n = await inFlight(adminPort);
    if (n === 0) return n;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('a hedged GET', () => {
  it('gets the hedge answer when the first try stalls, and cancels the first', async () => {
    const up = await startUpstream([delayed(10_000, reply(200, 'slow')), reply(200, 'fast')]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/item`);
    await hedgeAfter(clock, up);
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('fast');
    expect(res.headers['x-reprise-attempts']).toBe('2');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2']);
    expect(px.requests()[0]).toMatchObject({ status: 200, attempts: 2, won: 2, hedges: ['won'] });
    const up80 = up.origin.slice(7);
    const lines = await metrics(px.adminPort);
    const series = `reprise_hedges_total{route="default",upstream="${up80}",result=`;
    expect(lines).toContain(`${series}"won"} 1`);
    expect(lines).toContain(`${series}"lost"} 0`);
    // the cancelled try and the hedge gave back their slots
    expect(await settledInFlight(px.adminPort)).toBe(0);
  });

  it('keeps the first answer when it comes before hedge.after: one try', async () => {
    const up = await startUpstream([delayed(200, reply(200, 'quick'))]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`);
    // 49 of hedge.after's 50 ms pass on the proxy's clock while the first try waits
    await until(() => up.heads === 1 && clock.armedFor(50) === 1);
    await clock.advance(49);
    const res = await answer;
    expect(res.body.toString()).toBe('quick');
    expect(up.heads).toBe(1);
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ attempts: 1 });
    expect(px.requests()[0]?.won).toBeUndefined();
  });

  it('reports a hedge that lost the race', async () => {
    const up = await startUpstream([
      delayed(150, reply(200, 'first')),
      delayed(10_000, reply(200)),
    ]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`);
    await hedgeAfter(clock, up);
    const res = await answer;
    expect(res.body.toString()).toBe('first');
    expect(px.requests()[0]).toMatchObject({ won: 1, hedges: ['lost'] });
  });
});

describe('a try whose held body stalls beside a hedge', () => {
  const WHOLE = Buffer.alloc(4811, 99);
  const HEAD = `HTTP/1.1 200 OK\r\ncontent-length: ${WHOLE.length}\r\n\r\n`;

  it('is kept: the rest of its body comes after bodyTimeout, and it answers', async () => {
    let first: Socket | undefined;
    // try 1: the head and 10 bytes, the rest when the test says; the hedge: nothing
    const raw = await startRawUpstream((socket, n) => {
      if (n > 0) return;
      first = socket;
      socket.write(HEAD + WHOLE.subarray(0, 10).toString('latin1'));
    });
    onTestFinished(() => raw.close());
    const clock = manualClock();
    const px = await startProxy(`${HEDGED}      bodyTimeout: 200ms\n`, clock.options);
    const answer = viaProxy(px.port, 'GET', `${raw.origin}/doc`);
    // try 1's body is held (its stall timer runs) when hedge.after passes
    await until(() => clock.armedFor(200) === 1 && clock.armedFor(50) === 1);
    await clock.advance(50);
    await until(() => raw.heads.length === 2);
    // the body stalls past bodyTimeout: cut, it would start nothing, as the hedge waits
    await clock.advance(150);
    first?.write(WHOLE.subarray(10));
    const res = await answer;
    expect(res.status).toBe(200);
    expect(res.body.equals(WHOLE)).toBe(true);
    expect(px.requests()[0]).toMatchObject({ status: 200, attempts: 2, won: 1, hedges: ['lost'] });
  });

  it('on the last try, is answered as it comes instead of cut', async () => {
    let first: Socket | undefined;
    // try 1: the head and 10 bytes, the rest when the test says; the hedge: refused at once
    const raw = await startRawUpstream((socket, n) => {
      if (n > 0) {
        socket.destroy();
        return;
      }
      first = socket;
      socket.write(HEAD + WHOLE.subarray(0, 10).toString('latin1'));
    });
    onTestFinished(() => raw.close());
    const clock = manualClock();
    const px = await startProxy(
      `${HEDGED}      attempts: 2\n      bodyTimeout: 200ms\n`,
      clock.options,
    );
    const answer = viaProxy(px.port, 'GET', `${raw.origin}/doc`);
    await until(() => clock.armedFor(200) === 1 && clock.armedFor(50) === 1);
    await clock.advance(50);
    // the hedge, the last try, fails (its slot given back): no retry could replace try 1 now
    await until(() => raw.heads.length === 2);
    while ((await inFlight(px.adminPort)) > 1) await new Promise((r) => setTimeout(r, 5));
    await clock.advance(150);
    // the client gets the head; the body follows as it comes
    first?.write(WHOLE.subarray(10));
    const got = await answer;
    expect(got.status).toBe(200);
    expect(got.body.equals(WHOLE)).toBe(true);
    expect(px.requests()[0]).toMatchObject({ status: 200, won: 1 });
  });
});

describe('a hedged request with a body', () => {
  it('gives each try its own replay of the whole body', async () => {
    const body = Buffer.alloc(40_000, 7);
    const up = await startUpstream([delayed(10_000, echo()), echo()]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`, {
      headers: { 'content-length': String(body.length) },
      body: [body.subarray(0, 20_000), body.subarray(20_000)],
    });
    await hedgeAfter(clock, up);
    const res = await answer;
    expect(res.body.equals(body)).toBe(true);
    expect(up.seen).toHaveLength(2);
    expect(up.seen[1]?.body.equals(body)).toBe(true);
  });

  it('gives a hedge that starts while the body still arrives the copy, then the rest', async () => {
    const body = Buffer.alloc(40_000, 9);
    const up = await startUpstream([delayed(10_000, echo()), echo()]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = new Promise<Buffer>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: px.port,
        method: 'GET',
        path: `${up.origin}/`,
        headers: { 'content-length': String(body.length) },
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks)));
      });
      req.write(body.subarray(0, 20_000));
      // the rest only once the hedge has started (it replays the first half, then follows)
      const rest = setInterval(() => {
        if (up.connections >= 2) {
          clearInterval(rest);
          req.end(body.subarray(20_000));
        }
      }, 5);
    });
    await hedgeAfter(clock, up);
    expect((await answer).equals(body)).toBe(true);
    // both tries had the whole body, whichever the upstream finished reading first
    expect(up.seen.map((s) => s.headers['x-reprise-attempt']).sort()).toEqual(['1', '2']);
    expect(up.seen.every((s) => s.body.equals(body))).toBe(true);
  });
});

describe('what is never hedged', () => {
  it('does not hedge a POST, even with an idempotency key', async () => {
    const up = await startUpstream([delayed(200, echo())]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const answer = viaProxy(px.port, 'POST', `${up.origin}/`, {
      body: 'once',
      headers: { 'idempotency-key': 'k1' },
    });
    await passWhileWaiting(clock, up);
    const res = await answer;
    expect(res.body.toString()).toBe('once');
    expect(up.seen).toHaveLength(1);
  });

  it('does not hedge with hedge.after: off', async () => {
    const up = await startUpstream([delayed(200, reply(200, 'one'))]);
    const clock = manualClock();
    const px = await startProxy(`${FAST}      hedge: { after: 'off' }\n`, clock.options);
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`);
    await passWhileWaiting(clock, up);
    await answer;
    expect(up.seen).toHaveLength(1);
  });

  it('does not hedge past the budget: the hedge is counted as suppressed', async () => {
    const up = await startUpstream([delayed(200, reply(200, 'one'))]);
    const clock = manualClock();
    const px = await startProxy(
      `${HEDGED}  upstream:\n    budget: { ratio: 0, minPerSecond: 0 }\n`,
      clock.options,
    );
    const answer = viaProxy(px.port, 'GET', `${up.origin}/`);
    await hedgeAfter(clock, up);
    const res = await answer;
    expect(res.body.toString()).toBe('one');
    expect(up.seen).toHaveLength(1);
    expect(px.requests()[0]).toMatchObject({ hedges: ['suppressed'] });
  });
});
