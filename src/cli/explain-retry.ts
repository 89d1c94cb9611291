/**
 * For `explain`: what `decideRetry` says about one request, asked on made-up outcomes rather
 * than restated: whether it is retried and why not, the delay before each retry and whether
 * it could start before the deadline, and which statuses' Retry-After is honoured.
 */
import type { Backoff } from '../config/types.ts';
import { formatDuration, formatSize } from '../config/units.ts';
import { delayRange } from '../retry/backoff.ts';
import { decideRetry, type RetryDecision, type TryResult } from '../retry/decide.ts';
import type { RequestPolicy } from '../retry/request-policy.ts';
import { FAILURE_NAMES } from '../vocabulary.ts';
import { runLoop } from './explain-loop.ts';

/** The `retryable` line and what follows it, for a request under `policy`. */
export function describeRetries(policy: RequestPolicy, method: string): string[] {
  const retry = policy.retry;
  const lines: string[] = [];
  const verdicts = firstTryVerdicts(policy);
  const retried = verdicts.filter((v) => v.decision.retry);
  if (retried.length > 0 && policy.methodRetryable) {
    const because = retry.methods.has(method)
      ? `${method} is in retry.methods`
      : `it has an ${headerCase(retry.idempotencyHeader)} header`;
    lines.push(
      `retryable: yes (${because})`,
      `never retried: a body over ${formatSize(retry.bufferBytes)}, once the response has started, or when the budget or circuit says no`,
    );
  } else {
    lines.push(`retryable: no: ${notRetryableBecause(policy, method, verdicts)}`);
  }
  // the outcome whose retries the delays are worked out for: one that is retried at all
  const probe = verdicts.find((v) => v.decision.retry || v.decision.cause === 'deadline');
  if (probe !== undefined) lines.push(...describeDelays(policy, method, probe.result));
  const honoured = retryAfterStatuses(policy, verdicts);
  const [status] = honoured;
  if (status !== undefined) {
    // the longest Retry-After honoured may not fit in a shorter timeout
    const longest = String(Math.floor(retry.retryAfterMaxMs / 1000));
    const atMax = decide(policy, { kind: 'response', status, retryAfter: longest }, 1, 0, SHORTEST);
    const fits =
      !atMax.retry && atMax.cause === 'deadline'
        ? `, if the retry can still start within the ${formatDuration(policy.deadlineMs)} timeout,`
        : '';
    lines.push(
      `a Retry-After on ${honoured.join('/')} up to ${formatDuration(retry.retryAfterMaxMs)}${fits} lengthens a delay; a longer one ends the retries`,
    );
  }
  return lines;
}

/** What `decideRetry` says after a first try that ended one way, for each way in `retry.on`. */
interface Verdict {
  readonly result: TryResult;
  readonly decision: RetryDecision;
}

/**
 * `decideRetry` after a first try that ended in each outcome of `retry.on`, at the start of
 * the request with the shortest delay and a body that can be replayed: the most that could
 * be retried. The budget and the breaker are the upstream's, so they are not asked here.
 */
function firstTryVerdicts(policy: RequestPolicy): Verdict[] {
  const { onFailures, onStatuses } = policy.retry;
  const results: TryResult[] = [
    ...FAILURE_NAMES.filter((name) => onFailures.has(name)).map(
      (failure) => ({ kind: 'failure', failure }) as const,
    ),
    ...[...onStatuses]
      .sort((a, b) => a - b)
      .map((status) => ({ kind: 'response', status, retryAfter: undefined }) as const),
  ];
  return results.map((result) => ({ result, decision: decide(policy, result, 1, 0, SHORTEST) }));
}

const SHORTEST = () => 0;
const LONGEST = () => 1 - 2 ** -53;

