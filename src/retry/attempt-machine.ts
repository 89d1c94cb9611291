/**
 * The attempt loop of one request as a state machine: events in (attempt-events.ts), actions
 * out. No I/O and no clock: every event comes with its time, so the proxy, the protection
 * model and `explain` drive this very loop on real or virtual time.
 *
 *   start → tries on the primary (retries after a back-off, hedges while one waits)
 *         → maybe the fallback → answer
 *
 * As in Envoy's RetryStateImpl, "would retry" (`decideRetry`, pure policy) is asked first and
 * "may retry" (the upstream's gate: breaker, budget, concurrency) after. Several tries may be
 * in flight (hedges); the first final answer wins and the others are cancelled.
 */
import { appended, emptyList } from '../lists.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { FailureName, SuppressedCause } from '../vocabulary.ts';
import type {
  AttemptAction,
  AttemptEvent,
  HedgeResult,
  LinkWatch,
  LoopAnswer,
  LoopError,
  OriginTarget,
  OverdueFailure,
  TryEnd,
} from './attempt-events.ts';
import { AttemptRecord } from './attempt-record.ts';
import { type BodyState, decideRetry } from './decide.ts';
import { hedgeDelayMs, isHedged } from './hedge.ts';
import { type RequestPolicy, resolveFallbackPolicy, tryTimeoutMs } from './request-policy.ts';

export interface MachineInput {
  readonly policy: RequestPolicy;
  /** Upper-case, as sent. */
  readonly method: string;
  readonly primary: OriginTarget;
  /** Opens the route's fallback; its upstream is looked up only when it is needed. */
  readonly fallback: ((nowMs: number) => OriginTarget) | undefined;
  /** Whether a new try could get the whole request body (proxy/exchange/replayable-body.ts). */
  readonly body: () => BodyState;
  /** Returns a number in [0, 1). */
  readonly random: () => number;
}

interface Try {
  readonly id: number;
  readonly attempt: number;
  readonly target: OriginTarget;
  readonly permit: BreakerPermit;
  readonly hedge: boolean;
  readonly startedMs: number;
  /** When its per-try time (perTryTimeout, or what was left before the deadline) is up. */
  readonly endsMs: number;
  /** When it was connected, its request on the wire: only then may a hedge follow it. */
  sentMs: number | undefined;
  /**
   * Failed without ending (past its per-try time, or its held body stalled), kept beside a try
   * still within its own (`#onTryOverdue`): how it ends once cut.
   */
  overdue: { readonly kind: 'failure'; readonly failure: OverdueFailure } | undefined;
}

/** Failures of a try lost in the link: no answer came back over it. */
const LOST_IN_LINK: ReadonlySet<string> = new Set<FailureName>([
  'connect-failure',
  'timeout',
  'body-cut',
]);

const TIMED_OUT = { kind: 'failure', failure: 'timeout' } as const satisfies TryEnd;
const BODY_CUT = { kind: 'failure', failure: 'body-cut' } as const satisfies TryEnd;

type Phase = 'new' | 'trying' | 'backoff' | 'done';

export class AttemptMachine {
  /** What happened, for the summary (the access line and the metrics). */
  readonly record = new AttemptRecord();
  readonly #in: MachineInput;
  #phase: Phase = 'new';
  #target: OriginTarget;
  #policy: RequestPolicy;
  #onFallback = false;
  /** The upstream whose in-flight slot the request holds until `finish`. */
  #slot: OriginTarget | undefined;
  #inFlight: Try[] = emptyList();
  #hedges: Try[] = emptyList();
  #triesOnOrigin = 0;
  /** A try on this origin has failed: its last try is kept for a retry (`#mayHedge`). */
  #failedOnOrigin = false;
  #started = 0;
  #nextId = 0;
  #previousDelayMs = 0;
  #retryPermit: BreakerPermit = 'pass';
  #retryReason = '';
  #backoffTimer = 0;
  #hedgeTimer = 0;
  /** The hedge's wait ran out while every try was still connecting. */
  #hedgeDue = false;
  #clientGone = false;
  /** Watching the link of this upstream (`watch-link`), once per request. */
  #watchedLink: LinkWatch | undefined;
  /** A try started when the link came back was refused by the gate: counted once. */
  #linkHedgeRefused = false;
  /** The retry due now is held for the link (`#holdRetryForLink`): it goes at the next word. */
  #retryHeld = false;
  #out: AttemptAction[] = emptyList();

