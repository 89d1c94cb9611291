/**
 * The per-upstream retry budget (SPEC §4), after linkerd's: first tries deposit, retries withdraw.
 * Over the sliding `window`, a retry may be decided only while
 * `retries + 1 <= ratio * firstTries + minPerSecond * windowSeconds`.
 * With an upstream that always fails, tries per request stay near `1 + ratio` at high load;
 * `minPerSecond` keeps retries possible at low load, where a ratio alone would allow none.
 */
import type { BudgetSettings } from '../config/types.ts';
import { SlidingWindow } from './sliding-window.ts';

const FIRST_TRIES = 0;
const RETRIES = 1;
/** Products like 0.29 * 100 = 28.999999999999996 must still allow the 29th retry. */
const EPSILON = 1e-9;

export class RetryBudget {
  readonly settings: BudgetSettings;
  readonly #window: SlidingWindow;
  /** `minPerSecond * windowSeconds`: retries allowed with no first tries at all. */
  readonly #reserve: number;

  constructor(settings: BudgetSettings) {
    this.settings = settings;
    this.#window = new SlidingWindow(settings.windowMs, 2);
    this.#reserve = (settings.minPerSecond * settings.windowMs) / 1000;
  }

  /** Records a first try (call once per client request sent upstream). */
  deposit(nowMs: number): void {
    this.#window.add(nowMs, FIRST_TRIES);
  }

  /**
   * Takes one retry from the budget if it allows one, and counts it at once: a retry waiting in
   * its backoff already uses budget, so concurrent requests cannot overshoot (SPEC §4).
   */
  tryWithdraw(nowMs: number): boolean {
    if (this.#headroom(nowMs) < 1) return false;
    this.#window.add(nowMs, RETRIES);
    return true;
  }

  /** How many retries may still be made now (whole number, at least 0). For gauges and /state. */
  available(nowMs: number): number {
    return Math.max(0, Math.floor(this.#headroom(nowMs)));
  }

  #headroom(nowMs: number): number {
    const firstTries = this.#window.total(nowMs, FIRST_TRIES);
    const retries = this.#window.total(nowMs, RETRIES);
    return this.settings.ratio * firstTries + this.#reserve - retries + EPSILON;
  }
}
