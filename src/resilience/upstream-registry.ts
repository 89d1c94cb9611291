/**
 * Budget, breaker and concurrency per upstream authority (`host:port`, lower-case), created on
 * first use with the settings of the first matching `upstreams[]` rule, else the defaults.
 *
 * Bounded: an upstream that has been idle (nothing in flight, circuit closed) for twice its
 * longest window holds nothing a fresh one would not (its windows are empty), so it is dropped.
 * `get` keeps entries in least-recently-used order in an intrusive list (no allocation per call)
 * and looks at no more than two of the oldest each time. Past `maxEntries`, the least recently
 * used idle entry goes; if none of the oldest few is idle, the oldest goes regardless.
 */
import type { UpstreamRule, UpstreamSettings } from '../config/types.ts';
import { splitAuthority } from '../routing/authority.ts';
import { findUpstreamRule } from '../routing/upstream-rule.ts';
import type { CircuitState } from '../vocabulary.ts';
import { type BreakerPermit, type BreakerView, CircuitBreaker } from './circuit-breaker.ts';
import { LatencyTracker } from './latency-tracker.ts';
import { LinkProbe, type LinkProbing } from './link-probe.ts';
import { LinkRecovery, type LinkState } from './link-recovery.ts';
import { RetryBudget } from './retry-budget.ts';

/**
 * The answer to "may this try go?": a permit ('pass', or 'probe' in half-open), or why not.
 * The attempt loop, CONNECT and Upgrade all ask `Upstream.gate` and nothing else.
 */
export type Gate = BreakerPermit | 'circuit-open' | 'overflow' | 'budget';
/** A first try deposits, so the budget never refuses it. */
type FirstTryGate = Exclude<Gate, 'budget'>;
/** A retry keeps its request's slot, so `maxConcurrent` never refuses it. */
type RetryGate = Exclude<Gate, 'overflow'>;

export interface RegistryHooks {
  onTransition(authority: string, to: CircuitState, from: CircuitState): void;
  /** The upstream's link is seen down by a lost probe, or back (link-recovery.ts). */
  onLink?(authority: string, state: LinkState): void;
}

export interface UpstreamSnapshot {
  readonly authority: string;
  readonly state: CircuitState;
  readonly circuit: BreakerView;
  readonly budgetAvailable: number;
  readonly inFlight: number;
}

export const DEFAULT_MAX_UPSTREAMS = 10_000;
const SWEEP_STEPS = 2;
const CAP_SCAN = 8;
const LATENCY_SAMPLES = 128;
const LATENCY_QUANTILE = 0.9;

export class Upstream {
  readonly authority: string;
  readonly settings: UpstreamSettings;
  readonly budget: RetryBudget;
  readonly breaker: CircuitBreaker;
  /** What its answers usually take (hedging's `auto`). */
  readonly latency = new LatencyTracker(LATENCY_SAMPLES, LATENCY_QUANTILE);
  /** Whether its link is back after loss: requests with tries stuck in it watch this. */
  readonly link: LinkRecovery;
  inFlight = 0;
  /** Last `get`, `gate`, `record` or `leave`; idleness is measured from it. */
  lastUsedMs: number;
  /** Idle this long (and closed, nothing in flight) => dropped. */
  readonly idleMs: number;

  constructor(
    authority: string,
    settings: UpstreamSettings,
    nowMs: number,
    hooks: RegistryHooks,
    probing?: LinkProbing,
  ) {
    this.authority = authority;
    this.settings = settings;
    let probe: LinkProbe | undefined;
    this.link = new LinkRecovery({
      onWatched: probing && ((origin) => probe?.start(origin)),
      onChange: (state) => hooks.onLink?.(authority, state),
    });
    if (probing !== undefined) probe = new LinkProbe(this.link, probing);
    this.budget = new RetryBudget(settings.budget);
    this.breaker = new CircuitBreaker(settings.circuitBreaker, (to, from) =>
      hooks.onTransition(authority, to, from),
    );
    this.lastUsedMs = nowMs;
    this.idleMs = 2 * Math.max(settings.budget.windowMs, settings.circuitBreaker.windowMs);
  }