  constructor(input: MachineInput) {
    this.#in = input;
    this.#target = input.primary;
    this.#policy = input.policy;
  }

  /** Feeds one event at `nowMs`; returns what to do, in order. */
  handle(event: AttemptEvent, nowMs: number): AttemptAction[] {
    this.#out = emptyList();
    switch (event.type) {
      case 'start':
        if (this.#phase === 'new') this.#beginOrigin(this.#target, this.#policy, nowMs);
        break;
      case 'try-ended':
        this.#onTryEnded(event.tryId, event.end, nowMs);
        break;
      case 'try-sent':
        this.#onTrySent(event.tryId, nowMs);
        break;
      case 'try-overdue':
        this.#onTryOverdue(event.tryId, event.failure, nowMs);
        break;
      case 'timer':
        if (event.timerId === this.#backoffTimer) this.#afterBackoff(nowMs);
        else if (event.timerId === this.#hedgeTimer) this.#onHedgeTimer(nowMs);
        break;
      case 'client-gone':
        this.#onClientGone(nowMs);
        break;
      case 'link-back':
        this.#onLinkBack(nowMs);
        break;
    }
    // a start (one try), a sent try and a client leaving never make a request wait for the
    // link: the two events every request has skip the check
    if (
      this.#watchedLink === undefined &&
      event.type !== 'start' &&
      event.type !== 'try-sent' &&
      event.type !== 'client-gone' &&
      this.#waitsForLink()
    ) {
      this.#watchLink();
    }
    return this.#out;
  }

  /** Asks to be told when this upstream's link is back (`link-back`): once per request. */
  #watchLink(): void {
    const link = this.#target.gate.link;
    this.#watchedLink = link;
    this.#emit({ type: 'watch-link', link, origin: this.#target.origin });
  }

  /** Most events have one action: an array of one, not `[]` grown to 17 slots. */
  #emit(action: AttemptAction): void {
    this.#out = appended(this.#out, action);
  }

  /** The answer is relayed or dropped: frees the request's in-flight slot. */
  finish(nowMs: number): void {
    this.#slot?.gate.leave(nowMs);
    this.#slot = undefined;
  }

  #beginOrigin(target: OriginTarget, policy: RequestPolicy, nowMs: number): void {
    this.#target = target;
    this.#policy = policy;
    this.#triesOnOrigin = 0;
    this.#failedOnOrigin = false;
    this.#previousDelayMs = policy.retry.backoff.baseMs;
    const first = target.gate.gate(nowMs, 1);
    if (first === 'circuit-open' || first === 'overflow') {
      this.#endOrigin(first, nowMs);
      return;
    }
    this.#slot = target;
    this.#send(first, false, nowMs);
  }

