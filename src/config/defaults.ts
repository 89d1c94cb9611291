/**
 * The embedded defaults: SPEC §2's values with no routes, plus the keys the design notes add
 * (connect.idleTimeout, limits.*, access.deniedUpstreams); and how a file merges over them.
 * A file is deep-merged over this document, so every key a file leaves out has its value here;
 * then `defaults.route` is merged into each route and `defaults.upstream` into each upstream.
 */
import type { RawDocument } from './schema.ts';

export const EMBEDDED_DEFAULTS: RawDocument = {
  version: 1,
  listen: '127.0.0.1:3128',
  admin: '127.0.0.1:9901',
  defaults: {
    route: {
      timeout: '30s',
      retry: {
        attempts: 3,
        perTryTimeout: '10s',
        connectTimeout: '3.5s',
        on: ['connect-failure', 'reset', 'timeout', 'body-cut', 429, 502, 503, 504],
        methods: ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'],
        idempotencyHeader: 'Idempotency-Key',
        backoff: { base: '100ms', max: '1s', jitter: 'equal' },
        retryAfter: { max: '10s' },
        buffer: '1MiB',
        responseBuffer: '64KiB',
        bodyTimeout: '2s',
        streamIdleTimeout: '30s',
        hedge: { after: 'auto', max: 2 },
        observeOnly: false,
      },
    },
    upstream: {
      budget: { ratio: 0.2, minPerSecond: 10, window: '10s' },
      circuitBreaker: {
        enabled: true,
        failureRatio: 1,
        minRequests: 50,
        consecutiveFailures: 0,
        window: '10s',
        failingFor: '1500ms',
        openFor: '4s',
        openForRequests: 100,
        maxOpenFor: '8s',
        halfOpenRequests: 1,
      },
      maxConcurrent: 1000,
    },
  },
  routes: [],
  upstreams: [],
  listeners: [],
  connect: {
    allowedPorts: [443, 80],
    idleTimeout: '10m',
    retry: {
      attempts: 3,
      connectTimeout: '3.5s',
      backoff: { base: '50ms', max: '1s', jitter: 'full' },
    },
  },
  limits: {
    maxBufferedBytes: '64MiB',
    drainTimeout: '20s',
    maxClientConnections: 20000,
    headersTimeout: '10s',
    idleTimeout: '60s',
    maxHeaderBytes: '16KiB',
    maxUrlBytes: '8KiB',
  },
  access: {
    allowedClients: ['127.0.0.1/32', '::1/128'],
    deniedUpstreams: [],
  },
};

/** Every key present: what merging a valid file over the embedded defaults gives. */
type Complete<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]-?: Complete<NonNullable<T[K]>> }
    : T;
export type MergedDocument = Complete<RawDocument>;
export type MergedRetry = MergedDocument['defaults']['route']['retry'];
export type MergedUpstream = MergedDocument['defaults']['upstream'];
type RawRoute = MergedDocument['routes'][number];

/** Objects merge key by key; lists and scalars in `over` replace those in `base`. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isRecord(base) || !isRecord(over)) return over;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    merged[key] = deepMerge(Object.hasOwn(base, key) ? base[key] : undefined, value);
  }
  return merged;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A valid file over the embedded defaults: every key has a value. */
export function mergeDocument(raw: RawDocument): MergedDocument {
  return deepMerge(EMBEDDED_DEFAULTS, raw) as MergedDocument;
}

export type MergedRoute = ReturnType<typeof mergeRoute>;

/** One route's keys over `defaults.route` (already merged); its fallback's retry over that. */
export function mergeRoute(defaults: MergedDocument['defaults']['route'], route: RawRoute) {
  const retry = deepMerge(defaults.retry, route.retry) as MergedRetry;
  const fallback = route.fallback && {
    upstream: route.fallback.upstream,
    retry: deepMerge(retry, route.fallback.retry) as MergedRetry,
  };
  const { name, match } = route;
  return {
    name,
    match,
    timeout: route.timeout ?? defaults.timeout,
    retry,
    ...(fallback && { fallback }),
  };
}

/** One `upstreams` entry over `defaults.upstream` (already merged). */
export function mergeUpstream(
  defaults: MergedUpstream,
  entry: MergedDocument['upstreams'][number],
) {
  return deepMerge(defaults, entry) as MergedUpstream & { match: string };
}
