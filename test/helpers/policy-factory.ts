/**
 * Hand-built compiled configs for unit tests of the pure modules, with SPEC §2's defaults.
 * Override only what a test is about.
 */
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

export function makeBackoff(overrides: Partial<Backoff> = {}): Backoff {
  return { baseMs: 50, maxMs: 1000, jitter: 'full', ...overrides };
}

export interface RetryOverrides
  extends Partial<Omit<RetryPolicy, 'onFailures' | 'onStatuses' | 'methods'>> {
  readonly onFailures?: readonly FailureName[];
  readonly onStatuses?: readonly number[];
  readonly methods?: readonly string[];
}

export function makeRetryPolicy(overrides: RetryOverrides = {}): RetryPolicy {
  const { onFailures, onStatuses, methods, ...rest } = overrides;
  return {
    attempts: 3,
    perTryTimeoutMs: 10_000,
    connectTimeoutMs: 2000,
    onFailures: new Set(onFailures ?? ['connect-failure', 'reset', 'timeout', 'body-cut']),
    onStatuses: new Set(onStatuses ?? [429, 502, 503, 504]),
    methods: new Set(methods ?? ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']),
    idempotencyHeader: 'idempotency-key',
    backoff: makeBackoff(),
    retryAfterMaxMs: 10_000,
    bufferBytes: 1024 * 1024,
    responseBufferBytes: 64 * 1024,
    bodyTimeoutMs: 2000,
    streamIdleTimeoutMs: 30_000,
    observeOnly: false,
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
    timeoutMs: overrides.timeoutMs ?? 30_000,
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
  return {
    budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
    circuitBreaker: {
      failureRatio: 0.5,
      minRequests: 20,
      consecutiveFailures: 0,
      windowMs: 10_000,
      failingForMs: 0,
      openForMs: 5000,
      openForRequests: 0,
      maxOpenForMs: 60_000,
      halfOpenRequests: 1,
    },
    maxConcurrent: 1000,
    ...overrides,
  };
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
    source: undefined,
    listen: { host: '127.0.0.1', port: 3128 },
    admin: { host: '127.0.0.1', port: 9901 },
    defaultRoute: overrides.defaultRoute ?? makeRoutePolicy(),
    routes: overrides.routes ?? [],
    defaultUpstream: makeUpstreamSettings(),
    upstreams,
    listeners: [],
    connect: {
      allowedPorts: new Set([443]),
      idleTimeoutMs: 600_000,
      retry: { attempts: 3, connectTimeoutMs: 2000, backoff: makeBackoff() },
      intercept: undefined,
    },
    limits: {
      maxBufferedBytes: 64 * 1024 * 1024,
      drainTimeoutMs: 20_000,
      maxClientConnections: 20_000,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      maxHeaderBytes: 16 * 1024,
      maxUrlBytes: 8 * 1024,
    },
    access: {
      allowedClients: ['127.0.0.1/32', '::1/128'],
      allowedClientList: undefined,
      deniedUpstreams: [],
      deniedUpstreamList: undefined,
    },
    effective: {},
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
    fallback: undefined,
    error: undefined,
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
