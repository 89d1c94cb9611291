import { describe, expect, it } from 'vitest';
import { type DecideInput, decideRetry, type TryResult } from '../../src/retry/decide.ts';
import { resolveRequestPolicy } from '../../src/retry/request-policy.ts';
import { makeBackoff, makeRoutePolicy, type RetryOverrides } from '../helpers/policy-factory.ts';

const NOW = 1_000_000;
const noneBackoff = makeBackoff({ baseMs: 100, maxMs: 1000, jitter: 'none' });

function input(
  result: TryResult,
  options: {
    retry?: RetryOverrides;
    method?: string;
    headers?: Record<string, string>;
    timeoutMs?: number;
  } & Partial<Omit<DecideInput, 'policy' | 'result'>> = {},
): DecideInput {
  const { retry, method = 'GET', headers = {}, timeoutMs = 30_000, ...rest } = options;
  const route = makeRoutePolicy({ timeoutMs, retry: { backoff: noneBackoff, ...retry } });
  return {
    policy: resolveRequestPolicy(route, method, headers, NOW),
    attempt: 1,
    result,
    body: 'replayable',
    nowMs: NOW,
    previousDelayMs: 0,
    random: () => 0.5,
    ...rest,
  };
}

const FINAL_BY_POLICY = { retry: false, cause: undefined };

const status = (code: number, retryAfter?: string): TryResult => ({
  kind: 'response',
  status: code,
  retryAfter,
});
const failure = (name: 'connect-failure' | 'reset' | 'timeout'): TryResult => ({
  kind: 'failure',
  failure: name,
});

