/**
 * For `explain`: the proxy's own attempt loop (retry/attempt-machine.ts) run on a made-up
 * request whose every try ends at once the same way, on a virtual clock. The gate always lets
 * a try go: explain describes the policy, not the budget or the circuit of the moment.
 */
import type { AttemptAction, TryEnd, TryGate } from '../retry/attempt-events.ts';
import { AttemptMachine } from '../retry/attempt-machine.ts';
import type { TryResult } from '../retry/decide.ts';
import type { RequestPolicy } from '../retry/request-policy.ts';

const OPEN_GATE: TryGate = {
  authority: 'explain',
  latency: { samples: 0, quantileMs: () => undefined, add() {} },
  breaker: { retryAfterMs: () => 0 },
  link: { down: false, answered() {}, watch: () => () => {} },
  gate: () => 'pass',
  gateHedge: () => 'pass',
  confirm: () => true,
  record() {},
  leave() {},
};

/** The retries made before the loop ended, each the delay waited before it. */
export function runLoop(
  policy: RequestPolicy,
  method: string,
  result: TryResult,
  random: () => number,
): number[] {
  const machine = new AttemptMachine({
    policy,
    method,
    primary: { gate: OPEN_GATE, origin: 'http://explain', hostHeader: undefined, tls: undefined },
    fallback: undefined,
    body: () => 'replayable',
    random,
  });
  const end: TryEnd = result;
  const delays: number[] = [];
  // pending events by time; every try ends the moment it starts
  const queue: { atMs: number; run: () => AttemptAction[] }[] = [];
  let nowMs = 0;
  const schedule = (actions: readonly AttemptAction[]): void => {
    for (const action of actions) {
      if (action.type === 'send') {
        const { tryId } = action;
        queue.push({
          atMs: nowMs,
          run: () => machine.handle({ type: 'try-ended', tryId, end }, nowMs),
        });
      } else if (action.type === 'wait') {
        const { timerId } = action;
        const run = () => machine.handle({ type: 'timer', timerId }, nowMs);
        queue.push({ atMs: nowMs + action.delayMs, run });
      } else if (action.type === 'retry') delays.push(action.delayMs);
    }
  };
  schedule(machine.handle({ type: 'start' }, nowMs));
  while (queue.length > 0) {
    queue.sort((a, b) => a.atMs - b.atMs);
    const next = queue.shift() as (typeof queue)[number];
    nowMs = next.atMs;
    schedule(next.run());
  }
  return delays.slice(0, machine.record.retryReasons.length);
}
