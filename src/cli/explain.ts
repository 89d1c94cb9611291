/**
 * `reprise explain`: what reprise would do with one request under a config (SPEC §1).
 * Reads the same pure modules the proxy runs, so the answer cannot drift from the behaviour.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Backoff, Config, RetryPolicy, UpstreamSettings } from '../config/types.ts';
import { delayRange } from '../retry/backoff.ts';
import {
  type RequestPolicy,
  resolveFallbackPolicy,
  resolveRequestPolicy,
} from '../retry/request-policy.ts';
import { matchesHost } from '../routing/host-pattern.ts';
import { matchRoute } from '../routing/route-table.ts';

/** Per-upstream settings by authority (`host:port`, lower-case); the upstream registry is one. */
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

/** Settings as the registry picks them: the first `upstreams[]` rule that matches, else defaults. */
export function upstreamSettingsFromConfig(config: Config): UpstreamSettingsSource {
  return {
    settingsFor(authority) {
      const colon = authority.lastIndexOf(':');
      const host = authority.slice(0, colon);
      const port = Number(authority.slice(colon + 1));
      const rule = config.upstreams.find((r) => matchesHost(r.match, host, port));
      return rule?.settings ?? config.defaultUpstream;
    },
  };
}

/** Multi-line, human-readable; throws ExplainError for a URL that is not absolute http(s). */
export function explainRequest(
  config: Config,
  upstreams: UpstreamSettingsSource | undefined,
  method: string,
  url: string,
  headers: Record<string, string>,
): string {
  const { href, protocol, hostname, port, pathname } = parseUrl(url);
  const verb = method.toUpperCase();
  const lower: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) lower[k.toLowerCase()] = v;
  const upstream = (authority: string) => (upstreams ? describeUpstream(upstreams, authority) : []);
  const lines = [`request: ${verb} ${href}`];
  if (protocol === 'https:') {
    lines.push(...explainTunnel(config, port), ...upstream(`${hostname}:${port}`));
    return `${lines.join('\n')}\n`;
  }
  const route = matchRoute(config, hostname, port, pathname, verb);
  const policy = resolveRequestPolicy(route, verb, lower, 0);
  lines.push(
    `route: ${route === config.defaultRoute ? 'default (no route matched)' : route.name}`,
    'policy:',
    `  timeout: ${formatDuration(route.timeoutMs)}`,
    ...describeRetry(route.retry, '  '),
    'this request:',
    ...describeRequest(policy, verb, lower, '  '),
    ...upstream(`${hostname}:${port}`),
  );
  const fallback = resolveFallbackPolicy(policy, 0);
  if (route.fallback !== undefined && fallback !== undefined) {
    const when = policy.methodRetryable
      ? 'used when every try on the primary ended in connect-failure or timeout, or its circuit is open'
      : `not used: ${verb} is not retryable on the primary`;
    lines.push(
      `fallback: ${route.fallback.origin} (same deadline)`,
      `  ${when}`,
      ...describeRetry(fallback.retry, '  '),
      ...describeRequest(fallback, verb, lower, '  '),
      ...upstream(route.fallback.authority),
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The URL with its effective port (80 / 443 when left out). */
function parseUrl(url: string): {
  href: string;
  protocol: string;
  hostname: string;
  port: number;
  pathname: string;
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ExplainError(`"${url}" is not an absolute URL such as http://host/path`);
  }
  const { href, protocol, hostname, pathname } = parsed;
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new ExplainError(`"${url}": only http:// and https:// URLs go through reprise`);
  }
  const port = parsed.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(parsed.port);
  return { href, protocol, hostname, port, pathname };
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
  return allowed ? [...lines, ...describeDelays(retry.backoff, retry.attempts)] : lines;
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
    `buffer: ${formatBytes(retry.bufferBytes)}`,
    `responseBuffer: ${retry.responseBufferBytes === 0 ? '0 (off)' : formatBytes(retry.responseBufferBytes)}`,
    `bodyTimeout: ${formatDuration(retry.bodyTimeoutMs)}`,
    `streamIdleTimeout: ${formatDuration(retry.streamIdleTimeoutMs)}`,
    `observeOnly: ${retry.observeOnly}`,
  ].map((line) => indent + line);
}

