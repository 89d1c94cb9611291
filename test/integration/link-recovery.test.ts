/**
 * Tries under a lost link, on a real proxy and a real loopback upstream, the proxy's clock
 * stepped by the test: the try kept for a retry starts when the link is back (once a probe saw
 * it lost: quick connects, and quick answers to other requests on the same upstream), a retry
 * after tries lost in the link waits for it, and what the probe itself does.
 */
import { type AddressInfo, BlockList, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.ts';
import { Dialer } from '../../src/proxy/upstream/dialer.ts';
import { probeConnects } from '../../src/proxy/upstream/probe-connect.ts';
import { PROBE_EVERY_MS } from '../../src/resilience/link-probe.ts';
import { type ManualClock, manualClock, until } from '../helpers/clock.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, viaProxy } from '../helpers/proxy.ts';
import { hang, reply, startUpstream } from '../helpers/upstream.ts';

closeAfterEach();

const HEDGED = `${FAST}      attempts: 3\n      hedge: { after: 50ms, max: 2 }\n`;

/** The proxy's config, with every loopback address denied or not. */
function config(denyLoopback: boolean) {
  const denied = denyLoopback ? 'access:\n  deniedUpstreams: [127.0.0.0/8, ::1/128]\n' : '';
  const text = `version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n${HEDGED}${denied}`;
  return loadConfigText(text, 'reload.yaml');
}

/** Time enough for a connect on loopback, had one been started. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Steps the proxy's clock `ticks` probe intervals, each tick's connect let happen, until `done`. */
async function probeTicks(clock: ManualClock, ticks: number, done = () => false): Promise<void> {
  for (let i = 0; i < ticks && !done(); i++) {
    await clock.advance(PROBE_EVERY_MS);
    await settle();
  }
}

/** A request whose two tries hang and have waited what a hedge waits for. */
async function stuckRequest(answers: ReturnType<typeof reply>[]) {
  const up = await startUpstream([hang(), hang(), ...answers]);
  const clock = manualClock();
  const px = await startProxy(HEDGED, clock.options);
  const client = new AbortController();
  const stuck = viaProxy(px.port, 'GET', `${up.origin}/stuck`, { signal: client.signal });
  await until(() => up.heads === 1 && clock.armedFor(50) === 1);
  await clock.advance(50);
  await until(() => up.heads === 2);
  await clock.advance(50);
  return { up, clock, px, client, stuck };
}

describe('a request whose tries are all stuck', () => {
  it('starts its last try once a probe saw the link lost and then back', async () => {
    const { up, clock, px, stuck } = await stuckRequest([reply(200, 'fresh')]);
    // a probe that cannot connect (the upstream denied for a moment) sees the link down
    await px.app.reload(config(true));
    await probeTicks(clock, 2);
    expect(up.heads).toBe(2);
    // then quick connects say it is back: the kept try starts, the oldest making room
    await px.app.reload(config(false));
    await probeTicks(clock, 6, () => up.heads !== 2);
    const res = await stuck;
    expect(res.body.toString()).toBe('fresh');
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '3']);
    const line = px.requests().find((l) => l.path === '/stuck');
    expect(line).toMatchObject({ status: 200, attempts: 3, won: 3, hedges: ['lost', 'won'] });
    // the operator reads both turns of the link in the log
    const links = px.logs.filter((l) => l.msg === 'link');
    const upstream = new URL(up.origin).host;
    expect(links).toMatchObject([
      { level: 'warn', upstream, link: 'down' },
      { level: 'info', upstream, link: 'back' },
    ]);
  });

  it('gets no try more from quick answers to others alone: slow is not lost', async () => {
    const others = [reply(200, 'other'), reply(200, 'other'), reply(200, 'other')];
    const { up, clock, px, client, stuck } = await stuckRequest(others);
    for (const path of ['/a', '/b', '/c']) {
      const res = await viaProxy(px.port, 'GET', `${up.origin}${path}`);
      expect(res.body.toString()).toBe('other');
    }
    // probes connect at once on this sound link (one each quiet second): it is never seen down
    const before = up.connections;
    await probeTicks(clock, 20);
    expect(up.connections).toBeGreaterThan(before);
    expect(px.logs.filter((l) => l.msg === 'link')).toEqual([]);
    expect(up.heads).toBe(5);
    client.abort();
    await stuck.catch(() => {});
    await until(() => px.requests().some((l) => l.path === '/stuck'));
    expect(up.seen.map((s) => s.headers['x-reprise-attempt'])).toEqual(['1', '2', '1', '1', '1']);
  });
});

describe('a retry after tries lost in the link', () => {
  it('waits while the link is seen down and goes when it is back', async () => {
    const { up, clock, px, stuck } = await stuckRequest([reply(200, 'fresh')]);
    // a probe connects at once (the link can be seen back), then one that cannot (the
    // upstream denied for a moment) sees the link down
    const connected = up.connections;
    await clock.advance(PROBE_EVERY_MS);
    await until(() => up.connections > connected);
    await px.app.reload(config(true));
    await probeTicks(clock, 2);
    // both tries have their perTryTimeout (10 s): the retry is due, and waits for the link
    // (made now, it would be refused: the upstream is still denied). Stepped at once: a denied
    // probe settles without I/O, so no tick needs real time
    await clock.advance(10_500);
    await settle();
    expect(px.requests()).toEqual([]);
    expect(up.heads).toBe(2);
    // quick connects say the link is back: the retry goes
    await px.app.reload(config(false));
    await probeTicks(clock, 6, () => up.heads !== 2);
    const res = await stuck;
    expect(res.body.toString()).toBe('fresh');
    const line = px.requests().find((l) => l.path === '/stuck');
    expect(line).toMatchObject({ status: 200, attempts: 3, retries: ['timeout'] });
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

  it('connects to the upstream a request waits on, sends it nothing, and stops with the request', async () => {
    const { up, clock, leave } = await stuck();
    expect(up.connections).toBe(2);
    await clock.advance(PROBE_EVERY_MS);
    await until(() => up.connections === 3);
    expect(up.heads).toBe(2);
    await leave();
    await probeTicks(clock, 10);
    expect(up.connections).toBe(3);
    expect(clock.armedFor(PROBE_EVERY_MS)).toBe(0);
  });

  it('never connects to an upstream in access.deniedUpstreams', async () => {
    const { up, clock, px, leave } = await stuck();
    await px.app.reload(config(true));
    await probeTicks(clock, 10);
    // still probing (a denied dial is a probe that did not connect), never connecting
    expect(clock.armedFor(PROBE_EVERY_MS)).toBe(1);
    expect(up.connections).toBe(2);
    await leave();
  });

  it('takes a refused connect for an answer over the link, a denied one for none', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    const probe = (dialer: Dialer) =>
      new Promise<boolean>((resolve) => probeConnects(dialer)(`http://127.0.0.1:${port}`, resolve));
    expect(await probe(new Dialer())).toBe(true);
    const denied = new BlockList();
    denied.addSubnet('127.0.0.0', 8);
    expect(await probe(new Dialer({ deniedUpstreams: () => denied }))).toBe(false);
  });
});
