import { describe, expect, it } from 'vitest';
import { resolveFallbackPolicy, resolveRequestPolicy } from '../../src/retry/request-policy.ts';
import { makeRoutePolicy } from '../helpers/policy-factory.ts';

const START = 1_000_000;
const route = makeRoutePolicy({ timeoutMs: 5000, retry: { attempts: 4 } });

describe('resolveRequestPolicy', () => {
  it('names the client header that narrowed the policy, and only when it did', () => {
    const resolve = (headers: Record<string, string>) =>
      resolveRequestPolicy(route, 'GET', headers, START);
    expect(resolve({ 'x-reprise-retry': 'off' }).attemptsNarrowedBy).toBe('x-reprise-retry');
    expect(resolve({ 'x-reprise-max-attempts': '2' }).attemptsNarrowedBy).toBe(
      'x-reprise-max-attempts',
    );
    expect(resolve({ 'x-reprise-max-attempts': '9' }).attemptsNarrowedBy).toBeUndefined();
    expect(resolve({ 'x-reprise-timeout-ms': '500' }).timeoutNarrowedBy).toBe(
      'x-reprise-timeout-ms',
    );
    expect(resolve({ 'x-reprise-timeout-ms': '9000' }).timeoutNarrowedBy).toBeUndefined();
    expect(resolve({})).toMatchObject({
      attemptsNarrowedBy: undefined,
      timeoutNarrowedBy: undefined,
    });
  });

  it('does not call one attempt narrowed when the route has only one', () => {
    const single = makeRoutePolicy({ retry: { attempts: 1 } });
    const policy = resolveRequestPolicy(single, 'GET', { 'x-reprise-retry': 'off' }, START);
    expect(policy.attemptsNarrowedBy).toBeUndefined();
  });

  it('takes attempts, retry and deadline from the route', () => {
    const policy = resolveRequestPolicy(route, 'GET', {}, START);
    expect(policy.route).toBe(route);
    expect(policy.retry).toBe(route.retry);
    expect(policy.attempts).toBe(4);
    expect(policy.deadlineMs).toBe(START + 5000);
  });

  it('makes one try for x-reprise-retry: off', () => {
    expect(resolveRequestPolicy(route, 'GET', { 'x-reprise-retry': 'off' }, START).attempts).toBe(
      1,
    );
  });

  it('reads x-reprise-retry: off case-insensitively', () => {
    expect(resolveRequestPolicy(route, 'GET', { 'x-reprise-retry': ' OFF ' }, START).attempts).toBe(
      1,
    );
  });

  it('ignores any other x-reprise-retry value', () => {
    expect(resolveRequestPolicy(route, 'GET', { 'x-reprise-retry': 'on' }, START).attempts).toBe(4);
  });

  it('narrows attempts to x-reprise-max-attempts', () => {
    const headers = { 'x-reprise-max-attempts': '2' };
    expect(resolveRequestPolicy(route, 'GET', headers, START).attempts).toBe(2);
  });

  it('never raises attempts above the route for x-reprise-max-attempts', () => {
    const headers = { 'x-reprise-max-attempts': '10' };
    expect(resolveRequestPolicy(route, 'GET', headers, START).attempts).toBe(4);
  });

  it.each(['0', '-1', '2.5', 'two', '', '3, 2', '1e2'])(
    'ignores x-reprise-max-attempts: %j',
    (value) => {
      const headers = { 'x-reprise-max-attempts': value };
      expect(resolveRequestPolicy(route, 'GET', headers, START).attempts).toBe(4);
    },
  );

  it('makes one try for x-reprise-retry: off even with x-reprise-max-attempts', () => {
    const headers = { 'x-reprise-retry': 'off', 'x-reprise-max-attempts': '3' };
    expect(resolveRequestPolicy(route, 'GET', headers, START).attempts).toBe(1);
  });

  it('shortens the deadline to x-reprise-timeout-ms', () => {
    const headers = { 'x-reprise-timeout-ms': '1500' };
    expect(resolveRequestPolicy(route, 'GET', headers, START).deadlineMs).toBe(START + 1500);
  });

  it('never lengthens the deadline for x-reprise-timeout-ms', () => {
    const headers = { 'x-reprise-timeout-ms': '60000' };
    expect(resolveRequestPolicy(route, 'GET', headers, START).deadlineMs).toBe(START + 5000);
  });

  it.each(['0', '-5', 'soon', '1.5', ''])('ignores x-reprise-timeout-ms: %j', (value) => {
    const headers = { 'x-reprise-timeout-ms': value };
    expect(resolveRequestPolicy(route, 'GET', headers, START).deadlineMs).toBe(START + 5000);
  });

  it('counts a method in retry.methods as retryable', () => {
    expect(resolveRequestPolicy(route, 'PUT', {}, START).methodRetryable).toBe(true);
  });

  it('does not count POST as retryable without the idempotency header', () => {
    expect(resolveRequestPolicy(route, 'POST', {}, START).methodRetryable).toBe(false);
  });

  it('counts POST with the idempotency header as retryable', () => {
    const headers = { 'idempotency-key': 'k-1' };
    expect(resolveRequestPolicy(route, 'POST', headers, START).methodRetryable).toBe(true);
  });

  it('does not count an empty idempotency header', () => {
    const headers = { 'idempotency-key': ' ' };
    expect(resolveRequestPolicy(route, 'POST', headers, START).methodRetryable).toBe(false);
  });

  it('ignores the idempotency header when idempotencyHeader is off', () => {
    const off = makeRoutePolicy({ retry: { idempotencyHeader: '' } });
    const headers = { 'idempotency-key': 'k-1', '': 'x' };
    expect(resolveRequestPolicy(off, 'POST', headers, START).methodRetryable).toBe(false);
  });
});

