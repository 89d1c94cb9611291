/**
 * What the tries of one request did, kept by the attempt machine and read into the summary
 * (the access line and the metrics): one entry per try, per retry made, per hedge.
 */

import { appended, emptyList } from '../lists.ts';
import type { SuppressedCause, TryOutcome } from '../vocabulary.ts';
import type { HedgeResult, LoopError, TryEnd } from './attempt-events.ts';
import { statusOutcome } from './failure.ts';

export class AttemptRecord {
  /** Tries made on the primary and the fallback together, cancelled hedges included. */
  attempts = 0;
  /** One per try that ended (a cancelled hedge has none). */
  outcomes: TryOutcome[] = emptyList();
  /** The upstream of each entry of `outcomes`. */
  tryUpstreams: string[] = emptyList();
  /** One per retry made: the failure name or the status code (`503`). */
  retryReasons: string[] = emptyList();
  retryUpstreams: string[] = emptyList();
  /** One per hedge due: `won` or `lost` once started, `suppressed` when the gate said no. */
  hedgeResults: HedgeResult[] = emptyList();
  suppressed: SuppressedCause | undefined;
  /** Why the request went to the route's fallback. */
  fallback: LoopError | undefined;
  /** The answer reprise made, or `body-cut` for a relayed body that broke. */
  error: LoopError | 'body-cut' | undefined;
  /** `x-reprise-attempt` of the try whose answer the client got. */
  wonAttempt: number | undefined;
  #wonOutcome = -1;

  addTry(end: Exclude<TryEnd, { kind: 'denied' }>, upstream: string): void {
    this.attempts++;
    this.outcomes = appended(
      this.outcomes,
      end.kind === 'failure' ? end.failure : statusOutcome(end.status),
    );
    this.tryUpstreams = appended(this.tryUpstreams, upstream);
  }

  /** The try that just ended (the last of `outcomes`) is the one whose answer is relayed. */
  setWinner(attempt: number): void {
    this.wonAttempt = attempt;
    this.#wonOutcome = this.outcomes.length - 1;
  }

  addRetry(reason: string, upstream: string): void {
    this.retryReasons = appended(this.retryReasons, reason);
    this.retryUpstreams = appended(this.retryUpstreams, upstream);
  }

  addHedge(result: HedgeResult): void {
    this.hedgeResults = appended(this.hedgeResults, result);
  }

  /** Every try so far failed before the upstream had the request. */
  primaryUnreached(): boolean {
    return this.outcomes.every((o) => o === 'connect-failure' || o === 'timeout');
  }

  /** The relayed body broke after the client had its head: too late to retry, not to tell. */
  markRelayCut(): void {
    if (this.#wonOutcome >= 0) this.outcomes[this.#wonOutcome] = 'body-cut';
    this.error = 'body-cut';
  }
}
