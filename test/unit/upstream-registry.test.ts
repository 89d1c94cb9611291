import { describe, expect, it } from 'vitest';
import type { UpstreamRule, UpstreamSettings } from '../../src/config/types.ts';
import { type RegistryHooks, UpstreamRegistry } from '../../src/resilience/upstream-registry.ts';
import { parseHostPattern } from '../../src/routing/host-pattern.ts';
import type { CircuitState } from '../../src/vocabulary.ts';

const base: UpstreamSettings = {
  budget: { ratio: 0.2, minPerSecond: 10, windowMs: 10_000 },
  circuitBreaker: {
    enabled: true,
    failureRatio: 0.5,
    minRequests: 20,
    consecutiveFailures: 3,
    windowMs: 10_000,
    failingForMs: 0,
    openForMs: 5_000,
    openForRequests: 0,
    maxOpenForMs: 60_000,
    halfOpenRequests: 1,
  },
  maxConcurrent: 2,
};
/** 2 × the longest window. */
const IDLE_MS = 20_000;

function rule(pattern: string, settings: UpstreamSettings): UpstreamRule {
  const match = parseHostPattern(pattern);
  if (typeof match === 'string') throw new Error(match);
  return { match, settings, tls: undefined };
}

const noHooks: RegistryHooks = { onTransition() {} };

function authorities(registry: UpstreamRegistry, nowMs: number): string[] {
  return registry.snapshot(nowMs).map((s) => s.authority);
}

function tripVia(registry: UpstreamRegistry, authority: string, nowMs: number): void {
  const upstream = registry.get(authority, nowMs);
  for (let i = 0; i < 3; i++) {
    const permit = upstream.gate(nowMs, 1);
    if (permit !== 'pass') throw new Error(`expected pass, got ${permit}`);
    upstream.record(nowMs, permit, true);
    upstream.leave(nowMs);
  }
}

describe('UpstreamRegistry settings', () => {
  const fast = { ...base, maxConcurrent: 7 };
  const v6 = { ...base, maxConcurrent: 9 };
  const rules = [
    rule('*.svc.cluster.local', fast),
    rule('[::1]:8080', v6),
    rule('*.cluster.local', base),
  ];

  it('creates one upstream per authority, on first use', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    expect(registry.size).toBe(0);
    const a = registry.get('a.example:80', 0);
    expect(registry.get('a.example:80', 1)).toBe(a);
    expect(registry.size).toBe(1);
  });

  it('takes settings from the first matching rule', () => {
    const registry = new UpstreamRegistry(base, rules, noHooks);
    expect(registry.get('payments.default.svc.cluster.local:80', 0).settings).toBe(fast);
  });

  it('matches IPv6 authorities with their port', () => {
    const registry = new UpstreamRegistry(base, rules, noHooks);
    expect(registry.settingsFor('[::1]:8080')).toBe(v6);
    expect(registry.settingsFor('[::1]:8081')).toBe(base);
  });

  it('falls back to the default settings when no rule matches', () => {
    const registry = new UpstreamRegistry({ ...base, maxConcurrent: 1 }, rules, noHooks);
    expect(registry.get('example.com:443', 0).settings.maxConcurrent).toBe(1);
  });

  it('tells the settings without creating state', () => {
    const registry = new UpstreamRegistry(base, rules, noHooks);
    expect(registry.settingsFor('x.svc.cluster.local:80')).toBe(fast);
    expect(registry.size).toBe(0);
  });
});

