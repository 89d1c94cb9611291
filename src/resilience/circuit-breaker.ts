/**
 * The per-upstream circuit breaker (SPEC §4), after cockatiel's: the state is a discriminated
 * union, the trip rule a small pure helper over the recent tries.
 *
 * It opens only on failure that persists: the trip rule must have held on every try recorded
 * for `failingForMs`, so a burst that fails every try for a few milliseconds (or a second) is
 * left to the retries, which is what they are for. The rule looks at the last `minRequests`
 * tries that are not older than `window` (a count window, so it reacts within a few tries at
 * high traffic and still sees enough tries at low traffic).
 *
 * Open lasts `openFor`, or until `openForRequests` requests were refused, whichever ends
 * first: at high traffic a circuit that opened for a spell that has since ended costs a
 * hundred fast refusals, not seconds of them. Both double on each failed probe, up to
 * `maxOpenFor` (and the same factor for the requests), and start again when it closes.
 * Open turns into half-open lazily, when someone asks (`tryAcquire`, `state`).
 * Closed-state calls allocate nothing; state objects are replaced only on transitions and probes.
 * With `enabled: false` the trip rule is never applied: it stays closed and only counts tries.
 */
import type { BreakerSettings } from '../config/types.ts';
import type { CircuitState } from '../vocabulary.ts';
import { RecentTries } from './recent-tries.ts';

/** What `tryAcquire` handed out: a normal try, or one of the half-open probes. */
export type BreakerPermit = 'pass' | 'probe';

export type BreakerState =
  | { readonly state: 'closed' }
  | {
      readonly state: 'open';
      readonly openedAtMs: number;
      readonly openForMs: number;
      /** Requests it refuses before it lets a probe through, whatever the time. */
      readonly openForRequests: number;
    }
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

/** The breaker as /state shows it. */
export interface BreakerView {
  /** false: `circuitBreaker.enabled: false`, it never opens. */
  readonly enabled: boolean;
  readonly state: CircuitState;
  /** The recent tries the trip rule looks at, and how many of them failed. */
  readonly recentTries: number;
  readonly recentFailures: number;
  /** How long the trip rule has held while closed (it opens at `failingFor`); 0 while it does not. */
  readonly failingForMs: number;
  /** Open only: until it lets a probe through by time, or after this many more refusals. */
  readonly halfOpenInMs?: number;
  readonly refusalsBeforeProbe?: number;
}

const CLOSED: BreakerState = Object.freeze({ state: 'closed' });

/**
 * The trip rule, before its span: `consecutiveFailures` (when > 0) failed tries in a row, or
 * at least `minRequests` recent tries with a failed share of at least `failureRatio`.
 */
export function isFailing(
  settings: BreakerSettings,
  tries: number,
  failures: number,
  consecutiveFailures: number,
): boolean {
  if (settings.consecutiveFailures > 0 && consecutiveFailures >= settings.consecutiveFailures) {
    return true;
  }
  // 0 tries: 0/0 is NaN, which no ratio reaches
  return tries >= settings.minRequests && failures / tries >= settings.failureRatio;
}

export class CircuitBreaker {
  readonly settings: BreakerSettings;
  readonly #onTransition: ((to: CircuitState, from: CircuitState) => void) | undefined;
  readonly #recent: RecentTries;
  #state: BreakerState = CLOSED;
  #consecutiveFailures = 0;
  /** Since when the trip rule has held on every try recorded; NaN while it does not. */
  #failingSinceMs = Number.NaN;
  /** Requests refused in the current open period. */
  #refused = 0;

  /** `onTransition` is called after every change of `state` (not on probe bookkeeping). */
  constructor(
    settings: BreakerSettings,
    onTransition?: (to: CircuitState, from: CircuitState) => void,
  ) {
    this.settings = settings;
    this.#onTransition = onTransition;
    this.#recent = new RecentTries(settings.minRequests, settings.windowMs);
  }

