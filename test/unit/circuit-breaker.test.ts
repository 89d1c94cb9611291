import { describe, expect, it } from 'vitest';
import { embeddedDefaults } from '../../src/config/compile.ts';
import type { BreakerSettings } from '../../src/config/types.ts';
import { CircuitBreaker, isFailing } from '../../src/resilience/circuit-breaker.ts';
import type { CircuitState } from '../../src/vocabulary.ts';

/** The classic breaker (Hystrix's 20 tries at 50%, time-only open periods), for the mechanics. */
const defaults: BreakerSettings = {
  enabled: true,
  failureRatio: 0.5,
  minRequests: 20,
  consecutiveFailures: 0,
  windowMs: 10_000,
  failingForMs: 0,
  openForMs: 5_000,
  openForRequests: 0,
  maxOpenForMs: 60_000,
  halfOpenRequests: 1,
};
const TIME_ONLY = Number.POSITIVE_INFINITY;

/** Sends one try through the breaker and records its result. */
function run(breaker: CircuitBreaker, nowMs: number, failed: boolean): void {
  const permit = breaker.tryAcquire(nowMs);
  if (permit === 'open') throw new Error('breaker refused a try the test expected to pass');
  breaker.record(nowMs, failed, permit);
}

function failTimes(breaker: CircuitBreaker, nowMs: number, n: number): void {
  for (let i = 0; i < n; i++) run(breaker, nowMs, true);
}

function tripped(settings: BreakerSettings = defaults, transitions: CircuitState[] = []) {
  const breaker = new CircuitBreaker(settings, (to) => transitions.push(to));
  failTimes(breaker, 0, settings.minRequests);
  expect(breaker.state(0).state).toBe('open');
  return breaker;
}

describe('isFailing', () => {
  it('needs minRequests tries before the ratio counts', () => {
    expect(isFailing(defaults, 19, 19, 0)).toBe(false);
    expect(isFailing(defaults, 20, 10, 0)).toBe(true);
    expect(isFailing(defaults, 20, 9, 0)).toBe(false);
  });

  it('trips on consecutive failures only when set', () => {
    expect(isFailing(defaults, 5, 5, 5)).toBe(false);
    expect(isFailing({ ...defaults, consecutiveFailures: 5 }, 5, 5, 5)).toBe(true);
    expect(isFailing({ ...defaults, consecutiveFailures: 5 }, 5, 4, 4)).toBe(false);
  });
});

describe('CircuitBreaker with enabled: false', () => {
  const off: BreakerSettings = { ...defaults, enabled: false, consecutiveFailures: 3 };

  it('never opens, whatever fails and for however long', () => {
    const transitions: CircuitState[] = [];
    const breaker = new CircuitBreaker(off, (to) => transitions.push(to));
    // every try fails, by ratio and in a row, across several windows of the injected clock
    for (let nowMs = 0; nowMs <= 60_000; nowMs += 100) run(breaker, nowMs, true);
    expect(breaker.state(60_000).state).toBe('closed');
    expect(transitions).toEqual([]);
  });

  it('says it is off, and still counts the tries it sees', () => {
    const breaker = new CircuitBreaker(off);
    failTimes(breaker, 0, 25);
    expect(breaker.describe(1_000)).toMatchObject({
      enabled: false,
      state: 'closed',
      recentTries: 20,
      recentFailures: 20,
      failingForMs: 0,
    });
  });

  it('opens on the same tries when enabled (so the test above means something)', () => {
    const breaker = new CircuitBreaker({ ...off, enabled: true });
    failTimes(breaker, 0, 3);
    expect(breaker.state(0).state).toBe('open');
    expect(breaker.describe(0).enabled).toBe(true);
  });

  it('is on in the embedded defaults', () => {
    expect(embeddedDefaults().defaultUpstream.circuitBreaker.enabled).toBe(true);
  });
});

