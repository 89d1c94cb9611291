/**
 * What goes into the attempt machine (events: what happened) and what comes out (actions:
 * what to do), and the gate it asks before every try. attempt-machine.ts has the rules.
 */
import type { RetryPolicy, UpstreamTls } from '../config/types.ts';
import type { BreakerPermit } from '../resilience/circuit-breaker.ts';
import type { FailureName, HedgeResult, SuppressedCause } from '../vocabulary.ts';

export type { HedgeResult };

import type { UsualLatency } from './hedge.ts';

/** How a try ended, as the machine needs to know it. */
export type TryEnd =
  | {
      readonly kind: 'response';
      readonly status: number;
      /** The Retry-After header, on 429 and 503. */
      readonly retryAfter: string | undefined;
    }
  | { readonly kind: 'failure'; readonly failure: FailureName }
  /** `access.deniedUpstreams`: the try never left. */
  | { readonly kind: 'denied' };

/** How a sent try that failed without ending (`try-overdue`) ends once it is cut. */
export type OverdueFailure = Extract<FailureName, 'timeout' | 'body-cut'>;

export type AttemptEvent =
  | { readonly type: 'start' }
  /** A try has its answer (its head, or its held body whole), or failed. */
  | { readonly type: 'try-ended'; readonly tryId: number; readonly end: TryEnd }
  /** A try is connected and its request is being written. */
  | { readonly type: 'try-sent'; readonly tryId: number }
  /**
   * A sent try failed without ending: no head within its per-try time (`timeout`), or its held
   * body stalled (`body-cut`). It goes on until cancelled.
   */
  | { readonly type: 'try-overdue'; readonly tryId: number; readonly failure: OverdueFailure }
  /** A `wait` is over (a back-off, or the time before a hedge). */
  | { readonly type: 'timer'; readonly timerId: number }
  | { readonly type: 'client-gone' }
  /** Quick answers from this upstream say the link is back (after `watch-link`). */
  | { readonly type: 'link-back' };

export type AttemptAction =
  | {
      readonly type: 'send';
      readonly tryId: number;
      /** `x-reprise-attempt`: 1 for the first try of the request, across origins. */
      readonly attempt: number;
      readonly origin: string;
      /** The Host header of a try on the fallback; undefined: the request's own. */
      readonly hostHeader: string | undefined;
      /** TLS to the upstream, where it has settings. */
      readonly tls: UpstreamTls | undefined;
      /** Hold the response until its body is whole (a cut body could still be retried). */
      readonly hold: boolean;
      /** min(perTryTimeout, time left), at least 1. */
      readonly tryTimeoutMs: number;
      /** The retry settings of the origin the try goes to (a fallback has its own). */
      readonly retry: RetryPolicy;
    }
  /** Stop a try wherever it is; drop the answer it holds, if any. */
  | { readonly type: 'cancel'; readonly tryId: number }
  /** Stop holding this try's body: give its head now, and let the body follow as it comes. */
  | { readonly type: 'stop-holding'; readonly tryId: number }
  /** Send `timer` with this id after `delayMs`. */
  | { readonly type: 'wait'; readonly timerId: number; readonly delayMs: number }
  /** A retry was decided (for the debug log and nothing else: the record counts it when made). */
  | {
      readonly type: 'retry';
      readonly upstream: string;
      readonly attempt: number;
      readonly reason: string;
      readonly delayMs: number;
    }
  | {
      readonly type: 'suppressed';
      readonly upstream: string;
      readonly attempt: number;
      readonly cause: SuppressedCause;
    }
  /** Feed `link-back` each time this upstream's link is seen back, until the request ends. */
  | {
      readonly type: 'watch-link';
      readonly link: LinkWatch;
      /** Where the tries go (`scheme://host:port`): what a probe of the link dials. */
      readonly origin: string;
    }
  | { readonly type: 'answer'; readonly answer: LoopAnswer };

/** The machine's last word: relay a try's answer, make one, or nobody is left to tell. */
export type LoopAnswer =
  | { readonly kind: 'response'; readonly tryId: number }
  | { readonly kind: 'error'; readonly error: LoopError; readonly gate: TryGate }
  | { readonly kind: 'client-gone' };

export type LoopError = FailureName | 'circuit-open' | 'overflow' | 'forbidden' | 'deadline';

/** resilience/link-recovery.ts `LinkRecovery`. */
export interface LinkWatch {
  /** Seen down by a lost probe, not back since, and able to be seen back. */
  readonly down: boolean;
  answered(sentMs: number, nowMs: number): void;
  /** Calls `onBack` each time the link is seen back, until the returned function is called. */
  watch(onBack: () => void, origin: string): () => void;
}

/** One upstream as the machine sees it (resilience/upstream-registry.ts `Upstream`). */
export interface TryGate {
  readonly authority: string;
  readonly latency: UsualLatency & { add(ms: number): void };
  readonly breaker: { retryAfterMs(nowMs: number): number };
  /** Whether the link is back after loss (resilience/link-recovery.ts). */
  readonly link: LinkWatch;
  gate(nowMs: number, attempt: 1): BreakerPermit | 'circuit-open' | 'overflow';
  gate(nowMs: number, attempt: number): BreakerPermit | 'circuit-open' | 'budget';
  gateHedge(nowMs: number): BreakerPermit | 'circuit-open' | 'budget' | 'overflow';
  confirm(nowMs: number, permit: BreakerPermit): boolean;
  record(nowMs: number, permit: BreakerPermit, failed: boolean | undefined): void;
  leave(nowMs: number): void;
}

/** Where tries go: an upstream and how to reach it. */
export interface OriginTarget {
  readonly gate: TryGate;
  /** `http://host:port` */
  readonly origin: string;
  /** The Host header for tries here; undefined: the request's own. */
  readonly hostHeader: string | undefined;
  /** TLS to it, where it has settings (`upstreams[].tls`, `https://`). */
  readonly tls: UpstreamTls | undefined;
}
