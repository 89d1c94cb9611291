/**
 * Test time for the proxy (AppOptions.now): deadlines, Retry-After dates, budgets and
 * breakers read it, so a test moves them by moving the clock, not by sleeping. Timers the
 * proxy arms (connect, per-try and backoff waits) still run in real time.
 */
export interface ManualClock {
  readonly now: () => number;
  advance(ms: number): void;
}

/** Starts far from the real time, so a proxy that read the real clock would show it. */
export function manualClock(startMs = Date.UTC(2030, 0, 1)): ManualClock {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    advance(ms) {
      nowMs += ms;
    },
  };
}

/** Resolves once `condition` holds, checking every few milliseconds (the test's timeout bounds it). */
export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
