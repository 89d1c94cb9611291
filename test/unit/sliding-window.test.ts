import { describe, expect, it } from 'vitest';
import { SlidingWindow } from '../../src/resilience/sliding-window.ts';

describe('SlidingWindow', () => {
  it('sums events added within the window', () => {
    const w = new SlidingWindow(10_000, 1);
    w.add(0, 0);
    w.add(2_500, 0, 3);
    w.add(9_000, 0);
    expect(w.total(9_500, 0)).toBe(5);
  });

  it('keeps channels apart', () => {
    const w = new SlidingWindow(10_000, 2);
    w.add(0, 0, 4);
    w.add(0, 1);
    expect(w.total(0, 0)).toBe(4);
    expect(w.total(0, 1)).toBe(1);
  });

  it('drops an event when its bucket leaves the window', () => {
    const w = new SlidingWindow(10_000, 1);
    w.add(500, 0);
    expect(w.total(9_999, 0)).toBe(1);
    expect(w.total(10_000, 0)).toBe(0);
  });

  it('slides one bucket at a time', () => {
    const w = new SlidingWindow(10_000, 1);
    w.add(0, 0);
    w.add(5_000, 0, 2);
    expect(w.total(10_000, 0)).toBe(2);
    expect(w.total(14_999, 0)).toBe(2);
    expect(w.total(15_000, 0)).toBe(0);
  });

  it('clears everything after a clock jump longer than the window', () => {
    const w = new SlidingWindow(10_000, 1);
    for (let t = 0; t < 10_000; t += 1_000) w.add(t, 0);
    expect(w.total(9_999, 0)).toBe(10);
    expect(w.total(60_000, 0)).toBe(0);
    w.add(60_000, 0);
    expect(w.total(60_000, 0)).toBe(1);
  });

  it('counts a clock that steps back into the newest bucket', () => {
    const w = new SlidingWindow(10_000, 1);
    w.add(5_000, 0);
    w.add(1_000, 0);
    expect(w.total(5_000, 0)).toBe(2);
    expect(w.total(15_000, 0)).toBe(0);
  });

  it('forgets every event on reset', () => {
    const w = new SlidingWindow(10_000, 2);
    w.add(0, 0);
    w.add(0, 1);
    w.reset();
    expect(w.total(0, 0)).toBe(0);
    expect(w.total(0, 1)).toBe(0);
  });

  it('rejects a window that is not positive', () => {
    expect(() => new SlidingWindow(0, 1)).toThrow(RangeError);
    expect(() => new SlidingWindow(1_000, 0)).toThrow(RangeError);
  });
});