describe('decideRetry', () => {
  it('retries a status in `on` after the backoff, with the status as reason', () => {
    expect(decideRetry(input(status(503)))).toEqual({
      retry: true,
      reason: '503',
      delayMs: 100,
      backoffMs: 100,
    });
  });

  it('retries a failure in `on` with the failure name as reason', () => {
    expect(decideRetry(input(failure('reset')))).toMatchObject({ retry: true, reason: 'reset' });
  });

  it('never retries upstream-certificate, even when `on` names it', () => {
    const result: TryResult = { kind: 'failure', failure: 'upstream-certificate' };
    const onFailures = ['connect-failure', 'upstream-certificate'] as const;
    expect(decideRetry(input(result, { retry: { onFailures: [...onFailures] } }))).toEqual({
      retry: false,
      cause: undefined,
    });
  });

  it('is final without a cause for a status not in `on`', () => {
    expect(decideRetry(input(status(500)))).toEqual({ retry: false, cause: undefined });
  });

  it('is final without a cause for a success', () => {
    expect(decideRetry(input(status(200)))).toEqual({ retry: false, cause: undefined });
  });

  it('is final without a cause for a failure not in `on`', () => {
    const decision = decideRetry(input(failure('timeout'), { retry: { onFailures: ['reset'] } }));
    expect(decision).toEqual({ retry: false, cause: undefined });
  });

  it('is final without a cause once the attempts are used up', () => {
    expect(decideRetry(input(status(503), { attempt: 3 }))).toEqual({
      retry: false,
      cause: undefined,
    });
  });

  it('suppresses a retry the route allows with cause client-limit under x-reprise-retry: off', () => {
    const decision = decideRetry(input(status(503), { headers: { 'x-reprise-retry': 'off' } }));
    expect(decision).toEqual({ retry: false, cause: 'client-limit' });
  });

  it('suppresses with cause client-limit once x-reprise-max-attempts is used up', () => {
    const headers = { 'x-reprise-max-attempts': '2' };
    expect(decideRetry(input(status(503), { headers }))).toMatchObject({ retry: true });
    expect(decideRetry(input(status(503), { headers, attempt: 2 }))).toEqual({
      retry: false,
      cause: 'client-limit',
    });
  });

  it('leaves no cause when the client cap did not stop a retry the route would make', () => {
    const off = { 'x-reprise-retry': 'off' };
    // not in retry.on: final by policy, whatever the client said
    expect(decideRetry(input(status(500), { headers: off }))).toEqual(FINAL_BY_POLICY);
    // the route's own attempts are used up
    const attempts = { 'x-reprise-max-attempts': '5' };
    expect(decideRetry(input(status(503), { headers: attempts, attempt: 3 }))).toEqual(
      FINAL_BY_POLICY,
    );
  });

  it('names the method, not the client, when a POST would not be retried anyway', () => {
    const decision = decideRetry(
      input(status(503), { method: 'POST', headers: { 'x-reprise-retry': 'off' } }),
    );
    expect(decision).toEqual({ retry: false, cause: 'method' });
  });

  it('uses the retry number for the backoff sequence', () => {
    expect(decideRetry(input(status(503), { attempt: 2 }))).toMatchObject({ delayMs: 200 });
  });

  it('passes previousDelayMs and random to the backoff', () => {
    const decorrelated = makeBackoff({ baseMs: 100, maxMs: 10_000, jitter: 'decorrelated' });
    const decision = decideRetry(
      input(status(503), {
        retry: { backoff: decorrelated },
        attempt: 2,
        previousDelayMs: 300,
        random: () => 0.5,
      }),
    );
    expect(decision).toMatchObject({ delayMs: 500, backoffMs: 500 }); // 100 + 0.5 · (900 - 100)
  });

  it('suppresses a retry of a non-retryable method with cause method', () => {
    expect(decideRetry(input(status(503), { method: 'POST' }))).toEqual({
      retry: false,
      cause: 'method',
    });
  });

  it('suppresses a reset of a non-retryable method with cause method', () => {
    expect(decideRetry(input(failure('reset'), { method: 'POST' }))).toEqual({
      retry: false,
      cause: 'method',
    });
  });

  it('retries a connect failure of any method: nothing was sent', () => {
    const decision = decideRetry(input(failure('connect-failure'), { method: 'POST' }));
    expect(decision).toMatchObject({ retry: true, reason: 'connect-failure' });
  });

  it('retries a POST that carries the idempotency header', () => {
    const headers = { 'idempotency-key': 'abc' };
    expect(decideRetry(input(status(503), { method: 'POST', headers }))).toMatchObject({
      retry: true,
    });
  });

  it('suppresses a retry when the body was larger than the buffer', () => {
    const decision = decideRetry(input(status(503), { body: 'body-too-large' }));
    expect(decision).toEqual({ retry: false, cause: 'body-too-large' });
  });

  it('suppresses a retry when the shared buffer pool was full', () => {
    expect(decideRetry(input(status(503), { body: 'buffer-full' }))).toEqual({
      retry: false,
      cause: 'buffer-full',
    });
  });

  it('suppresses a connect-failure retry whose body cannot be replayed', () => {
    const decision = decideRetry(
      input(failure('connect-failure'), { method: 'POST', body: 'body-too-large' }),
    );
    expect(decision).toEqual({ retry: false, cause: 'body-too-large' });
  });

  it('checks the method before the body', () => {
    const decision = decideRetry(input(status(503), { method: 'POST', body: 'body-too-large' }));
    expect(decision).toEqual({ retry: false, cause: 'method' });
  });

  it('waits for a Retry-After on 503 longer than the backoff', () => {
    expect(decideRetry(input(status(503, '2')))).toEqual({
      retry: true,
      reason: '503',
      delayMs: 2000,
      backoffMs: 100,
    });
  });

  it('waits for a Retry-After on 429', () => {
    const decision = decideRetry(input(status(429, '1'), { retry: { onStatuses: [429] } }));
    expect(decision).toMatchObject({ retry: true, delayMs: 1000, backoffMs: 100 });
  });

  it('keeps the backoff when it is longer than the Retry-After', () => {
    expect(decideRetry(input(status(503, '0')))).toMatchObject({ delayMs: 100, backoffMs: 100 });
  });

  it('reads an HTTP-date Retry-After against nowMs', () => {
    const date = new Date(NOW + 3000).toUTCString();
    expect(decideRetry(input(status(503, date)))).toMatchObject({ delayMs: 3000 });
  });

  it('ignores Retry-After on other statuses', () => {
    expect(decideRetry(input(status(502, '60')))).toMatchObject({ retry: true, delayMs: 100 });
  });

  it('ignores a malformed Retry-After', () => {
    expect(decideRetry(input(status(503, 'soon')))).toMatchObject({ retry: true, delayMs: 100 });
  });

  it('retries with a Retry-After equal to retryAfter.max', () => {
    expect(decideRetry(input(status(503, '10')))).toMatchObject({ retry: true, delayMs: 10_000 });
  });

  it('suppresses a retry whose Retry-After is longer than retryAfter.max', () => {
    const decision = decideRetry(input(status(503, '11')));
    expect(decision).toEqual({ retry: false, cause: 'retry-after-too-long' });
  });

  it('checks the body before the Retry-After', () => {
    const decision = decideRetry(input(status(503, '60'), { body: 'buffer-full' }));
    expect(decision).toEqual({ retry: false, cause: 'buffer-full' });
  });

  it('suppresses a retry that could not start before the deadline', () => {
    const decision = decideRetry(input(status(503), { timeoutMs: 1000, nowMs: NOW + 950 }));
    expect(decision).toEqual({ retry: false, cause: 'deadline' });
  });

  it('suppresses a retry that would start exactly at the deadline', () => {
    const decision = decideRetry(input(status(503), { timeoutMs: 1000, nowMs: NOW + 900 }));
    expect(decision).toEqual({ retry: false, cause: 'deadline' });
  });

  it('retries when the next try starts a millisecond before the deadline', () => {
    const decision = decideRetry(input(status(503), { timeoutMs: 1000, nowMs: NOW + 899 }));
    expect(decision).toMatchObject({ retry: true, delayMs: 100 });
  });

  it('counts the Retry-After against the deadline', () => {
    const decision = decideRetry(input(status(503, '5'), { timeoutMs: 4000 }));
    expect(decision).toEqual({ retry: false, cause: 'deadline' });
  });

  it('uses the deadline narrowed by x-reprise-timeout-ms', () => {
    const headers = { 'x-reprise-timeout-ms': '50' };
    expect(decideRetry(input(status(503), { headers }))).toEqual({
      retry: false,
      cause: 'deadline',
    });
  });

  it('suppresses every retry with cause observe-only when observeOnly', () => {
    const decision = decideRetry(input(status(503), { retry: { observeOnly: true } }));
    expect(decision).toEqual({ retry: false, cause: 'observe-only' });
  });

  it('reports deadline before observe-only', () => {
    const decision = decideRetry(
      input(status(503), { retry: { observeOnly: true }, timeoutMs: 1000, nowMs: NOW + 950 }),
    );
    expect(decision).toEqual({ retry: false, cause: 'deadline' });
  });

  it('reports attempts used up as final even in observe-only mode', () => {
    const decision = decideRetry(input(status(503), { retry: { observeOnly: true }, attempt: 3 }));
    expect(decision).toEqual({ retry: false, cause: undefined });
  });
});
