/**
 * From a schema-valid document to the frozen Config (merged as defaults.ts says; units
 * converted, matchers and BlockLists built, the PEM texts tls-files.ts read put in place),
 * after `checkRelations` found nothing wrong between keys that the schema checks one by one.
 */
import { BlockList } from 'node:net';
import { isLoopbackHost, splitAuthority } from '../routing/authority.ts';
import { parseHostPattern } from '../routing/host-pattern.ts';
import { tlsDestination, upstreamTls } from '../routing/upstream-rule.ts';
import { type FailureName, RETRY_ON_FAILURES } from '../vocabulary.ts';
import { type ConfigProblem, formatKeyPath, type KeyPath } from './config-error.ts';
import {
  deepMerge,
  EMBEDDED_DEFAULTS,
  isRecord,
  type MergedRetry,
  type MergedRoute,
  type MergedUpstream,
  mergeDocument,
  mergeRoute,
  mergeUpstream,
} from './defaults.ts';
import { type CaPem, compileIntercept } from './intercept-files.ts';
import type { RawDocument } from './schema.ts';
import { compileTls, type TlsPem, type WrittenTls } from './tls-files.ts';
import type {
  Backoff,
  BreakerSettings,
  Config,
  JitterKind,
  RetryPolicy,
  Route,
  RoutePolicy,
  UpstreamRule,
  UpstreamSettings,
} from './types.ts';
import { parseAddress, parseCidr, parseDuration, parseOrigin, parseSize } from './units.ts';

let defaults: Config | undefined;

/** The Config of SPEC §2's defaults, no file (`source` undefined). */
export function embeddedDefaults(): Config {
  defaults ??= compileConfig(EMBEDDED_DEFAULTS, undefined);
  return defaults;
}

/** Builds the frozen Config from a document that passed the schema and `checkRelations`. */
export function compileConfig(
  raw: RawDocument,
  source: string | undefined,
  pem: TlsPem = new Map(),
  interceptCa?: CaPem,
): Config {
  const doc = mergeDocument(raw);
  const routes = doc.routes.map((route) => mergeRoute(doc.defaults.route, route));
  const upstreams = doc.upstreams.map((entry) => mergeUpstream(doc.defaults.upstream, entry));
  const upstreamRules: UpstreamRule[] = upstreams.map((entry, i) => ({
    match: valid(parseHostPattern(entry.match)),
    settings: compileUpstream(entry),
    tls: compileTls((doc.upstreams[i] as { tls?: WrittenTls }).tls, pem.get(i)),
  }));
  const defaultRoute: RoutePolicy = {
    name: 'default',
    timeoutMs: ms(doc.defaults.route.timeout),
    retry: compileRetry(doc.defaults.route.retry),
    fallback: undefined,
  };
  return deepFreeze({
    source,
    listen: valid(parseAddress(doc.listen)),
    admin: valid(parseAddress(doc.admin)),
    defaultRoute,
    routes: routes.map((route) => compileRoute(route, upstreamRules)),
    defaultUpstream: compileUpstream(doc.defaults.upstream),
    upstreams: upstreamRules,
    listeners: doc.listeners.map((listener) => ({
      listen: valid(parseAddress(listener.listen)),
      ...compileOrigin(listener.upstream, upstreamRules),
    })),
    connect: {
      allowedPorts: new Set(doc.connect.allowedPorts),
      idleTimeoutMs: ms(doc.connect.idleTimeout),
      retry: {
        attempts: doc.connect.retry.attempts,
        connectTimeoutMs: ms(doc.connect.retry.connectTimeout),
        backoff: compileBackoff(doc.connect.retry.backoff),
      },
      intercept: compileIntercept(
        raw.connect?.intercept,
        (raw.connect?.intercept?.hosts ?? []).map((host) => valid(parseHostPattern(host))),
        interceptCa,
        source,
      ),
    },
    limits: {
      maxBufferedBytes: bytes(doc.limits.maxBufferedBytes),
      drainTimeoutMs: ms(doc.limits.drainTimeout),
      maxClientConnections: doc.limits.maxClientConnections,
      headersTimeoutMs: ms(doc.limits.headersTimeout),
      idleTimeoutMs: ms(doc.limits.idleTimeout),
      maxHeaderBytes: bytes(doc.limits.maxHeaderBytes),
      maxUrlBytes: bytes(doc.limits.maxUrlBytes),
    },
    access: {
      allowedClients: [...doc.access.allowedClients],
      allowedClientList: blockList(doc.access.allowedClients),
      deniedUpstreams: [...doc.access.deniedUpstreams],
      deniedUpstreamList:
        doc.access.deniedUpstreams.length === 0 ? undefined : blockList(doc.access.deniedUpstreams),
    },
    effective: structuredClone({ ...doc, routes, upstreams }),
  });
}

/**
 * The checks between keys (SPEC §2: `max < base` is an error), on any document: values of the
 * wrong type are skipped (the schema reports them). A relation broken by inherited values is
 * reported once, where it was written, not again at every route that inherits it.
 */
