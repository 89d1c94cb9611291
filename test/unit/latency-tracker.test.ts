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

  it('refuses a quantile outside (0, 1)', () => {
    expect(() => new LatencyTracker(8, 1)).toThrow(RangeError);
  });
});
