/**
 * The one record of a finished request, built by the attempt loop and handed to every sink
 * (the access log line, the metrics). Sinks read it; nobody mutates it after `finish`.
 */
import type { FailureName } from './config/types.ts';

/** Why a retry that policy allowed was not made (SPEC §8, `cause` label). */
export type SuppressedCause =
  | 'budget'
  | 'circuit-open'
  | 'deadline'
  | 'body-too-large'
  | 'buffer-full'
  | 'method'
  | 'retry-after-too-long'
  | 'client-gone'
  | 'observe-only';

/** How one try ended: a status class (`2xx`…`5xx`) or a failure name. */
export type TryOutcome = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | FailureName;

export interface RequestSummary {
  readonly route: string;
  /** host:port of the primary upstream. */
  readonly upstream: string;
  readonly method: string;
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
  /** Set when the request went to the route's fallback: why (`connect-failure`, `timeout`, `circuit-open`). */
  readonly fallback: string | undefined;
  /** Set on answers reprise made itself (`x-reprise-error`), and `body-cut` on a relayed body that broke. */
  readonly error: string | undefined;
  readonly durationMs: number;
}
