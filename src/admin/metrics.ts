/**
 * The Prometheus metrics of SPEC §8: the only prom-client user. Counters are fed from the one
 * RequestSummary per request; gauges are read from providers at scrape time, so the hot path
 * never touches them.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RequestSummary } from '../summary.ts';
import { VERSION } from '../version.ts';

export type CircuitState = 'closed' | 'half-open' | 'open';
const CIRCUIT_STATES: readonly CircuitState[] = ['closed', 'half-open', 'open'];

/** What the gauges read at scrape time. */
export interface MetricsProviders {
  upstreams(): readonly {
    readonly authority: string;
    readonly state: CircuitState;
    readonly budgetAvailable: number;
  }[];
  bufferedBytes(): number;
}

/** Distinct `upstream` label values kept; later authorities are labelled `other` (SPEC §8). */
export const UPSTREAM_LABEL_LIMIT = 500;
/** From a loopback hop to the default 30s overall timeout. */
export const DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];
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

/**
 * The children of one labelled metric, found through one nested map per label, so that a
 * lookup of already-seen label values allocates nothing (prom-client's `labels()` builds new
 * objects on every call). `make` runs once per distinct combination.
 */
export class LabelCache<C> {
  readonly #root = new Map<string, unknown>();
  readonly #depth: number;
  readonly #make: (values: string[]) => C;

  constructor(depth: number, make: (values: string[]) => C) {
    if (depth < 1 || depth > 4) throw new RangeError(`LabelCache depth ${depth} not in 1..4`);
    this.#depth = depth;
    this.#make = make;
  }

  get(a: string, b = '', c = '', d = ''): C {
    let level = this.#root;
    for (let i = 0; i < this.#depth - 1; i++) {
      const key = pick(i, a, b, c, d);
      let next = level.get(key) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    const last = pick(this.#depth - 1, a, b, c, d);
    let child = level.get(last) as C | undefined;
    if (child === undefined) {
      child = this.#make([a, b, c, d].slice(0, this.#depth));
      level.set(last, child);
    }
    return child;
  }
}

function pick(i: number, a: string, b: string, c: string, d: string): string {
  return i === 0 ? a : i === 1 ? b : i === 2 ? c : d;
}

type Inc = { inc(value?: number): void };
type Observe = { observe(value: number): void };

export class Metrics {
  readonly #registry = new Registry();
  readonly #providers: MetricsProviders;
  readonly #upstreamLabels = new Set<string>();
  readonly #requests: LabelCache<Inc>;
  readonly #duration: LabelCache<Observe>;
  readonly #attempts: LabelCache<Inc>;
  readonly #retries: LabelCache<Inc>;
  readonly #suppressed: LabelCache<Inc>;
  readonly #fallbacks: LabelCache<Inc>;
  readonly #transitions: LabelCache<Inc>;
  readonly #tunnels: LabelCache<Inc>;
  readonly #reloads: LabelCache<Inc>;

  constructor(providers: MetricsProviders) {
    this.#providers = providers;
    const registers = [this.#registry];
    const counter = (name: string, help: string, labelNames: string[]): LabelCache<Inc> => {
      const metric = new Counter({ name, help, labelNames, registers });
      return new LabelCache(labelNames.length, (values) => metric.labels(...values));
    };
    const labels = (...last: string[]) => ['route', 'upstream', ...last];
    this.#requests = counter(
      'reprise_requests_total',
      'Finished requests; status 0: the client left before an answer.',
      labels('method', 'status'),
    );
    const duration = new Histogram({
      name: 'reprise_request_duration_seconds',
      help: 'From the request head to the end of the answer, every try and wait included.',
      labelNames: labels(),
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.#duration = new LabelCache(2, (values) => duration.labels(...values));
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
    this.#transitions = counter('reprise_circuit_transitions_total', 'Circuit state changes.', [
      'upstream',
      'to',
    ]);
    this.#tunnels = counter('reprise_tunnels_total', 'CONNECT tunnels.', ['upstream', 'outcome']);
    this.#reloads = counter('reprise_config_reloads_total', 'Config reloads.', ['result']);
    this.#reloads.get('ok').inc(0);
    this.#reloads.get('error').inc(0);
    this.#defineGauges(registers);
    collectDefaultMetrics({ register: this.#registry });
  }

  /** Prometheus text exposition format. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** The authority itself for the first UPSTREAM_LABEL_LIMIT seen, `other` after; never changes. */
  upstreamLabel(authority: string): string {
    if (this.#upstreamLabels.has(authority)) return authority;
    if (this.#upstreamLabels.size >= UPSTREAM_LABEL_LIMIT) return 'other';
    this.#upstreamLabels.add(authority);
    return authority;
  }

  requestDone(s: RequestSummary): void {
    const upstream = this.upstreamLabel(s.upstream);
    this.#requests.get(s.route, upstream, methodLabel(s.method), statusLabel(s.status)).inc();
    this.#duration.get(s.route, upstream).observe(s.durationMs / 1000);
    for (let i = 0; i < s.outcomes.length; i++) {
      const tryUpstream = this.upstreamLabel(s.tryUpstreams[i] ?? s.upstream);
      this.#attempts.get(s.route, tryUpstream, s.outcomes[i] as string).inc();
    }
    for (const reason of s.retryReasons) this.#retries.get(s.route, upstream, reason).inc();
    if (s.suppressed !== undefined) {
      // the retry that was not made would have gone where the last try went
      const last = this.upstreamLabel(s.tryUpstreams.at(-1) ?? s.upstream);
      this.#suppressed.get(s.route, last, s.suppressed).inc();
    }
    if (s.fallback !== undefined) this.#fallbacks.get(s.route, upstream, s.fallback).inc();
  }

  tunnelDone(upstream: string, outcome: string): void {
    this.#tunnels.get(this.upstreamLabel(upstream), outcome).inc();
  }

  circuitTransition(upstream: string, to: CircuitState): void {
    this.#transitions.get(this.upstreamLabel(upstream), to).inc();
  }

  configReload(result: 'ok' | 'error'): void {
    this.#reloads.get(result).inc();
  }

  text(): Promise<string> {
    return this.#registry.metrics();
  }

  #defineGauges(registers: Registry[]): void {
    const providers = this.#providers;
    const label = (authority: string) => this.upstreamLabel(authority);
    new Gauge({
      name: 'reprise_retry_budget_available',
      help: 'Retries the budget allows now (summed over upstreams labelled other).',
      labelNames: ['upstream'],
      registers,
      collect() {
        this.reset();
        for (const u of providers.upstreams())
          this.inc({ upstream: label(u.authority) }, u.budgetAvailable);
      },
    });
    new Gauge({
      name: 'reprise_circuit_state',
      help: '1 for the current circuit state (for upstream other: how many are in it).',
      labelNames: ['upstream', 'state'],
      registers,
      collect() {
        this.reset();
        for (const u of providers.upstreams()) {
          const upstream = label(u.authority);
          for (const state of CIRCUIT_STATES)
            this.inc({ upstream, state }, state === u.state ? 1 : 0);
        }
      },
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
  }
}