export function checkRelations(raw: unknown): ConfigProblem[] {
  if (!isRecord(raw)) return [];
  const problems: ConfigProblem[] = [];
  /** Merges the keys at `path` over `inherited` and checks `low <= high` there. */
  const order = (path: KeyPath, inherited: unknown, low: string, high: string): unknown => {
    const own = getIn(raw, path);
    const merged = deepMerge(inherited, own);
    problems.push(...checkOrder(path, own, merged, low, high));
    return merged;
  };
  const backoffPath = ['defaults', 'route', 'retry', 'backoff'];
  const backoff = order(backoffPath, getIn(EMBEDDED_DEFAULTS, backoffPath), 'base', 'max');
  order(
    ['connect', 'retry', 'backoff'],
    getIn(EMBEDDED_DEFAULTS, ['connect', 'retry', 'backoff']),
    'base',
    'max',
  );
  const names = new Map<string, number>();
  list(raw.routes).forEach((route, i) => {
    const routeBackoff = order(['routes', i, 'retry', 'backoff'], backoff, 'base', 'max');
    order(['routes', i, 'fallback', 'retry', 'backoff'], routeBackoff, 'base', 'max');
    const name = getIn(route, ['name']);
    if (typeof name !== 'string') return;
    const first = names.get(name);
    if (first === undefined) names.set(name, i);
    else
      problems.push({
        path: ['routes', i, 'name'],
        message: `is already the name of routes[${first}]`,
      });
  });
  const breakerPath = ['defaults', 'upstream', 'circuitBreaker'];
  const breaker = order(
    breakerPath,
    getIn(EMBEDDED_DEFAULTS, breakerPath),
    'openFor',
    'maxOpenFor',
  );
  list(raw.upstreams).forEach((_, i) => {
    order(['upstreams', i, 'circuitBreaker'], breaker, 'openFor', 'maxOpenFor');
  });
  const sockets: Socket[] = [
    socket(raw, 'listen'),
    socket(raw, 'admin'),
    ...list(raw.listeners).map((listener, i) => {
      return { path: ['listeners', i, 'listen'], text: getIn(listener, ['listen']), written: true };
    }),
  ];
  problems.push(...checkPorts(sockets));
  if (getIn(raw, ['access', 'allowedClients']) === undefined) {
    for (const { path, text } of sockets.filter((socket) => socket.path[0] !== 'admin')) {
      const address = typeof text === 'string' ? parseAddress(text) : undefined;
      if (typeof address !== 'object' || isLoopbackHost(address.host)) continue;
      problems.push({ path, message: OPEN_PROXY_MESSAGE });
    }
  }
  return problems;
}

const OPEN_PROXY_MESSAGE =
  'is not a loopback address, so access.allowedClients must be set to the clients that may use this proxy (such as 10.0.0.0/8)';

/** `high` must be at least `low` (durations); reported at whichever of the two is written here. */
function checkOrder(
  path: KeyPath,
  own: unknown,
  merged: unknown,
  low: string,
  high: string,
): ConfigProblem[] {
  const [lowText, highText] = [getIn(merged, [low]), getIn(merged, [high])];
  const lowMs = typeof lowText === 'string' ? parseDuration(lowText) : undefined;
  const highMs = typeof highText === 'string' ? parseDuration(highText) : undefined;
  if (lowMs === undefined || highMs === undefined || highMs >= lowMs) return [];
  const prefix = path.at(-1) === 'backoff' ? 'backoff.' : '';
  if (getIn(own, [high]) !== undefined) {
    return [{ path: [...path, high], message: `must be >= ${prefix}${low} (${lowText})` }];
  }
  if (getIn(own, [low]) === undefined) return [];
  return [{ path: [...path, low], message: `must be <= ${prefix}${high} (${highText})` }];
}

interface Socket {
  readonly path: KeyPath;
  readonly text: unknown;
  /** In the file, rather than from the embedded defaults. */
  readonly written: boolean;
}

function socket(raw: Record<string, unknown>, key: 'listen' | 'admin'): Socket {
  const written = key in raw;
  return { path: [key], text: written ? raw[key] : EMBEDDED_DEFAULTS[key], written };
}

/** Two sockets on one port (0 = any free one): reported at the one the file wrote, the later if both. */
function checkPorts(sockets: readonly Socket[]): ConfigProblem[] {
  const port = ({ text }: Socket) => {
    const address = typeof text === 'string' ? parseAddress(text) : undefined;
    return typeof address === 'object' && address.port !== 0 ? address.port : undefined;
  };
  return sockets.flatMap((later, j) => {
    const earlier = sockets
      .slice(0, j)
      .find((socket) => port(socket) !== undefined && port(socket) === port(later));
    if (earlier === undefined) return [];
    const [at, other] = later.written ? [later, earlier] : [earlier, later];
    return [
      {
        path: at.path,
        message: `port ${port(later)} is already used by ${formatKeyPath(other.path)}`,
      },
    ];
  });
}

/**
 * A listener's or fallback's upstream: its authority (the key and label, as the URL names it),
 * and what is connected to, with the TLS that applies (routing/upstream-rule.ts).
 */
