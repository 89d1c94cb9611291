/**
 * The Prometheus metrics of SPEC §8: with metric-series.ts, the only prom-client user. Counters
 * and the histogram are fed from the one RequestSummary per request into plain numbers
 * (metric-series.ts) that prom-client reads at scrape time; gauges are read from providers at
 * scrape time, so the hot path never touches them.
 */

import { STATUS_CODES } from 'node:http';
import type { RetryPolicy, RoutePolicy } from '../config/types.ts';
import type { RequestSummary } from '../summary.ts';
import { VERSION } from '../version.ts';
import {
  CERTIFICATE_RESULTS,
  type CertificateResult,
  CIRCUIT_STATES,
  type CircuitState,
  CLIENT_HANDSHAKE_RESULTS,
  type ClientHandshakeResult,
  FAILURE_NAMES,
  FALLBACK_CAUSES,
  HANDSHAKE_RESULTS,
  type HandshakeResult,
  type HandshakeSide,
  HEDGE_RESULTS,
  SUPPRESSED_CAUSES,
  TRY_OUTCOMES,
  TUNNEL_OUTCOMES,
} from '../vocabulary.ts';
import { CounterFamily, HistogramFamily, LabelCache } from './metric-series.ts';
import { collectDefaultMetrics, Gauge, Registry } from './prom-client.ts';

export { LabelCache } from './metric-series.ts';

/** The upstreams as one scrape sees them. */
type UpstreamSnapshot = readonly {
  readonly authority: string;
  readonly state: CircuitState;
  readonly budgetAvailable: number;
  /** How long the breaker's trip rule has held while closed; 0 while it does not. */
  readonly circuit: { readonly failingForMs: number; readonly enabled: boolean };
}[];

/** What the gauges read at scrape time. */
export interface MetricsProviders {
  upstreams(): UpstreamSnapshot;
  bufferedBytes(): number;
  /** The route of this name in the running config, for the retry reasons it can count. */
  route?(name: string): RoutePolicy | undefined;
}

/** Distinct `upstream` label values kept; later authorities are labelled `other` (SPEC §8). */
export const UPSTREAM_LABEL_LIMIT = 500;
/** From a loopback hop to the default 30s overall timeout. */
export const DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
/** prom-client default metrics left out of the exposition (see the constructor). */
export const MISNAMED_DEFAULT_GAUGES = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;
const STANDARD_METHODS = new Set('GET HEAD POST PUT DELETE PATCH OPTIONS TRACE CONNECT'.split(' '));
const statusLabels: string[] = [];

/** Any other method is `other`, so clients cannot grow the label set. */
export function methodLabel(method: string): string {
  return STANDARD_METHODS.has(method) ? method : 'other';
}

/** The status as a label, from a table so that the hot path allocates no string. */
export function statusLabel(status: number): string {
  if (!Number.isInteger(status) || status < 0 || status > 999) return 'other';
  let label = statusLabels[status];
  if (label === undefined) {
    label = String(status);
    statusLabels[status] = label;
  }
  return label;
}

/** The `reason` values retries on this route can have: failure names and status codes. */
function retryReasonsOf(route: RoutePolicy): Set<string> {
  const policies: RetryPolicy[] = [route.retry];
  if (route.fallback !== undefined) policies.push(route.fallback.retry);
  const reasons = new Set<string>();
  for (const policy of policies) {
    for (const failure of FAILURE_NAMES) if (policy.onFailures.has(failure)) reasons.add(failure);
    for (const status of policy.onStatuses) {
      if (STATUS_CODES[status] !== undefined) reasons.add(statusLabel(status));
    }
  }
  return reasons;
}

export class Metrics {
  readonly #registry = new Registry();
  readonly #providers: MetricsProviders;
  readonly #upstreamLabels = new Set<string>();
  /** route × upstream label pairs seen; the first sighting starts their series at 0. */
  readonly #pairs: LabelCache<true>;
  readonly #pairList: [route: string, upstream: string][] = [];
  readonly #tunnelUpstreams = new Set<string>();
  #otherSeen = false;
  /** Fills the gauges read from the upstreams' snapshot; `text` takes one per scrape. */
  readonly #setUpstreamGauges: (upstreams: UpstreamSnapshot) => void;
  readonly #requests: CounterFamily;
  readonly #duration: HistogramFamily;
  readonly #attempts: CounterFamily;
  readonly #retries: CounterFamily;
  readonly #suppressed: CounterFamily;
  readonly #fallbacks: CounterFamily;
  readonly #hedges: CounterFamily;
  readonly #transitions: CounterFamily;
  readonly #tunnels: CounterFamily;
  readonly #reloads: CounterFamily;
  readonly #handshakes: CounterFamily;
  readonly #certificates: CounterFamily;

