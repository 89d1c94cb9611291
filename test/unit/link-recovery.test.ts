/**
 * Telling that the link to an upstream is back from quick events (answers, probes' connects),
 * on made-up times.
 */
import { describe, expect, it } from 'vitest';
import {
  LinkRecovery,
  QUICK_EVENTS,
  QUICK_MS,
  QUIET_MS,
  WINDOW_MS,
} from '../../src/resilience/link-recovery.ts';

function watched(link: LinkRecovery): { told: number[]; now: number; stop: () => void } {
  const r = { told: [] as number[], now: 0, stop: () => {} };
  r.stop = link.watch(() => r.told.push(r.now), 'http://a:80');
  return r;
}

function answer(link: LinkRecovery, r: { now: number }, sentMs: number, nowMs: number): void {
  r.now = nowMs;
  link.answered(sentMs, nowMs);
}

function probe(
  link: LinkRecovery,
  r: { now: number },
  startMs: number,
  nowMs: number,
  ok: boolean,
) {
  r.now = nowMs;
  link.probed(startMs, nowMs, ok);
}

/** A probe that did not connect in time, ending at `nowMs`: the link is seen down. */
function lost(link: LinkRecovery, r: { now: number }, nowMs: number): void {
  probe(link, r, nowMs - QUICK_MS, nowMs, false);
}

describe('link recovery', () => {
  it('needs three quick events to say the link is back', () => {
    expect(QUICK_EVENTS).toBe(3);
  });

  it('tells the watchers once three tries are answered quickly within the window', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 900);
    answer(link, r, 1000, 1100);
    answer(link, r, 1150, 1200);
    expect(r.told).toEqual([]);
    answer(link, r, 1300, 1300 + QUICK_MS);
    expect(r.told).toEqual([1500]);
  });

  it('does not tell on two quick answers alone', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 0);
    answer(link, r, 0, 10);
    answer(link, r, 20, 30);
    lost(link, r, 5000);
    answer(link, r, 10_000, 10_010);
    answer(link, r, 10_020, 10_030);
    expect(r.told).toEqual([]);
  });

  it('does not count slow answers: a resent exchange says nothing of the link now', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 0);
    answer(link, r, 0, 50);
    answer(link, r, 0, 60 + QUICK_MS);
    answer(link, r, 100, 150);
    answer(link, r, 100, 400);
    expect(r.told).toEqual([]);
    answer(link, r, 400, 450);
    expect(r.told).toEqual([450]);
  });

  it('needs the quick events within the window of each other', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 0);
    answer(link, r, 0, 10);
    answer(link, r, 20, 30);
    answer(link, r, WINDOW_MS, WINDOW_MS + 11);
    expect(r.told).toEqual([]);
    answer(link, r, WINDOW_MS + 100, WINDOW_MS + 120);
    expect(r.told).toEqual([]);
    answer(link, r, WINDOW_MS + 130, WINDOW_MS + 140);
    expect(r.told).toEqual([WINDOW_MS + 140]);
  });

  it('tells once: quick answers that never stop say no link came back', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 0);
    for (let at = 0; at < 5000; at += 10) answer(link, r, at, at + 5);
    expect(r.told).toEqual([25]);
  });

  it('never tells on quick answers alone, even after an idle spell: idle is not loss', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    for (const at of [0, 20, 40]) answer(link, r, at, at + 10);
    // nothing for a while, then quick answers again: the link was idle, not lost
    for (const at of [5000, 5020, 5040, 5060]) answer(link, r, at, at + 10);
    expect(r.told).toEqual([]);
  });

  it('tells again once a probe is lost again', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 0);
    for (const at of [0, 20, 40]) answer(link, r, at, at + 10);
    expect(r.told).toEqual([50]);
    // slow answers and a quiet spell: nothing new is known of the link
    answer(link, r, 100, 1100);
    for (const at of [2000, 2020, 2040]) answer(link, r, at, at + 10);
    expect(r.told).toEqual([50]);
    lost(link, r, 3000);
    for (const at of [3000, 3020, 3040]) answer(link, r, at, at + 10);
    expect(r.told).toEqual([50, 3050]);
  });

  it('tells on one quick event when asked to', () => {
    const link = new LinkRecovery({ quickEvents: 1 });
    const r = watched(link);
    lost(link, r, 0);
    answer(link, r, 0, 10);
    expect(r.told).toEqual([10]);
  });

  it('stops telling a watcher that left, and keeps none', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    expect(link.watching).toBe(1);
    r.stop();
    expect(link.watching).toBe(0);
    lost(link, r, 0);
    for (const at of [0, 20, 40]) answer(link, r, at, at + 10);
    expect(r.told).toEqual([]);
  });
});

