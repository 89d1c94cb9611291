/**
 * The attempt machine on a fake clock, with no sockets: events in, actions out, against real
 * upstream gates (budget, breaker, concurrency) from the registry.
 */
import { describe, expect, it } from 'vitest';
import type { UpstreamSettings } from '../../src/config/types.ts';
import { type Upstream, UpstreamRegistry } from '../../src/resilience/upstream-registry.ts';
import type { AttemptAction, OverdueFailure, TryEnd } from '../../src/retry/attempt-events.ts';
import { AttemptMachine } from '../../src/retry/attempt-machine.ts';
import type { BodyState } from '../../src/retry/decide.ts';
import { resolveRequestPolicy } from '../../src/retry/request-policy.ts';
import {
  makeBackoff,
  makeRoutePolicy,
  makeUpstreamSettings,
  type RouteOverrides,
} from '../helpers/policy-factory.ts';

const OK: TryEnd = { kind: 'response', status: 200, retryAfter: undefined };
const UNAVAILABLE: TryEnd = { kind: 'response', status: 503, retryAfter: undefined };
const RESET: TryEnd = { kind: 'failure', failure: 'reset' };
const REFUSED: TryEnd = { kind: 'failure', failure: 'connect-failure' };

interface Rig {
  readonly machine: AttemptMachine;
  readonly primary: Upstream;
  readonly registry: UpstreamRegistry;
  /** Every action so far. */
  readonly actions: AttemptAction[];
  now: number;
  start(): AttemptAction[];
  end(tryId: number, end: TryEnd): AttemptAction[];
  fire(timerId: number): AttemptAction[];
  clientGone(): AttemptAction[];
  sent(tryId: number): AttemptAction[];
  overdue(tryId: number, failure?: OverdueFailure): AttemptAction[];
  linkBack(): AttemptAction[];
}

function rig(
  options: {
    method?: string;
    route?: RouteOverrides;
    upstream?: Partial<UpstreamSettings>;
    body?: BodyState;
    headers?: Record<string, string>;
    /** Tries stay connecting until `sent`; otherwise each is sent the moment it starts. */
    connecting?: boolean;
  } = {},
): Rig {
  const route = makeRoutePolicy({
    ...options.route,
    retry: {
      backoff: makeBackoff({ baseMs: 100, maxMs: 1000, jitter: 'none' }),
      ...options.route?.retry,
    },
  });
  const registry = new UpstreamRegistry(makeUpstreamSettings(options.upstream), [], {
    onTransition() {},
  });
  const method = options.method ?? 'GET';
  const policy = resolveRequestPolicy(route, method, options.headers ?? {}, 0);
  const primary = registry.get('a.test:80', 0);
  const actions: AttemptAction[] = [];
  const machine = new AttemptMachine({
    policy,
    method,
    primary: { gate: primary, origin: 'http://a.test:80', hostHeader: undefined, tls: undefined },
    fallback:
      route.fallback === undefined
        ? undefined
        : (nowMs) => ({
            gate: registry.get('b.test:80', nowMs),
            origin: 'http://b.test:80',
            hostHeader: 'b.test',
            tls: undefined,
          }),
    body: () => options.body ?? 'replayable',
    random: () => 0.5,
  });
  const r: Rig = {
    machine,
    primary,
    registry,
    actions,
    now: 0,
    start: () => keep(machine.handle({ type: 'start' }, r.now)),
    end: (tryId, end) => keep(machine.handle({ type: 'try-ended', tryId, end }, r.now)),
    fire: (timerId) => keep(machine.handle({ type: 'timer', timerId }, r.now)),
    clientGone: () => keep(machine.handle({ type: 'client-gone' }, r.now)),
    sent: (tryId) => keep(machine.handle({ type: 'try-sent', tryId }, r.now)),
    overdue: (tryId, failure = 'timeout') =>
      keep(machine.handle({ type: 'try-overdue', tryId, failure }, r.now)),
    linkBack: () => keep(machine.handle({ type: 'link-back' }, r.now)),
  };
  function keep(out: AttemptAction[]): AttemptAction[] {
    actions.push(...out);
    if (options.connecting === true) return out;
    const sentNow = sends(out).flatMap((s) => r.sent(s.tryId));
    return [...out, ...sentNow];
  }
  return r;
}

function sends(actions: readonly AttemptAction[]) {
  return actions.flatMap((a) => (a.type === 'send' ? [a] : []));
}

