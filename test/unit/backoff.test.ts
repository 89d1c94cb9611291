import { describe, expect, it } from 'vitest';
import type { Backoff } from '../../src/config/types.ts';
import { backoffDelay, delayRange } from '../../src/retry/backoff.ts';
import { makeBackoff } from '../helpers/policy-factory.ts';

const low = () => 0;
const high = () => 0.999;
const never = () => {
  throw new Error('random must not be called');
};

describe('backoffDelay: none', () => {
  const backoff = makeBackoff({ baseMs: 50, maxMs: 1000, jitter: 'none' });

  it.each([
    [1, 50],
    [2, 100],
    [3, 200],
    [4, 400],
    [5, 800],
    [6, 1000],
    [7, 1000],
  ])('waits base · 2^(n-1), capped at max: retry %i -> %ims', (n, expected) => {
    expect(backoffDelay(backoff, n, 0, never)).toBe(expected);
  });

  it('stays at max for a very large retry number', () => {
    expect(backoffDelay(backoff, 5000, 0, never)).toBe(1000);
  });

  it('is 0 for a zero base, not NaN, however many retries', () => {
    expect(backoffDelay(makeBackoff({ baseMs: 0, jitter: 'none' }), 2000, 0, never)).toBe(0);
  });
});

describe('backoffDelay: full', () => {
  const backoff = makeBackoff({ baseMs: 50, maxMs: 1000, jitter: 'full' });

  it('waits 0 when random is 0', () => {
    expect(backoffDelay(backoff, 3, 0, low)).toBe(0);
  });

  it('waits nearly d when random is 0.999', () => {
    expect(backoffDelay(backoff, 3, 0, high)).toBe(200); // round(0.999 · 200)
  });

  it('is capped at max', () => {
    expect(backoffDelay(backoff, 10, 0, high)).toBe(999);
  });
});

describe('backoffDelay: equal', () => {
  const backoff = makeBackoff({ baseMs: 50, maxMs: 1000, jitter: 'equal' });

  it('waits d/2 when random is 0', () => {
    expect(backoffDelay(backoff, 3, 0, low)).toBe(100);
  });

  it('waits nearly d when random is 0.999', () => {
    expect(backoffDelay(backoff, 3, 0, high)).toBe(200); // round(100 + 99.9)
  });

  it('is capped at max', () => {
    expect(backoffDelay(backoff, 10, 0, low)).toBe(500);
  });
});

describe('backoffDelay: decorrelated', () => {
  const backoff = makeBackoff({ baseMs: 50, maxMs: 1000, jitter: 'decorrelated' });

  it('waits base when random is 0', () => {
    expect(backoffDelay(backoff, 2, 300, low)).toBe(50);
  });

  it('waits nearly 3 · previous when random is 0.999', () => {
    expect(backoffDelay(backoff, 2, 100, high)).toBe(300); // round(50 + 0.999 · 250)
  });

  it('takes base as the previous delay of the first retry, whatever is passed', () => {
    expect(backoffDelay(backoff, 1, 900, high)).toBe(150); // round(50 + 0.999 · 100)
  });

  it('is capped at max', () => {
    expect(backoffDelay(backoff, 4, 900, high)).toBe(1000);
  });

  it('treats a previous delay below base as base', () => {
    expect(backoffDelay(backoff, 3, 0, high)).toBe(150);
  });
});

describe('delayRange', () => {
  // explicit numbers: the formula is under test, not the shipped defaults
  const at = (jitter: Backoff['jitter']) => makeBackoff({ baseMs: 50, maxMs: 1000, jitter });

  it('is [d, d] for none', () => {
    expect(delayRange(at('none'), 2)).toEqual({ minMs: 100, maxMs: 100 });
  });

  it('is [0, d] for full', () => {
    expect(delayRange(at('full'), 1)).toEqual({ minMs: 0, maxMs: 50 });
  });

  it('is [d/2, d] for equal', () => {
    expect(delayRange(at('equal'), 3)).toEqual({ minMs: 100, maxMs: 200 });
  });

  it('is [base, min(max, base · 3^n)] for decorrelated', () => {
    const backoff = at('decorrelated');
    expect(delayRange(backoff, 1)).toEqual({ minMs: 50, maxMs: 150 });
    expect(delayRange(backoff, 2)).toEqual({ minMs: 50, maxMs: 450 });
    expect(delayRange(backoff, 3)).toEqual({ minMs: 50, maxMs: 1000 });
  });

  it('contains every delay backoffDelay returns', () => {
    for (const jitter of ['full', 'equal', 'decorrelated', 'none'] as const) {
      const backoff = makeBackoff({ jitter });
      let previous = 0;
      for (let n = 1; n <= 8; n++) {
        const { minMs, maxMs } = delayRange(backoff, n);
        for (const random of [low, high, () => 0.5]) {
          const delay = backoffDelay(backoff, n, previous, random);
          expect(delay).toBeGreaterThanOrEqual(minMs);
          expect(delay).toBeLessThanOrEqual(maxMs);
        }
        previous = backoffDelay(backoff, n, previous, high);
      }
    }
  });
});
