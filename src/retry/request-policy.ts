/**
 * The policy of one request, resolved once at the edge from its route and the client's
 * `x-reprise-*` headers (SPEC §5). The headers only narrow: fewer tries, a shorter timeout.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { RetryPolicy, RoutePolicy } from '../config/types.ts';

export interface RequestPolicy {
  readonly route: RoutePolicy;
  /** The route's retry policy (for a fallback policy: the fallback's, merged over the route's). */
  readonly retry: RetryPolicy;
  /** Tries in all: `retry.attempts`, narrowed by `x-reprise-retry: off` and `x-reprise-max-attempts`. */
  readonly attempts: number;
  /**
   * The client's cap on tries over the primary and the fallback together (`x-reprise-retry:
   * off` = 1, `x-reprise-max-attempts`); Infinity when it set none.
   */
  readonly clientMaxAttempts: number;
  /** Epoch ms: start + min(route timeout, `x-reprise-timeout-ms`). */
  readonly deadlineMs: number;
  /** The client header that made `attempts` lower than `retry.attempts`; undefined when none did. */
  readonly attemptsNarrowedBy: 'x-reprise-retry' | 'x-reprise-max-attempts' | undefined;
  /** Set when `x-reprise-timeout-ms` made the deadline earlier than the route's timeout. */
  readonly timeoutNarrowedBy: 'x-reprise-timeout-ms' | undefined;
  /** The method is in `retry.methods`, or the request carries a non-empty `retry.idempotencyHeader`. */
  readonly methodRetryable: boolean;
  /** Resolved with this policy when the route has a fallback; read it through `resolveFallbackPolicy`. */
  readonly fallback: RequestPolicy | undefined;
}

/** What the client asked for; applied the same way to the primary and the fallback. */
interface ClientLimits {
  readonly retryOff: boolean;
  /** undefined = no (valid) `x-reprise-max-attempts`. */
  readonly maxAttempts: number | undefined;
  /** Epoch ms: start + min(route timeout, `x-reprise-timeout-ms`). */
  readonly deadlineMs: number;
  readonly timeoutNarrowedBy: RequestPolicy['timeoutNarrowedBy'];
}

const POSITIVE_INTEGER = /^\d{1,15}$/;

/**
 * Resolves the policy of a request that started at `startMs` (epoch ms). `method` as sent
 * (upper-case); `headers` as node:http gives them (lower-case names). Malformed control
 * headers are ignored, as is a value that would widen the route's policy.
 */
export function resolveRequestPolicy(
  route: RoutePolicy,
  method: string,
  headers: IncomingHttpHeaders,
  startMs: number,
): RequestPolicy {
  // 0 is ignored like garbage: with narrowing only, "no timeout" can only mean the route's
  const clientTimeoutMs = parsePositive(headers['x-reprise-timeout-ms']) ?? Infinity;
  const narrowsTimeout = clientTimeoutMs < route.timeoutMs;
  const limits: ClientLimits = {
    retryOff: headerValue(headers['x-reprise-retry'])?.trim().toLowerCase() === 'off',
    maxAttempts: parsePositive(headers['x-reprise-max-attempts']),
    deadlineMs: startMs + (narrowsTimeout ? clientTimeoutMs : route.timeoutMs),
    timeoutNarrowedBy: narrowsTimeout ? 'x-reprise-timeout-ms' : undefined,
  };
  const fallback =
    route.fallback === undefined
      ? undefined
      : policyFor(route, route.fallback.retry, method, headers, limits, undefined);
  return policyFor(route, route.retry, method, headers, limits, fallback);
}

/**
 * The policy for the route's fallback upstream after `triesMade` tries on the primary: its
 * own retry policy, the same deadline and the same narrowing by the client's headers, which
 * cap the tries on both origins together. undefined when the route has no fallback or the
 * client's cap is used up.
 */
export function resolveFallbackPolicy(
  policy: RequestPolicy,
  triesMade: number,
): RequestPolicy | undefined {
  const fallback = policy.fallback;
  if (fallback === undefined) return undefined;
  const left = policy.clientMaxAttempts - triesMade;
  if (left < 1) return undefined;
  return left >= fallback.attempts ? fallback : { ...fallback, attempts: left };
}

/**
 * How long the try starting at `nowMs` may take until its answer's head (and a held body):
 * `perTryTimeout`, cut to the time left before the deadline; at least 1 ms. The one clamp of
 * per-try time, for the forward path and the Upgrade path alike.
 */
export function tryTimeoutMs(policy: RequestPolicy, nowMs: number): number {
  return Math.max(1, Math.min(policy.retry.perTryTimeoutMs, policy.deadlineMs - nowMs));
}

function policyFor(
  route: RoutePolicy,
  retry: RetryPolicy,
  method: string,
  headers: IncomingHttpHeaders,
  limits: ClientLimits,
  fallback: RequestPolicy | undefined,
): RequestPolicy {
  let attempts = retry.attempts;
  if (limits.retryOff) attempts = 1;
  else if (limits.maxAttempts !== undefined) attempts = Math.min(attempts, limits.maxAttempts);
  const narrowed = attempts < retry.attempts;
  return {
    route,
    retry,
    attempts,
    clientMaxAttempts: limits.retryOff ? 1 : (limits.maxAttempts ?? Infinity),
    deadlineMs: limits.deadlineMs,
    attemptsNarrowedBy: !narrowed
      ? undefined
      : limits.retryOff
        ? 'x-reprise-retry'
        : 'x-reprise-max-attempts',
    timeoutNarrowedBy: limits.timeoutNarrowedBy,
    methodRetryable: isMethodRetryable(retry, method, headers),
    fallback,
  };
}

function isMethodRetryable(
  retry: RetryPolicy,
  method: string,
  headers: IncomingHttpHeaders,
): boolean {
  if (retry.methods.has(method)) return true;
  if (retry.idempotencyHeader === '') return false;
  // an empty key cannot let the upstream recognise a repeat, so it does not count
  const key = headerValue(headers[retry.idempotencyHeader]);
  return key !== undefined && key.trim() !== '';
}

function headerValue(value: string | string[] | undefined): string | undefined {
  // node:http joins repeated custom headers with ", "; an array only comes from hand-built objects
  return Array.isArray(value) ? value.join(', ') : value;
}

/** A whole number >= 1, or undefined for anything else. */
function parsePositive(value: string | string[] | undefined): number | undefined {
  const text = headerValue(value)?.trim();
  if (text === undefined || !POSITIVE_INTEGER.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 ? n : undefined;
}
