import { describe, expect, it } from 'vitest';
import { embeddedDefaults } from '../../src/config/compile.ts';
import { loadConfigFile, loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';

/** `lines` after `version: 1`. */
function compile(...lines: string[]): Config {
  return loadConfigText(['version: 1', ...lines].join('\n'), 'c.yaml');
}

const ROUTE_A = ['routes:', '  - name: a', '    match: { host: a.com }'];

describe('embedded defaults', () => {
  const config = embeddedDefaults();

  it('has no file and no routes', () => {
    expect(config.source).toBeUndefined();
    expect(config.routes).toEqual([]);
    expect(config.upstreams).toEqual([]);
    expect(config.listeners).toEqual([]);
  });

  it('listens where SPEC §1 says', () => {
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 3128 });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9901 });
  });

  it('has SPEC §2 default route policy', () => {
    const { defaultRoute } = config;
    expect(defaultRoute.name).toBe('default');
    expect(defaultRoute.timeoutMs).toBe(30_000);
    expect(defaultRoute.fallback).toBeUndefined();
    expect(defaultRoute.retry).toEqual({
      attempts: 3,
      perTryTimeoutMs: 10_000,
      connectTimeoutMs: 3500,
      onFailures: new Set(['connect-failure', 'reset', 'timeout', 'body-cut']),
      onStatuses: new Set([429, 502, 503, 504]),
      methods: new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']),
      idempotencyHeader: 'idempotency-key',
      backoff: { baseMs: 100, maxMs: 1000, jitter: 'equal' },
      retryAfterMaxMs: 10_000,
      bufferBytes: 1024 ** 2,
      responseBufferBytes: 64 * 1024,
      bodyTimeoutMs: 2000,
      streamIdleTimeoutMs: 30_000,
      hedge: { afterMs: 'auto', max: 2 },
      observeOnly: false,
    });
  });

  it('has the upstream settings of SPEC §2, with the breaker of SPEC §4', () => {
    expect(config.defaultUpstream).toEqual({
      budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
      circuitBreaker: {
        enabled: true,
        failureRatio: 1,
        minRequests: 50,
        consecutiveFailures: 0,
        windowMs: 10_000,
        failingForMs: 1500,
        openForMs: 4000,
        openForRequests: 100,
        maxOpenForMs: 8000,
        halfOpenRequests: 1,
      },
      maxConcurrent: 1000,
    });
  });

  it('has the connect, limits and access defaults of SPEC §2 and the design notes', () => {
    expect(config.connect).toEqual({
      allowedPorts: new Set([443, 80]),
      idleTimeoutMs: 600_000,
      retry: {
        attempts: 3,
        connectTimeoutMs: 3500,
        backoff: { baseMs: 50, maxMs: 1000, jitter: 'full' },
      },
      intercept: undefined,
    });
    expect(config.limits).toEqual({
      maxBufferedBytes: 64 * 1024 ** 2,
      drainTimeoutMs: 20_000,
      maxClientConnections: 20_000,
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      maxHeaderBytes: 16 * 1024,
      maxUrlBytes: 8 * 1024,
    });
    expect(config.access.allowedClients).toEqual(['127.0.0.1/32', '::1/128']);
    expect(config.access.deniedUpstreams).toEqual([]);
    expect(config.access.deniedUpstreamList).toBeUndefined();
  });

  it('is the same frozen object each time', () => {
    expect(embeddedDefaults()).toBe(config);
    expect(Object.isFrozen(config.defaultRoute.retry.backoff)).toBe(true);
  });
});

