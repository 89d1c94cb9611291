/**
 * The per-upstream circuit breaker (SPEC §4), after cockatiel's: the state is a discriminated
 * union, the trip rule a small pure helper over a bucketed sliding window of tries and failures.
 * Open turns into half-open lazily, when someone asks (`tryAcquire`, `state`) after `openFor`.
 * Closed-state calls allocate nothing; state objects are replaced only on transitions and probes.
 */
import type { BreakerSettings } from '../config/types.ts';
import { SlidingWindow } from './sliding-window.ts';

export type BreakerStateName = 'closed' | 'open' | 'half-open';
/** What `tryAcquire` handed out: a normal try, or one of the half-open probes. */
export type BreakerPermit = 'pass' | 'probe';

export type BreakerState =
  | { readonly state: 'closed' }
  | { readonly state: 'open'; readonly openedAtMs: number; readonly openForMs: number }
  | {
      readonly state: 'half-open';
      /** Probe slots not handed out yet. */
      readonly probesLeft: number;
      /** Probes handed out and not finished; they count against `halfOpenRequests`. */
      readonly probesInFlight: number;
      /** How long a failed probe opens the circuit for. */
      readonly reopenForMs: number;
    };

type HalfOpen = Extract<BreakerState, { state: 'half-open' }>;

const CLOSED: BreakerState = Object.freeze({ state: 'closed' });
const TRIES = 0;
const FAILURES = 1;

/**
 * The trip rule: `consecutiveFailures` (when > 0) failed tries in a row, or at least
 * `minRequests` tries in the window with a failed share of at least `failureRatio`.
 */
export function shouldTrip(
  settings: BreakerSettings,
  tries: number,
  failures: number,
  consecutiveFailures: number,
): boolean {
  if (settings.consecutiveFailures > 0 && consecutiveFailures >= settings.consecutiveFailures) {
    return true;
  }
  return tries > 0 && tries >= settings.minRequests && failures / tries >= settings.failureRatio;
}

export class CircuitBreaker {
  readonly settings: BreakerSettings;
  readonly #onTransition: ((to: BreakerStateName) => void) | undefined;
  readonly #window: SlidingWindow;
  #state: BreakerState = CLOSED;
  #consecutiveFailures = 0;

  /** `onTransition` is called after every change of `state` (not on probe bookkeeping). */
  constructor(settings: BreakerSettings, onTransition?: (to: BreakerStateName) => void) {
    this.settings = settings;
    this.#onTransition = onTransition;
    this.#window = new SlidingWindow(settings.windowMs, 2);
  }

  /**
   * Asks to send a try. 'pass' while closed; in half-open 'probe' while probe slots are left
   * (in-flight probes hold theirs); otherwise 'open'. Every 'pass' or 'probe' must be followed by
   * exactly one `record` or `release` with the same permit.
   */
  tryAcquire(nowMs: number): BreakerPermit | 'open' {
    const s = this.#current(nowMs);
    if (s.state === 'closed') return 'pass';
    if (s.state === 'open' || s.probesLeft === 0) return 'open';
    this.#state = withProbes(s, s.probesLeft - 1, s.probesInFlight + 1);
    return 'probe';
  }

  /**
   * Records how a try ended. A 'pass' result counts only while closed: tries admitted before a
   * trip that fail afterwards must not re-trip or extend the open period. A failed probe reopens
   * for `reopenForMs`; `halfOpenRequests` successful probes close the circuit.
   */
  record(nowMs: number, failed: boolean, permit: BreakerPermit): void {
    const s = this.#state;
    if (permit === 'pass') {
      if (s.state !== 'closed') return;
      this.#window.add(nowMs, TRIES);
      if (!failed) {
        this.#consecutiveFailures = 0;
        return;
      }
      this.#window.add(nowMs, FAILURES);
      this.#consecutiveFailures++;
      const tries = this.#window.total(nowMs, TRIES);
      const failures = this.#window.total(nowMs, FAILURES);
      if (shouldTrip(this.settings, tries, failures, this.#consecutiveFailures)) {
        this.#open(nowMs, Math.min(this.settings.openForMs, this.settings.maxOpenForMs));
      }
      return;
    }
    // a probe from an earlier half-open period (the circuit reopened meanwhile) says nothing now
    if (s.state !== 'half-open' || s.probesInFlight === 0) return;
    if (failed) {
      this.#open(nowMs, s.reopenForMs);
    } else if (s.probesLeft === 0 && s.probesInFlight === 1) {
      this.#close();
    } else {
      this.#state = withProbes(s, s.probesLeft, s.probesInFlight - 1);
    }
  }

  /** Gives back a permit whose try was abandoned (client gone): a probe slot is returned. */
  release(permit: BreakerPermit): void {
    const s = this.#state;
    if (permit !== 'probe' || s.state !== 'half-open' || s.probesInFlight === 0) return;
    this.#state = withProbes(s, s.probesLeft + 1, s.probesInFlight - 1);
  }

  /** The state at `nowMs` (may move open to half-open, calling `onTransition`). */
  state(nowMs: number): BreakerState {
    return this.#current(nowMs);
  }

  /** Whether the stored state is closed, without the lazy open → half-open step. */
  isClosed(): boolean {
    return this.#state.state === 'closed';
  }

  /** Milliseconds until half-open, for `Retry-After`; 0 when closed or already half-open. */
  retryAfterMs(nowMs: number): number {
    const s = this.#current(nowMs);
    return s.state === 'open' ? s.openedAtMs + s.openForMs - nowMs : 0;
  }

  #current(nowMs: number): BreakerState {
    const s = this.#state;
    if (s.state === 'open' && nowMs - s.openedAtMs >= s.openForMs) {
      const reopenForMs = Math.min(2 * s.openForMs, this.settings.maxOpenForMs);
      const probes = Math.max(1, this.settings.halfOpenRequests);
      this.#transition({ state: 'half-open', probesLeft: probes, probesInFlight: 0, reopenForMs });
    }
    return this.#state;
  }

  #open(nowMs: number, openForMs: number): void {
    this.#transition({ state: 'open', openedAtMs: nowMs, openForMs });
  }

  #close(): void {
    // a fresh start: the failures that tripped it must not trip it again
    this.#window.reset();
    this.#consecutiveFailures = 0;
    this.#transition(CLOSED);
  }

  #transition(next: BreakerState): void {
    this.#state = next;
    this.#onTransition?.(next.state);
  }
}

function withProbes(s: HalfOpen, probesLeft: number, probesInFlight: number): HalfOpen {
  return { state: 'half-open', probesLeft, probesInFlight, reopenForMs: s.reopenForMs };
}