  /**
   * The one question before every try (SPEC §4), asked for a first try when the request
   * arrives and for a retry when it is decided (before its backoff, so retries waiting cannot
   * overshoot the budget). In this order: the breaker; then, for a first try, `maxConcurrent`
   * (a retry keeps the slot its request already holds); then the budget (a first try deposits,
   * a retry withdraws: the only step with a side effect, so it goes last).
   *
   * A first try that passes takes an in-flight slot, held until `leave`. Every permit is
   * answered by exactly one `record`.
   */
  gate(nowMs: number, attempt: 1): FirstTryGate;
  gate(nowMs: number, attempt: number): RetryGate;
  gate(nowMs: number, attempt: number): Gate {
    this.lastUsedMs = nowMs;
    const permit = this.breaker.tryAcquire(nowMs);
    if (permit === 'open') return 'circuit-open';
    if (attempt > 1) {
      if (this.budget.tryWithdraw(nowMs)) return permit;
      // the probe never went out: give its slot to the next caller
      this.breaker.release(permit);
      return 'budget';
    }
    if (this.inFlight >= this.settings.maxConcurrent) {
      this.breaker.release(permit);
      return 'overflow';
    }
    this.inFlight++;
    this.budget.deposit(nowMs);
    return permit;
  }

  /**
   * The question before a hedge (SPEC §3): asked like a retry (breaker, budget), and as one
   * more try in flight at once it also needs a `maxConcurrent` slot, held until `leave`.
   */
  gateHedge(nowMs: number): RetryGate | 'overflow' {
    if (this.inFlight >= this.settings.maxConcurrent) return 'overflow';
    const gate = this.gate(nowMs, 2);
    if (gate === 'pass' || gate === 'probe') this.inFlight++;
    return gate;
  }

  /**
   * Confirms, once its backoff is over, a retry admitted when it was decided: refused with a
   * plain permit if the circuit has left closed meanwhile (a retry never happens while the
   * circuit is open, SPEC §3), and then its permit is given back here, as `gate` does.
   */
  confirm(nowMs: number, permit: BreakerPermit): boolean {
    if (permit === 'probe' || this.breaker.state(nowMs).state === 'closed') return true;
    this.record(nowMs, permit, undefined);
    return false;
  }

  /** How a permitted try ended: the breaker learns (`failed` undefined: abandoned, nothing learnt). */
  record(nowMs: number, permit: BreakerPermit, failed: boolean | undefined): void {
    this.lastUsedMs = nowMs;
    if (failed === undefined) this.breaker.release(permit);
    else this.breaker.record(nowMs, failed, permit);
  }

  /** The request is done with this upstream (its answer relayed or dropped): frees its slot. */
  leave(nowMs: number): void {
    this.lastUsedMs = nowMs;
    if (this.inFlight > 0) this.inFlight--;
  }
}

interface Entry {
  readonly upstream: Upstream;
  prev: Entry | undefined;
  next: Entry | undefined;
}

export class UpstreamRegistry {
  #defaultSettings: UpstreamSettings;
  #rules: readonly UpstreamRule[];
  readonly #hooks: RegistryHooks;
  readonly #maxEntries: number;
  readonly #probing: LinkProbing | undefined;
  readonly #entries = new Map<string, Entry>();
  /** Least recently used first. */
  #head: Entry | undefined;
  #tail: Entry | undefined;

