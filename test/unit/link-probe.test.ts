/**
 * The link probe's schedule on a stepped clock, with a connect that answers when the test says.
 */
import { describe, expect, it } from 'vitest';
import { LinkProbe, PROBE_EVERY_MS } from '../../src/resilience/link-probe.ts';
import { LinkRecovery, QUICK_MS, QUIET_MS } from '../../src/resilience/link-recovery.ts';
import { manualClock } from '../helpers/clock.ts';

const ORIGIN = 'http://a:80';

interface Connect {
  readonly origin: string;
  readonly atMs: number;
  done: (connected: boolean) => void;
  cancelled: boolean;
}

function setUp() {
  const clock = manualClock(0);
  const connects: Connect[] = [];
  let probe: LinkProbe | undefined;
  const link = new LinkRecovery({ onWatched: (origin) => probe?.start(origin) });
  probe = new LinkProbe(link, {
    timers: clock.timers,
    now: clock.now,
    connect: (origin, done) => {
      const c: Connect = { origin, atMs: clock.now(), done, cancelled: false };
      connects.push(c);
      return () => {
        c.cancelled = true;
      };
    },
  });
  return { clock, connects, link, probe };
}

describe('link probe', () => {
  it('probes nothing while nobody watches', async () => {
    const { clock, connects, probe } = setUp();
    await clock.advance(10 * PROBE_EVERY_MS);
    expect(connects).toEqual([]);
    expect(probe.running).toBe(false);
  });

  it('probes every PROBE_EVERY_MS once watched and quiet, and stops when unwatched', async () => {
    const { clock, connects, link, probe } = setUp();
    const stop = link.watch(() => {}, ORIGIN);
    for (let i = 0; i < 3; i++) {
      await clock.advance(PROBE_EVERY_MS);
      if (i < 2) connects[i]?.done(false);
    }
    expect(connects.map((c) => [c.origin, c.atMs])).toEqual([
      [ORIGIN, PROBE_EVERY_MS],
      [ORIGIN, 2 * PROBE_EVERY_MS],
      [ORIGIN, 3 * PROBE_EVERY_MS],
    ]);
    stop();
    await clock.advance(PROBE_EVERY_MS);
    expect(probe.running).toBe(false);
    expect(clock.armed).toBe(0);
    expect(connects.length).toBe(3);
    // the one in flight is abandoned and its end teaches nothing
    expect(connects[2]?.cancelled).toBe(true);
    expect(probe.pending).toBe(0);
    await clock.advance(10 * PROBE_EVERY_MS);
    expect(connects.length).toBe(3);
  });

  it('runs one loop however many watch', async () => {
    const { clock, connects, link } = setUp();
    link.watch(() => {}, ORIGIN);
    link.watch(() => {}, ORIGIN);
    link.watch(() => {}, ORIGIN);
    expect(clock.armed).toBe(1);
    await clock.advance(PROBE_EVERY_MS);
    expect(connects.length).toBe(1);
  });

  it('keeps no more than two connects in flight', async () => {
    const { clock, connects, link, probe } = setUp();
    link.watch(() => {}, ORIGIN);
    await clock.advance(5 * PROBE_EVERY_MS);
    expect(connects.length).toBe(2);
    expect(probe.pending).toBe(2);
    connects[0]?.done(false);
    await clock.advance(PROBE_EVERY_MS);
    expect(connects.length).toBe(3);
  });

  it('pauses while quick connects say the link is sound, and probes again once quiet', async () => {
    const { clock, connects, link } = setUp();
    link.watch(() => {}, ORIGIN);
    await clock.advance(PROBE_EVERY_MS);
    connects[0]?.done(true);
    await clock.advance(QUIET_MS - PROBE_EVERY_MS);
    expect(connects.length).toBe(1);
    await clock.advance(2 * PROBE_EVERY_MS);
    expect(connects.length).toBe(2);
  });

  it('tells the watchers after three quick connects following a lost one', async () => {
    const { clock, connects, link } = setUp();
    const told: number[] = [];
    link.watch(() => told.push(clock.now()), ORIGIN);
    await clock.advance(PROBE_EVERY_MS);
    await clock.advance(QUICK_MS);
    connects[0]?.done(false);
    for (let i = 1; i <= 3; i++) {
      await clock.advance(PROBE_EVERY_MS);
      expect(told).toEqual([]);
      (connects[i] as Connect).done(true);
    }
    expect(told).toEqual([clock.now()]);
  });

  it('tells nothing from quick connects alone: a slow upstream on a sound link', async () => {
    const { clock, connects, link } = setUp();
    const told: number[] = [];
    link.watch(() => told.push(clock.now()), ORIGIN);
    for (let step = 0; step < 100; step++) {
      await clock.advance(PROBE_EVERY_MS);
      for (const c of connects) c.done(true);
    }
    expect(connects.length).toBeGreaterThan(5);
    expect(told).toEqual([]);
  });

  it('counts a connect that took longer than QUICK_MS as lost', async () => {
    const { clock, connects, link } = setUp();
    const told: number[] = [];
    link.watch(() => told.push(clock.now()), ORIGIN);
    const next = async (ms = PROBE_EVERY_MS): Promise<Connect> => {
      await clock.advance(ms);
      return connects.at(-1) as Connect;
    };
    (await next()).done(false);
    (await next()).done(true);
    (await next()).done(true);
    const slow = await next();
    const during = await next(QUICK_MS);
    await clock.advance(1);
    slow.done(true);
    expect(told).toEqual([]);
    during.done(true);
    (await next(2 * PROBE_EVERY_MS - QUICK_MS - 1)).done(true);
    expect(told).toEqual([]);
    (await next()).done(true);
    expect(told).toEqual([clock.now()]);
  });
});
