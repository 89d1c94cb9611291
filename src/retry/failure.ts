/**
 * How a try that got no HTTP answer failed, classified by what was sent (SPEC §3):
 * `connect-failure` means no byte reached the upstream, so every method may retry it.
 */
import type { FailureName, TryOutcome } from '../vocabulary.ts';

/** A reset on an upstream connection, renamed so undici does not read it as a body's end. */
export const UPSTREAM_RESET_CODE = 'ERR_UPSTREAM_RESET';

/**
 * The one table from undici / Node error codes to failure names. A code not listed is a
 * `reset`: the safe answer, since a request may have been sent (only retryable methods retry).
 */
export const FAILURE_BY_CODE: Readonly<Record<string, FailureName>> = Object.freeze({
  // nothing was sent, so every method may retry (SPEC §3)
  UND_ERR_CONNECT_TIMEOUT: 'connect-failure',
  ECONNREFUSED: 'connect-failure',
  ENOTFOUND: 'connect-failure',
  EAI_AGAIN: 'connect-failure',
  EHOSTUNREACH: 'connect-failure',
  ENETUNREACH: 'connect-failure',
  EADDRNOTAVAIL: 'connect-failure',
  // the connection ended before response headers
  ECONNRESET: 'reset',
  [UPSTREAM_RESET_CODE]: 'reset',
  EPIPE: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_CLOSED: 'reset',
  // the upstream's certificate failed verification (Node's names for OpenSSL's X509 errors):
  // not transient, so never retried (SPEC §3)
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'upstream-certificate',
  UNABLE_TO_GET_ISSUER_CERT: 'upstream-certificate',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'upstream-certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'upstream-certificate',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'upstream-certificate',
  CERT_HAS_EXPIRED: 'upstream-certificate',
  CERT_NOT_YET_VALID: 'upstream-certificate',
  CERT_REVOKED: 'upstream-certificate',
  CERT_UNTRUSTED: 'upstream-certificate',
  CERT_REJECTED: 'upstream-certificate',
  CERT_SIGNATURE_FAILURE: 'upstream-certificate',
  INVALID_CA: 'upstream-certificate',
  INVALID_PURPOSE: 'upstream-certificate',
  PATH_LENGTH_EXCEEDED: 'upstream-certificate',
  ERR_TLS_CERT_ALTNAME_INVALID: 'upstream-certificate',
});

/** Bounds the walk down `cause`, so a cyclic chain cannot loop. */
const MAX_CAUSE_DEPTH = 8;

/**
 * Classifies a thrown value by its `code`, then its `cause.code`, and so on down the
 * `cause` chain; the first code in the table decides. Anything else is `reset`.
 */
export function classifyError(err: unknown): FailureName {
  let current: unknown = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && isObject(current); depth++) {
    const code = current.code;
    if (typeof code === 'string' && Object.hasOwn(FAILURE_BY_CODE, code)) {
      return FAILURE_BY_CODE[code] as FailureName;
    }
    current = current.cause;
  }
  return 'reset';
}

/**
 * How a dial failed (proxy/upstream/dialer.ts): a certificate that failed verification is
 * `upstream-certificate`; anything else, a handshake reset or stall included, is a
 * `connect-failure`, since no byte of the request was sent.
 */
export function classifyDialError(err: unknown): 'connect-failure' | 'upstream-certificate' {
  return classifyError(err) === 'upstream-certificate' ? 'upstream-certificate' : 'connect-failure';
}

/** The outcome label of a try that got an HTTP answer (`reprise_attempts_total`). */
export function statusOutcome(status: number): TryOutcome {
  // statuses outside 100–599 are clamped into the nearest class
  if (status < 200) return '1xx';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}

function isObject(value: unknown): value is { code?: unknown; cause?: unknown } {
  return typeof value === 'object' && value !== null;
}
