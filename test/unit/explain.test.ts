import { describe, expect, it } from 'vitest';
import {
  ExplainError,
  explainRequest,
  parseHeaderArgs,
  upstreamSettingsFromConfig,
} from '../../src/cli/explain.ts';
import { parseHostPattern } from '../../src/routing/host-pattern.ts';
import {
  DEFAULTS,
  makeBackoff,
  makeConfig,
  makeRoute,
  makeRoutePolicy,
  makeUpstreamSettings,
} from '../helpers/policy-factory.ts';

const FIVE_XX = Array.from({ length: 100 }, (_, i) => 500 + i);

const config = makeConfig({
  routes: [
    makeRoute(
      { host: 'payments.default.svc.cluster.local', path: '/v1/', methods: ['GET'] },
      {
        name: 'payments-read',
        timeoutMs: 5000,
        retry: { attempts: 4, onFailures: ['connect-failure'], onStatuses: [503] },
      },
    ),
    makeRoute(
      { host: 'artifacts.example.com' },
      {
        name: 'artifacts',
        retry: {
          attempts: 1,
          connectTimeoutMs: 5000,
          onFailures: ['connect-failure'],
          onStatuses: [],
        },
        fallback: 'http://artifact-cache.default.svc.cluster.local:8080',
        fallbackRetry: {
          attempts: 3,
          onFailures: ['connect-failure', 'reset'],
          onStatuses: [400, ...FIVE_XX],
        },
      },
    ),
    makeRoute(
      { host: 'slow.example.com' },
      {
        name: 'slow',
        retry: { backoff: makeBackoff({ jitter: 'none', baseMs: 500, maxMs: 10_000 }) },
      },
    ),
    makeRoute({ host: 'shadow.example.com' }, { name: 'shadow', retry: { observeOnly: true } }),
    makeRoute(
      { host: 'strict.example.com' },
      { name: 'strict', retry: { idempotencyHeader: '', onFailures: ['reset'] } },
    ),
  ],
  upstreams: [
    {
      match: '*.svc.cluster.local',
      settings: makeUpstreamSettings({ budget: { ratio: 0.1, minPerSecond: 5, windowMs: 10_000 } }),
    },
  ],
});
const upstreams = upstreamSettingsFromConfig(config);

function explain(method: string, url: string, headers: Record<string, string> = {}): string {
  return explainRequest(config, undefined, method, url, headers);
}

function lines(text: string): string[] {
  return text.split('\n').map((line) => line.trim());
}