function waits(actions: readonly AttemptAction[]) {
  return actions.flatMap((a) => (a.type === 'wait' ? [a] : []));
}

function answerOf(actions: readonly AttemptAction[]) {
  return actions.flatMap((a) => (a.type === 'answer' ? [a.answer] : []))[0];
}

describe('one try at a time', () => {
  it('sends the first try at once and answers with its response', () => {
    const r = rig();
    const [first] = sends(r.start());
    expect(first).toMatchObject({ attempt: 1, origin: 'http://a.test:80', hold: true });
    const out = r.end(first?.tryId ?? 0, OK);
    expect(answerOf(out)).toEqual({ kind: 'response', tryId: first?.tryId });
    expect(r.machine.record).toMatchObject({ attempts: 1, outcomes: ['2xx'], wonAttempt: 1 });
  });

  it('retries a 503 after the back-off: drops the answer, waits, sends try 2', () => {
    const r = rig();
    const [first] = sends(r.start());
    const out = r.end(first?.tryId ?? 0, UNAVAILABLE);
    expect(out.map((a) => a.type)).toEqual(['retry', 'cancel', 'wait']);
    const [wait] = waits(out);
    expect(wait?.delayMs).toBe(100);
    r.now = 100;
    const [second] = sends(r.fire(wait?.timerId ?? 0));
    expect(second?.attempt).toBe(2);
    expect(r.machine.record.retryReasons).toEqual(['503']);
  });

  it('gives the last try no hold: nothing could follow a cut body', () => {
    const r = rig({ route: { retry: { attempts: 1 } } });
    expect(sends(r.start())[0]?.hold).toBe(false);
  });

  it('does not retry a POST after a reset, and says why', () => {
    const r = rig({ method: 'POST' });
    const [first] = sends(r.start());
    const out = r.end(first?.tryId ?? 0, RESET);
    expect(answerOf(out)).toMatchObject({ kind: 'error', error: 'reset' });
    expect(r.machine.record.suppressed).toBe('method');
  });

  it('retries a POST after a connect failure: nothing was sent', () => {
    const r = rig({ method: 'POST' });
    const [first] = sends(r.start());
    expect(r.end(first?.tryId ?? 0, REFUSED).map((a) => a.type)).toEqual(['retry', 'wait']);
  });

  it('ends the request when the client leaves during the back-off', () => {
    const r = rig();
    const [first] = sends(r.start());
    r.end(first?.tryId ?? 0, UNAVAILABLE);
    expect(answerOf(r.clientGone())).toEqual({ kind: 'client-gone' });
    expect(r.machine.record).toMatchObject({ suppressed: 'client-gone', retryReasons: [] });
  });

  it('answers circuit-open when the circuit opened during the back-off', () => {
    const r = rig({
      upstream: {
        circuitBreaker: {
          ...makeUpstreamSettings().circuitBreaker,
          consecutiveFailures: 1,
          failingForMs: 0,
        },
      },
    });
    const [first] = sends(r.start());
    const [wait] = waits(r.end(first?.tryId ?? 0, RESET));
    r.now = 100;
    const out = r.fire(wait?.timerId ?? 0);
    expect(answerOf(out)).toMatchObject({ kind: 'error', error: 'circuit-open' });
    expect(r.machine.record.suppressed).toBe('circuit-open');
  });

  it('goes to the fallback after connect failures on the primary, with its Host', () => {
    const r = rig({ route: { retry: { attempts: 1 }, fallback: 'http://b.test:80' } });
    const [first] = sends(r.start());
    const [second] = sends(r.end(first?.tryId ?? 0, REFUSED));
    expect(second).toMatchObject({ attempt: 2, origin: 'http://b.test:80', hostHeader: 'b.test' });
    expect(r.machine.record.fallback).toBe('connect-failure');
  });

  it('answers deadline when the last try timed out at the deadline', () => {
    const r = rig({ route: { timeoutMs: 1000, retry: { attempts: 1 } } });
    const [first] = sends(r.start());
    expect(first?.tryTimeoutMs).toBe(1000);
    r.now = 1000;
    const out = r.end(first?.tryId ?? 0, { kind: 'failure', failure: 'timeout' });
    expect(answerOf(out)).toMatchObject({ kind: 'error', error: 'deadline' });
  });
});

