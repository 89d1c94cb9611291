/**
 * The try kept for a retry starts when the link is back: quick answers to other requests on the
 * same upstream while every try of a request is stuck. Real proxy, real loopback upstream, the
 * proxy's clock stepped by the test.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.ts';
import { PROBE_EVERY_MS } from '../../src/resilience/link-probe.ts';
import { manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { hang, reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

const HEDGED = `${FAST}      attempts: 3\n      hedge: { after: 50ms, max: 2 }\n`;

describe('a request whose tries are all stuck', () => {
  it('starts its last try once three other requests are answered at once', async () => {
    // the stuck request's two tries, three quick answers to others, then its last try
    const up = await startUpstream([
      hang(),
      hang(),
      reply(200, 'other'),
      reply(200, 'other'),
      reply(200, 'other'),
      reply(200, 'fresh'),
    ]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const stuck = viaProxy(px.port, 'GET', `${up.origin}/stuck`);
    await until(() => up.heads === 1 && clock.armedFor(50) === 1);
    await clock.advance(50);
    await until(() => up.heads === 2);
    // the hedge has waited what a hedge waits for: both tries are late
    await clock.advance(50);
    for (const path of ['/a', '/b', '/c']) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}${path}`);
      expect(res.body.toString()).toBe('other');
    }
    const res = await stuck;
    expect(res.body.toString()).toBe('fresh');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual([
      '1',
      '2',
      '1',
      '1',
      '1',
      '3',
    ]);
    const line = px.requests().find((l) => l.path === '/stuck');
    expect(line).toMatchObject({ status: 200, attempts: 3, won: 3, hedges: ['lost', 'won'] });
  });
});

describe('the link probe', () => {
  /** A request to `up` whose two tries hang: it watches the link (hedge.max in flight). */
  async function stuck() {
    const up = await startUpstream([hang()]);
    const clock = manualClock();
    const px = await startProxy(HEDGED, clock.options);
    const client = new AbortController();
    void viaProxy(px.port, 'GET', `${up.origin}/stuck`, { signal: client.signal }).catch(() => {});
    await until(() => up.heads === 1 && clock.armedFor(50) === 1);
    await clock.advance(50);
    await until(() => up.heads === 2 && clock.armedFor(PROBE_EVERY_MS) === 1);
    /** The client leaves: the request ends, and nobody watches. */
    const leave = async (): Promise<void> => {
      client.abort();
      await until(() => px.requests().length === 1);
    };
    return { up, clock, px, leave };
  }

  /** Time enough for a connect on loopback, had one been started. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  it('connects to the upstream a request waits on, sends it nothing, and stops with the request', async () => {
    const { up, clock, leave } = await stuck();
    expect(up.connections).toBe(2);
    await clock.advance(PROBE_EVERY_MS);
    await until(() => up.connections === 3);
    expect(up.heads).toBe(2);
    await leave();
    for (let i = 0; i < 10; i++) {
      await clock.advance(PROBE_EVERY_MS);
      await settle();
    }
    expect(up.connections).toBe(3);
    expect(clock.armedFor(PROBE_EVERY_MS)).toBe(0);
  });

  it('never connects to an upstream in access.deniedUpstreams', async () => {
    const { up, clock, px, leave } = await stuck();
    const denied = 'access:\n  deniedUpstreams: [127.0.0.0/8, ::1/128]\n';
    const text = `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${HEDGED}${denied}`;
    await px.app.reload(loadConfigText(text, 'reload.yaml'));
    for (let i = 0; i < 10; i++) {
      await clock.advance(PROBE_EVERY_MS);
      await settle();
    }
    // still probing (a denied dial is a probe that did not connect), never connecting
    expect(clock.armedFor(PROBE_EVERY_MS)).toBe(1);
    expect(up.connections).toBe(2);
    await leave();
  });
});