describe('explainRequest', () => {
  it('names the matched route', () => {
    expect(lines(explain('GET', 'http://payments.default.svc.cluster.local/v1/x'))).toContain(
      'route: payments-read',
    );
  });

  it('says when no route matched', () => {
    expect(lines(explain('GET', 'http://other.example/'))).toContain(
      'route: default (no route matched)',
    );
  });

  it('prints the effective policy of the route', () => {
    const out = lines(explain('GET', 'http://payments.default.svc.cluster.local/v1/x'));
    expect(out).toEqual(
      expect.arrayContaining([
        'timeout: 5s',
        'attempts: 4',
        'perTryTimeout: 10s',
        'connectTimeout: 3.5s',
        'on: connect-failure, 503',
        'methods: GET, HEAD, OPTIONS, TRACE, PUT, DELETE',
        'idempotencyHeader: Idempotency-Key',
        'backoff: base 100ms, max 1s, jitter equal',
        'retryAfter.max: 10s',
        'buffer: 1MiB',
        'observeOnly: false',
      ]),
    );
  });

  it('prints a complete status class back as 5xx', () => {
    expect(lines(explain('GET', 'http://artifacts.example.com/'))).toContain(
      'on: connect-failure, reset, 400, 5xx',
    );
  });

  it('says a GET is retryable because it is in retry.methods', () => {
    expect(lines(explain('GET', 'http://other.example/'))).toContain(
      'retryable: yes (GET is in retry.methods)',
    );
  });

  it('upper-cases the method it is given', () => {
    expect(explain('get', 'http://other.example/')).toContain('request: GET http://other.example/');
  });

  it('says why a POST without an idempotency key is not retryable', () => {
    expect(lines(explain('POST', 'http://other.example/'))).toContain(
      'retryable: no: POST is not in retry.methods and has no Idempotency-Key header: only connect failures are retried',
    );
  });

  it('still lists the delays of the connect-failure retries of a POST', () => {
    expect(lines(explain('POST', 'http://other.example/'))).toContain('retry 1: 50ms–100ms');
  });

  it('says a POST with the idempotency header is retryable', () => {
    const out = lines(explain('POST', 'http://other.example/', { 'Idempotency-Key': 'k1' }));
    expect(out).toContain('retryable: yes (it has an Idempotency-Key header)');
  });

  it('says when the idempotency header is off and connect failures are not retried', () => {
    expect(lines(explain('POST', 'http://strict.example.com/'))).toContain(
      'retryable: no: POST is not in retry.methods (idempotencyHeader is off): nothing is retried (connect-failure is not in retry.on)',
    );
  });

  it('says x-reprise-retry: off stops retries', () => {
    const out = lines(explain('GET', 'http://other.example/', { 'X-Reprise-Retry': 'off' }));
    expect(out).toContain('retryable: no: x-reprise-retry: off');
    expect(out.some((line) => line.startsWith('retry 1:'))).toBe(false);
  });

  it('says a route with one attempt never retries', () => {
    expect(lines(explain('GET', 'http://artifacts.example.com/'))).toContain(
      'retryable: no: retry.attempts is 1',
    );
  });

  it('says observeOnly makes no retries', () => {
    expect(lines(explain('GET', 'http://shadow.example.com/'))).toContain(
      'retryable: no: observeOnly is true: retries it would make are only counted',
    );
  });

  it('lists the delay range before each retry', () => {
    const out = lines(explain('GET', 'http://other.example/'));
    expect(out).toEqual(
      expect.arrayContaining(['delays:', 'retry 1: 50ms–100ms', 'retry 2: 100ms–200ms']),
    );
    expect(out.some((line) => line.startsWith('retry 3:'))).toBe(false);
  });

  it('formats longer delays in seconds', () => {
    const out = lines(explain('GET', 'http://slow.example.com/'));
    expect(out).toEqual(expect.arrayContaining(['retry 1: 500ms–500ms', 'retry 2: 1s–1s']));
  });

  it('narrows attempts and delays for x-reprise-max-attempts', () => {
    const out = lines(explain('GET', 'http://other.example/', { 'x-reprise-max-attempts': '2' }));
    expect(out).toContain('attempts: 2 (x-reprise-max-attempts narrows 3)');
    expect(out.some((line) => line.startsWith('retry 2:'))).toBe(false);
  });

  it('still says whether the request is retryable under x-reprise-max-attempts', () => {
    const two = lines(explain('GET', 'http://other.example/', { 'x-reprise-max-attempts': '2' }));
    expect(two).toContain('retryable: yes (GET is in retry.methods)');
    const one = lines(explain('GET', 'http://other.example/', { 'x-reprise-max-attempts': '1' }));
    expect(one).toContain('attempts: 1 (x-reprise-max-attempts narrows 3)');
    expect(one).toContain('retryable: no: x-reprise-max-attempts: 1');
  });

  it('marks the delays that cannot start before a shorter x-reprise-timeout-ms', () => {
    const out = lines(
      explain('GET', 'http://slow.example.com/', { 'x-reprise-timeout-ms': '1200' }),
    );
    expect(out).toEqual(
      expect.arrayContaining([
        'timeout: 1.2s (x-reprise-timeout-ms)',
        'retry 1: 500ms–500ms',
        'retry 2: 1s–1s (cannot start within the 1.2s timeout)',
        'warning: the 1.2s timeout leaves room for 1 of the 2 retries at most',
      ]),
    );
  });

  it('marks a delay that fits only when the ones before it are short', () => {
    // retry 2 can start by 150ms at the soonest, by 300ms at the latest
    const out = lines(explain('GET', 'http://other.example/', { 'x-reprise-timeout-ms': '160' }));
    expect(out).toEqual(
      expect.arrayContaining([
        'retry 1: 50ms–100ms',
        'retry 2: 100ms–200ms (may not start within the 160ms timeout)',
      ]),
    );
    expect(out.some((line) => line.startsWith('warning:'))).toBe(false);
  });

  it('says a timeout too short for the first delay leaves the request unretried', () => {
    const out = lines(
      explain('GET', 'http://slow.example.com/', { 'x-reprise-timeout-ms': '500' }),
    );
    expect(out).toContain('retryable: no: the 500ms timeout leaves no time for the first delay');
    expect(out).toContain('retry 1: 500ms–500ms (cannot start within the 500ms timeout)');
  });

  it('names only the retried statuses whose Retry-After is honoured', () => {
    const read = lines(explain('GET', 'http://payments.default.svc.cluster.local/v1/x'));
    expect(read).toContain(
      'a Retry-After on 503 up to 10s, if the retry can still start within the 5s timeout, lengthens a delay; a longer one ends the retries',
    );
    expect(lines(explain('GET', 'http://other.example/'))).toContain(
      'a Retry-After on 429/503 up to 10s lengthens a delay; a longer one ends the retries',
    );
    expect(explain('POST', 'http://strict.example.com/')).not.toContain('Retry-After');
  });

  it('says a Retry-After must also fit in a shorter x-reprise-timeout-ms', () => {
    const out = lines(explain('GET', 'http://other.example/', { 'x-reprise-timeout-ms': '2000' }));
    expect(out).toContain(
      'a Retry-After on 429/503 up to 10s, if the retry can still start within the 2s timeout, lengthens a delay; a longer one ends the retries',
    );
  });

  it('spells the authority as the proxy does', () => {
    const out = lines(
      explainRequest(
        config,
        upstreams,
        'GET',
        'http://Payments.Default.svc.cluster.local./v1/x',
        {},
      ),
    );
    expect(out).toContain('route: payments-read');
    expect(out).toContain('upstream payments.default.svc.cluster.local:80:');
  });

  it('answers a host the proxy would refuse with a clear error', () => {
    expect(() => explain('GET', 'http://under_score.example/')).toThrow(/400 bad-request/);
  });

  it('prints every field of the upstream settings, whatever they are, in config units', () => {
    const settings = makeUpstreamSettings();
    const extended = {
      ...settings,
      circuitBreaker: { ...settings.circuitBreaker, slowCallMs: 2000 },
      probeBytes: 4096,
    };
    const source = { settingsFor: () => extended };
    const out = lines(explainRequest(config, source, 'GET', 'http://other.example/', {}));
    expect(out.find((line) => line.startsWith('circuitBreaker:'))).toMatch(/, slowCall 2s$/);
    expect(out).toContain('probe: 4KiB');
  });

  it('shows the shorter timeout of x-reprise-timeout-ms', () => {
    const out = lines(explain('GET', 'http://other.example/', { 'x-reprise-timeout-ms': '1500' }));
    expect(out).toContain('timeout: 1.5s (x-reprise-timeout-ms)');
  });

  it('prints the fallback with its own policy', () => {
    const out = explain('GET', 'http://artifacts.example.com/');
    const fallback = lines(out.slice(out.indexOf('fallback:')));
    expect(fallback[0]).toBe(
      'fallback: http://artifact-cache.default.svc.cluster.local:8080 (same deadline)',
    );
    expect(fallback).toEqual(
      expect.arrayContaining(['attempts: 3', 'retryable: yes (GET is in retry.methods)']),
    );
  });

  it('says the fallback is not used for a method that is not retryable', () => {
    expect(lines(explain('POST', 'http://artifacts.example.com/'))).toContain(
      'not used: POST is not retryable on the primary',
    );
  });

  it('prints no fallback for a route without one', () => {
    expect(explain('GET', 'http://other.example/')).not.toContain('fallback:');
  });

  it('prints the upstream settings of the matching upstreams rule when given upstreams', () => {
    const out = lines(
      explainRequest(
        config,
        upstreams,
        'GET',
        'http://payments.default.svc.cluster.local:8080/v1/',
        {},
      ),
    );
    expect(out).toEqual(
      expect.arrayContaining([
        'upstream payments.default.svc.cluster.local:8080:',
        'budget: ratio 0.1, minPerSecond 5, window 10s',
        'circuitBreaker: failureRatio 1, minRequests 50, consecutiveFailures 0, window 10s, failingFor 1.5s, openFor 4s, openForRequests 100, maxOpenFor 8s, halfOpenRequests 1',
        'maxConcurrent: 1000',
      ]),
    );
  });

  it('says when the breaker of an upstream is off', () => {
    const off = makeConfig({
      upstreams: [
        {
          match: 'flaky.example.com',
          settings: makeUpstreamSettings({
            circuitBreaker: { ...DEFAULTS.defaultUpstream.circuitBreaker, enabled: false },
          }),
        },
      ],
    });
    const explainOn = (url: string) =>
      lines(explainRequest(off, upstreamSettingsFromConfig(off), 'GET', url, {}));
    expect(explainOn('http://flaky.example.com/')).toContain(
      'circuitBreaker: off (circuitBreaker.enabled: false): the circuit never opens',
    );
    expect(explainOn('http://other.example/')).toContain(
      'circuitBreaker: failureRatio 1, minRequests 50, consecutiveFailures 0, window 10s, failingFor 1.5s, openFor 4s, openForRequests 100, maxOpenFor 8s, halfOpenRequests 1',
    );
  });

  it('prints the default upstream settings for an authority no rule matches', () => {
    const out = lines(explainRequest(config, upstreams, 'GET', 'http://other.example/', {}));
    expect(out).toEqual(
      expect.arrayContaining([
        'upstream other.example:80:',
        'budget: ratio 0.2, minPerSecond 10, window 10s',
      ]),
    );
  });

  it("prints the fallback upstream's settings too", () => {
    const out = lines(
      explainRequest(config, upstreams, 'GET', 'http://artifacts.example.com/', {}),
    );
    expect(out).toContain('upstream artifact-cache.default.svc.cluster.local:8080:');
  });

  it('prints no upstream settings without upstreams', () => {
    expect(explain('GET', 'http://other.example/')).not.toContain('budget:');
  });

  it('explains that an https URL goes through a CONNECT tunnel', () => {
    const out = lines(explain('GET', 'https://api.example.com/'));
    expect(out).toEqual(
      expect.arrayContaining([
        'route: none: https:// goes through a CONNECT tunnel (HTTPS_PROXY); routes do not apply',
        'port 443: allowed',
        'retryable: only a failed connect (nothing was sent yet)',
        'retry 1: 0ms–50ms',
      ]),
    );
  });

  it('explains that a tunnel to an intercepted host is retried inside, request by request', () => {
    const pattern = parseHostPattern('*.example.com');
    if (typeof pattern === 'string') throw new Error(pattern);
    const intercept = {
      hosts: [pattern],
      ca: undefined,
      writeCa: undefined,
      writeBundle: undefined,
      id: 'test',
    };
    const intercepting = { ...config, connect: { ...config.connect, intercept } };
    const out = lines(
      explainRequest(intercepting, undefined, 'GET', 'https://api.example.com/', {}),
    );
    expect(out).toContain(
      'tunnel: intercepted (connect.intercept.hosts): reprise answers the TLS handshake with a',
    );
    expect(out).toContain('retryable: yes (GET is in retry.methods)');
    expect(out).not.toContain('retryable: only a failed connect (nothing was sent yet)');
    // a host not listed is still a blind tunnel
    const other = lines(
      explainRequest(intercepting, undefined, 'GET', 'https://api.other.org/', {}),
    );
    expect(other).toContain('retryable: only a failed connect (nothing was sent yet)');
  });

  it('says a CONNECT port outside connect.allowedPorts is refused', () => {
    expect(lines(explain('GET', 'https://api.example.com:8443/'))).toContain(
      'port 8443: not in connect.allowedPorts: answered 403',
    );
  });

  it.each(['not a url', '/relative/path', 'ftp://files.example/'])(
    'throws ExplainError for %j',
    (url) => {
      expect(() => explain('GET', url)).toThrow(ExplainError);
    },
  );

  it('matches the route of an upper-case host', () => {
    expect(lines(explain('GET', 'http://ARTIFACTS.example.com/'))).toContain('route: artifacts');
  });

  it('uses the default route built by hand when there are no routes', () => {
    const bare = makeConfig({ defaultRoute: makeRoutePolicy({ retry: { attempts: 2 } }) });
    const out = lines(explainRequest(bare, undefined, 'GET', 'http://x.example/', {}));
    expect(out).toEqual(
      expect.arrayContaining(['route: default (no route matched)', 'attempts: 2']),
    );
  });
});

