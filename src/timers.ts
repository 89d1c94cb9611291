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

/**
 * A real timer whose callback runs after the I/O that was already waiting when it came due.
 * libuv runs due timers before it reads the sockets, so a process that was not scheduled for a
 * while (a CPU limit's throttling, a busy node) would find a try's deadline or hedge wait due
 * together with the answer it races, and act on the deadline first: a needless hedge or retry,
 * an upstream connection closed for it. Deferred to the loop's check phase (setImmediate),
 * the answer is read first and clears the timer; `refresh` (a body chunk arrived) does too.
 */
class AfterIoTimer implements Timer {
  readonly #callback: () => void;
  readonly #timeout: NodeJS.Timeout;
  #immediate: NodeJS.Immediate | undefined;

  constructor(callback: () => void, ms: number) {
    this.#callback = callback;
    this.#timeout = setTimeout(() => {
      this.#immediate = setImmediate(this.#callback);
    }, ms);
  }

  refresh(): this {
    this.#dropImmediate();
    this.#timeout.refresh();
    return this;
  }

  clear(): void {
    clearTimeout(this.#timeout);
    this.#dropImmediate();
  }

  #dropImmediate(): void {
    if (this.#immediate === undefined) return;
    clearImmediate(this.#immediate);
    this.#immediate = undefined;
  }
}

export const REAL_TIMERS: Timers = Object.freeze({
  set: (callback: () => void, ms: number): Timer => new AfterIoTimer(callback, ms),
  clear: (timer: Timer | undefined): void => (timer as AfterIoTimer | undefined)?.clear(),
});
