/**
 * `reprise explain`: what reprise would do with one request under a config (SPEC §1).
 * It restates no rule: it asks the code the proxy runs. The request target is parsed as the
 * proxy parses it, the route table picks the route, the request policy says what the
 * client's headers narrowed, `decideRetry` is run on made-up outcomes to say what would be
 * retried and whether each retry could start before the deadline, and the upstream registry
 * says which budget and breaker settings apply.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type {
  Backoff,
  BreakerSettings,
  Config,
  Hedge,
  RetryPolicy,
  UpstreamSettings,
  UpstreamTls,
} from '../config/types.ts';
import { formatDuration, formatSize } from '../config/units.ts';
import { UpstreamRegistry } from '../resilience/upstream-registry.ts';
import { AUTO_CEILING_MS, AUTO_FLOOR_MS, AUTO_MIN_SAMPLES, isHedged } from '../retry/hedge.ts';
import {
  type RequestPolicy,
  resolveFallbackPolicy,
  resolveRequestPolicy,
} from '../retry/request-policy.ts';
import { splitAuthority } from '../routing/authority.ts';
import { matchRoute } from '../routing/route-table.ts';
import { parseAbsoluteTarget } from '../routing/target.ts';
import { isIntercepted, viewTls } from '../routing/upstream-rule.ts';
import { delayLines, describeRetries, headerCase } from './explain-retry.ts';

/** Per-upstream settings by authority; the upstream registry is one. */
export interface UpstreamSettingsSource {
  settingsFor(authority: string): UpstreamSettings;
}

/** A usage mistake on the command line (bad URL, bad `-H`): print the message, no stack. */
export class ExplainError extends Error {
  override name = 'ExplainError';
}

/** `['K: V', …]` as given to `-H` -> `{ k: 'V' }` (names lower-case). Throws ExplainError. */
export function parseHeaderArgs(args: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const arg of args) {
    const colon = arg.indexOf(':');
    const name = arg.slice(0, colon).trim().toLowerCase();
    if (colon === -1 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) {
      throw new ExplainError(`-H "${arg}": expected "Name: value"`);
    }
    headers[name] = arg.slice(colon + 1).trim();
  }
  return headers;
}

/** The settings lookup of the running proxy: an upstream registry built from `config`. */
export function upstreamSettingsFromConfig(config: Config): UpstreamSettingsSource {
  return new UpstreamRegistry(config.defaultUpstream, config.upstreams, {
    onTransition: () => {},
  });
}