  #send(permit: BreakerPermit, hedge: boolean, nowMs: number): void {
    const { retry } = this.#policy;
    this.#triesOnOrigin++;
    const timeoutMs = tryTimeoutMs(this.#policy, nowMs);
    const t: Try = {
      id: ++this.#nextId,
      attempt: ++this.#started,
      target: this.#target,
      permit,
      hedge,
      startedMs: nowMs,
      endsMs: nowMs + timeoutMs,
      sentMs: undefined,
      overdue: undefined,
    };
    this.#inFlight = appended(this.#inFlight, t);
    if (hedge) this.#hedges = appended(this.#hedges, t);
    this.#phase = 'trying';
    this.#emit({
      type: 'send',
      tryId: t.id,
      attempt: t.attempt,
      origin: t.target.origin,
      hostHeader: t.target.hostHeader,
      tls: t.target.tls,
      // a probe's answer must reach the breaker at its head: holding it would keep the
      // circuit half-open until its body ended
      hold: permit !== 'probe' && this.#mayRetryBodyCut(),
      tryTimeoutMs: timeoutMs,
      retry,
    });
    this.#armHedge(nowMs);
  }

  /** Holding a response is worth its wait only if a cut body could be retried. */
  #mayRetryBodyCut(): boolean {
    const policy = this.#policy;
    return (
      this.#triesOnOrigin < policy.attempts &&
      policy.methodRetryable &&
      !policy.retry.observeOnly &&
      policy.retry.onFailures.has('body-cut') &&
      this.#in.body() === 'replayable'
    );
  }

  #armHedge(nowMs: number): void {
    const policy = this.#policy;
    if (!this.#mayHedge()) return;
    const delayMs = hedgeDelayMs(policy.retry.hedge, this.#in.method, this.#target.gate.latency);
    if (delayMs === undefined || nowMs + delayMs >= policy.deadlineMs) return;
    this.#hedgeTimer = ++this.#nextId;
    this.#emit({ type: 'wait', timerId: this.#hedgeTimer, delayMs });
  }

  /**
   * Once a try has failed, the last try is kept for a retry: a hedge taking it would leave the
   * request with no try for when the link comes back. Under loss such hedges went out seconds
   * into a burst, sat in TCP's back-off beside the try they hedged, and neither was due to
   * resend when the burst ended; the retry comes after the try in flight, as a fresh connect.
   */
  #mayHedge(): boolean {
    const policy = this.#policy;
    const triesLeft = policy.attempts - this.#triesOnOrigin;
    return (
      this.#phase === 'trying' &&
      !this.#clientGone &&
      this.#inFlight.length > 0 &&
      this.#inFlight.length < policy.retry.hedge.max &&
      triesLeft > (this.#failedOnOrigin ? 1 : 0) &&
      !policy.retry.observeOnly &&
      this.#in.body() === 'replayable'
    );
  }

  /**
   * A try is left that no hedge timer will start (`hedge.max` tries in flight, or the last try
   * kept for a retry): it may start when the link is back (`#onLinkBack`).
   */
  #waitsForLink(): boolean {
    const policy = this.#policy;
    return (
      this.#phase === 'trying' &&
      !this.#clientGone &&
      !this.#noTriesLeft() &&
      isHedged(policy.retry.hedge, this.#in.method) &&
      !policy.retry.observeOnly &&
      this.#in.body() === 'replayable' &&
      !this.#mayHedge()
    );
  }

  /**
   * Quick answers from this upstream say the link is back after loss. Tries sent into the loss
   * wait for TCP's next resend, which after a burst is seconds away (the smoothed round trip
   * it measured grew with the loss), while a fresh try is answered at once: the try kept for a
   * retry starts now, as a hedge, if every try in flight is sent and late (waited what a hedge
   * waits for). With `hedge.max` tries in flight the oldest makes room: its next resend is the
   * furthest off.
   */
  #onLinkBack(nowMs: number): void {
    if (this.#phase === 'backoff') {
      if (this.#retryHeld) this.#afterBackoff(nowMs);
      return;
    }
    const policy = this.#policy;
    const gate = this.#target.gate;
    if (!this.#waitsForLink() || gate.link !== this.#watchedLink) return;
    if (nowMs >= policy.deadlineMs || this.#inFlight.length === 0) return;
    const lateMs = hedgeDelayMs(policy.retry.hedge, this.#in.method, gate.latency);
    if (lateMs === undefined) return;
    let oldest = this.#inFlight[0] as Try;
    for (const t of this.#inFlight) {
      if (t.sentMs === undefined || nowMs - t.sentMs < lateMs) return;
      if (t.sentMs < (oldest.sentMs as number)) oldest = t;
    }
    const permit = gate.gateHedge(nowMs);
    if (permit !== 'pass' && permit !== 'probe') {
      if (!this.#linkHedgeRefused) this.record.addHedge('suppressed');
      this.#linkHedgeRefused = true;
      return;
    }
    if (this.#inFlight.length >= Math.max(1, policy.retry.hedge.max)) {
      this.#inFlight = this.#inFlight.filter((t) => t !== oldest);
      if (oldest.overdue !== undefined) this.#dropKept(oldest, nowMs);
      else this.#dropLoser(oldest, nowMs);
    }
    this.#send(permit, true, nowMs);
  }

  #onHedgeTimer(nowMs: number): void {
    this.#hedgeTimer = 0;
    if (!this.#mayHedge()) return;
    // a slow connect is raced already (proxy/upstream/connect-race.ts); a hedge would only
    // spend a try on one more connect: it waits for the usual time once a try is sent
    if (!this.#inFlight.some((t) => t.sentMs !== undefined)) {
      this.#hedgeDue = true;
      return;
    }
    // a hedge asks like a retry: the breaker, the budget, and a concurrency slot of its own
    const gate = this.#target.gate.gateHedge(nowMs);
    if (gate !== 'pass' && gate !== 'probe') {
      this.record.addHedge('suppressed');
      return;
    }
    this.#send(gate, true, nowMs);
  }

  #inFlightTry(tryId: number): Try | undefined {
    for (const t of this.#inFlight) if (t.id === tryId) return t;
    return undefined;
  }

  #onTrySent(tryId: number, nowMs: number): void {
    const t = this.#inFlightTry(tryId);
    if (t === undefined) return;
    t.sentMs = nowMs;
    if (!this.#hedgeDue || this.#hedgeTimer !== 0) return;
    this.#hedgeDue = false;
    this.#armHedge(nowMs);
  }

  /**
   * A sent try had its per-try time without an answer, or its held body stalled. Cut, it ends
   * as `timeout` or `body-cut` (SPEC §3). But while another try of the request still waits
   * within its own time, cutting it starts nothing (a retry waits for the last try in
   * flight): it goes on beside that try and ends with it. Under packet loss the older try is
   * often the one whose next retransmission gets through, and a held body that stalled there
   * has its head and part of its body in already.
   */
  #onTryOverdue(tryId: number, failure: OverdueFailure, firedMs: number): void {
    const t = this.#inFlightTry(tryId);
    // a kept try whose other timer fires later is kept still
    if (t === undefined || t.overdue !== undefined || this.#phase === 'done') return;
    const end = failure === 'timeout' ? TIMED_OUT : BODY_CUT;
    // its time is up by definition: a timer that fired a tick before the clock says so must
    // not turn the deadline into a plain timeout
    const nowMs = failure === 'timeout' ? Math.max(firedMs, t.endsMs) : firedMs;
    const anotherWaits = this.#inFlight.some((f) => f !== t && f.overdue === undefined);
    this.#failedOnOrigin = true;
    if (anotherWaits && !this.#clientGone) {
      t.overdue = end;
      return;
    }
    if (failure === 'body-cut' && !this.#clientGone && this.#noTriesLeft()) {
      // holding was for a retry that can no longer come: the body goes to the client as it
      // comes, as it would have if it had not been held
      t.overdue = end;
      this.#emit({ type: 'stop-holding', tryId });
      return;
    }
    this.#emit({ type: 'cancel', tryId });
    this.#onTryEnded(tryId, end, nowMs);
  }

  /**
   * The last try failed beside a kept try whose held body stalled: with no try left to replace
   * it, that body goes to the client as it comes (`#onTryOverdue`). Whether there was one.
   */
  #stopHoldingKept(): boolean {
    const kept = this.#inFlight.find((f) => f.overdue?.failure === 'body-cut');
    if (kept === undefined) return false;
    this.#emit({ type: 'stop-holding', tryId: kept.id });
    return true;
  }

  #noTriesLeft(): boolean {
    return this.#triesOnOrigin >= this.#policy.attempts;
  }

  #onTryEnded(tryId: number, end: TryEnd, nowMs: number): void {
    const inFlight = this.#inFlight;
    let index = inFlight.length - 1;
    while (index >= 0 && (inFlight[index] as Try).id !== tryId) index--;
    // a try cancelled earlier: its end was already accounted for
    if (index < 0 || this.#phase === 'done') return;
    const t = inFlight[index] as Try;
    if (inFlight.length === 1) this.#inFlight = emptyList();
    else inFlight.splice(index, 1);
    const gate = t.target.gate;
    if (t.hedge) gate.leave(nowMs);
    if (end.kind === 'denied') {
      // access.deniedUpstreams: the try never left, so there is nothing to learn or retry
      gate.record(nowMs, t.permit, undefined);
      this.#cancelInFlight(nowMs);
      this.#endOrigin('forbidden', nowMs);
      return;
    }
    const failed = end.kind === 'failure' || end.status >= 500;
    // the breaker learns at once: a probe must not wait for a long body to end
    gate.record(nowMs, t.permit, this.#clientGone ? undefined : failed);
    this.record.addTry(end, gate.authority);
    if (failed) this.#failedOnOrigin = true;
    else {
      gate.latency.add(nowMs - t.startedMs);
      if (t.sentMs !== undefined) gate.link.answered(t.sentMs, nowMs);
    }
    if (this.#clientGone) {
      if (end.kind === 'response') this.#emit({ type: 'cancel', tryId: t.id });
      if (this.#inFlight.length > 0) return;
      if (this.#triesOnOrigin < this.#policy.attempts) this.record.suppressed = 'client-gone';
      this.#answer({ kind: 'client-gone' });
      return;
    }
    const final = end.kind === 'response' && !this.#policy.retry.onStatuses.has(end.status);
    if (this.#phase === 'backoff') {
      // a kept try (`#onTryOverdue`) ended while its retry waits: the retry comes anyway,
      // unless this is the answer after all
      if (final) {
        this.#backoffTimer = 0;
        this.#target.gate.record(nowMs, this.#retryPermit, undefined);
        this.#win(t, nowMs);
      } else if (end.kind === 'response') this.#emit({ type: 'cancel', tryId: t.id });
      return;
    }
    if (this.#inFlight.length > 0) {
      // the others may still answer: only a final answer ends the race now
      if (final) {
        this.#win(t, nowMs);
        return;
      }
      if (!this.#inFlight.every((f) => f.overdue !== undefined)) {
        if (end.kind === 'response') this.#emit({ type: 'cancel', tryId: t.id });
        // a place in the race is free: a hedge may take it, after the usual wait (not the last
        // try, `#mayHedge`: under loss that hedge mostly failed to connect, and the try still
        // in flight then ended with no try left to retry it)
        if (this.#hedgeTimer === 0) this.#armHedge(nowMs);
        return;
      }
      // only kept tries are left: they go on beside its retry, or end with it (`#decide`)
    }
    this.#decide(t, end, nowMs);
  }

  /** The last try in flight ended: retry it, or this is the end on this origin. */
  #decide(t: Try, end: Exclude<TryEnd, { kind: 'denied' }>, nowMs: number): void {
    const policy = this.#policy;
    const decision = decideRetry({
      policy,
      attempt: this.#triesOnOrigin,
      result: end,
      body: this.#in.body(),
      nowMs,
      previousDelayMs: this.#previousDelayMs,
      random: this.#in.random,
    });
    if (!decision.retry) {
      if (end.kind === 'failure' && this.#noTriesLeft() && this.#stopHoldingKept()) return;
      this.#endOverdue(nowMs);
      this.#stop(decision.cause, t, end, nowMs);
      return;
    }
    const next = t.target.gate.gate(nowMs, this.#triesOnOrigin + 1);
    // refused: the client gets the answer it would have got without reprise
    if (next === 'circuit-open' || next === 'budget') {
      this.#endOverdue(nowMs);
      this.#stop(next, t, end, nowMs);
      return;
    }
    // a kept try goes on beside the retry while there is room for both: it may answer first
    if (this.#inFlight.length + 1 > Math.max(1, this.#policy.retry.hedge.max)) {
      this.#endOverdue(nowMs);
    }
    this.#retryPermit = next;
    this.#retryReason = decision.reason;
    this.#previousDelayMs = decision.backoffMs;
    const { authority } = t.target.gate;
    const attempt = this.record.attempts;
    const { reason, delayMs } = decision;
    this.#emit({ type: 'retry', upstream: authority, attempt, reason, delayMs });
    if (end.kind === 'response') this.#emit({ type: 'cancel', tryId: t.id });
    this.#hedgeTimer = 0;
    this.#hedgeDue = false;
    if (delayMs <= 0) {
      this.#afterBackoff(nowMs);
      return;
    }
    this.#phase = 'backoff';
    this.#backoffTimer = ++this.#nextId;
    this.#emit({ type: 'wait', timerId: this.#backoffTimer, delayMs });
  }

  #afterBackoff(nowMs: number): void {
    this.#backoffTimer = 0;
    if (this.#holdRetryForLink(nowMs)) return;
    this.#retryHeld = false;
    const gate = this.#target.gate;
    if (!gate.confirm(nowMs, this.#retryPermit)) {
      // the answer that led here was discarded for the retry: reprise answers instead
      this.#suppress('circuit-open', gate.authority);
      this.#endOrigin('circuit-open', nowMs);
      return;
    }
    // counted once it is made: a client that left during the wait got no retry
    this.record.addRetry(this.#retryReason, gate.authority);
    this.#send(this.#retryPermit, false, nowMs);
  }

  /**
   * A retry after a try lost in the link (no answer came back: `connect-failure`, `timeout`,
   * `body-cut`) while the upstream's link is seen down would most likely be lost the same way,
   * and its try with it: it waits for the link to be seen back (`link-back`, from the probes
   * its watching keeps going), at most `perTryTimeout` and leaving a connect's time before the
   * deadline, then goes. A refused connect, a reset or a status came back over the link: never
   * a wait. Whether the retry waits now.
   */
  #holdRetryForLink(nowMs: number): boolean {
    if (this.#retryHeld || this.#retryPermit !== 'pass') return false;
    const link = this.#target.gate.link;
    const { retry, deadlineMs } = this.#policy;
    const waitMs = Math.min(retry.perTryTimeoutMs, deadlineMs - nowMs - retry.connectTimeoutMs);
    if (!link.down || !LOST_IN_LINK.has(this.#retryReason) || waitMs <= 0) return false;
    // told only about the link it watches (a request watches one, the first it needed)
    if (this.#watchedLink === undefined) this.#watchLink();
    else if (this.#watchedLink !== link) return false;
    this.#retryHeld = true;
    this.#backoffTimer = ++this.#nextId;
    this.#emit({ type: 'wait', timerId: this.#backoffTimer, delayMs: waitMs });
    return true;
  }

  /** Ends the tries on this origin with `t`'s end; `cause`: why a due retry was not made. */
  #stop(cause: SuppressedCause | undefined, t: Try, end: TryEnd, nowMs: number): void {
    this.record.suppressed = cause;
    if (cause !== undefined) this.#suppress(cause, t.target.gate.authority);
    if (end.kind === 'response') {
      this.#win(t, nowMs);
      return;
    }
    if (end.kind === 'failure') this.#endOrigin(end.failure, nowMs);
  }

  #suppress(cause: SuppressedCause, upstream: string): void {
    this.record.suppressed = cause;
    this.#emit({ type: 'suppressed', upstream, attempt: this.record.attempts, cause });
  }

  #win(t: Try, nowMs: number): void {
    this.#cancelInFlight(nowMs);
    this.record.setWinner(t.attempt);
    this.#answer({ kind: 'response', tryId: t.id });
  }

  /** The tries kept failed end as they would have when cut (`timeout`, `body-cut`). */
  #endOverdue(nowMs: number): void {
    for (const t of this.#inFlight) this.#dropKept(t, nowMs);
    this.#inFlight = emptyList();
  }

  #dropKept(t: Try, nowMs: number): void {
    const gate = t.target.gate;
    gate.record(nowMs, t.permit, true);
    if (t.hedge) gate.leave(nowMs);
    this.record.addTry(t.overdue ?? TIMED_OUT, gate.authority);
    this.#emit({ type: 'cancel', tryId: t.id });
  }

  /** The tries still in flight lost the race: each was made, none is waited for. */
  #cancelInFlight(nowMs: number): void {
    for (const t of this.#inFlight) this.#dropLoser(t, nowMs);
    this.#inFlight = emptyList();
  }

  #dropLoser(t: Try, nowMs: number): void {
    t.target.gate.record(nowMs, t.permit, undefined);
    if (t.hedge) t.target.gate.leave(nowMs);
    this.record.attempts++;
    this.#emit({ type: 'cancel', tryId: t.id });
  }

  /** No answer to relay from this origin: go to the fallback, or answer with `error`. */
  #endOrigin(error: Exclude<LoopError, 'deadline'>, nowMs: number): void {
    this.#endOverdue(nowMs);
    const fallback = this.#onFallback ? undefined : this.#fallbackFor(error, nowMs);
    if (fallback !== undefined && this.#in.fallback !== undefined) {
      this.finish(nowMs);
      this.#onFallback = true;
      this.#beginOrigin(this.#in.fallback(nowMs), fallback, nowMs);
      return;
    }
    const policy = this.#policy;
    const deadlinePassed = error === 'timeout' && nowMs >= policy.deadlineMs;
    const answer = deadlinePassed ? 'deadline' : error;
    this.#answer({ kind: 'error', error: answer, gate: this.#target.gate });
  }

  /** The fallback's policy when this end calls for it (SPEC §3 "Fallback"), else undefined. */
  #fallbackFor(error: LoopError, nowMs: number): RequestPolicy | undefined {
    const policy = this.#policy;
    if (policy.route.fallback === undefined || !policy.methodRetryable) return undefined;
    if (error === 'overflow' || error === 'forbidden') return undefined;
    if (this.#in.body() !== 'replayable' || nowMs >= policy.deadlineMs) return undefined;
    // never after an HTTP answer or a reset (the primary had the request); an open circuit: always
    if (error !== 'circuit-open' && !this.record.primaryUnreached()) return undefined;
    // the client's x-reprise-retry / x-reprise-max-attempts cap the tries on both origins
    const fallback = resolveFallbackPolicy(policy, this.record.attempts);
    if (fallback === undefined) return undefined;
    this.record.fallback = error;
    this.record.suppressed = undefined;
    return fallback;
  }

  #onClientGone(nowMs: number): void {
    if (this.#clientGone || this.#phase === 'done') return;
    this.#clientGone = true;
    this.#hedgeTimer = 0;
    this.#hedgeDue = false;
    if (this.#phase === 'backoff') {
      this.#target.gate.record(nowMs, this.#retryPermit, undefined);
      this.#cancelInFlight(nowMs);
      this.record.suppressed = 'client-gone';
      this.#answer({ kind: 'client-gone' });
      return;
    }
    // each try ends as the cancel finds it, and is counted then
    for (const t of this.#inFlight) this.#emit({ type: 'cancel', tryId: t.id });
  }

  #answer(answer: LoopAnswer): void {
    this.#phase = 'done';
    this.#backoffTimer = 0;
    this.#hedgeTimer = 0;
    this.#hedgeDue = false;
    for (const t of this.#hedges) {
      const result: HedgeResult = t.attempt === this.record.wonAttempt ? 'won' : 'lost';
      this.record.addHedge(result);
    }
    if (answer.kind === 'error') this.record.error = answer.error;
    this.#emit({ type: 'answer', answer });
  }
}