describe('resolveFallbackPolicy', () => {
  const withFallback = makeRoutePolicy({
    timeoutMs: 5000,
    retry: { attempts: 1, methods: ['GET'] },
    fallback: 'http://cache.example:8080',
    fallbackRetry: { attempts: 3, methods: ['GET', 'PUT'] },
  });

  it('is undefined when the route has no fallback', () => {
    expect(resolveFallbackPolicy(resolveRequestPolicy(route, 'GET', {}, START), 0)).toBeUndefined();
  });

  it("uses the fallback's retry policy, the same route and the same deadline", () => {
    const headers = { 'x-reprise-timeout-ms': '2000' };
    const fallback = resolveFallbackPolicy(
      resolveRequestPolicy(withFallback, 'GET', headers, START),
      0,
    );
    expect(fallback?.route).toBe(withFallback);
    expect(fallback?.retry).toBe(withFallback.fallback?.retry);
    expect(fallback?.attempts).toBe(3);
    expect(fallback?.deadlineMs).toBe(START + 2000);
  });

  it('counts x-reprise-max-attempts over both origins together', () => {
    const policy = resolveRequestPolicy(
      withFallback,
      'GET',
      { 'x-reprise-max-attempts': '2' },
      START,
    );
    expect(resolveFallbackPolicy(policy, 0)?.attempts).toBe(2);
    expect(resolveFallbackPolicy(policy, 1)?.attempts).toBe(1);
    expect(resolveFallbackPolicy(policy, 2)).toBeUndefined();
  });

  it('leaves no try for the fallback after one on the primary with x-reprise-retry: off', () => {
    const policy = resolveRequestPolicy(withFallback, 'GET', { 'x-reprise-retry': 'off' }, START);
    expect(resolveFallbackPolicy(policy, 0)?.attempts).toBe(1);
    expect(resolveFallbackPolicy(policy, 1)).toBeUndefined();
  });

  it('leaves the fallback its own attempts without a client cap', () => {
    const policy = resolveRequestPolicy(withFallback, 'GET', {}, START);
    expect(resolveFallbackPolicy(policy, 1)?.attempts).toBe(3);
  });

  it("judges the method by the fallback's methods", () => {
    const primary = resolveRequestPolicy(withFallback, 'PUT', {}, START);
    expect(primary.methodRetryable).toBe(false);
    expect(resolveFallbackPolicy(primary, 0)?.methodRetryable).toBe(true);
  });
});