/** A request with `attempts` whose first try (sent at 0) and hedge (at 2 s) are both in flight. */
function twoInFlight(attempts: number, hedgeAfterMs = 2000) {
  const r = rig({ route: { retry: { attempts, hedge: { afterMs: hedgeAfterMs, max: 2 } } } });
  const out = r.start();
  const [first] = sends(out);
  r.now = hedgeAfterMs;
  const [hedge] = sends(r.fire(waits(out)[0]?.timerId ?? 0));
  return { r, first, hedge };
}

/** Three tries allowed: the first in flight, its hedge (after 50 ms) refused at 3.55 s. */
function hedgeRefused() {
  const { r, first, hedge } = twoInFlight(3, 50);
  r.now = 3550;
  const refused = r.end(hedge?.tryId ?? 0, REFUSED);
  return { r, first, refused };
}

/**
 * Three tries allowed, two in flight, both past their per-try time: the first is kept (`kept`:
 * what its overdue gave), the hedge cut, and `end` is what cutting it gave (the retry and its
 * back-off).
 */
function bothOverdue() {
  const { r, first, hedge } = twoInFlight(3);
  r.now = 10_000;
  const kept = r.overdue(first?.tryId ?? 0);
  r.now = 12_000;
  const end = r.overdue(hedge?.tryId ?? 0);
  return { r, first, hedge, kept, end };
}

/** `actions` answer with `winner`'s response and cancel `loser`. */
function expectWon(
  actions: AttemptAction[],
  winner?: { tryId: number },
  loser?: { tryId: number },
): void {
  expect(actions).toContainEqual({ type: 'cancel', tryId: loser?.tryId });
  expect(answerOf(actions)).toEqual({ kind: 'response', tryId: winner?.tryId });
}

/** The back-off in `actions` passes at `nowMs`: the sends that follow. */
function afterBackoff(r: ReturnType<typeof rig>, actions: AttemptAction[], nowMs: number) {
  r.now = nowMs;
  return sends(r.fire(waits(actions)[0]?.timerId ?? 0));
}

