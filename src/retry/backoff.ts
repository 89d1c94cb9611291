/**
 * Delay before a retry (SPEC §3). With d = min(max, base · 2^(n-1)):
 * `full` random in [0, d]; `equal` d/2 + random in [0, d/2]; `none` d;
 * `decorrelated` min(max, random in [base, 3 · previous]), previous of the first retry = base.
 */
import type { Backoff } from '../config/types.ts';

/** 2^52 already exceeds any max, and keeps base · 2^n finite (and 0 · 2^n = 0, not NaN). */
const MAX_EXPONENT = 52;

/**
 * Milliseconds to wait before retry `retryNumber` (1-based). `previousMs` is the value this
 * returned for the retry before (only `decorrelated` reads it; ignored for the first retry).
 * `random` returns a number in [0, 1). Jittered values are rounded to whole milliseconds.
 */
export function backoffDelay(
  backoff: Backoff,
  retryNumber: number,
  previousMs: number,
  random: () => number,
): number {
  const { baseMs, maxMs } = backoff;
  switch (backoff.jitter) {
    case 'none':
      return ceiling(backoff, retryNumber);
    case 'full':
      return Math.round(random() * ceiling(backoff, retryNumber));
    case 'equal': {
      const d = ceiling(backoff, retryNumber);
      return Math.round(d / 2 + (random() * d) / 2);
    }
    case 'decorrelated': {
      const previous = retryNumber <= 1 ? baseMs : Math.max(baseMs, previousMs);
      return Math.min(maxMs, Math.round(baseMs + random() * (3 * previous - baseMs)));
    }
  }
}

/**
 * The least and the most `backoffDelay` can return for retry `retryNumber`, for `explain`.
 * For `decorrelated` the upper end is a bound: min(max, base · 3^n).
 */
export function delayRange(
  backoff: Backoff,
  retryNumber: number,
): { minMs: number; maxMs: number } {
  switch (backoff.jitter) {
    case 'none': {
      const d = ceiling(backoff, retryNumber);
      return { minMs: d, maxMs: d };
    }
    case 'full':
      return { minMs: 0, maxMs: ceiling(backoff, retryNumber) };
    case 'equal': {
      const d = ceiling(backoff, retryNumber);
      return { minMs: Math.round(d / 2), maxMs: d };
    }
    case 'decorrelated': {
      const n = Math.min(Math.max(retryNumber, 1), MAX_EXPONENT);
      return {
        minMs: Math.min(backoff.maxMs, backoff.baseMs),
        maxMs: Math.min(backoff.maxMs, backoff.baseMs * 3 ** n),
      };
    }
  }
}

/** d = min(max, base · 2^(n-1)) */
function ceiling(backoff: Backoff, retryNumber: number): number {
  const exponent = Math.min(Math.max(retryNumber - 1, 0), MAX_EXPONENT);
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** exponent);
}
