/**
 * Test time for the proxy: `now` (AppOptions.now) and `timers` (AppOptions.timers) move only
 * when the test advances them, so a 10 s back-off or a 2 s hedge delay is stepped at once
 * instead of slept. Deadlines, Retry-After dates, budgets and breakers read `now`; the proxy's
 * own waits are armed on `timers`: a try's perTryTimeout and body stall, the attempt loop's
 * back-off and hedge waits, a connect's timeout and race, a tunnel's connect back-off and an
 * Upgrade's try.
 *
 * Still real time, whatever the test passes: socket-level timers (the client's idleTimeout,
 * a refused socket's linger), node:http's own timeouts, the wait for an intercepted client's
 * first bytes and its TLS handshake, drain's polling, the log writer's flush, the config
 * watcher's debounce and polling, and the garbage collections (AppOptions.collectionTimers).
 *
 * Nothing fires on its own: a timer fires when `advance` reaches its time (`advance(0)` fires
 * those due now), so a test decides what has happened by the time it looks.
 */
import type { Timer, Timers } from '../../src/timers.ts';

export interface ManualClock {
  readonly now: () => number;
  readonly timers: Timers;
  /** Both, as the app's options take them: `startProxy(yaml, clock.options)`. */
  readonly options: { readonly now: () => number; readonly timers: Timers };
  /**
   * Moves time `ms` ahead, stopping at each timer that comes due on the way (in due order,
   * ties in the order they were armed) to fire it in a turn of its own, so I/O and what the
   * timer started can run before the next. Time moves at once where no timer is armed.
   */
  advance(ms: number): Promise<void>;
  /** Milliseconds until the next armed timer is due (0: due now); undefined when none is. */
  nextDueInMs(): number | undefined;
  /** Timers armed and neither fired nor cleared. */
  readonly armed: number;
  /** How many of those were armed for `ms`: tells which wait the proxy is in (a 200 ms bodyTimeout). */
  armedFor(ms: number): number;
}

class ManualTimer implements Timer {
  dueMs = 0;
  /** Arming order, which breaks ties between timers due at once. */
  seq = 0;
  cleared = false;
  readonly #clock: Clock;
  readonly callback: () => void;
  readonly delayMs: number;

  constructor(clock: Clock, callback: () => void, delayMs: number) {
    this.#clock = clock;
    this.callback = callback;
    this.delayMs = delayMs;
  }

  refresh(): this {
    if (!this.cleared) this.#clock.arm(this);
    return this;
  }
}

class Clock implements ManualClock {
  readonly timers: Timers;
  #nowMs: number;
  #seq = 0;
  readonly #armed = new Set<ManualTimer>();

  constructor(startMs: number) {
    this.#nowMs = startMs;
    this.timers = {
      set: (callback, ms) => this.arm(new ManualTimer(this, callback, ms)),
      clear: (timer) => {
        if (timer === undefined) return;
        const manual = timer as ManualTimer;
        manual.cleared = true;
        this.#armed.delete(manual);
      },
    };
  }

  readonly now = (): number => this.#nowMs;

  get options(): { now: () => number; timers: Timers } {
    return { now: this.now, timers: this.timers };
  }

  get armed(): number {
    return this.#armed.size;
  }

  armedFor(ms: number): number {
    let count = 0;
    for (const timer of this.#armed) if (timer.delayMs === ms) count++;
    return count;
  }

  arm(timer: ManualTimer): ManualTimer {
    timer.dueMs = this.#nowMs + Math.max(0, timer.delayMs);
    timer.seq = this.#seq++;
    this.#armed.add(timer);
    return timer;
  }

  nextDueInMs(): number | undefined {
    const next = this.#next();
    return next === undefined ? undefined : Math.max(0, next.dueMs - this.#nowMs);
  }

  async advance(ms: number): Promise<void> {
    const targetMs = this.#nowMs + ms;
    for (;;) {
      const next = this.#next();
      if (next === undefined || next.dueMs > targetMs) break;
      if (next.dueMs > this.#nowMs) this.#nowMs = next.dueMs;
      this.#fire(next);
      await nextTurn();
    }
    if (targetMs > this.#nowMs) this.#nowMs = targetMs;
  }

  #next(): ManualTimer | undefined {
    let next: ManualTimer | undefined;
    for (const timer of this.#armed) {
      if (next === undefined || timer.dueMs < next.dueMs) next = timer;
      else if (timer.dueMs === next.dueMs && timer.seq < next.seq) next = timer;
    }
    return next;
  }

  #fire(timer: ManualTimer): void {
    this.#armed.delete(timer);
    timer.callback();
  }
}

/** Starts far from the real time, so a proxy that read the real clock would show it. */
export function manualClock(startMs = Date.UTC(2030, 0, 1)): ManualClock {
  return new Clock(startMs);
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits until the proxy arms a timer due within `withinMs` (a FAST back-off: 5 ms), then moves
 * time to it so it fires: for the waits a test does not need to name.
 */
export async function fireNext(clock: ManualClock, withinMs: number): Promise<void> {
  await until(() => (clock.nextDueInMs() ?? Number.POSITIVE_INFINITY) <= withinMs);
  await clock.advance(clock.nextDueInMs() ?? 0);
}

/** Resolves once `condition` holds, checking every few milliseconds (the test's timeout bounds it). */
export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