  /**
   * Asks to send a try. 'pass' while closed; in half-open 'probe' while probe slots are left
   * (in-flight probes hold theirs); otherwise 'open', which counts as a refused request.
   * Every 'pass' or 'probe' must be followed by exactly one `record` or `release`.
   */
  tryAcquire(nowMs: number): BreakerPermit | 'open' {
    const s = this.#current(nowMs);
    if (s.state === 'closed') return 'pass';
    if (s.state === 'open') {
      this.#refused++;
      return 'open';
    }
    if (s.probesLeft === 0) return 'open';
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
      if (s.state === 'closed') this.#recordClosed(nowMs, failed);
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

  /** What /state shows of it at `nowMs` (may move open to half-open). */
  describe(nowMs: number): BreakerView {
    const s = this.#current(nowMs);
    const failingForMs = Number.isNaN(this.#failingSinceMs) ? 0 : nowMs - this.#failingSinceMs;
    const view = {
      enabled: this.settings.enabled,
      state: s.state,
      recentTries: this.#recent.tries,
      recentFailures: this.#recent.failures,
      failingForMs: s.state === 'closed' ? failingForMs : 0,
    };
    if (s.state !== 'open') return view;
    const halfOpenInMs = s.openedAtMs + s.openForMs - nowMs;
    if (!Number.isFinite(s.openForRequests)) return { ...view, halfOpenInMs };
    return {
      ...view,
      halfOpenInMs,
      refusalsBeforeProbe: Math.max(0, s.openForRequests - this.#refused),
    };
  }

  /** Milliseconds until half-open by time, for `Retry-After`; 0 when closed or half-open. */
  retryAfterMs(nowMs: number): number {
    const s = this.#current(nowMs);
    return s.state === 'open' ? s.openedAtMs + s.openForMs - nowMs : 0;
  }

  #recordClosed(nowMs: number, failed: boolean): void {
    this.#recent.add(nowMs, failed);
    this.#consecutiveFailures = failed ? this.#consecutiveFailures + 1 : 0;
    const failing =
      this.settings.enabled &&
      isFailing(
        this.settings,
        this.#recent.tries,
        this.#recent.failures,
        this.#consecutiveFailures,
      );
    if (!failing) {
      this.#failingSinceMs = Number.NaN;
      return;
    }
    // NaN < anything is false, so the first failing try only starts the span
    if (!(this.#failingSinceMs <= nowMs)) this.#failingSinceMs = nowMs;
    if (nowMs - this.#failingSinceMs >= this.settings.failingForMs) {
      this.#open(nowMs, Math.min(this.settings.openForMs, this.settings.maxOpenForMs));
    }
  }

  #current(nowMs: number): BreakerState {
    const s = this.#state;
    if (s.state !== 'open') return s;
    if (nowMs - s.openedAtMs < s.openForMs && this.#refused < s.openForRequests) return s;
    const reopenForMs = Math.min(2 * s.openForMs, this.settings.maxOpenForMs);
    const probes = Math.max(1, this.settings.halfOpenRequests);
    this.#transition({ state: 'half-open', probesLeft: probes, probesInFlight: 0, reopenForMs });
    return this.#state;
  }

  #open(nowMs: number, openForMs: number): void {
    const { openForMs: firstMs, openForRequests } = this.settings;
    // the refusal count grows with the open period, so a long outage is probed ever less often
    const requests =
      openForRequests === 0
        ? Number.POSITIVE_INFINITY
        : Math.ceil((openForRequests * openForMs) / Math.max(1, firstMs));
    this.#refused = 0;
    this.#transition({ state: 'open', openedAtMs: nowMs, openForMs, openForRequests: requests });
  }

  #close(): void {
    // a fresh start: the failures that tripped it must not trip it again
    this.#recent.reset();
    this.#consecutiveFailures = 0;
    this.#failingSinceMs = Number.NaN;
    this.#transition(CLOSED);
  }

  #transition(next: BreakerState): void {
    const from = this.#state.state;
    this.#state = next;
    this.#onTransition?.(next.state, from);
  }
}

function withProbes(s: HalfOpen, probesLeft: number, probesInFlight: number): HalfOpen {
  return { state: 'half-open', probesLeft, probesInFlight, reopenForMs: s.reopenForMs };
}
