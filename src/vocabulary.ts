/**
 * Every name reprise shares with its users (SPEC §3, §5, §6, §8): one declaration each, imported
 * wherever the name is used, so a config key, a log field and a metric label cannot drift apart.
 * The lists are also the label values the metrics start at 0.
 */

/** The failures `retry.on` may name (a bad certificate, below, is not transient). */
export const RETRY_ON_FAILURES = ['connect-failure', 'reset', 'timeout', 'body-cut'] as const;

/**
 * How a try can fail (SPEC §3): without an HTTP answer, with a certificate that failed
 * verification, or (`body-cut`) with a head whose body broke or stalled before reprise had
 * sent the client anything.
 */
export const FAILURE_NAMES = [...RETRY_ON_FAILURES, 'upstream-certificate'] as const;
export type FailureName = (typeof FAILURE_NAMES)[number];

/** How opening a connection to an upstream can fail (upstream/dialer.ts). */
export type DialFailure = 'denied' | 'connect-failure' | 'upstream-certificate';

/** The status classes a `retry.on` entry may name, and a try's outcome when it got an answer. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** How one try ended: a status class or a failure name (`reprise_attempts_total{outcome}`). */
export type TryOutcome = StatusClass | FailureName;
export const TRY_OUTCOMES: readonly TryOutcome[] = [...STATUS_CLASSES, ...FAILURE_NAMES];

/** Why a retry that policy allowed was not made (`reprise_retries_suppressed_total{cause}`). */
export const SUPPRESSED_CAUSES = [
  'budget',
  'circuit-open',
  'deadline',
  'body-too-large',
  'buffer-full',
  'method',
  'retry-after-too-long',
  'client-gone',
  'observe-only',
  // the client's x-reprise-retry: off or x-reprise-max-attempts allowed no more tries
  'client-limit',
] as const;
export type SuppressedCause = (typeof SUPPRESSED_CAUSES)[number];

/** Why a request went to its route's fallback (SPEC §3 "Fallback"). */
export const FALLBACK_CAUSES = ['connect-failure', 'timeout', 'circuit-open'] as const;
export type FallbackCause = (typeof FALLBACK_CAUSES)[number];

/** How a hedge ended (SPEC §8, `reprise_hedges_total{result}`). */
export const HEDGE_RESULTS = ['won', 'lost', 'suppressed'] as const;
export type HedgeResult = (typeof HEDGE_RESULTS)[number];

/** The `x-reprise-error` values of the answers reprise makes itself (SPEC §5). */
export const ERROR_NAMES = [
  ...FAILURE_NAMES,
  'deadline',
  'circuit-open',
  'overflow',
  'bad-request',
  'headers-too-large',
  'uri-too-long',
  'request-timeout',
  'version-not-supported',
  'forbidden',
  'loop',
  'internal',
] as const;
export type ErrorName = (typeof ERROR_NAMES)[number];

/** How a CONNECT's opening ended (`reprise_tunnels_total{outcome}`). */
export const TUNNEL_OUTCOMES = [
  'established',
  'client-gone',
  'connect-failure',
  'circuit-open',
  'overflow',
  'forbidden',
  'loop',
  'bad-request',
  'intercepted',
  'plain-http',
] as const satisfies readonly (
  | ErrorName
  | 'established'
  | 'client-gone'
  | 'intercepted'
  | 'plain-http'
)[];
export type TunnelOutcome = (typeof TUNNEL_OUTCOMES)[number];

/** The circuit breaker's states (`reprise_circuit_state{state}`, /state). */
export const CIRCUIT_STATES = ['closed', 'half-open', 'open'] as const;
export type CircuitState = (typeof CIRCUIT_STATES)[number];

/** How a TLS handshake ended (`reprise_tls_handshakes_total{result}`). */
export const HANDSHAKE_RESULTS = ['ok', 'connect-failure', 'upstream-certificate'] as const;
export type HandshakeResult = (typeof HANDSHAKE_RESULTS)[number];

/** Which side of reprise a handshake was with (`reprise_tls_handshakes_total{side}`). */
export const HANDSHAKE_SIDES = ['client', 'upstream'] as const;
export type HandshakeSide = (typeof HANDSHAKE_SIDES)[number];

/**
 * How a client's handshake with reprise ended, on an intercepted tunnel
 * (`reprise_tls_handshakes_total{side="client", result}`): `ok`; `sni-mismatch` (the SNI named
 * another host than the CONNECT: refused); `h2-only` (no HTTP/1.1 offered: passed through);
 * `rejected` (the client refused reprise's certificate: a pinning client or a missing CA);
 * `aborted` (it closed or failed before the end); `timeout`.
 */
export const CLIENT_HANDSHAKE_RESULTS = [
  'ok',
  'sni-mismatch',
  'h2-only',
  'rejected',
  'aborted',
  'timeout',
] as const;
export type ClientHandshakeResult = (typeof CLIENT_HANDSHAKE_RESULTS)[number];

/** What asking the CA for a host's certificate gave (`reprise_tls_certificates_total{result}`). */
export const CERTIFICATE_RESULTS = ['minted', 'cached', 'refused'] as const;
export type CertificateResult = (typeof CERTIFICATE_RESULTS)[number];
