/**
 * The timers of the proxy's own decisions: a try's perTryTimeout and body stall, the attempt
 * loop's back-off and hedge waits, a connect's timeout and race, a tunnel's connect back-off.
 * One object, fixed when the app starts (AppOptions.timers) and called directly on the hot
 * path; the real timers unless a test injects a clock that fires them as it is advanced
 * (test/helpers/clock.ts), so time in the proxy is the app's `now` and these together.
 */

/** An armed timer; `refresh` re-arms it for its full delay from now (cheaper than a new one). */
export interface Timer {
  refresh(): unknown;
}

export interface Timers {
  /** Calls `callback` once, `ms` from now. */
  set(callback: () => void, ms: number): Timer;
  /** Stops it from firing; undefined or an already fired timer is fine. */
  clear(timer: Timer | undefined): void;
}

export const REAL_TIMERS: Timers = Object.freeze({
  set: (callback: () => void, ms: number): Timer => setTimeout(callback, ms),
  clear: (timer: Timer | undefined): void => clearTimeout(timer as NodeJS.Timeout | undefined),
});