describe('merging', () => {
  it('fills the keys a route leaves out from defaults.route', () => {
    const [route] = compile(...ROUTE_A, '    retry: { attempts: 5 }').routes;
    expect(route?.retry.attempts).toBe(5);
    expect(route?.retry.perTryTimeoutMs).toBe(10_000);
    expect(route?.retry.backoff).toEqual({ baseMs: 100, maxMs: 1000, jitter: 'equal' });
    expect(route?.timeoutMs).toBe(30_000);
  });

  it("merges the file's defaults.route into routes and the default route", () => {
    const config = compile(
      'defaults: { route: { timeout: 9s, retry: { backoff: { max: 2s } } } }',
      ...ROUTE_A,
      '    retry: { backoff: { base: 10ms } }',
    );
    expect(config.routes[0]?.timeoutMs).toBe(9000);
    expect(config.routes[0]?.retry.backoff).toEqual({ baseMs: 10, maxMs: 2000, jitter: 'equal' });
    expect(config.defaultRoute.timeoutMs).toBe(9000);
    expect(config.defaultRoute.retry.backoff).toEqual({
      baseMs: 100,
      maxMs: 2000,
      jitter: 'equal',
    });
  });

  it('replaces lists rather than merging them', () => {
    const [route] = compile(...ROUTE_A, '    retry: { on: [503], methods: [get] }').routes;
    expect(route?.retry.onStatuses).toEqual(new Set([503]));
    expect(route?.retry.onFailures).toEqual(new Set());
    expect(route?.retry.methods).toEqual(new Set(['GET']));
  });

  it("merges a fallback's retry over its route's merged retry", () => {
    const [route] = compile(
      ...ROUTE_A,
      '    retry: { attempts: 1, connectTimeout: 5s, on: [connect-failure] }',
      '    fallback:',
      '      upstream: http://cache.local:8080',
      '      retry: { attempts: 3 }',
    ).routes;
    expect(route?.fallback?.origin).toBe('http://cache.local:8080');
    expect(route?.fallback?.authority).toBe('cache.local:8080');
    expect(route?.fallback?.retry.attempts).toBe(3);
    expect(route?.fallback?.retry.connectTimeoutMs).toBe(5000);
    expect(route?.fallback?.retry.onFailures).toEqual(new Set(['connect-failure']));
    expect(route?.fallback?.retry.perTryTimeoutMs).toBe(10_000);
  });

  it('turns the breaker off for one upstream only, keeping its other settings', () => {
    const config = compile(
      'upstreams:',
      '  - match: flaky.example.com',
      '    circuitBreaker: { enabled: false }',
    );
    expect(config.upstreams[0]?.settings.circuitBreaker).toMatchObject({
      enabled: false,
      minRequests: 50,
    });
    expect(config.defaultUpstream.circuitBreaker.enabled).toBe(true);
  });

  it("merges upstream entries over the file's defaults.upstream", () => {
    const config = compile(
      'defaults: { upstream: { maxConcurrent: 50, circuitBreaker: { minRequests: 5 } } }',
      'upstreams:',
      '  - match: "*.svc.cluster.local"',
      '    budget: { ratio: 0.1 }',
    );
    const [rule] = config.upstreams;
    expect(rule?.match).toMatchObject({ host: '.svc.cluster.local', wildcard: true });
    expect(rule?.settings.budget).toEqual({ ratio: 0.1, minPerSecond: 10, windowMs: 10_000 });
    expect(rule?.settings.maxConcurrent).toBe(50);
    expect(rule?.settings.circuitBreaker.minRequests).toBe(5);
    expect(config.defaultUpstream.maxConcurrent).toBe(50);
  });

  it('merges connect.retry over the connect defaults', () => {
    const { connect } = compile(
      'connect: { allowedPorts: [443, 8443], retry: { attempts: 5, backoff: { jitter: none } } }',
    );
    expect(connect.allowedPorts).toEqual(new Set([443, 8443]));
    expect(connect.retry).toEqual({
      attempts: 5,
      connectTimeoutMs: 3500,
      backoff: { baseMs: 50, maxMs: 1000, jitter: 'none' },
    });
  });
});