describe('Upstream gate', () => {
  it('admits first tries up to maxConcurrent in flight, then overflows', () => {
    const upstream = new UpstreamRegistry(base, [], noHooks).get('a:80', 0);
    expect(upstream.gate(0, 1)).toBe('pass');
    expect(upstream.gate(0, 1)).toBe('pass');
    expect(upstream.gate(0, 1)).toBe('overflow');
    expect(upstream.inFlight).toBe(2);
    upstream.record(1, 'pass', false);
    expect(upstream.inFlight).toBe(2);
    upstream.leave(1);
    expect(upstream.inFlight).toBe(1);
    expect(upstream.gate(1, 1)).toBe('pass');
  });

  it('never overflows a retry: it keeps the slot its request holds', () => {
    const upstream = new UpstreamRegistry(base, [], noHooks).get('a:80', 0);
    upstream.gate(0, 1);
    upstream.gate(0, 1);
    expect(upstream.gate(0, 2)).toBe('pass');
    expect(upstream.inFlight).toBe(2);
  });

  it('deposits on a first try and withdraws on a retry, refusing retries past the budget', () => {
    const settings = { ...base, budget: { ratio: 0.5, minPerSecond: 0, windowMs: 10_000 } };
    const upstream = new UpstreamRegistry(settings, [], noHooks).get('a:80', 0);
    expect(upstream.gate(0, 2)).toBe('budget');
    upstream.gate(0, 1);
    upstream.gate(0, 1);
    expect(upstream.budget.available(0)).toBe(1);
    expect(upstream.gate(0, 2)).toBe('pass');
    expect(upstream.gate(0, 2)).toBe('budget');
  });

  it('asks the breaker first: an open circuit refuses without touching the budget', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    const upstream = registry.get('a:80', 1_000);
    const before = upstream.budget.available(1_000);
    expect(upstream.gate(1_000, 1)).toBe('circuit-open');
    expect(upstream.gate(1_000, 2)).toBe('circuit-open');
    expect(upstream.inFlight).toBe(0);
    expect(upstream.budget.available(1_000)).toBe(before);
    expect(upstream.breaker.retryAfterMs(1_000)).toBe(4_000);
  });

  it('gives back the probe slot when a probe overflows', () => {
    const settings = {
      ...base,
      circuitBreaker: { ...base.circuitBreaker, consecutiveFailures: 1, halfOpenRequests: 2 },
    };
    const upstream = new UpstreamRegistry(settings, [], noHooks).get('a:80', 0);
    expect(upstream.gate(0, 1)).toBe('pass');
    expect(upstream.gate(0, 1)).toBe('pass');
    upstream.record(0, 'pass', true);
    upstream.leave(0);
    // one try from before the trip still runs; the first probe fills the upstream
    expect(upstream.gate(5_000, 1)).toBe('probe');
    expect(upstream.gate(5_000, 1)).toBe('overflow');
    upstream.record(5_001, 'pass', undefined);
    upstream.leave(5_001);
    expect(upstream.gate(5_001, 1)).toBe('probe');
  });

  it('gives back the probe slot when the budget refuses a retry', () => {
    const settings = {
      ...base,
      budget: { ratio: 0, minPerSecond: 0, windowMs: 10_000 },
      circuitBreaker: { ...base.circuitBreaker, consecutiveFailures: 1 },
    };
    const upstream = new UpstreamRegistry(settings, [], noHooks).get('a:80', 0);
    upstream.record(0, upstream.gate(0, 1) as 'pass', true);
    expect(upstream.gate(5_000, 2)).toBe('budget');
    expect(upstream.gate(5_000, 1)).toBe('probe');
  });

  it('returns an abandoned probe slot on a record without a result', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    const upstream = registry.get('a:80', 5_000);
    expect(upstream.gate(5_000, 1)).toBe('probe');
    expect(upstream.gate(5_000, 1)).toBe('circuit-open');
    upstream.record(5_001, 'probe', undefined);
    upstream.leave(5_001);
    expect(upstream.inFlight).toBe(0);
    expect(upstream.gate(5_001, 1)).toBe('probe');
  });

  it('reports breaker transitions with the authority', () => {
    const seen: [string, CircuitState][] = [];
    const registry = new UpstreamRegistry(base, [], {
      onTransition: (authority, to) => seen.push([authority, to]),
    });
    tripVia(registry, 'a:80', 0);
    const upstream = registry.get('a:80', 5_000);
    upstream.record(5_000, upstream.gate(5_000, 1) as 'probe', false);
    expect(seen).toEqual([
      ['a:80', 'open'],
      ['a:80', 'half-open'],
      ['a:80', 'closed'],
    ]);
  });
});

