import { describe, expect, it } from 'vitest';
import { RecentTries } from '../../src/resilience/recent-tries.ts';

describe('RecentTries', () => {
  it('keeps only the last `capacity` tries', () => {
    const recent = new RecentTries(3, 10_000);
    recent.add(0, true);
    recent.add(1, true);
    recent.add(2, false);
    expect([recent.tries, recent.failures]).toEqual([3, 2]);
    recent.add(3, false);
    expect([recent.tries, recent.failures]).toEqual([3, 1]);
    recent.add(4, false);
    expect([recent.tries, recent.failures]).toEqual([3, 0]);
  });

  it('forgets tries once they are windowMs old', () => {
    const recent = new RecentTries(10, 1_000);
    recent.add(0, true);
    recent.add(500, true);
    recent.add(999, false);
    expect([recent.tries, recent.failures]).toEqual([3, 2]);
    recent.add(1_000, false);
    expect([recent.tries, recent.failures]).toEqual([3, 1]);
    recent.add(5_000, true);
    expect([recent.tries, recent.failures]).toEqual([1, 1]);
  });

  it('wraps around its ring many times without drifting', () => {
    const recent = new RecentTries(7, 1e9);
    for (let i = 0; i < 1_000; i++) recent.add(i, i % 2 === 0);
    // the last 7 are 993..999: 994, 996, 998 failed
    expect([recent.tries, recent.failures]).toEqual([7, 3]);
  });

  it('starts empty after reset', () => {
    const recent = new RecentTries(3, 1_000);
    recent.add(0, true);
    recent.reset();
    expect([recent.tries, recent.failures]).toEqual([0, 0]);
    recent.add(1, false);
    expect([recent.tries, recent.failures]).toEqual([1, 0]);
  });

  it('refuses a capacity below 1 or a window that is not positive', () => {
    expect(() => new RecentTries(0, 1_000)).toThrow(RangeError);
    expect(() => new RecentTries(3, 0)).toThrow(RangeError);
  });
});