describe('hedging', () => {
  const hedged = (after: number | 'auto' | 'off', max = 2): RouteOverrides => ({
    retry: { hedge: { afterMs: after, max } },
  });

  it('starts a hedge after hedge.after; the first final answer wins, the other is cancelled', () => {
    const r = rig({ route: hedged(50) });
    const out = r.start();
    const [first] = sends(out);
    const [timer] = waits(out);
    expect(timer?.delayMs).toBe(50);
    r.now = 50;
    const [hedge] = sends(r.fire(timer?.timerId ?? 0));
    expect(hedge?.attempt).toBe(2);
    r.now = 60;
    const end = r.end(hedge?.tryId ?? 0, OK);
    expectWon(end, hedge, first);
    expect(r.machine.record).toMatchObject({ attempts: 2, wonAttempt: 2, hedgeResults: ['won'] });
    // the hedge's concurrency slot and the cancelled try's permit are given back
    expect(r.primary.inFlight).toBe(1);
  });

  it('waits for the hedge when the first try fails, and does not retry meanwhile', () => {
    const r = rig({ route: hedged(50) });
    const out = r.start();
    const [first] = sends(out);
    r.now = 50;
    const [hedge] = sends(r.fire(waits(out)[0]?.timerId ?? 0));
    const failed = r.end(first?.tryId ?? 0, RESET);
    expect(failed.filter((a) => a.type === 'send' || a.type === 'retry')).toEqual([]);
    const end = r.end(hedge?.tryId ?? 0, OK);
    expect(answerOf(end)).toEqual({ kind: 'response', tryId: hedge?.tryId });
  });

  it('lets a new hedge take the place of a try that failed while another is in flight', () => {
    const r = rig({ route: { retry: { attempts: 4, hedge: { afterMs: 50, max: 2 } } } });
    const out = r.start();
    const [first] = sends(out);
    r.now = 50;
    sends(r.fire(waits(out)[0]?.timerId ?? 0));
    r.now = 60;
    const [again] = waits(r.end(first?.tryId ?? 0, REFUSED));
    expect(again?.delayMs).toBe(50);
    r.now = 110;
    expect(sends(r.fire(again?.timerId ?? 0))[0]?.attempt).toBe(3);
  });

  it('hedges a try only once it is sent: a slow connect is raced, not hedged', () => {
    const r = rig({ route: hedged(50), connecting: true });
    const out = r.start();
    const [first] = sends(out);
    r.now = 50;
    // still connecting when the wait is over: no hedge yet
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))).toEqual([]);
    r.now = 400;
    const [again] = waits(r.sent(first?.tryId ?? 0));
    expect(again?.delayMs).toBe(50);
    r.now = 450;
    expect(sends(r.fire(again?.timerId ?? 0))[0]?.attempt).toBe(2);
  });

  it('retries a try that failed to connect as before, with no hedge spent on it', () => {
    const r = rig({ route: hedged(50), connecting: true });
    const out = r.start();
    const [first] = sends(out);
    r.now = 50;
    r.fire(waits(out)[0]?.timerId ?? 0);
    r.now = 3500;
    const failed = r.end(first?.tryId ?? 0, REFUSED);
    expect(failed.map((a) => a.type)).toEqual(['retry', 'wait']);
    expect(r.machine.record.hedgeResults).toEqual([]);
  });

  it('keeps the last try for a retry: a failed try is not replaced by a hedge then', () => {
    const { r, first, refused } = hedgeRefused();
    expect(refused).toEqual([]);
    r.now = 10_000;
    const failed = r.end(first?.tryId ?? 0, { kind: 'failure', failure: 'timeout' });
    expect(failed.map((a) => a.type)).toEqual(['retry', 'wait']);
    r.now = 10_100;
    const [retry] = sends(r.fire(waits(failed)[0]?.timerId ?? 0));
    expect(retry).toMatchObject({ attempt: 3 });
  });

  it('keeps the last try for a retry once a try has failed: no hedge takes it after a retry', () => {
    const r = rig({ route: { retry: { attempts: 3, hedge: { afterMs: 50, max: 2 } } } });
    const [first] = sends(r.start());
    r.now = 10;
    const failed = r.end(first?.tryId ?? 0, REFUSED);
    r.now = 110;
    const retried = r.fire(waits(failed)[0]?.timerId ?? 0);
    expect(sends(retried)[0]).toMatchObject({ attempt: 2 });
    // a hedge now would be the last try: none is armed
    expect(waits(retried)).toEqual([]);
    r.now = 10_110;
    const cut = r.overdue(sends(retried)[0]?.tryId ?? 0);
    expect(cut.map((a) => a.type)).toEqual(['cancel', 'retry', 'wait']);
    r.now = 10_310;
    expect(sends(r.fire(waits(cut)[0]?.timerId ?? 0))[0]).toMatchObject({ attempt: 3 });
  });

  it('still hedges with the last try while no try has failed', () => {
    const r = rig({ route: { retry: { attempts: 2, hedge: { afterMs: 50, max: 2 } } } });
    const out = r.start();
    r.now = 50;
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))[0]).toMatchObject({ attempt: 2 });
  });

  it('cuts an overdue try that is alone in flight as a timeout, and retries it', () => {
    const { r, first } = hedgeRefused();
    r.now = 10_000;
    // no other try waits beside it: cut, it makes way for try 3
    const cut = r.overdue(first?.tryId ?? 0);
    expect(cut.map((a) => a.type)).toEqual(['cancel', 'retry', 'wait']);
    expect(r.machine.record.outcomes).toEqual(['connect-failure', 'timeout']);
  });

  it('keeps an overdue try beside one still within its time: cutting it would start nothing', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 10_000;
    // cutting it would start nothing: it goes on, and may still answer first
    expect(r.overdue(first?.tryId ?? 0)).toEqual([]);
    r.now = 11_000;
    const won = r.end(first?.tryId ?? 0, OK);
    expectWon(won, first, hedge);
    expect(r.machine.record).toMatchObject({ attempts: 2, wonAttempt: 1 });
  });

  it('keeps the overdue try beside the retry once the other has had its time too', () => {
    const { r, first, hedge, kept, end } = bothOverdue();
    expect(kept).toEqual([]);
    // only the hedge is cut: the retry needs one place, and the first try keeps the other
    expect(end).toContainEqual({ type: 'cancel', tryId: hedge?.tryId });
    expect(end).not.toContainEqual({ type: 'cancel', tryId: first?.tryId });
    expect(end.map((a) => a.type)).toEqual(['cancel', 'retry', 'wait']);
    const [retry] = afterBackoff(r, end, 12_100);
    expect(retry?.attempt).toBe(3);
    // under loss the kept try's next resend may get through first
    r.now = 12_600;
    const won = r.end(first?.tryId ?? 0, OK);
    expectWon(won, first, retry);
    expect(r.machine.record).toMatchObject({ attempts: 3, wonAttempt: 1 });
  });

  it('ends the kept try as a timeout when the retry beside it fails and no try is left', () => {
    const { r, first, end } = bothOverdue();
    const [retry] = afterBackoff(r, end, 12_100);
    r.now = 15_600;
    const failed = r.end(retry?.tryId ?? 0, REFUSED);
    expect(failed).toContainEqual({ type: 'cancel', tryId: first?.tryId });
    expect(answerOf(failed)).toMatchObject({ kind: 'error', error: 'connect-failure' });
    expect(r.machine.record.outcomes).toEqual(['timeout', 'connect-failure', 'timeout']);
    expect(r.primary.inFlight).toBe(1);
  });

  it('lets the kept try answer during the back-off: the retry is never made', () => {
    const { r, first, end } = bothOverdue();
    r.now = 12_050;
    const won = r.end(first?.tryId ?? 0, OK);
    expect(answerOf(won)).toEqual({ kind: 'response', tryId: first?.tryId });
    // the back-off's timer fires into a finished loop
    expect(r.fire(waits(end)[0]?.timerId ?? 0)).toEqual([]);
    expect(r.machine.record).toMatchObject({ attempts: 2, retryReasons: [], wonAttempt: 1 });
  });

  it('drops a kept try that fails during the back-off, and still makes the retry', () => {
    const { r, first, end } = bothOverdue();
    r.now = 12_050;
    expect(r.end(first?.tryId ?? 0, RESET)).toEqual([]);
    expect(afterBackoff(r, end, 12_100)[0]?.attempt).toBe(3);
  });

  it('cancels the kept try when the client leaves during the back-off', () => {
    const { r, first } = bothOverdue();
    r.now = 12_050;
    const gone = r.clientGone();
    expect(gone).toContainEqual({ type: 'cancel', tryId: first?.tryId });
    expect(answerOf(gone)).toEqual({ kind: 'client-gone' });
    expect(r.primary.inFlight).toBe(1);
  });

  it('keeps a held body that stalled beside a try still within its time', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 4000;
    // the head and part of the body are in: cutting it would start nothing
    expect(r.overdue(first?.tryId ?? 0, 'body-cut')).toEqual([]);
    r.now = 9000;
    const won = r.end(first?.tryId ?? 0, OK);
    expectWon(won, first, hedge);
  });

  it('keeps a stalled held body beside the retry of the try that failed beside it', () => {
    const { r, first, hedge } = twoInFlight(3);
    r.now = 4000;
    r.overdue(first?.tryId ?? 0, 'body-cut');
    r.now = 6000;
    const end = r.end(hedge?.tryId ?? 0, RESET);
    expect(end.map((a) => a.type)).toEqual(['retry', 'wait']);
    const [retry] = afterBackoff(r, end, 6100);
    r.now = 6200;
    const won = r.end(retry?.tryId ?? 0, OK);
    expectWon(won, retry, first);
    expect(r.machine.record).toMatchObject({ attempts: 3, wonAttempt: 3 });
  });

  it('cuts a held body that stalled alone while a retry may follow, and retries it', () => {
    const r = rig({ route: { retry: { attempts: 2 } } });
    const [first] = sends(r.start());
    r.now = 2000;
    const cut = r.overdue(first?.tryId ?? 0, 'body-cut');
    expect(cut.map((a) => a.type)).toEqual(['cancel', 'retry', 'wait']);
    expect(r.machine.record.outcomes).toEqual(['body-cut']);
  });

  it('stops holding a kept stalled body once the last try beside it fails', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 4000;
    expect(r.overdue(first?.tryId ?? 0, 'body-cut')).toEqual([]);
    r.now = 5500;
    // the hedge was the last try: rather than ending with it, the kept body is answered
    const out = r.end(hedge?.tryId ?? 0, REFUSED);
    expect(out).toEqual([{ type: 'stop-holding', tryId: first?.tryId }]);
    const won = r.end(first?.tryId ?? 0, OK);
    expect(answerOf(won)).toEqual({ kind: 'response', tryId: first?.tryId });
    expect(r.machine.record).toMatchObject({ attempts: 2, wonAttempt: 1 });
    expect(r.machine.record.outcomes).toEqual(['connect-failure', '2xx']);
  });

  it('stops holding a stalled body when no try is left to replace it: it is answered as it comes', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 5500;
    // the hedge took the last try, and failed
    r.end(hedge?.tryId ?? 0, REFUSED);
    r.now = 6000;
    const out = r.overdue(first?.tryId ?? 0, 'body-cut');
    expect(out).toEqual([{ type: 'stop-holding', tryId: first?.tryId }]);
    // its later timer changes nothing
    expect(r.overdue(first?.tryId ?? 0, 'timeout')).toEqual([]);
    const won = r.end(first?.tryId ?? 0, OK);
    expect(answerOf(won)).toEqual({ kind: 'response', tryId: first?.tryId });
    expect(r.machine.record).toMatchObject({ attempts: 2, wonAttempt: 1 });
  });

  it('ends the kept overdue try as a timeout once the try beside it has had its own time', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 10_000;
    r.overdue(first?.tryId ?? 0);
    r.now = 12_000;
    const end = r.overdue(hedge?.tryId ?? 0);
    expect(end.filter((a) => a.type === 'cancel').map((a) => a.tryId)).toEqual([
      hedge?.tryId,
      first?.tryId,
    ]);
    expect(answerOf(end)).toMatchObject({ kind: 'error', error: 'timeout' });
    expect(r.machine.record).toMatchObject({ attempts: 2, outcomes: ['timeout', 'timeout'] });
    expect(r.primary.inFlight).toBe(1);
  });

  it('answers deadline when a try bounded by the deadline is overdue a tick early', () => {
    const r = rig({ headers: { 'x-reprise-timeout-ms': '100' } });
    const [first] = sends(r.start());
    expect(first?.tryTimeoutMs).toBe(100);
    // the try's timer and the clock read a millisecond apart
    r.now = 99;
    expect(answerOf(r.overdue(first?.tryId ?? 0))).toMatchObject({
      kind: 'error',
      error: 'deadline',
    });
  });

  it('ends the kept overdue try with the other when that one fails', () => {
    const { r, first, hedge } = twoInFlight(2);
    r.now = 10_000;
    r.overdue(first?.tryId ?? 0);
    r.now = 10_500;
    const end = r.end(hedge?.tryId ?? 0, RESET);
    expect(end).toContainEqual({ type: 'cancel', tryId: first?.tryId });
    expect(answerOf(end)).toMatchObject({ kind: 'error', error: 'reset' });
    expect(r.machine.record.outcomes).toEqual(['reset', 'timeout']);
  });

  it('never hedges a POST', () => {
    const r = rig({ method: 'POST', route: hedged(50) });
    expect(waits(r.start())).toEqual([]);
  });

  it('keeps at most max tries in flight and never more than attempts', () => {
    const r = rig({ route: { retry: { attempts: 2, hedge: { afterMs: 10, max: 3 } } } });
    const out = r.start();
    r.now = 10;
    const second = r.fire(waits(out)[0]?.timerId ?? 0);
    expect(sends(second)).toHaveLength(1);
    expect(waits(second)).toEqual([]);
  });

  it('counts a hedge the budget refused as suppressed', () => {
    const r = rig({
      route: hedged(50),
      upstream: { budget: { ratio: 0, minPerSecond: 0, windowMs: 10_000 } },
    });
    const out = r.start();
    r.now = 50;
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))).toEqual([]);
    expect(r.machine.record.hedgeResults).toEqual(['suppressed']);
  });

  it('with auto, hedges after twice the p90 once the upstream has a history, 2 s before', () => {
    const r = rig({ route: hedged('auto') });
    expect(waits(r.start())[0]?.delayMs).toBe(2000);
    const again = rig({ route: hedged('auto') });
    // 49 answers, the slowest tenth at 100 ms (the quantile is worked out every 16)
    for (let i = 0; i < 49; i++) again.primary.latency.add(i < 44 ? 5 : 100);
    expect(waits(again.start())[0]?.delayMs).toBe(200);
  });

  it('cancels every try in flight when the client leaves, and ends once they have', () => {
    const r = rig({ route: hedged(50) });
    const out = r.start();
    const [first] = sends(out);
    r.now = 50;
    const [hedge] = sends(r.fire(waits(out)[0]?.timerId ?? 0));
    const gone = r.clientGone();
    expect(gone.filter((a) => a.type === 'cancel')).toHaveLength(2);
    expect(answerOf(r.end(first?.tryId ?? 0, RESET))).toBeUndefined();
    expect(answerOf(r.end(hedge?.tryId ?? 0, RESET))).toEqual({ kind: 'client-gone' });
  });
});