function describeRequest(
  policy: RequestPolicy,
  method: string,
  headers: IncomingHttpHeaders,
  indent: string,
): string[] {
  const retry = policy.retry;
  const off =
    String(headers['x-reprise-retry'] ?? '')
      .trim()
      .toLowerCase() === 'off';
  const lines: string[] = [];
  if (!off && policy.attempts < retry.attempts) {
    lines.push(`attempts: ${policy.attempts} (x-reprise-max-attempts narrows ${retry.attempts})`);
  }
  if (policy.deadlineMs < policy.route.timeoutMs) {
    lines.push(`timeout: ${formatDuration(policy.deadlineMs)} (x-reprise-timeout-ms)`);
  }
  const why = notRetryableBecause(policy, method, off);
  if (why === undefined) {
    const because = retry.methods.has(method)
      ? `${method} is in retry.methods`
      : `it has an ${headerCase(retry.idempotencyHeader)} header`;
    lines.push(
      `retryable: yes (${because})`,
      `never retried: a body over ${formatBytes(retry.bufferBytes)}, once the response has started, or when the budget or circuit says no`,
    );
  } else {
    lines.push(`retryable: no: ${why}`);
  }
  const retriesSomething =
    policy.attempts > 1 &&
    !retry.observeOnly &&
    (policy.methodRetryable || retry.onFailures.has('connect-failure'));
  if (retriesSomething) lines.push(...describeDelays(retry.backoff, policy.attempts));
  if (why === undefined && (retry.onStatuses.has(429) || retry.onStatuses.has(503))) {
    lines.push(
      `a Retry-After on 429/503 up to ${formatDuration(retry.retryAfterMaxMs)} lengthens a delay; a longer one ends the retries`,
    );
  }
  return lines.map((l) => indent + l);
}

function notRetryableBecause(
  policy: RequestPolicy,
  method: string,
  off: boolean,
): string | undefined {
  const retry = policy.retry;
  if (off) return 'x-reprise-retry: off';
  if (policy.attempts <= 1)
    return retry.attempts <= 1 ? 'retry.attempts is 1' : 'x-reprise-max-attempts: 1';
  if (retry.observeOnly) return 'observeOnly is true: retries it would make are only counted';
  if (policy.methodRetryable) return undefined;
  const header =
    retry.idempotencyHeader === ''
      ? ' (idempotencyHeader is off)'
      : ` and has no ${headerCase(retry.idempotencyHeader)} header`;
  const rest = retry.onFailures.has('connect-failure')
    ? 'only connect failures are retried'
    : 'nothing is retried (connect-failure is not in retry.on)';
  return `${method} is not in retry.methods${header}: ${rest}`;
}

function describeDelays(backoff: Backoff, attempts: number): string[] {
  if (attempts <= 1) return [];
  const lines = ['delays:'];
  for (let n = 1; n < attempts; n++) {
    const { minMs, maxMs } = delayRange(backoff, n);
    lines.push(`  retry ${n}: ${formatDuration(minMs)}–${formatDuration(maxMs)}`);
  }
  return lines;
}

function describeUpstream(upstreams: UpstreamSettingsSource, authority: string): string[] {
  const { budget: b, circuitBreaker: c, maxConcurrent } = upstreams.settingsFor(authority);
  return [
    `upstream ${authority}:`,
    `  budget: ratio ${b.ratio}, minPerSecond ${b.minPerSecond}, window ${formatDuration(b.windowMs)}`,
    `  circuitBreaker: failureRatio ${c.failureRatio}, minRequests ${c.minRequests}, consecutiveFailures ${c.consecutiveFailures === 0 ? 'off' : c.consecutiveFailures}, window ${formatDuration(c.windowMs)}, openFor ${formatDuration(c.openForMs)}, maxOpenFor ${formatDuration(c.maxOpenForMs)}, halfOpenRequests ${c.halfOpenRequests}`,
    `  maxConcurrent: ${maxConcurrent}`,
  ];
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

/** `idempotency-key` -> `Idempotency-Key` */
function headerCase(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase());
}

/** 50 -> `50ms`, 1000 -> `1s`, 1500 -> `1.5s`, 60000 -> `1m`, 3600000 -> `1h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** 1048576 -> `1MiB`, 16384 -> `16KiB`, 1000 -> `1000B`. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 2 ** 30],
    ['MiB', 2 ** 20],
    ['KiB', 2 ** 10],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}