describe('conversion', () => {
  it('expands a status class to its hundred statuses and splits failures out', () => {
    const [route] = compile(...ROUTE_A, '    retry: { on: [reset, 5xx, "429", 404] }').routes;
    const statuses = route?.retry.onStatuses ?? new Set<number>();
    expect(route?.retry.onFailures).toEqual(new Set(['reset']));
    expect(statuses.size).toBe(102);
    expect(statuses.has(500)).toBe(true);
    expect(statuses.has(599)).toBe(true);
    expect(statuses.has(499)).toBe(false);
    expect(statuses.has(429)).toBe(true);
    expect(statuses.has(404)).toBe(true);
  });

  it('upper-cases methods and lower-cases the idempotency header', () => {
    const [route] = compile(
      'routes:',
      '  - name: a',
      '    match: { methods: [get, Post] }',
      '    retry: { methods: [put], idempotencyHeader: X-Request-ID }',
    ).routes;
    expect(route?.match.methods).toEqual(new Set(['GET', 'POST']));
    expect(route?.retry.methods).toEqual(new Set(['PUT']));
    expect(route?.retry.idempotencyHeader).toBe('x-request-id');
  });

  it('keeps an empty idempotency header as off', () => {
    expect(
      compile('defaults: { route: { retry: { idempotencyHeader: "" } } }').defaultRoute.retry
        .idempotencyHeader,
    ).toBe('');
  });

  it('builds the route matchers', () => {
    const config = compile(
      'routes:',
      '  - { name: a, match: { host: "API.example.com:8080", path: /v1/ } }',
      "  - { name: b, match: { pathRegex: '^/items/\\d+$' } }",
    );
    const [a, b] = config.routes;
    expect(a?.match).toEqual({
      host: {
        host: 'api.example.com',
        wildcard: false,
        port: 8080,
        source: 'API.example.com:8080',
      },
      pathPrefix: '/v1/',
      pathRegex: undefined,
      methods: undefined,
    });
    expect(b?.match.host).toBeUndefined();
    expect(b?.match.pathRegex?.test('/items/42')).toBe(true);
    expect(b?.match.pathRegex?.test('/items/x')).toBe(false);
  });

  it('converts durations and sizes', () => {
    const config = compile(
      'defaults: { route: { timeout: 1.5m, retry: { buffer: 2048, perTryTimeout: 250ms } } }',
      'limits: { maxBufferedBytes: 1GiB, drainTimeout: 0s }',
    );
    expect(config.defaultRoute.timeoutMs).toBe(90_000);
    expect(config.defaultRoute.retry.bufferBytes).toBe(2048);
    expect(config.defaultRoute.retry.perTryTimeoutMs).toBe(250);
    expect(config.limits.maxBufferedBytes).toBe(1024 ** 3);
    expect(config.limits.drainTimeoutMs).toBe(0);
  });

  it('parses listen and admin, IPv6 included', () => {
    const config = compile('listen: "[::1]:3128"', 'admin: localhost:9902');
    expect(config.listen).toEqual({ host: '::1', port: 3128 });
    expect(config.admin).toEqual({ host: 'localhost', port: 9902 });
  });

  it('builds listeners with origin, authority and Host (port 80 by default)', () => {
    const { listeners } = compile(
      'listeners:',
      '  - { listen: 127.0.0.1:8081, upstream: "http://payments.svc" }',
    );
    expect(listeners).toEqual([
      {
        listen: { host: '127.0.0.1', port: 8081 },
        origin: 'http://payments.svc:80',
        authority: 'payments.svc:80',
        hostHeader: 'payments.svc:80',
      },
    ]);
  });

  it('builds the allowed-clients list from IPv4 and IPv6 CIDRs and bare addresses', () => {
    const { access } = compile(
      'listen: 0.0.0.0:3128',
      'access: { allowedClients: [10.0.0.0/8, 192.168.1.5, "fd00::/8", "::1"] }',
    );
    const list = access.allowedClientList;
    expect(list?.check('10.20.30.40', 'ipv4')).toBe(true);
    expect(list?.check('11.0.0.1', 'ipv4')).toBe(false);
    expect(list?.check('192.168.1.5', 'ipv4')).toBe(true);
    expect(list?.check('192.168.1.6', 'ipv4')).toBe(false);
    expect(list?.check('fd12::1', 'ipv6')).toBe(true);
    expect(list?.check('::1', 'ipv6')).toBe(true);
    expect(list?.check('::2', 'ipv6')).toBe(false);
  });

  it('builds the denied-upstreams list', () => {
    const { access } = compile('access: { deniedUpstreams: [169.254.169.254, "fd00:ec2::254"] }');
    expect(access.deniedUpstreams).toEqual(['169.254.169.254', 'fd00:ec2::254']);
    expect(access.deniedUpstreamList?.check('169.254.169.254', 'ipv4')).toBe(true);
    expect(access.deniedUpstreamList?.check('169.254.169.253', 'ipv4')).toBe(false);
    expect(access.deniedUpstreamList?.check('fd00:ec2::254', 'ipv6')).toBe(true);
  });
});