describe('when the link is back', () => {
  const watches = (r: Rig) => r.actions.filter((a) => a.type === 'watch-link');

  it('starts the kept try when both tries in flight are stuck, ending the oldest to make room', () => {
    const { r, first, hedge } = twoInFlight(3);
    // both in flight, the third kept: the request watches its upstream's link, once
    expect(watches(r)).toEqual([
      { type: 'watch-link', link: r.primary.link, origin: 'http://a.test:80' },
    ]);
    r.now = 14_000;
    const out = r.linkBack();
    expect(out).toContainEqual({ type: 'cancel', tryId: first?.tryId });
    const [last] = sends(out);
    expect(last).toMatchObject({ attempt: 3 });
    r.now = 14_050;
    expectWon(r.end(last?.tryId ?? 0, OK), last, hedge);
    expect(r.machine.record).toMatchObject({
      attempts: 3,
      outcomes: ['2xx'],
      wonAttempt: 3,
      hedgeResults: ['lost', 'won'],
    });
    expect(watches(r)).toHaveLength(1);
    expect(r.primary.inFlight).toBe(1);
  });

  it('waits until every try in flight has waited what a hedge waits for', () => {
    const { r } = twoInFlight(3);
    // the hedge was sent at 2 s: not late before 4 s
    r.now = 3999;
    expect(r.linkBack()).toEqual([]);
    r.now = 4000;
    expect(sends(r.linkBack())[0]).toMatchObject({ attempt: 3 });
  });

  it('starts nothing while a try in flight is still connecting', () => {
    const r = rig({
      route: { retry: { attempts: 3, hedge: { afterMs: 50, max: 2 } } },
      connecting: true,
    });
    const [first] = sends(r.start());
    r.now = 10;
    const failed = r.end(first?.tryId ?? 0, REFUSED);
    r.now = 110;
    r.fire(waits(failed)[0]?.timerId ?? 0);
    r.now = 5000;
    expect(r.linkBack()).toEqual([]);
  });

  it('uses the try kept for a retry beside the try in flight when there is room', () => {
    const r = rig({ route: { retry: { attempts: 3, hedge: { afterMs: 50, max: 2 } } } });
    const [first] = sends(r.start());
    r.now = 10;
    const failed = r.end(first?.tryId ?? 0, REFUSED);
    r.now = 110;
    const [retry] = sends(r.fire(waits(failed)[0]?.timerId ?? 0));
    r.now = 5000;
    const out = r.linkBack();
    expect(out.filter((a) => a.type === 'cancel')).toEqual([]);
    expect(sends(out)[0]).toMatchObject({ attempt: 3 });
    expect(retry).toMatchObject({ attempt: 2 });
  });

  it('ends a kept overdue try that makes room as the timeout it is', () => {
    const { r, first } = twoInFlight(3);
    r.now = 10_000;
    r.overdue(first?.tryId ?? 0);
    r.now = 11_000;
    const out = r.linkBack();
    expect(out).toContainEqual({ type: 'cancel', tryId: first?.tryId });
    expect(sends(out)[0]).toMatchObject({ attempt: 3 });
    expect(r.machine.record.outcomes).toEqual(['timeout']);
  });

  it('starts nothing when no try is left, and does not watch then', () => {
    const { r } = twoInFlight(2);
    expect(watches(r)).toEqual([]);
    r.now = 14_000;
    expect(r.linkBack()).toEqual([]);
  });

  it('never replays a POST, nor a body it no longer has', () => {
    const post = rig({ method: 'POST', route: { retry: { attempts: 3 } } });
    post.start();
    post.now = 14_000;
    expect(post.linkBack()).toEqual([]);
    expect(watches(post)).toEqual([]);
    const streamed = rig({
      route: { retry: { attempts: 3, hedge: { afterMs: 50, max: 2 } } },
      body: 'buffer-full',
    });
    streamed.start();
    streamed.now = 14_000;
    expect(streamed.linkBack()).toEqual([]);
  });

  it('starts nothing once the client has left', () => {
    const { r } = twoInFlight(3);
    r.now = 14_000;
    r.clientGone();
    expect(sends(r.linkBack())).toEqual([]);
  });

  it('counts a try the gate refused as one suppressed hedge, however often the link is back', () => {
    const r = rig({
      route: { retry: { attempts: 3, hedge: { afterMs: 2000, max: 2 } } },
      upstream: { maxConcurrent: 2 },
    });
    const out = r.start();
    r.now = 2000;
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))).toHaveLength(1);
    r.now = 14_000;
    expect(r.linkBack()).toEqual([]);
    r.now = 14_100;
    expect(r.linkBack()).toEqual([]);
    expect(r.machine.record.hedgeResults).toEqual(['suppressed']);
  });
});