  constructor(providers: MetricsProviders) {
    this.#providers = providers;
    const registry = this.#registry;
    // registration order is exposition order
    const counter = (name: string, help: string, labelNames: string[]) =>
      new CounterFamily(registry, name, help, labelNames);
    const labels = (...last: string[]) => ['route', 'upstream', ...last];
    this.#requests = counter(
      'reprise_requests_total',
      'Finished requests; status 0: the client left before an answer.',
      labels('method', 'status'),
    );
    this.#duration = new HistogramFamily(
      registry,
      'reprise_request_duration_seconds',
      'From the request head to the end of the answer, every try and wait included.',
      labels(),
      DURATION_BUCKETS_SECONDS,
    );
    this.#attempts = counter(
      'reprise_attempts_total',
      'Tries, by the upstream each went to.',
      labels('outcome'),
    );
    this.#retries = counter(
      'reprise_retries_total',
      'Retries made (upstream: the primary).',
      labels('reason'),
    );
    this.#suppressed = counter(
      'reprise_retries_suppressed_total',
      'Retries the policy allowed but that were not made (upstream: of the last try).',
      labels('cause'),
    );
    this.#fallbacks = counter(
      'reprise_fallbacks_total',
      'Requests sent to the route fallback (upstream: the primary).',
      labels('cause'),
    );
    this.#hedges = counter(
      'reprise_hedges_total',
      'Hedges: won (its answer went to the client), lost (cancelled or failed), suppressed (the gate said no).',
      labels('result'),
    );
    this.#transitions = counter('reprise_circuit_transitions_total', 'Circuit state changes.', [
      'upstream',
      'to',
    ]);
    this.#tunnels = counter('reprise_tunnels_total', 'CONNECT tunnels.', ['upstream', 'outcome']);
    this.#handshakes = counter('reprise_tls_handshakes_total', 'TLS handshakes, by side.', [
      'side',
      'result',
    ]);
    for (const result of HANDSHAKE_RESULTS) this.#handshakes.zero('upstream', result);
    for (const result of CLIENT_HANDSHAKE_RESULTS) this.#handshakes.zero('client', result);
    this.#certificates = counter(
      'reprise_tls_certificates_total',
      'Certificates asked of the interception CA: minted, served from its cache, or refused.',
      ['result'],
    );
    for (const result of CERTIFICATE_RESULTS) this.#certificates.zero(result);
    this.#reloads = counter('reprise_config_reloads_total', 'Config reloads.', ['result']);
    this.#reloads.zero('ok');
    this.#reloads.zero('error');
    this.#pairs = new LabelCache(2, ([route, upstream]) => {
      this.#pairList.push([route as string, upstream as string]);
      this.#zeroPair(route as string, upstream as string);
      return true;
    });
    this.#setUpstreamGauges = this.#defineGauges([registry]);
    collectDefaultMetrics({ register: registry });
    // gauges named like counters fail `promtool check metrics`; each is the sum of the labelled
    // gauge of the same name without `_total` (sum(nodejs_active_handles) gives it)
    for (const name of MISNAMED_DEFAULT_GAUGES) registry.removeSingleMetric(name);
  }

  /** Prometheus text exposition format. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The authority itself for the first UPSTREAM_LABEL_LIMIT seen, `other` after; never changes. */
  upstreamLabel(authority: string): string {
    if (this.#upstreamLabels.has(authority)) return authority;
    if (this.#upstreamLabels.size >= UPSTREAM_LABEL_LIMIT) {
      if (!this.#otherSeen) {
        this.#otherSeen = true;
        this.#zeroUpstream('other');
      }
      return 'other';
    }
    this.#upstreamLabels.add(authority);
    // '': a request refused before it had an upstream
    if (authority !== '') this.#zeroUpstream(authority);
    return authority;
  }

  requestDone(s: RequestSummary): void {
    const upstream = this.upstreamLabel(s.upstream);
    if (upstream !== '') this.#pairs.get(s.route, upstream);
    this.#requests.inc(s.route, upstream, methodLabel(s.method), statusLabel(s.status));
    // a switched Upgrade's duration is its connection's life, not the latency of an answer
    if (s.status !== 101) this.#duration.observe(s.durationMs / 1000, s.route, upstream);
    for (let i = 0; i < s.outcomes.length; i++) {
      const tryUpstream = this.upstreamLabel(s.tryUpstreams[i] ?? s.upstream);
      if (tryUpstream !== upstream) this.#pairs.get(s.route, tryUpstream);
      this.#attempts.inc(s.route, tryUpstream, s.outcomes[i] as string);
    }
    for (let i = 0; i < s.retryReasons.length; i++) {
      const retryUpstream = this.upstreamLabel(s.retryUpstreams[i] ?? s.upstream);
      this.#retries.inc(s.route, retryUpstream, s.retryReasons[i] as string);
    }
    if (s.suppressed !== undefined) {
      // the retry that was not made would have gone where the last try went
      const last = this.upstreamLabel(s.tryUpstreams.at(-1) ?? s.upstream);
      this.#suppressed.inc(s.route, last, s.suppressed);
    }
    if (s.fallback !== undefined) this.#fallbacks.inc(s.route, upstream, s.fallback);
    for (let i = 0; i < s.hedges.length; i++) {
      this.#hedges.inc(s.route, upstream, s.hedges[i] as string);
    }
  }

  /** A CONNECT's opening ended; its retried connects count as retries of route `''`. */
  tunnelDone(upstream: string, outcome: string, retryReasons: readonly string[] = []): void {
    const label = this.upstreamLabel(upstream);
    if (label !== '' && !this.#tunnelUpstreams.has(label)) {
      this.#tunnelUpstreams.add(label);
      for (const each of TUNNEL_OUTCOMES) this.#tunnels.zero(label, each);
    }
    this.#tunnels.inc(label, outcome);
    for (const reason of retryReasons) this.#retries.inc('', label, reason);
  }

  /** A leaf asked of the interception CA (tls/intercept-ca.ts). */
  certificate(result: CertificateResult): void {
    this.#certificates.inc(result);
  }

  tlsHandshake(side: HandshakeSide, result: HandshakeResult | ClientHandshakeResult): void {
    this.#handshakes.inc(side, result);
  }

  circuitTransition(upstream: string, to: CircuitState): void {
    this.#transitions.inc(this.upstreamLabel(upstream), to);
  }

  /** After a good reload, routes may retry on new reasons: their series start at 0 too. */
  configReload(result: 'ok' | 'error'): void {
    this.#reloads.inc(result);
    if (result === 'ok')
      for (const [route, upstream] of this.#pairList) this.#zeroPair(route, upstream);
  }

  text(): Promise<string> {
    this.#setUpstreamGauges(this.#providers.upstreams());
    return this.#registry.metrics();
  }

  /**
   * Every series of a route × upstream pair whose label values are known starts at 0, so that
   * the first burst on it shows in rate() and increase(): Prometheus cannot see an increase
   * to a series' first sample. Per pair: each try outcome, each suppressed cause, each retry
   * reason the route's policies name (statuses of a range such as 5xx: the registered ones),
   * each fallback cause when the route has a fallback.
   */
  #zeroPair(route: string, upstream: string): void {
    for (const outcome of TRY_OUTCOMES) this.#attempts.zero(route, upstream, outcome);
    for (const cause of SUPPRESSED_CAUSES) this.#suppressed.zero(route, upstream, cause);
    const policy = this.#providers.route?.(route);
    if (policy === undefined) return;
    for (const reason of retryReasonsOf(policy)) this.#retries.zero(route, upstream, reason);
    if (policy.fallback !== undefined) {
      for (const cause of FALLBACK_CAUSES) this.#fallbacks.zero(route, upstream, cause);
    }
    const { hedge } = policy.retry;
    if (hedge.afterMs !== 'off' && hedge.max > 1) {
      for (const result of HEDGE_RESULTS) this.#hedges.zero(route, upstream, result);
    }
  }

  #zeroUpstream(upstream: string): void {
    for (const to of CIRCUIT_STATES) this.#transitions.zero(upstream, to);
  }

  /** Defines the gauges; returns what fills those read from the upstreams' snapshot. */
  #defineGauges(registers: Registry[]): (upstreams: UpstreamSnapshot) => void {
    const providers = this.#providers;
    const label = (authority: string) => this.upstreamLabel(authority);
    const budget = new Gauge({
      name: 'reprise_retry_budget_available',
      help: 'Retries the budget allows now (summed over upstreams labelled other).',
      labelNames: ['upstream'],
      registers,
    });
    const circuit = new Gauge({
      name: 'reprise_circuit_state',
      help: '1 for the current circuit state (for upstream other: how many are in it).',
      labelNames: ['upstream', 'state'],
      registers,
    });
    const enabled = new Gauge({
      name: 'reprise_circuit_enabled',
      help: '1 while the circuit may open; 0 with circuitBreaker.enabled: false (for upstream other: how many have it on).',
      labelNames: ['upstream'],
      registers,
    });
    const failing = new Gauge({
      name: 'reprise_circuit_failing_seconds',
      help: 'How long every recent try has failed while the circuit is closed; it opens at failingFor (the longest over upstreams labelled other).',
      labelNames: ['upstream'],
      registers,
    });
    new Gauge({
      name: 'reprise_buffered_bytes',
      help: 'Bytes held in request replay buffers.',
      registers,
      collect() {
        this.set(providers.bufferedBytes());
      },
    });
    new Gauge({
      name: 'reprise_build_info',
      help: 'Always 1; the labels say which build runs.',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: VERSION, node: process.version }, 1);
    return (upstreams) => {
      budget.reset();
      circuit.reset();
      enabled.reset();
      failing.reset();
      const longest = new Map<string, number>();
      for (const u of upstreams) {
        const upstream = label(u.authority);
        budget.inc({ upstream }, u.budgetAvailable);
        for (const state of CIRCUIT_STATES)
          circuit.inc({ upstream, state }, state === u.state ? 1 : 0);
        enabled.inc({ upstream }, u.circuit.enabled ? 1 : 0);
        longest.set(upstream, Math.max(longest.get(upstream) ?? 0, u.circuit.failingForMs));
      }
      for (const [upstream, ms] of longest) failing.set({ upstream }, ms / 1000);
    };
  }
}