/** Multi-line, human-readable; throws ExplainError for a URL that is not absolute http(s). */
export function explainRequest(
  config: Config,
  upstreams: UpstreamSettingsSource | undefined,
  method: string,
  url: string,
  headers: Record<string, string>,
): string {
  const parsed = parseUrl(url);
  const verb = method.toUpperCase();
  const lower: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const upstream = (authority: string) => (upstreams ? describeUpstream(upstreams, authority) : []);
  const lines = [`request: ${verb} ${parsed.href}`];
  const target = parseAbsoluteTarget(parsed.href, config.upstreams);
  if (target === undefined) throw notForwarded(url);
  if (parsed.protocol === 'https:') {
    if (isIntercepted(config.connect.intercept, target.host, target.port)) {
      lines.push(...explainInterception(config, target.port));
    } else {
      lines.push(...explainTunnel(config, target.port), ...upstream(target.authority));
      lines.push('sent in absolute form instead (GET https://… on the proxy port):');
    }
  }
  const route = matchRoute(config, target.host, target.port, target.pathname, verb);
  const policy = resolveRequestPolicy(route, verb, lower, 0);
  lines.push(
    `route: ${route === config.defaultRoute ? 'default (no route matched)' : route.name}`,
    describeConnection(target),
    'policy:',
    `  timeout: ${formatDuration(route.timeoutMs)}`,
    ...describeRetry(route.retry, '  '),
    'this request:',
    ...describeRequest(policy, verb, '  '),
    ...upstream(target.authority),
  );
  const fallback = resolveFallbackPolicy(policy, 0);
  if (route.fallback !== undefined && fallback !== undefined) {
    const when = policy.methodRetryable
      ? 'used when every try on the primary ended in connect-failure or timeout, or its circuit is open'
      : `not used: ${verb} is not retryable on the primary`;
    const { authority, tls, origin } = route.fallback;
    lines.push(
      `fallback: ${route.fallback.origin} (same deadline)`,
      `  ${when}`,
      `  ${describeConnection({ host: splitAuthority(authority).host, origin, tls })}`,
      ...describeRetry(fallback.retry, '  '),
      ...describeRequest(fallback, verb, '  '),
      ...upstream(authority),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The connection a request is sent on: plain HTTP, or the TLS that applies and with what. */
function describeConnection(target: {
  host: string;
  origin: string;
  tls: UpstreamTls | undefined;
}): string {
  if (target.tls === undefined) return 'connection: plain HTTP';
  const port = Number(target.origin.slice(target.origin.lastIndexOf(':') + 1));
  const view = viewTls(target.tls, target.host, port);
  return `connection: TLS on port ${view.port}, servername ${view.servername}, ca ${view.ca}, client certificate ${view.cert}`;
}

function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ExplainError(`"${url}" is not an absolute URL such as http://host/path`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ExplainError(`"${url}": only http:// and https:// URLs go through reprise`);
  }
  return parsed;
}

function notForwarded(url: string): ExplainError {
  return new ExplainError(`"${url}": reprise answers 400 bad-request: not a host it can reach`);
}

/** A CONNECT to a host in `connect.intercept.hosts`: each request inside is served as below. */
function explainInterception(config: Config, port: number): string[] {
  if (!config.connect.allowedPorts.has(port)) {
    return [`port ${port}: not in connect.allowedPorts: the CONNECT is answered 403`];
  }
  return [
    'tunnel: intercepted (connect.intercept.hosts): reprise answers the TLS handshake with a',
    '  certificate from its CA; each request inside the tunnel is sent and retried as below',
  ];
}

function explainTunnel(config: Config, port: number): string[] {
  const retry = config.connect.retry;
  const allowed = config.connect.allowedPorts.has(port);
  const lines = [
    'route: none: https:// goes through a CONNECT tunnel (HTTPS_PROXY); routes do not apply',
    `port ${port}: ${allowed ? 'allowed' : 'not in connect.allowedPorts: answered 403'}`,
    `connect.retry: attempts ${retry.attempts}, connectTimeout ${formatDuration(retry.connectTimeoutMs)}, backoff ${describeBackoff(retry.backoff)}`,
    'retryable: only a failed connect (nothing was sent yet)',
  ];
  return allowed ? [...lines, ...delayLines(retry.backoff, retry.attempts - 1)] : lines;
}

function describeRetry(retry: RetryPolicy, indent: string): string[] {
  const idempotency =
    retry.idempotencyHeader === '' ? '"" (off)' : headerCase(retry.idempotencyHeader);
  return [
    `attempts: ${retry.attempts}`,
    `perTryTimeout: ${formatDuration(retry.perTryTimeoutMs)}`,
    `connectTimeout: ${formatDuration(retry.connectTimeoutMs)}`,
    `on: ${[...retry.onFailures, ...formatStatuses(retry.onStatuses)].join(', ') || '(nothing)'}`,
    `methods: ${[...retry.methods].join(', ') || '(none)'}`,
    `idempotencyHeader: ${idempotency}`,
    `backoff: ${describeBackoff(retry.backoff)}`,
    `retryAfter.max: ${formatDuration(retry.retryAfterMaxMs)}`,
    `buffer: ${formatSize(retry.bufferBytes)}`,
    `responseBuffer: ${retry.responseBufferBytes === 0 ? '0 (off)' : formatSize(retry.responseBufferBytes)}`,
    `bodyTimeout: ${formatDuration(retry.bodyTimeoutMs)}`,
    `streamIdleTimeout: ${formatDuration(retry.streamIdleTimeoutMs)}`,
    `hedge: ${describeHedge(retry.hedge)}`,
    `observeOnly: ${retry.observeOnly}`,
  ].map((line) => indent + line);
}

function describeRequest(policy: RequestPolicy, method: string, indent: string): string[] {
  const retry = policy.retry;
  const lines: string[] = [];
  if (policy.attemptsNarrowedBy === 'x-reprise-max-attempts') {
    lines.push(`attempts: ${policy.attempts} (x-reprise-max-attempts narrows ${retry.attempts})`);
  } else if (policy.attemptsNarrowedBy === 'x-reprise-retry') {
    lines.push(`attempts: 1 (x-reprise-retry: off narrows ${retry.attempts})`);
  }
  if (policy.timeoutNarrowedBy !== undefined) {
    lines.push(`timeout: ${formatDuration(policy.deadlineMs)} (${policy.timeoutNarrowedBy})`);
  }
  lines.push(...describeRetries(policy, method));
  lines.push(hedgedLine(policy, method));
  return lines.map((l) => indent + l);
}

function describeHedge(hedge: Hedge): string {
  if (hedge.afterMs === 'off') return 'off';
  const after = hedge.afterMs === 'auto' ? 'auto' : formatDuration(hedge.afterMs);
  return `after ${after}, max ${hedge.max}`;
}

function hedgedLine(policy: RequestPolicy, method: string): string {
  const { hedge, observeOnly } = policy.retry;
  const { afterMs } = hedge;
  if (afterMs === 'off' || hedge.max < 2) return 'hedged: no (retry.hedge is off)';
  if (!isHedged(hedge, method)) return 'hedged: no (only GET, HEAD and OPTIONS are hedged)';
  if (policy.attempts < 2 || observeOnly) return 'hedged: no (no second try allowed)';
  const after =
    afterMs === 'auto'
      ? `twice the upstream's recent p90 (${AUTO_FLOOR_MS}ms–${formatDuration(AUTO_CEILING_MS)}; ${formatDuration(AUTO_CEILING_MS)} until it has ${AUTO_MIN_SAMPLES} answers)`
      : formatDuration(afterMs);
  return `hedged: yes, a second try when the first has not answered after ${after}`;
}

/** Every field of the settings the registry picks for `authority`, in the config's units. */
function describeUpstream(upstreams: UpstreamSettingsSource, authority: string): string[] {
  const settings = upstreams.settingsFor(authority);
  return [
    `upstream ${authority}:`,
    ...Object.entries(settings).map(([key, value]) => {
      if (key === 'circuitBreaker') return `  circuitBreaker: ${describeBreaker(value)}`;
      const [name, text] = describeSetting(key, value);
      return `  ${name}: ${text}`;
    }),
  ];
}

/** Off says so and nothing else (its other keys do nothing); on lists the keys that act. */
function describeBreaker({ enabled, ...rest }: BreakerSettings): string {
  if (!enabled) return 'off (circuitBreaker.enabled: false): the circuit never opens';
  return describeSetting('circuitBreaker', rest)[1];
}

/**
 * A compiled setting as the config writes it: compiled names carry their unit
 * (`windowMs`, `bufferBytes`), so `windowMs: 10000` reads back as `window 10s`. A nested
 * object is its fields in a row; deeper ones in parentheses.
 */
function describeSetting(key: string, value: unknown, depth = 0): [string, string] {
  if (typeof value === 'number' && key.endsWith('Ms'))
    return [key.slice(0, -2), formatDuration(value)];
  if (typeof value === 'number' && key.endsWith('Bytes'))
    return [key.slice(0, -5), formatSize(value)];
  if (value instanceof Set || Array.isArray(value)) return [key, [...value].join(', ')];
  if (typeof value === 'object' && value !== null) {
    const fields = Object.entries(value).map(([k, v]) =>
      describeSetting(k, v, depth + 1).join(' '),
    );
    const text = fields.join(', ');
    return [key, depth === 0 ? text : `(${text})`];
  }
  return [key, String(value)];
}

function describeBackoff(b: Backoff): string {
  return `base ${formatDuration(b.baseMs)}, max ${formatDuration(b.maxMs)}, jitter ${b.jitter}`;
}

/** Statuses back in the user's shorthand: a complete class as `5xx`, else each code. */
function formatStatuses(statuses: ReadonlySet<number>): string[] {
  const out: string[] = [];
  for (let c = 1; c <= 5; c++) {
    const inClass = [...statuses].filter((s) => Math.floor(s / 100) === c).sort((a, b) => a - b);
    out.push(...(inClass.length === 100 ? [`${c}xx`] : inClass.map(String)));
  }
  return out;
}