  constructor(
    defaultSettings: UpstreamSettings,
    rules: readonly UpstreamRule[],
    hooks: RegistryHooks,
    options: {
      readonly maxEntries?: number;
      /** Probes an upstream's link while requests wait on it (link-probe.ts); none if unset. */
      readonly probing?: LinkProbing;
    } = {},
  ) {
    this.#probing = options.probing;
    this.#defaultSettings = defaultSettings;
    this.#rules = rules;
    this.#hooks = hooks;
    this.#maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_UPSTREAMS);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The upstream for `authority` (`host:port`, lower-case), created on first use. */
  get(authority: string, nowMs: number): Upstream {
    let entry = this.#entries.get(authority);
    if (entry === undefined) {
      if (this.#entries.size >= this.#maxEntries) this.#evictForCap();
      const settings = this.settingsFor(authority);
      entry = {
        upstream: new Upstream(authority, settings, nowMs, this.#hooks, this.#probing),
        prev: undefined,
        next: undefined,
      };
      this.#entries.set(authority, entry);
      this.#append(entry);
    } else {
      if (entry !== this.#tail) {
        this.#unlink(entry);
        this.#append(entry);
      }
      entry.upstream.lastUsedMs = nowMs;
    }
    this.#sweep(nowMs);
    return entry.upstream;
  }

  /** The settings `authority` gets (first matching rule, else the default); creates nothing. */
  settingsFor(authority: string): UpstreamSettings {
    const { host, port } = splitAuthority(authority);
    return findUpstreamRule(this.#rules, host, port)?.settings ?? this.#defaultSettings;
  }

  /** Applies new settings: upstreams whose effective settings are unchanged keep their state. */
  reconfigure(defaultSettings: UpstreamSettings, rules: readonly UpstreamRule[]): void {
    this.#defaultSettings = defaultSettings;
    this.#rules = rules;
    for (const entry of this.#entries.values()) {
      const { authority, settings } = entry.upstream;
      if (!isDeepEqual(settings, this.settingsFor(authority))) this.#remove(entry);
    }
  }

  /** Every known upstream, least recently used first (may move circuits to half-open). */
  snapshot(nowMs: number): UpstreamSnapshot[] {
    const out: UpstreamSnapshot[] = [];
    for (let e = this.#head; e !== undefined; e = e.next) {
      const u = e.upstream;
      const circuit = u.breaker.describe(nowMs);
      out.push({
        authority: u.authority,
        state: circuit.state,
        circuit,
        budgetAvailable: u.budget.available(nowMs),
        inFlight: u.inFlight,
      });
    }
    return out;
  }

  #sweep(nowMs: number): void {
    for (let i = 0; i < SWEEP_STEPS; i++) {
      const head = this.#head;
      if (head === undefined || head === this.#tail) return;
      const u = head.upstream;
      if (nowMs - u.lastUsedMs <= u.idleMs) return;
      if (isIdle(u)) {
        this.#remove(head);
      } else {
        // busy or not closed: keep it, and look at it again after the others
        this.#unlink(head);
        this.#append(head);
      }
    }
  }

  #evictForCap(): void {
    for (let i = 0; i < CAP_SCAN; i++) {
      const head = this.#head;
      if (head === undefined) return;
      if (isIdle(head.upstream)) {
        this.#remove(head);
        return;
      }
      this.#unlink(head);
      this.#append(head);
    }
    // the oldest few are all busy or open: the cap still holds (their tries finish on the
    // detached object; a new entry for that authority starts afresh)
    if (this.#head !== undefined) this.#remove(this.#head);
  }

  #remove(entry: Entry): void {
    this.#unlink(entry);
    this.#entries.delete(entry.upstream.authority);
  }

  #append(entry: Entry): void {
    entry.prev = this.#tail;
    entry.next = undefined;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail.next = entry;
    this.#tail = entry;
  }

  #unlink(entry: Entry): void {
    if (entry.prev === undefined) this.#head = entry.next;
    else entry.prev.next = entry.next;
    if (entry.next === undefined) this.#tail = entry.prev;
    else entry.next.prev = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
  }
}

function isIdle(u: Upstream): boolean {
  return u.inFlight === 0 && u.breaker.isClosed();
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const keysA = Object.keys(a);
  if (keysA.length !== Object.keys(b).length) return false;
  return keysA.every(
    (k) =>
      Object.hasOwn(b, k) &&
      isDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}