function decide(
  policy: RequestPolicy,
  result: TryResult,
  attempt: number,
  nowMs: number,
  random: () => number,
  previousDelayMs = policy.retry.backoff.baseMs,
): RetryDecision {
  const body = 'replayable';
  return decideRetry({ policy, attempt, result, body, nowMs, previousDelayMs, random });
}

/** Why none, or only connect failures, of the outcomes in `retry.on` would be retried. */
function notRetryableBecause(
  policy: RequestPolicy,
  method: string,
  verdicts: readonly Verdict[],
): string {
  const retry = policy.retry;
  const causes = new Set(verdicts.map((v) => (v.decision.retry ? 'retry' : v.decision.cause)));
  if (verdicts.length === 0) return 'retry.on is empty';
  // decideRetry's first "no" is the attempts left: the route's (no cause), or the client's
  if (causes.has(undefined)) return 'retry.attempts is 1';
  if (causes.has('client-limit')) {
    return policy.attemptsNarrowedBy === 'x-reprise-retry'
      ? 'x-reprise-retry: off'
      : 'x-reprise-max-attempts: 1';
  }
  if (causes.has('observe-only')) {
    return 'observeOnly is true: retries it would make are only counted';
  }
  if (causes.has('deadline')) {
    return `the ${formatDuration(policy.deadlineMs)} timeout leaves no time for the first delay`;
  }
  const header =
    retry.idempotencyHeader === ''
      ? ' (idempotencyHeader is off)'
      : ` and has no ${headerCase(retry.idempotencyHeader)} header`;
  const rest = causes.has('retry')
    ? 'only connect failures are retried'
    : 'nothing is retried (connect-failure is not in retry.on)';
  return `${method} is not in retry.methods${header}: ${rest}`;
}

/**
 * The delay range before each retry, and which retries could not start before the deadline
 * even if every try failed at once: the attempt loop run with the shortest delays (cannot
 * start) and with the longest (may not start).
 */
function describeDelays(policy: RequestPolicy, method: string, result: TryResult): string[] {
  const retries = policy.attempts - 1;
  const timeout = formatDuration(policy.deadlineMs);
  const fit = runLoop(policy, method, result, SHORTEST).length;
  const fitLate = runLoop(policy, method, result, LONGEST).length;
  const lines = delayLines(policy.retry.backoff, retries, (n) => {
    if (n > fit) return ` (cannot start within the ${timeout} timeout)`;
    return n > fitLate ? ` (may not start within the ${timeout} timeout)` : '';
  });
  if (fit < retries && fit > 0) {
    lines.push(
      `warning: the ${timeout} timeout leaves room for ${fit} of the ${retries} retries at most`,
    );
  }
  return lines;
}

export function delayLines(
  backoff: Backoff,
  retries: number,
  note?: (n: number) => string,
): string[] {
  if (retries < 1) return [];
  const lines = ['delays:'];
  for (let n = 1; n <= retries; n++) {
    const { minMs, maxMs } = delayRange(backoff, n);
    lines.push(`  retry ${n}: ${formatDuration(minMs)}–${formatDuration(maxMs)}${note?.(n) ?? ''}`);
  }
  return lines;
}

/**
 * The statuses among those retried whose Retry-After `decideRetry` honours: asked with a
 * Retry-After longer than `retryAfter.max`, they are the ones it then refuses to retry.
 */
function retryAfterStatuses(policy: RequestPolicy, verdicts: readonly Verdict[]): number[] {
  const tooLong = String(Math.floor(policy.retry.retryAfterMaxMs / 1000) + 1);
  const statuses: number[] = [];
  for (const { result, decision } of verdicts) {
    if (!decision.retry || result.kind !== 'response') continue;
    const asked = decide(policy, { ...result, retryAfter: tooLong }, 1, 0, SHORTEST);
    if (!asked.retry && asked.cause === 'retry-after-too-long') statuses.push(result.status);
  }
  return statuses;
}

/** `idempotency-key` -> `Idempotency-Key` */
export function headerCase(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase());
}