describe('a retry while the link is seen down', () => {
  const LOST: TryEnd = { kind: 'failure', failure: 'timeout' };

  /** One try at a time (no hedge); the upstream's link seen down by a lost probe at 0. */
  function linkDown(options: { attempts?: number; headers?: Record<string, string> } = {}) {
    const r = rig({
      route: { retry: { attempts: options.attempts ?? 3, hedge: { afterMs: 'off', max: 1 } } },
      headers: options.headers,
    });
    // quick once (the link can be seen back), then a probe lost
    r.primary.link.answered(0, 10);
    r.primary.link.probed(100, 300, false);
    return r;
  }

  /** The first try ends with `end` at 10 ms, and its back-off (100 ms) is over at 110. */
  function retryDue(r: Rig, end: TryEnd) {
    const [first] = sends(r.start());
    r.now = 10;
    const failed = r.end(first?.tryId ?? 0, end);
    r.now = 110;
    return r.fire(waits(failed)[0]?.timerId ?? 0);
  }

  it('waits for the link after a try lost in it, and goes when the link is back', () => {
    const r = linkDown();
    const out = retryDue(r, LOST);
    expect(sends(out)).toEqual([]);
    expect(out).toContainEqual({
      type: 'watch-link',
      link: r.primary.link,
      origin: 'http://a.test:80',
    });
    r.now = 5000;
    const [retry] = sends(r.linkBack());
    expect(retry).toMatchObject({ attempt: 2 });
    expect(r.machine.record.retryReasons).toEqual(['timeout']);
    // the wait's own end, later, starts nothing more
    r.now = 10_110;
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))).toEqual([]);
  });

  it('waits at most perTryTimeout, then goes', () => {
    const r = linkDown();
    const out = retryDue(r, { kind: 'failure', failure: 'connect-failure' });
    expect(waits(out)).toEqual([{ type: 'wait', timerId: expect.any(Number), delayMs: 10_000 }]);
    r.now = 10_110;
    expect(sends(r.fire(waits(out)[0]?.timerId ?? 0))[0]).toMatchObject({ attempt: 2 });
  });

  it('leaves a connect time before the deadline, and does not wait when there is none', () => {
    const short = linkDown({ headers: { 'x-reprise-timeout-ms': '5000' } });
    const out = retryDue(short, { kind: 'failure', failure: 'body-cut' });
    // 5000 − 110 − 3500 (connectTimeout)
    expect(waits(out)[0]?.delayMs).toBe(1390);
    const none = linkDown({ headers: { 'x-reprise-timeout-ms': '3600' } });
    expect(sends(retryDue(none, LOST))[0]).toMatchObject({ attempt: 2 });
  });

  it('does not wait after an answer that came back over the link, or while the link is sound', () => {
    for (const end of [UNAVAILABLE, RESET]) {
      expect(sends(retryDue(linkDown(), end))[0]).toMatchObject({ attempt: 2 });
    }
    const sound = rig({ route: { retry: { attempts: 3, hedge: { afterMs: 'off', max: 1 } } } });
    expect(sends(retryDue(sound, LOST))[0]).toMatchObject({ attempt: 2 });
    // a link never seen quick (an upstream further than 200 ms) could never be seen back
    const far = rig({ route: { retry: { attempts: 3, hedge: { afterMs: 'off', max: 1 } } } });
    far.primary.link.probed(0, 300, false);
    expect(sends(retryDue(far, LOST))[0]).toMatchObject({ attempt: 2 });
  });

  it('waits again for the next retry, each once', () => {
    const r = linkDown();
    retryDue(r, LOST);
    r.now = 5000;
    const [second] = sends(r.linkBack());
    r.primary.link.probed(5100, 5300, false);
    r.now = 5400;
    const failed = r.end(second?.tryId ?? 0, LOST);
    r.now = 5800;
    const out = r.fire(waits(failed)[0]?.timerId ?? 0);
    expect(sends(out)).toEqual([]);
    r.now = 6000;
    expect(sends(r.linkBack())[0]).toMatchObject({ attempt: 3 });
  });

  it('answers a client that leaves while it waits, and sends nothing more', () => {
    const r = linkDown();
    retryDue(r, LOST);
    r.now = 2000;
    expect(answerOf(r.clientGone())).toEqual({ kind: 'client-gone' });
    expect(r.machine.record.suppressed).toBe('client-gone');
    r.now = 3000;
    expect(r.linkBack()).toEqual([]);
  });
});