describe('CircuitBreaker closed', () => {
  it('does not trip on failures before minRequests tries ran', () => {
    const breaker = new CircuitBreaker(defaults);
    failTimes(breaker, 0, 19);
    expect(breaker.state(0).state).toBe('closed');
    expect(breaker.tryAcquire(0)).toBe('pass');
  });

  it('trips when minRequests tries ran and the failed share reached failureRatio', () => {
    const breaker = new CircuitBreaker(defaults);
    for (let i = 0; i < 10; i++) run(breaker, 0, false);
    failTimes(breaker, 0, 9);
    expect(breaker.state(0).state).toBe('closed');
    run(breaker, 0, true);
    expect(breaker.state(0)).toEqual({
      state: 'open',
      openedAtMs: 0,
      openForMs: 5_000,
      openForRequests: TIME_ONLY,
    });
    expect(breaker.tryAcquire(0)).toBe('open');
  });

  it('does not trip on 1 failure in 20 with the defaults', () => {
    const breaker = new CircuitBreaker(defaults);
    for (let i = 0; i < 2_000; i++) run(breaker, i * 10, i % 20 === 0);
    expect(breaker.state(20_000).state).toBe('closed');
  });

  it('rides out a burst of 10 failures among its last 100 tries', () => {
    const breaker = new CircuitBreaker({ ...defaults, minRequests: 100 });
    for (let i = 0; i < 90; i++) run(breaker, 0, false);
    failTimes(breaker, 0, 10);
    expect(breaker.state(0).state).toBe('closed');
  });

  it('does not count failures that left the window', () => {
    const breaker = new CircuitBreaker(defaults);
    failTimes(breaker, 0, 19);
    run(breaker, 10_000, true);
    expect(breaker.state(10_000).state).toBe('closed');
  });

  it('trips after consecutiveFailures failures in a row when set', () => {
    const breaker = new CircuitBreaker({ ...defaults, consecutiveFailures: 3 });
    failTimes(breaker, 0, 2);
    expect(breaker.state(0).state).toBe('closed');
    run(breaker, 0, true);
    expect(breaker.state(0).state).toBe('open');
  });

  it('restarts the consecutive count after a success', () => {
    const breaker = new CircuitBreaker({ ...defaults, consecutiveFailures: 3 });
    failTimes(breaker, 0, 2);
    run(breaker, 0, false);
    failTimes(breaker, 0, 2);
    expect(breaker.state(0).state).toBe('closed');
  });
});

describe('CircuitBreaker open', () => {
  it('refuses tries and tells how long until half-open', () => {
    const breaker = tripped();
    expect(breaker.tryAcquire(1_000)).toBe('open');
    expect(breaker.retryAfterMs(1_000)).toBe(4_000);
    expect(breaker.retryAfterMs(4_999)).toBe(1);
  });

  it('turns half-open at tryAcquire once openFor has passed', () => {
    const transitions: CircuitState[] = [];
    const breaker = tripped(defaults, transitions);
    expect(breaker.tryAcquire(4_999)).toBe('open');
    expect(breaker.tryAcquire(5_000)).toBe('probe');
    expect(transitions).toEqual(['open', 'half-open']);
  });

  it('turns half-open when the state is read once openFor has passed', () => {
    const breaker = tripped();
    expect(breaker.state(5_000)).toEqual({
      state: 'half-open',
      probesLeft: 1,
      probesInFlight: 0,
      reopenForMs: 10_000,
    });
    expect(breaker.retryAfterMs(5_000)).toBe(0);
  });

  it('ignores results of tries admitted before the trip', () => {
    const breaker = new CircuitBreaker(defaults);
    const early = breaker.tryAcquire(0);
    expect(early).toBe('pass');
    failTimes(breaker, 0, 20);
    breaker.record(4_000, true, 'pass');
    expect(breaker.state(4_000)).toEqual({
      state: 'open',
      openedAtMs: 0,
      openForMs: 5_000,
      openForRequests: TIME_ONLY,
    });
  });
});

