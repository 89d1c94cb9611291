/**
 * Whether the try that just ended is retried, and after how long: pure, no clock, no budget.
 * The budget, the circuit and a departed client are the attempt loop's gates, checked after.
 */
import type { FailureName, SuppressedCause } from '../vocabulary.ts';
import { backoffDelay } from './backoff.ts';
import type { RequestPolicy } from './request-policy.ts';
import { parseRetryAfterMs } from './retry-after.ts';

export type TryResult =
  | { readonly kind: 'response'; readonly status: number; readonly retryAfter: string | undefined }
  | { readonly kind: 'failure'; readonly failure: FailureName };

/** Whether the request body can be sent again (see proxy/exchange/replayable-body). */
export type BodyState = 'replayable' | 'body-too-large' | 'buffer-full';

export interface DecideInput {
  readonly policy: RequestPolicy;
  /** The try that just ended, 1-based. */
  readonly attempt: number;
  readonly result: TryResult;
  readonly body: BodyState;
  /** Epoch ms. */
  readonly nowMs: number;
  /** `backoffMs` of the previous retry's decision; 0 before the first retry. */
  readonly previousDelayMs: number;
  /** Returns a number in [0, 1). */
  readonly random: () => number;
}

export type RetryDecision =
  | {
      readonly retry: true;
      /** The failure name or the status code (`'503'`): the `reason` label. */
      readonly reason: string;
      /** How long to wait before the next try: max(backoff, Retry-After). */
      readonly delayMs: number;
      /** The backoff sequence value: pass as `previousDelayMs` next time. Retry-After never changes it. */
      readonly backoffMs: number;
    }
  | {
      readonly retry: false;
      /** undefined = final by policy (not in `on`, or attempts used up); else the suppressed cause. */
      readonly cause: SuppressedCause | undefined;
    };

const FINAL: RetryDecision = Object.freeze({ retry: false, cause: undefined });

/** Statuses whose Retry-After is honoured (SPEC §3). */
function carriesRetryAfter(status: number): boolean {
  return status === 429 || status === 503;
}

/** Decides in SPEC order; each `suppressed` cause is the first check that said no. */
export function decideRetry(input: DecideInput): RetryDecision {
  const { policy, result } = input;
  const retry = policy.retry;
  // a certificate that failed verification fails the same way next time (SPEC §3)
  if (result.kind === 'failure' && result.failure === 'upstream-certificate') return FINAL;
  const wanted =
    result.kind === 'response'
      ? retry.onStatuses.has(result.status)
      : retry.onFailures.has(result.failure);
  if (!wanted || input.attempt >= policy.retry.attempts) return FINAL;
  // the client's x-reprise-retry: off or x-reprise-max-attempts ended the tries early: a retry
  // the route allows, so the access line says why it was not made (if nothing else forbids it)
  const clientCapped = input.attempt >= policy.attempts;
  if (clientCapped && policy.attemptsNarrowedBy === undefined) return FINAL;
  // nothing was sent on a connect failure, so every method may retry it (SPEC §3)
  const nothingSent = result.kind === 'failure' && result.failure === 'connect-failure';
  if (!nothingSent && !policy.methodRetryable) return suppressed('method');
  // even with nothing sent, the body was read into the failed try; only a full copy can replay
  if (input.body !== 'replayable') return suppressed(input.body);
  if (clientCapped) return suppressed('client-limit');

  let retryAfterMs: number | undefined;
  if (result.kind === 'response' && carriesRetryAfter(result.status)) {
    retryAfterMs = parseRetryAfterMs(result.retryAfter, input.nowMs);
    if (retryAfterMs !== undefined && retryAfterMs > retry.retryAfterMaxMs) {
      return suppressed('retry-after-too-long');
    }
  }
  const backoffMs = backoffDelay(retry.backoff, input.attempt, input.previousDelayMs, input.random);
  const delayMs = Math.max(backoffMs, retryAfterMs ?? 0);
  if (input.nowMs + delayMs >= policy.deadlineMs) return suppressed('deadline');
  if (retry.observeOnly) return suppressed('observe-only');
  const reason = result.kind === 'response' ? String(result.status) : result.failure;
  return { retry: true, reason, delayMs, backoffMs };
}

function suppressed(cause: SuppressedCause): RetryDecision {
  return { retry: false, cause };
}
