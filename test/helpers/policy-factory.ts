/**
 * Compiled configs for unit tests of the pure modules, built from the embedded defaults
 * (src/config/defaults.ts, compiled once), so a test's baseline is what the product ships and
 * cannot drift from it. Override only what a test is about.
 */
import { embeddedDefaults } from '../../src/config/compile.ts';
import type {
  Backoff,
  Config,
  Fallback,
  RetryPolicy,
  Route,
  RouteMatch,
  RoutePolicy,
  UpstreamRule,
  UpstreamSettings,
} from '../../src/config/types.ts';
import { type HostPattern, parseHostPattern } from '../../src/routing/host-pattern.ts';
import type { RequestSummary } from '../../src/summary.ts';
import type { FailureName } from '../../src/vocabulary.ts';

export function hostPattern(source: string): HostPattern {
  const pattern = parseHostPattern(source);
  if (typeof pattern === 'string') throw new Error(pattern);
  return pattern;
}

/** The compiled embedded defaults: the values every factory below starts from. */
export const DEFAULTS: Config = embeddedDefaults();

export function makeBackoff(overrides: Partial<Backoff> = {}): Backoff {
  return { ...DEFAULTS.defaultRoute.retry.backoff, ...overrides };
}

export interface RetryOverrides
  extends Partial<Omit<RetryPolicy, 'onFailures' | 'onStatuses' | 'methods'>> {
  readonly onFailures?: readonly FailureName[];
  readonly onStatuses?: readonly number[];
  readonly methods?: readonly string[];
}

export function makeRetryPolicy(overrides: RetryOverrides = {}): RetryPolicy {
  const { onFailures, onStatuses, methods, ...rest } = overrides;
  const retry = DEFAULTS.defaultRoute.retry;
  return {
    ...retry,
    onFailures: new Set(onFailures ?? retry.onFailures),
    onStatuses: new Set(onStatuses ?? retry.onStatuses),
    methods: new Set(methods ?? retry.methods),
    ...rest,
  };
}

export interface RouteOverrides {
  readonly name?: string;
  readonly timeoutMs?: number;
  readonly retry?: RetryOverrides;
  /** `http://host:port`; its retry is `fallbackRetry` merged over the route's. */
  readonly fallback?: string;
  readonly fallbackRetry?: RetryOverrides;
}

export function makeRoutePolicy(overrides: RouteOverrides = {}): RoutePolicy {
  let fallback: Fallback | undefined;
  if (overrides.fallback !== undefined) {
    const origin = new URL(overrides.fallback);
    fallback = {
      origin: overrides.fallback,
      authority: origin.host,
      hostHeader: origin.host,
      tls: undefined,
      retry: makeRetryPolicy({ ...overrides.retry, ...overrides.fallbackRetry }),
    };
  }
  return {
    name: overrides.name ?? 'default',
    timeoutMs: overrides.timeoutMs ?? DEFAULTS.defaultRoute.timeoutMs,
    retry: makeRetryPolicy(overrides.retry),
    fallback,
  };
}

export interface MatchOverrides {
  readonly host?: string;
  readonly path?: string;
  readonly pathRegex?: RegExp;
  readonly methods?: readonly string[];
}

export function makeRoute(match: MatchOverrides, overrides: RouteOverrides = {}): Route {
  const routeMatch: RouteMatch = {
    host: match.host === undefined ? undefined : hostPattern(match.host),
    pathPrefix: match.path,
    pathRegex: match.pathRegex,
    methods: match.methods === undefined ? undefined : new Set(match.methods),
  };
  return { ...makeRoutePolicy({ name: 'route', ...overrides }), match: routeMatch };
}

export function makeUpstreamSettings(overrides: Partial<UpstreamSettings> = {}): UpstreamSettings {
  return { ...DEFAULTS.defaultUpstream, ...overrides };
}

export interface ConfigOverrides {
  readonly defaultRoute?: RoutePolicy;
  readonly routes?: readonly Route[];
  readonly upstreams?: readonly { match: string; settings: UpstreamSettings }[];
}

export function makeConfig(overrides: ConfigOverrides = {}): Config {
  const upstreams: UpstreamRule[] = (overrides.upstreams ?? []).map((u) => ({
    match: hostPattern(u.match),
    settings: u.settings,
    tls: undefined,
  }));
  return {
    ...DEFAULTS,
    defaultRoute: overrides.defaultRoute ?? makeRoutePolicy(),
    routes: overrides.routes ?? [],
    upstreams,
  };
}

/** A finished request's record: one clean GET of one try, with `overrides` laid over it. */
export function makeSummary(overrides: Partial<RequestSummary> = {}): RequestSummary {
  return {
    route: 'api',
    upstream: 'api.example.com:80',
    method: 'GET',
    path: '/v1/items',
    status: 200,
    attempts: 1,
    outcomes: ['2xx'],
    tryUpstreams: ['api.example.com:80'],
    retryReasons: [],
    retryUpstreams: [],
    suppressed: undefined,
    hedges: [],
    wonAttempt: 1,
    fallback: undefined,
    error: undefined,
    reason: undefined,
    startMs: 1_000,
    requestId: 'r-1',
    traceId: undefined,
    client: '127.0.0.1:50000',
    upstreamAddress: '127.0.0.1:80',
    tls: false,
    bytesIn: 100,
    bytesOut: 200,
    durationMs: 12,
    ...overrides,
  };
}