describe('CircuitBreaker half-open', () => {
  const three = { ...defaults, halfOpenRequests: 3 };

  it('admits exactly halfOpenRequests probes out of 20 callers', () => {
    const breaker = tripped(three);
    const permits = Array.from({ length: 20 }, () => breaker.tryAcquire(5_000));
    expect(permits.filter((p) => p === 'probe')).toHaveLength(3);
    expect(permits.filter((p) => p === 'open')).toHaveLength(17);
  });

  it('closes after halfOpenRequests successful probes, not before', () => {
    const transitions: CircuitState[] = [];
    const breaker = tripped(three, transitions);
    for (let i = 0; i < 3; i++) expect(breaker.tryAcquire(5_000)).toBe('probe');
    breaker.record(5_001, false, 'probe');
    breaker.record(5_002, false, 'probe');
    expect(breaker.state(5_002).state).toBe('half-open');
    breaker.record(5_003, false, 'probe');
    expect(breaker.state(5_003).state).toBe('closed');
    expect(transitions).toEqual(['open', 'half-open', 'closed']);
  });

  it('starts closed with an empty window and the base openFor', () => {
    const breaker = tripped();
    breaker.record(5_000, false, breaker.tryAcquire(5_000) as 'probe');
    failTimes(breaker, 5_000, 19);
    expect(breaker.state(5_000).state).toBe('closed');
    run(breaker, 5_000, true);
    expect(breaker.state(5_000)).toEqual({
      state: 'open',
      openedAtMs: 5_000,
      openForMs: 5_000,
      openForRequests: TIME_ONLY,
    });
  });

  it('reopens for twice openFor after a failed probe', () => {
    const transitions: CircuitState[] = [];
    const breaker = tripped(defaults, transitions);
    breaker.record(5_100, true, breaker.tryAcquire(5_000) as 'probe');
    expect(breaker.state(5_100)).toEqual({
      state: 'open',
      openedAtMs: 5_100,
      openForMs: 10_000,
      openForRequests: TIME_ONLY,
    });
    expect(breaker.tryAcquire(15_099)).toBe('open');
    expect(breaker.tryAcquire(15_100)).toBe('probe');
    expect(transitions).toEqual(['open', 'half-open', 'open', 'half-open']);
  });

  it('doubles openFor on each failed probe up to maxOpenFor', () => {
    const breaker = tripped();
    const openFor: number[] = [];
    let nowMs = 0;
    for (let i = 0; i < 6; i++) {
      const s = breaker.state(nowMs);
      if (s.state !== 'open') throw new Error(`expected open, got ${s.state}`);
      openFor.push(s.openForMs);
      nowMs += s.openForMs;
      breaker.record(nowMs, true, breaker.tryAcquire(nowMs) as 'probe');
    }
    expect(openFor).toEqual([5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
  });

  it('returns a probe slot on release', () => {
    const breaker = tripped();
    expect(breaker.tryAcquire(5_000)).toBe('probe');
    expect(breaker.tryAcquire(5_000)).toBe('open');
    breaker.release('probe');
    expect(breaker.tryAcquire(5_000)).toBe('probe');
  });

  it('ignores pass results while half-open', () => {
    const breaker = tripped(three);
    expect(breaker.tryAcquire(5_000)).toBe('probe');
    breaker.record(5_000, true, 'pass');
    breaker.record(5_000, false, 'pass');
    expect(breaker.state(5_000)).toEqual({
      state: 'half-open',
      probesLeft: 2,
      probesInFlight: 1,
      reopenForMs: 10_000,
    });
  });

  it('ignores a probe from an earlier half-open period', () => {
    const breaker = tripped(three);
    breaker.tryAcquire(5_000);
    breaker.tryAcquire(5_000);
    breaker.record(5_000, true, 'probe');
    expect(breaker.state(15_000).state).toBe('half-open');
    breaker.record(15_000, false, 'probe');
    expect(breaker.state(15_000)).toEqual({
      state: 'half-open',
      probesLeft: 3,
      probesInFlight: 0,
      reopenForMs: 20_000,
    });
  });

  it('ignores a probe result that arrives after the circuit reopened', () => {
    const breaker = tripped(three);
    breaker.tryAcquire(5_000);
    breaker.tryAcquire(5_000);
    breaker.record(5_100, true, 'probe');
    breaker.record(5_200, false, 'probe');
    expect(breaker.state(5_200)).toEqual({
      state: 'open',
      openedAtMs: 5_100,
      openForMs: 10_000,
      openForRequests: TIME_ONLY,
    });
  });
});

describe('CircuitBreaker with the embedded defaults', () => {
  const settings = embeddedDefaults().defaultUpstream.circuitBreaker;
  const { minRequests, failingForMs, openForMs, openForRequests } = settings;

  /** `count` failed tries spread evenly over `spanMs` from `fromMs`. */
  function failOver(breaker: CircuitBreaker, fromMs: number, spanMs: number, count: number) {
    for (let i = 0; i < count; i++) run(breaker, fromMs + (spanMs * i) / (count - 1), true);
  }

  /** Opens it at `failingForMs`: minRequests failures at 0, one more at failingFor. */
  function trip(breaker: CircuitBreaker): void {
    failTimes(breaker, 0, minRequests);
    run(breaker, failingForMs, true);
    expect(breaker.state(failingForMs).state).toBe('open');
  }

  it('does not open when every try fails for less than failingFor (traffic starting in a burst)', () => {
    const breaker = new CircuitBreaker(settings);
    failOver(breaker, 0, failingForMs - 1, 5 * minRequests);
    expect(breaker.state(failingForMs).state).toBe('closed');
  });

  it('opens once every recent try has failed for failingFor', () => {
    const breaker = new CircuitBreaker(settings);
    failTimes(breaker, 0, minRequests);
    run(breaker, failingForMs - 1, true);
    expect(breaker.state(failingForMs - 1).state).toBe('closed');
    run(breaker, failingForMs, true);
    expect(breaker.state(failingForMs).state).toBe('open');
  });

  it('starts the span again after a success', () => {
    const breaker = new CircuitBreaker(settings);
    failTimes(breaker, 0, minRequests);
    run(breaker, 1_000, false);
    failTimes(breaker, 1_001, minRequests);
    run(breaker, 1_000 + failingForMs, true);
    expect(breaker.state(1_000 + failingForMs).state).toBe('closed');
    run(breaker, 1_001 + failingForMs, true);
    expect(breaker.state(1_001 + failingForMs).state).toBe('open');
  });

  it('opens at low traffic, on failures spread over seconds', () => {
    const breaker = new CircuitBreaker(settings);
    // 2 requests a second, each tried 3 times: 6 failed tries a second
    let i = 0;
    for (; breaker.state(i * 167).state === 'closed'; i++) {
      if (i > 1_000) throw new Error('never opened');
      run(breaker, i * 167, true);
    }
    // minRequests tries to fill the window, then failingFor of them all failing
    expect(i * 167).toBeLessThanOrEqual(minRequests * 167 + failingForMs + 167);
  });

  it('does not open while one try in minRequests succeeds', () => {
    const breaker = new CircuitBreaker(settings);
    for (let i = 0; i < 10_000; i++) run(breaker, i, i % minRequests !== 0);
    expect(breaker.state(10_000).state).toBe('closed');
  });

  it('ends an open period after openForRequests refused requests, before openFor', () => {
    const transitions: CircuitState[] = [];
    const breaker = new CircuitBreaker(settings, (to) => transitions.push(to));
    trip(breaker);
    const openedAt = failingForMs;
    for (let i = 0; i < openForRequests; i++) expect(breaker.tryAcquire(openedAt + 1)).toBe('open');
    expect(breaker.tryAcquire(openedAt + 1)).toBe('probe');
    expect(transitions).toEqual(['open', 'half-open']);
    breaker.record(openedAt + 2, false, 'probe');
    expect(breaker.state(openedAt + 2).state).toBe('closed');
    expect(openedAt + 2).toBeLessThan(openForMs);
  });

  it('refuses twice as many requests, for twice as long, after each failed probe', () => {
    const breaker = new CircuitBreaker(settings);
    trip(breaker);
    const first = breaker.state(failingForMs);
    expect(first).toMatchObject({ state: 'open', openForMs, openForRequests });
    breaker.record(
      failingForMs + openForMs,
      true,
      breaker.tryAcquire(failingForMs + openForMs) as 'probe',
    );
    expect(breaker.state(failingForMs + openForMs)).toMatchObject({
      state: 'open',
      openForMs: 2 * openForMs,
      openForRequests: 2 * openForRequests,
    });
  });

  it('needs failingFor of failures again after it closed', () => {
    const breaker = new CircuitBreaker(settings);
    trip(breaker);
    const probeAt = failingForMs + openForMs;
    breaker.record(probeAt, false, breaker.tryAcquire(probeAt) as 'probe');
    expect(breaker.state(probeAt).state).toBe('closed');
    failTimes(breaker, probeAt + 1, 5 * minRequests);
    expect(breaker.state(probeAt + 1).state).toBe('closed');
  });
});
