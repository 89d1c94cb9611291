/**
 * The one record of a finished request, tunnel or Upgrade, built by `summarize` and handed to
 * every sink (the access log line, the metrics). Sinks read it; nobody mutates it after.
 */
import { NONE } from './lists.ts';
import type { HedgeResult, SuppressedCause, TryOutcome } from './vocabulary.ts';

/** What is known of a request the moment it arrives: when, and what logs join it on. */
export interface RequestOrigin {
  readonly startMs: number;
  readonly method: string;
  /** The client's `x-request-id`, or one made here (and then forwarded upstream). */
  readonly requestId: string;
  /** From a valid W3C `traceparent`; the header itself goes upstream untouched. */
  readonly traceId: string | undefined;
  /** `ip:port` of the client connection (`[ip]:port` for IPv6). */
  readonly client: string;
  /** Set for a request read inside a CONNECT tunnel: how reprise read it (SPEC §6). */
  readonly tunnel?: 'intercepted' | 'plain-http' | undefined;
}

export interface RequestSummary extends RequestOrigin {
  readonly route: string;
  /** host:port of the primary upstream. */
  readonly upstream: string;
  /** Path only; the query string is never recorded. */
  readonly path: string;
  /** The status the client got; 0 when the client went away before an answer. */
  readonly status: number;
  /** Tries made on the primary and the fallback together. */
  readonly attempts: number;
  /** One per try, in order. */
  readonly outcomes: readonly TryOutcome[];
  /** The upstream each try went to (differs from `upstream` only for fallback tries). */
  readonly tryUpstreams: readonly string[];
  /** One per retry made: the failure name or the status code (`503`). */
  readonly retryReasons: readonly string[];
  /** The upstream each retry went to, one per `retryReasons` entry. */
  readonly retryUpstreams: readonly string[];
  /** Set when a retry the policy allowed was not made. */
  readonly suppressed: SuppressedCause | undefined;
  /** One per hedge due: `won` or `lost` once started, `suppressed` when its gate said no. */
  readonly hedges: readonly HedgeResult[];
  /** Which try's answer the client got (`x-reprise-attempt`); undefined: reprise answered. */
  readonly wonAttempt: number | undefined;
  /** Set when the request went to the route's fallback: why (one of FALLBACK_CAUSES). */
  readonly fallback: string | undefined;
  /** Set on answers reprise made itself (`x-reprise-error`), and `body-cut` on a relayed body that broke. */
  readonly error: string | undefined;
  /**
   * Why reprise refused the request, in the words of its answer's `message` (which port, which
   * client, which denied address); undefined for answers whose `error` says it all.
   */
  readonly reason: string | undefined;
  /** `ip:port` the last try connected to; undefined when no try reached a connection. */
  readonly upstreamAddress: string | undefined;
  /** The last try was sent over TLS (TLS origination); false for plain HTTP and tunnels. */
  readonly tls: boolean;
  /** Bytes read from the client connection for this request, its head included. */
  readonly bytesIn: number;
  /** Bytes written to the client connection for this request, its head included. */
  readonly bytesOut: number;
  readonly durationMs: number;
}

/** What a finished request adds to its origin; what a path did not reach is left out. */
export interface RequestEnd {
  readonly route: string;
  readonly upstream: string;
  readonly path: string;
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly attempts?: number;
  readonly outcomes?: readonly TryOutcome[];
  readonly tryUpstreams?: readonly string[];
  readonly retryReasons?: readonly string[];
  readonly retryUpstreams?: readonly string[];
  readonly suppressed?: SuppressedCause | undefined;
  readonly hedges?: readonly HedgeResult[];
  readonly wonAttempt?: number | undefined;
  readonly fallback?: string | undefined;
  readonly error?: string | undefined;
  readonly reason?: string | undefined;
  readonly upstreamAddress?: string | undefined;
  readonly tls?: boolean;
}

/** The one builder of the record, for the attempt loop, refusals, tunnels and Upgrades alike. */
export function summarize(origin: RequestOrigin, end: RequestEnd, nowMs: number): RequestSummary {
  return {
    startMs: origin.startMs,
    method: origin.method,
    requestId: origin.requestId,
    traceId: origin.traceId,
    client: origin.client,
    tunnel: origin.tunnel,
    route: end.route,
    upstream: end.upstream,
    path: end.path,
    status: end.status,
    attempts: end.attempts ?? 0,
    outcomes: end.outcomes ?? NONE,
    tryUpstreams: end.tryUpstreams ?? NONE,
    retryReasons: end.retryReasons ?? NONE,
    retryUpstreams: end.retryUpstreams ?? NONE,
    suppressed: end.suppressed,
    hedges: end.hedges ?? NONE,
    wonAttempt: end.wonAttempt,
    fallback: end.fallback,
    error: end.error,
    reason: end.reason,
    upstreamAddress: end.upstreamAddress,
    tls: end.tls ?? false,
    bytesIn: end.bytesIn,
    bytesOut: end.bytesOut,
    durationMs: nowMs - origin.startMs,
  };
}
