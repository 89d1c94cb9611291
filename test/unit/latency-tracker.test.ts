import { describe, expect, it } from 'vitest';
import { LatencyTracker } from '../../src/resilience/latency-tracker.ts';

describe('LatencyTracker', () => {
  it('knows nothing before the first answer', () => {
    expect(new LatencyTracker(8, 0.9).quantileMs()).toBeUndefined();
  });

  it('gives the quantile of the last answers, forgetting the oldest past its capacity', () => {
    const t = new LatencyTracker(16, 0.5);
    for (let i = 0; i < 16; i++) t.add(1000);
    // the ring then holds only 1 ms answers (the quantile is worked out every 16th answer)
    for (let i = 0; i < 17; i++) t.add(1);
    expect(t.samples).toBe(16);
    expect(t.quantileMs()).toBe(1);
  });

  it('gives what sorting the kept answers would give, whatever their order and repeats', () => {
    // a fixed pseudo-random sequence (LCG): ties, runs and both orders among its answers
    let seed = 12345;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (const [capacity, quantile] of [
      [128, 0.9],
      [50, 0.5],
      [7, 0.99],
      [1, 0.1],
    ] as const) {
      const t = new LatencyTracker(capacity, quantile);
      const kept: number[] = [];
      for (let i = 0; i < 400; i++) {
        const ms = i % 97 < 40 ? next() % 8 : (next() % 5000) / 7;
        t.add(ms);
        kept.push(ms);
        if (kept.length > capacity) kept.shift();
        // worked out on the first answer and every 16th after it
        if (i % 16 === 0) {
          const sorted = [...kept].sort((a, b) => a - b);
          const at = Math.min(sorted.length - 1, Math.floor(quantile * sorted.length));
          expect(t.quantileMs()).toBe(sorted[at]);
        }
      }
    }
  });

  it('refuses a quantile outside (0, 1)', () => {
    expect(() => new LatencyTracker(8, 1)).toThrow(RangeError);
  });
});
