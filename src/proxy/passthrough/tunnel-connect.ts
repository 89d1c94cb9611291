/**
 * A tunnel's connect tries (SPEC §6): only the connect is retried, per `connect.retry`, since
 * nothing has been sent; each try is asked of the upstream's gate like a try of the attempt
 * loop, and every dial goes through the one dialer.
 */
import type { Socket } from 'node:net';
import { NONE } from '../../lists.ts';
import type { BreakerPermit } from '../../resilience/circuit-breaker.ts';
import type { Upstream } from '../../resilience/upstream-registry.ts';
import { backoffDelay } from '../../retry/backoff.ts';
import type { Authority } from '../../routing/authority.ts';
import type { FailureName, TunnelOutcome } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { DENIED_UPSTREAM } from '../respond.ts';
import type { Dialed } from '../upstream/dialer.ts';
import type { ClientHold } from './detached-socket.ts';

type TunnelRefusal = Exclude<
  TunnelOutcome,
  'established' | 'client-gone' | 'intercepted' | 'plain-http'
>;

export type Opening =
  | {
      readonly kind: 'connected';
      readonly socket: Socket;
      readonly attempts: number;
      readonly retryReasons: readonly FailureName[];
    }
  | {
      readonly kind: 'refused';
      readonly error: TunnelRefusal;
      readonly message?: string;
      readonly attempts: number;
      readonly retryReasons: readonly FailureName[];
      readonly retryAfterMs?: number;
    }
  | { readonly kind: 'client-gone' };

/**
 * Connect tries, each asked of the upstream's gate like a try of the attempt loop (SPEC §4):
 * a refused first try is answered with its refusal, a refused retry with the connect failure.
 * A denied address is answered at once: it was never dialled, so there is nothing to retry.
 */
export async function connectWithRetries(
  ctx: ProxyContext,
  upstream: Upstream,
  target: Authority,
  hold: ClientHold,
  requestId: string,
): Promise<Opening> {
  const retry = ctx.config.connect.retry;
  const first = upstream.gate(ctx.now(), 1);
  if (first === 'circuit-open' || first === 'overflow') {
    const retryAfterMs =
      first === 'circuit-open' ? upstream.breaker.retryAfterMs(ctx.now()) : undefined;
    return { kind: 'refused', error: first, attempts: 0, retryReasons: NONE, retryAfterMs };
  }
  let permit: BreakerPermit = first;
  let previousMs = retry.backoff.baseMs;
  const retryReasons: FailureName[] = [];
  try {
    for (let attempt = 1; ; attempt++) {
      const dialed = await dial(ctx, target, retry.connectTimeoutMs, hold);
      if (dialed.kind === 'failed' && dialed.error.failure === 'denied') {
        upstream.record(ctx.now(), permit, undefined);
        return {
          kind: 'refused',
          error: 'forbidden',
          message: DENIED_UPSTREAM,
          attempts: 0,
          retryReasons,
        };
      }
      const socket = dialed.kind === 'connected' ? dialed.socket : undefined;
      upstream.record(ctx.now(), permit, hold.gone ? undefined : socket === undefined);
      if (hold.gone) {
        socket?.destroy();
        return { kind: 'client-gone' };
      }
      if (socket !== undefined) {
        return { kind: 'connected', socket, attempts: attempt, retryReasons };
      }
      const refused = {
        kind: 'refused',
        error: 'connect-failure',
        attempts: attempt,
        retryReasons,
      } as const;
      if (attempt >= retry.attempts) return refused;
      const next = upstream.gate(ctx.now(), attempt + 1);
      if (next === 'circuit-open' || next === 'budget') return refused;
      permit = next;
      previousMs = backoffDelay(retry.backoff, attempt, previousMs, ctx.random);
      ctx.onRetry?.(requestId, '', upstream.authority, attempt, 'connect-failure', previousMs);
      await hold.sleep(previousMs, ctx.timers);
      if (hold.gone) {
        upstream.record(ctx.now(), permit, undefined);
        return { kind: 'client-gone' };
      }
      if (!upstream.confirm(ctx.now(), permit)) return refused;
      // counted once it is made, as the attempt loop counts its retries
      retryReasons.push('connect-failure');
    }
  } finally {
    // a tunnel is not counted against maxConcurrent once it is open (it may live for hours)
    upstream.leave(ctx.now());
  }
}

/** One dial through the dialer, cancelled if the client leaves first. */
async function dial(
  ctx: ProxyContext,
  target: Authority,
  connectTimeoutMs: number,
  hold: ClientHold,
): Promise<Dialed> {
  const pending = ctx.dialer.dial({
    host: target.dialHost,
    port: target.port,
    connectTimeoutMs,
    allowHalfOpen: true,
  });
  hold.onGone(() => pending.cancel());
  const dialed = await pending.result;
  hold.onGone(undefined);
  return dialed;
}