describe('parseHeaderArgs', () => {
  it('parses "Name: value" with the name lower-cased and both trimmed', () => {
    expect(parseHeaderArgs(['X-Reprise-Retry:  off ', 'Idempotency-Key: k1'])).toEqual({
      'x-reprise-retry': 'off',
      'idempotency-key': 'k1',
    });
  });

  it('keeps colons in the value', () => {
    expect(parseHeaderArgs(['Forwarded: for=1.2.3.4:5'])).toEqual({ forwarded: 'for=1.2.3.4:5' });
  });

  it('accepts an empty value', () => {
    expect(parseHeaderArgs(['X-Empty:'])).toEqual({ 'x-empty': '' });
  });

  it.each(['no colon', ': value', 'bad name: v'])('throws ExplainError for %j', (arg) => {
    expect(() => parseHeaderArgs([arg])).toThrow(ExplainError);
  });
});

describe('explain: hedging', () => {
  const hedgedLine = (method: string, afterMs: number | 'auto' | 'off') =>
    explainRequest(
      makeConfig({ defaultRoute: makeRoutePolicy({ retry: { hedge: { afterMs, max: 2 } } }) }),
      undefined,
      method,
      'http://api.example.com/',
      {},
    )
      .split('\n')
      .find((line) => line.includes('hedged:'))
      ?.trim();

  it('says a GET is hedged, and after how long', () => {
    expect(hedgedLine('GET', 40)).toBe(
      'hedged: yes, a second try when the first has not answered after 40ms',
    );
    expect(hedgedLine('GET', 'auto')).toContain("twice the upstream's recent p90");
  });

  it('says why a POST, or a route with hedge off, is not hedged', () => {
    expect(hedgedLine('POST', 40)).toBe('hedged: no (only GET, HEAD and OPTIONS are hedged)');
    expect(hedgedLine('GET', 'off')).toBe('hedged: no (retry.hedge is off)');
  });
});
