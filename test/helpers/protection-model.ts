/**
 * A model of closed-loop clients against a faulty upstream, run on a virtual clock through the
 * real attempt loop (retry/attempt-machine.ts, with the upstream's gate, breaker and budget
 * and the compiled policy), direct and through reprise on the same fault schedule. It checks
 * the rule of SPEC §4 over thousands of seeds and start phases in milliseconds; the
 * integration matrix checks the same rows on the real proxy, with fewer seeds.
 *
 * What it leaves out: network and CPU time (every try takes a fixed time), bodies, connections.
 */
import type { Config } from '../../src/config/types.ts';
import { type Upstream, UpstreamRegistry } from '../../src/resilience/upstream-registry.ts';
import type { AttemptAction, TryEnd } from '../../src/retry/attempt-events.ts';
import { AttemptMachine } from '../../src/retry/attempt-machine.ts';
import { resolveRequestPolicy } from '../../src/retry/request-policy.ts';
import type { FaultSchedule } from './fault-schedules.ts';
import type { SideCounts, Traffic } from './scenario.ts';
import { seededRandom } from './seeded-random.ts';

export interface ModelOptions extends Traffic {
  readonly config: Config;
  readonly faults: () => FaultSchedule;
  /** How long one try takes direct (default 0.3 ms). */
  readonly tryMs?: number;
  /** What going through reprise adds to a try, and what an answer of its own takes (0.3 ms). */
  readonly proxyMs?: number;
}

export interface Side extends SideCounts {
  readonly requestTimes: readonly number[];
  readonly okTimes: readonly number[];
}

export interface ModelRun {
  readonly direct: Side;
  readonly via: Side & {
    readonly circuitOpenAnswers: number;
    /** Ms the circuit spent open or half-open. */
    readonly openMs: number;
    /** When the circuit first left closed (ms after traffic started), or undefined. */
    readonly firstOpenMs: number | undefined;
  };
}

const AUTHORITY = 'upstream.test:80';
const ORIGIN = 'http://upstream.test:80';
const OK: TryEnd = { kind: 'response', status: 200, retryAfter: undefined };
const FAILED: TryEnd = { kind: 'response', status: 503, retryAfter: undefined };
const NO_HEADERS = {};

/** Runs the same fault schedule once direct and once through the model of reprise. */
export function runModel(options: ModelOptions): ModelRun {
  const direct = simulate(options, false);
  const via = simulate(options, true);
  return { direct: direct.side, via: { ...via.side, ...via.circuit } };
}

interface Event {
  readonly atMs: number;
  readonly run: () => void;
}

function simulate(options: ModelOptions, throughReprise: boolean) {
  const proxyMs = options.proxyMs ?? 0.3;
  const tryMs = (options.tryMs ?? 0.3) + (throughReprise ? proxyMs : 0);
  const startMs = options.phaseMs ?? 0;
  const endMs = startMs + options.durationMs;
  const failsAt = options.faults();
  const random = seededRandom(options.seed * 7919 + 17);
  const queue: Event[] = [];
  let nowMs = 0;
  const at = (atMs: number, run: () => void): void => {
    queue.push({ atMs, run });
  };

  let openSinceMs: number | undefined;
  let openMs = 0;
  let firstOpenMs: number | undefined;
  const registry = new UpstreamRegistry(options.config.defaultUpstream, [], {
    onTransition: (_authority, to) => {
      if (to === 'closed' && openSinceMs !== undefined) {
        openMs += nowMs - openSinceMs;
        openSinceMs = undefined;
      } else if (to !== 'closed' && openSinceMs === undefined) {
        openSinceMs = nowMs;
        firstOpenMs ??= nowMs - startMs;
      }
    },
  });
  const route = options.config.defaultRoute;

  const side = {
    requests: 0,
    ok: 0,
    tries: 0,
    tryTimes: [] as number[],
    requestTimes: [] as number[],
    okTimes: [] as number[],
  };
  let circuitOpenAnswers = 0;

  const sendTry = (done: (failed: boolean) => void): void => {
    side.tries++;
    side.tryTimes.push(nowMs - startMs);
    const failed = failsAt(nowMs);
    at(nowMs + tryMs, () => done(failed));
  };

  /** One client request; `finish(ok)` when the client has its answer. */
  const request = (finish: (ok: boolean) => void): void => {
    side.requests++;
    side.requestTimes.push(nowMs - startMs);
    if (!throughReprise) {
      sendTry((failed) => finish(!failed));
      return;
    }
    const upstream: Upstream = registry.get(AUTHORITY, nowMs);
    const policy = resolveRequestPolicy(route, 'GET', NO_HEADERS, nowMs);
    const machine = new AttemptMachine({
      policy,
      method: 'GET',
      primary: { gate: upstream, origin: ORIGIN, hostHeader: undefined, tls: undefined },
      fallback: undefined,
      body: () => 'replayable',
      random,
    });
    const failedTries = new Set<number>();
    // the proxy's driver in miniature: a try is a timed event, a wait a later one
    const act = (actions: readonly AttemptAction[]): void => {
      for (const action of actions) {
        if (action.type === 'send') {
          const { tryId } = action;
          sendTry((failed) => {
            if (failed) failedTries.add(tryId);
            act(machine.handle({ type: 'try-ended', tryId, end: failed ? FAILED : OK }, nowMs));
          });
        } else if (action.type === 'wait') {
          const { timerId } = action;
          at(nowMs + action.delayMs, () => act(machine.handle({ type: 'timer', timerId }, nowMs)));
        } else if (action.type === 'answer') {
          machine.finish(nowMs);
          const { answer } = action;
          if (answer.kind === 'response') {
            finish(!failedTries.has(answer.tryId));
            continue;
          }
          if (
            answer.kind === 'error' &&
            (answer.error === 'circuit-open' || answer.error === 'overflow')
          ) {
            circuitOpenAnswers++;
          }
          at(nowMs + proxyMs, () => finish(false));
        }
      }
    };
    act(machine.handle({ type: 'start' }, nowMs));
  };

  const record = (ok: boolean): void => {
    if (!ok) return;
    side.ok++;
    side.okTimes.push(nowMs - startMs);
  };
  if (options.requestsPerSecond !== undefined) {
    const gapMs = 1000 / options.requestsPerSecond;
    for (let t = startMs; t < endMs; t += gapMs) at(t, () => request(record));
  } else {
    const loop = (): void => {
      if (nowMs >= endMs) return;
      request((ok) => {
        record(ok);
        loop();
      });
    };
    for (let i = 0; i < (options.clients ?? 10); i++) at(startMs, loop);
  }

  // a binary heap would be faster; a sorted pop over a few dozen pending events is enough here
  while (queue.length > 0) {
    let min = 0;
    for (let i = 1; i < queue.length; i++) {
      if ((queue[i] as Event).atMs < (queue[min] as Event).atMs) min = i;
    }
    const event = queue[min] as Event;
    queue[min] = queue[queue.length - 1] as Event;
    queue.pop();
    nowMs = event.atMs;
    event.run();
  }
  if (openSinceMs !== undefined) openMs += Math.max(0, endMs - openSinceMs);
  return { side, circuit: { circuitOpenAnswers, openMs, firstOpenMs } };
}
