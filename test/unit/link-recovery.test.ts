/**
 * Telling that the link to an upstream is back from quick answers, on made-up times.
 */
import { describe, expect, it } from 'vitest';
import { LinkRecovery, QUICK_MS, QUIET_MS, WINDOW_MS } from '../../src/resilience/link-recovery.ts';

function watched(link: LinkRecovery): { told: number[]; now: number; stop: () => void } {
  const r = { told: [] as number[], now: 0, stop: () => {} };
  r.stop = link.watch(() => r.told.push(r.now));
  return r;
}

function answer(link: LinkRecovery, r: { now: number }, sentMs: number, nowMs: number): void {
  r.now = nowMs;
  link.answered(sentMs, nowMs);
}

describe('link recovery', () => {
  it('tells the watchers once two tries are answered quickly within the window', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 1000, 1100);
    expect(r.told).toEqual([]);
    answer(link, r, 1300, 1300 + QUICK_MS);
    expect(r.told).toEqual([1500]);
  });

  it('does not tell on one quick answer alone', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 0, 10);
    answer(link, r, 10_000, 10_010);
    expect(r.told).toEqual([]);
  });

  it('does not count slow answers: a resent exchange says nothing of the link now', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 0, 50);
    answer(link, r, 0, 60 + QUICK_MS);
    answer(link, r, 100, 400);
    expect(r.told).toEqual([]);
    answer(link, r, 400, 450);
    expect(r.told).toEqual([450]);
  });

  it('needs the two quick answers within the window of each other', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 0, 10);
    answer(link, r, WINDOW_MS, WINDOW_MS + 11);
    expect(r.told).toEqual([]);
    answer(link, r, WINDOW_MS + 100, WINDOW_MS + 120);
    expect(r.told).toEqual([WINDOW_MS + 120]);
  });

  it('tells once: quick answers that never stop say no link came back', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    for (let at = 0; at < 5000; at += 10) answer(link, r, at, at + 5);
    expect(r.told).toEqual([15]);
  });

  it('tells again after a quiet spell with no quick answer', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    answer(link, r, 0, 10);
    answer(link, r, 20, 30);
    // slow answers only: the link is lossy
    answer(link, r, 100, 1100);
    answer(link, r, 1000 + QUIET_MS, 1030 + QUIET_MS);
    expect(r.told).toEqual([30]);
    answer(link, r, 2100, 2150);
    expect(r.told).toEqual([30, 2150]);
  });

  it('tells on one quick answer when asked to', () => {
    const link = new LinkRecovery(1);
    const r = watched(link);
    answer(link, r, 0, 10);
    expect(r.told).toEqual([10]);
  });

  it('stops telling a watcher that left, and keeps none', () => {
    const link = new LinkRecovery();
    const r = watched(link);
    expect(link.watching).toBe(1);
    r.stop();
    expect(link.watching).toBe(0);
    answer(link, r, 0, 10);
    answer(link, r, 20, 30);
    expect(r.told).toEqual([]);
  });
});