describe('link recovery from probes', () => {
  it('is down once a probe did not connect in time, and back after three quick connects', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    probe(link, r, 0, QUICK_MS, false);
    probe(link, r, 150, 160, true);
    probe(link, r, 300, 310, true);
    expect(r.told).toEqual([]);
    probe(link, r, 450, 460, true);
    expect(r.told).toEqual([460]);
  });

  it('counts a connect made after QUICK_MS as the link still down', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    probe(link, r, 0, 10, true);
    probe(link, r, 100, 110, true);
    probe(link, r, 200, 201 + QUICK_MS, true);
    probe(link, r, 300, 310, true);
    expect(r.told).toEqual([]);
    probe(link, r, 400, 410, true);
    probe(link, r, 500, 510, true);
    expect(r.told).toEqual([510]);
  });

  it('never tells where probes always connect: a slow upstream on a sound link', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    for (let at = 0; at < 20_000; at += 150) {
      probe(link, r, at, at + 5, true);
      if (at % 3000 === 0) answer(link, r, at - 2000, at + 1);
    }
    expect(r.told).toEqual([]);
  });

  it('counts probes and answers alike in the window', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    probe(link, r, 0, QUICK_MS, false);
    answer(link, r, 250, 300);
    probe(link, r, 300, 320, true);
    answer(link, r, 350, 400);
    expect(r.told).toEqual([400]);
  });

  it('wants a probe while watched and down or quiet, and never unwatched', () => {
    const link = new LinkRecovery();
    expect(link.wantsProbe(0)).toBe(false);
    const stop = link.watch(() => {}, 'http://a:80');
    expect(link.wantsProbe(0)).toBe(true);
    link.probed(0, 5, true);
    expect(link.wantsProbe(5 + QUIET_MS - 1)).toBe(false);
    expect(link.wantsProbe(5 + QUIET_MS)).toBe(true);
    link.probed(2000, 2000 + QUICK_MS, false);
    link.probed(2200, 2210, true);
    expect(link.wantsProbe(2300)).toBe(true);
    stop();
    expect(link.wantsProbe(2300)).toBe(false);
  });

  it('calls back on each watch, for the probe to start', () => {
    let started = 0;
    const link = new LinkRecovery({ onWatched: () => started++ });
    const stop = link.watch(() => {}, 'http://a:80');
    link.watch(() => {}, 'http://a:80');
    stop();
    expect(started).toBe(2);
  });

  it('says once when the link is seen down, and once when it is back', () => {
    const changes: string[] = [];
    const link = new LinkRecovery({ onChange: (state) => changes.push(state) });
    const r = watched(link);
    for (const at of [0, 20, 40]) answer(link, r, at, at + 10);
    expect(changes).toEqual([]);
    lost(link, r, 1000);
    lost(link, r, 1150);
    expect(changes).toEqual(['down']);
    for (const at of [1200, 1220, 1240]) answer(link, r, at, at + 10);
    for (const at of [1300, 1320, 1340]) answer(link, r, at, at + 10);
    expect(changes).toEqual(['down', 'back']);
  });
});

describe('down, for a retry deciding whether to wait', () => {
  it('is down from a lost probe until back, once the link was seen quick', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 0, 10);
    expect(link.down).toBe(false);
    lost(link, r, 1000);
    expect(link.down).toBe(true);
    for (const at of [1100, 1250, 1400]) probe(link, r, at, at + 10, true);
    expect(r.told).toEqual([1410]);
    expect(link.down).toBe(false);
  });

  it('is never down where nothing was ever quick: it could never be seen back', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    lost(link, r, 1000);
    answer(link, r, 1000, 1500);
    expect(link.down).toBe(false);
  });
});