describe('the result', () => {
  it('records the file it came from', () => {
    expect(compile().source).toBe('c.yaml');
  });

  it('keeps the effective config as plain JSON with units as written', () => {
    const config = compile(
      ...ROUTE_A,
      '    retry: { perTryTimeout: 1.5s }',
      '    fallback: { upstream: "http://b.com" }',
    );
    const effective = JSON.parse(JSON.stringify(config.effective));
    expect(effective.listen).toBe('127.0.0.1:3128');
    expect(effective.routes[0].timeout).toBe('30s');
    expect(effective.routes[0].retry.perTryTimeout).toBe('1.5s');
    expect(effective.routes[0].retry.buffer).toBe('1MiB');
    expect(effective.routes[0].fallback.retry.perTryTimeout).toBe('1.5s');
    expect(effective.limits.maxBufferedBytes).toBe('64MiB');
  });

  it('is frozen all the way down', () => {
    const config = compile(...ROUTE_A);
    const route = config.routes[0] as unknown as {
      timeoutMs: number;
      retry: { backoff: { maxMs: number } };
    };
    expect(() => {
      route.timeoutMs = 1;
    }).toThrow(TypeError);
    expect(() => {
      route.retry.backoff.maxMs = 1;
    }).toThrow(TypeError);
    expect(Object.isFrozen(config.effective)).toBe(true);
    expect(Object.isFrozen(config.access.allowedClients)).toBe(true);
  });

  it('does not let one compile change the embedded defaults another one sees', () => {
    compile('access: { allowedClients: [10.0.0.0/8] }', 'listen: 0.0.0.0:1');
    expect(compile().access.allowedClients).toEqual(['127.0.0.1/32', '::1/128']);
  });

  it('compiles the example config', () => {
    const config = loadConfigFile('config/example.yaml');
    expect(config.routes.map((route) => route.name)).toEqual([
      'payments-read',
      'payments-charge',
      'artifacts',
      'search-shadow',
    ]);
    expect(config.routes[2]?.fallback?.retry.onStatuses.has(503)).toBe(true);
    expect(config.upstreams).toHaveLength(3);
    expect(config.upstreams[2]?.tls).toMatchObject({
      port: 443,
      servername: 'api.partner.example',
    });
    expect(config.listeners).toHaveLength(1);
  });
});

describe('retry.hedge', () => {
  it('compiles a duration to ms and keeps auto and off as words', () => {
    const at = (after: string) =>
      compile('defaults:', '  route:', '    retry:', `      hedge: { after: ${after}, max: 3 }`)
        .defaultRoute.retry.hedge;
    expect(at('40ms')).toEqual({ afterMs: 40, max: 3 });
    expect(at('auto')).toEqual({ afterMs: 'auto', max: 3 });
    expect(at('off')).toEqual({ afterMs: 'off', max: 3 });
  });

  it('names the key of an after that is neither a duration nor auto nor off', () => {
    expect(() =>
      compile('defaults:', '  route:', '    retry:', '      hedge: { after: soon }'),
    ).toThrow('c.yaml:5:23: defaults.route.retry.hedge.after: must be auto, off, or a duration');
  });
});