describe('UpstreamRegistry bounds', () => {
  it('drops an upstream idle for twice its longest window', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    const a = registry.get('a:80', 0);
    registry.get('b:80', IDLE_MS);
    expect(authorities(registry, IDLE_MS)).toEqual(['a:80', 'b:80']);
    registry.get('b:80', IDLE_MS + 1);
    expect(authorities(registry, IDLE_MS + 1)).toEqual(['b:80']);
    expect(registry.get('a:80', IDLE_MS + 2)).not.toBe(a);
  });

  it('keeps an idle-looking upstream while a try is in flight', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    registry.get('a:80', 0).gate(0, 1);
    registry.get('b:80', 100_000);
    registry.get('b:80', 100_001);
    expect(authorities(registry, 100_001)).toContain('a:80');
  });

  it('keeps an upstream whose circuit is not closed', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    registry.get('b:80', 100_000);
    registry.get('b:80', 100_001);
    expect(authorities(registry, 100_001)).toContain('a:80');
  });

  it('evicts the least recently used idle upstream past maxEntries', () => {
    const registry = new UpstreamRegistry(base, [], noHooks, { maxEntries: 3 });
    registry.get('a:80', 0);
    registry.get('b:80', 1);
    registry.get('c:80', 2);
    registry.get('a:80', 3);
    registry.get('d:80', 4);
    expect(registry.size).toBe(3);
    expect(authorities(registry, 4)).toEqual(['c:80', 'a:80', 'd:80']);
  });

  it('skips busy upstreams when evicting for the cap', () => {
    const registry = new UpstreamRegistry(base, [], noHooks, { maxEntries: 2 });
    registry.get('a:80', 0).gate(0, 1);
    registry.get('b:80', 1);
    registry.get('c:80', 2);
    expect(authorities(registry, 2).sort()).toEqual(['a:80', 'c:80']);
  });

  it('holds the cap even when every upstream is busy', () => {
    const registry = new UpstreamRegistry(base, [], noHooks, { maxEntries: 2 });
    registry.get('a:80', 0).gate(0, 1);
    registry.get('b:80', 1).gate(1, 1);
    registry.get('c:80', 2);
    expect(registry.size).toBe(2);
  });
});

describe('UpstreamRegistry reconfigure and snapshot', () => {
  it('keeps the state of upstreams whose settings are unchanged', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    const a = registry.get('a:80', 0);
    registry.reconfigure(structuredClone(base), [rule('b', { ...base, maxConcurrent: 5 })]);
    expect(registry.get('a:80', 1)).toBe(a);
    expect(a.gate(1, 1)).toBe('circuit-open');
  });

  it('drops upstreams whose settings changed', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    const a = registry.get('a:80', 0);
    registry.reconfigure(base, [rule('a', { ...base, maxConcurrent: 5 })]);
    expect(registry.size).toBe(0);
    const fresh = registry.get('a:80', 1);
    expect(fresh).not.toBe(a);
    expect(fresh.settings.maxConcurrent).toBe(5);
    expect(fresh.gate(1, 1)).toBe('pass');
  });

  it('snapshots state, budget left and in-flight per upstream', () => {
    const registry = new UpstreamRegistry(base, [], noHooks);
    tripVia(registry, 'a:80', 0);
    const b = registry.get('b:80', 0);
    b.budget.deposit(0);
    b.budget.tryWithdraw(0);
    b.gate(0, 1);
    expect(registry.snapshot(0)).toEqual([
      {
        authority: 'a:80',
        state: 'open',
        circuit: {
          enabled: true,
          state: 'open',
          recentTries: 3,
          recentFailures: 3,
          failingForMs: 0,
          halfOpenInMs: 5_000,
        },
        budgetAvailable: 100,
        inFlight: 0,
      },
      {
        authority: 'b:80',
        state: 'closed',
        circuit: {
          enabled: true,
          state: 'closed',
          recentTries: 0,
          recentFailures: 0,
          failingForMs: 0,
        },
        budgetAvailable: 99,
        inFlight: 1,
      },
    ]);
    expect(registry.snapshot(5_000)[0]?.state).toBe('half-open');
  });
});

describe('Upstream confirm', () => {
  const instant = {
    ...base,
    circuitBreaker: { ...base.circuitBreaker, consecutiveFailures: 1, halfOpenRequests: 1 },
  };

  it('lets a retry go after its backoff while the circuit stays closed', () => {
    const upstream = new UpstreamRegistry(instant, [], noHooks).get('a:80', 0);
    upstream.gate(0, 1);
    const retry = upstream.gate(0, 2);
    expect(retry).toBe('pass');
    expect(upstream.confirm(10, retry as 'pass')).toBe(true);
  });

  it('refuses a plain retry once the circuit opened during its backoff, and frees nothing else', () => {
    const upstream = new UpstreamRegistry(instant, [], noHooks).get('a:80', 0);
    upstream.gate(0, 1);
    const retry = upstream.gate(0, 2) as 'pass';
    const other = upstream.gate(0, 1) as 'pass';
    upstream.record(1, other, true);
    expect(upstream.breaker.state(1).state).toBe('open');
    expect(upstream.confirm(2, retry)).toBe(false);
    // the in-flight slots stay with their requests until they leave
    expect(upstream.inFlight).toBe(2);
  });
});