function compileOrigin(text: string, rules: readonly UpstreamRule[]) {
  const { origin, authority, hostHeader, secure } = valid(parseOrigin(text));
  const { host, port } = splitAuthority(authority);
  const tls = upstreamTls(rules, host, port, secure);
  if (tls === undefined) return { origin, authority, hostHeader, tls };
  return { ...tlsDestination(hostHeader, port, tls, secure), authority, tls };
}

function compileRoute(route: MergedRoute, rules: readonly UpstreamRule[]): Route {
  const { match } = route;
  return {
    name: route.name,
    timeoutMs: ms(route.timeout),
    retry: compileRetry(route.retry),
    fallback: route.fallback && {
      ...compileOrigin(route.fallback.upstream, rules),
      retry: compileRetry(route.fallback.retry),
    },
    match: {
      host: match.host === undefined ? undefined : valid(parseHostPattern(match.host)),
      pathPrefix: match.path,
      pathRegex: match.pathRegex === undefined ? undefined : new RegExp(match.pathRegex),
      methods: match.methods && new Set(match.methods.map((method) => method.toUpperCase())),
    },
  };
}

function compileRetry(retry: MergedRetry): RetryPolicy {
  const onFailures = new Set<FailureName>();
  const onStatuses = new Set<number>();
  for (const item of retry.on) {
    const text = String(item);
    if ((RETRY_ON_FAILURES as readonly string[]).includes(text))
      onFailures.add(text as FailureName);
    else if (text.endsWith('xx')) {
      // a class such as 5xx: every status of that hundred
      const first = Number(text[0]) * 100;
      for (let status = first; status < first + 100; status++) onStatuses.add(status);
    } else onStatuses.add(Number(text));
  }
  return {
    attempts: retry.attempts,
    perTryTimeoutMs: ms(retry.perTryTimeout),
    connectTimeoutMs: ms(retry.connectTimeout),
    onFailures,
    onStatuses,
    methods: new Set(retry.methods.map((method) => method.toUpperCase())),
    idempotencyHeader: retry.idempotencyHeader.toLowerCase(),
    backoff: compileBackoff(retry.backoff),
    retryAfterMaxMs: ms(retry.retryAfter.max),
    bufferBytes: bytes(retry.buffer),
    responseBufferBytes: bytes(retry.responseBuffer),
    bodyTimeoutMs: ms(retry.bodyTimeout),
    streamIdleTimeoutMs: ms(retry.streamIdleTimeout),
    hedge: {
      afterMs:
        retry.hedge.after === 'auto' || retry.hedge.after === 'off'
          ? retry.hedge.after
          : ms(retry.hedge.after),
      max: retry.hedge.max,
    },
    observeOnly: retry.observeOnly,
  };
}

function compileBackoff(backoff: MergedRetry['backoff']): Backoff {
  return { baseMs: ms(backoff.base), maxMs: ms(backoff.max), jitter: backoff.jitter as JitterKind };
}

function compileUpstream(upstream: MergedUpstream): UpstreamSettings {
  const { budget, circuitBreaker: breaker } = upstream;
  const circuitBreaker: BreakerSettings = {
    enabled: breaker.enabled,
    failureRatio: breaker.failureRatio,
    minRequests: breaker.minRequests,
    consecutiveFailures: breaker.consecutiveFailures,
    windowMs: ms(breaker.window),
    failingForMs: ms(breaker.failingFor),
    openForMs: ms(breaker.openFor),
    openForRequests: breaker.openForRequests,
    maxOpenForMs: ms(breaker.maxOpenFor),
    halfOpenRequests: breaker.halfOpenRequests,
  };
  return {
    budget: { ratio: budget.ratio, minPerSecond: budget.minPerSecond, windowMs: ms(budget.window) },
    circuitBreaker,
    maxConcurrent: upstream.maxConcurrent,
  };
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of cidrs) {
    const cidr = valid(parseCidr(text));
    list.addSubnet(cidr.address, cidr.prefix, cidr.family);
  }
  return list;
}

/** The schema accepted the value, so a parse failure here is a bug, not a user error. */
function valid<T>(parsed: T | string): T {
  if (typeof parsed === 'string')
    throw new Error(`config compile: unexpected invalid value: ${parsed}`);
  return parsed;
}

function ms(text: string): number {
  return valid(parseDuration(text) ?? `duration ${text}`);
}

function bytes(value: string | number): number {
  return valid(parseSize(value) ?? `size ${value}`);
}

/** Freezes plain objects and lists, all the way down (Sets, RegExps and BlockLists are left). */
function deepFreeze<T>(value: T): T {
  const isPlain =
    Array.isArray(value) ||
    (typeof value === 'object' &&
      value !== null &&
      Object.getPrototypeOf(value) === Object.prototype);
  if (isPlain && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as object)) deepFreeze(child);
  }
  return value;
}

function getIn(value: unknown, path: KeyPath): unknown {
  let current = value;
  for (const key of path) {
    if (Array.isArray(current) && typeof key === 'number') current = current[key];
    else current = isRecord(current) ? current[String(key)] : undefined;
  }
  return current;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}
