/**
 * The attempt loop: one request goes down once and comes back once.
 *
 *   route → policy (once, at the edge) → tries on the primary → maybe the fallback → commit
 *
 * The commit point is the first byte written to the client; after it nothing asks whether to
 * retry. Every exit records why in the summary, which the log line and the metrics share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FailureName } from '../config/types.ts';
import type { Upstream } from '../resilience/upstream-registry.ts';
import { decideRetry } from '../retry/decide.ts';
import { statusOutcome } from '../retry/failure.ts';
import {
  type RequestPolicy,
  resolveFallbackPolicy,
  resolveRequestPolicy,
} from '../retry/request-policy.ts';
import { matchRoute } from '../routing/route-table.ts';
import type { RequestSummary, SuppressedCause, TryOutcome } from '../summary.ts';
import type { ProxyContext } from './context.ts';
import { buildClientHeaders, buildUpstreamHeaders, setAttempt, setHost } from './headers.ts';
import { ReplayableBody } from './replayable-body.ts';
import { answer, type ErrorName } from './respond.ts';
import type { PendingTry, TryResult } from './upstream-client.ts';

/** Where a request goes, parsed once from its absolute-form URI (or a listener's upstream). */
export interface Target {
  /** `http://host:port` */
  readonly origin: string;
  /** `host:port`, lower-case. */
  readonly authority: string;
  readonly host: string;
  readonly port: number;
  /** Path and query, as sent upstream. */
  readonly path: string;
  /** Path without the query: routing and logs. */
  readonly pathname: string;
}

/** How the tries on one origin ended. */
type LoopEnd =
  | { readonly kind: 'result'; readonly result: TryResult }
  | {
      readonly kind: 'refused';
      readonly error: 'circuit-open' | 'overflow';
      readonly retryAfterMs: number;
    }
  | { readonly kind: 'client-gone' };

export function forward(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  target: Target,
): Promise<void> {
  return new Exchange(ctx, req, res, target).run();
}

class Exchange {
  readonly #ctx: ProxyContext;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #target: Target;
  readonly #startMs: number;
  readonly #headers: string[];
  #body: ReplayableBody | undefined;
  #attempts = 0;
  readonly #outcomes: TryOutcome[] = [];
  readonly #tryUpstreams: string[] = [];
  readonly #retryReasons: string[] = [];
  #suppressed: SuppressedCause | undefined;
  #fallback: string | undefined;
  #error: ErrorName | undefined;
  #clientGone = false;
  #current: PendingTry | undefined;
  #sleepTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  constructor(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, target: Target) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#target = target;
    this.#startMs = ctx.now();
    this.#headers = buildUpstreamHeaders(req.rawHeaders, target.authority, ctx.viaToken);
    res.on('close', () => {
      if (!res.writableFinished) this.#onClientGone();
    });
  }

  async run(): Promise<void> {
    const ctx = this.#ctx;
    const method = this.#req.method as string;
    const route = matchRoute(
      ctx.config,
      this.#target.host,
      this.#target.port,
      this.#target.pathname,
      method,
    );
    const policy = resolveRequestPolicy(route, method, this.#req.headers, this.#startMs);
    const keepCopy =
      policy.methodRetryable && (policy.attempts > 1 || route.fallback !== undefined);
    this.#body = ReplayableBody.wrap(this.#req, policy.retry.bufferBytes, ctx.pool, keepCopy);
    let status = 0;
    try {
      const primary = ctx.upstreams.get(this.#target.authority, this.#startMs);
      let end = await this.#tryOrigin(primary, this.#target.origin, policy);
      const fallbackPolicy = this.#fallbackFor(end, policy);
      if (fallbackPolicy !== undefined && route.fallback !== undefined) {
        setHost(this.#headers, route.fallback.authority);
        const secondary = ctx.upstreams.get(route.fallback.authority, ctx.now());
        end = await this.#tryOrigin(secondary, route.fallback.origin, fallbackPolicy);
      }
      status = await this.#commit(end, policy);
    } finally {
      this.#body?.release();
      ctx.onDone(this.#summary(route.name, method, status));
    }
  }

  /** Tries one origin until an answer is final, a retry is refused, or the client leaves. */
  async #tryOrigin(upstream: Upstream, origin: string, policy: RequestPolicy): Promise<LoopEnd> {
    const ctx = this.#ctx;
    const retry = policy.retry;
    let previousDelayMs = retry.backoff.baseMs;
    let last: TryResult | undefined;
    for (let attempt = 1; ; attempt++) {
      const nowMs = ctx.now();
      const permit = upstream.admit(nowMs);
      if (permit === 'circuit-open' || permit === 'overflow') {
        if (last !== undefined) {
          if (permit === 'circuit-open') this.#suppressed = 'circuit-open';
          return { kind: 'result', result: last };
        }
        return {
          kind: 'refused',
          error: permit,
          retryAfterMs: upstream.breaker.retryAfterMs(nowMs),
        };
      }
      if (attempt === 1) upstream.budget.deposit(nowMs);
      this.#attempts++;
      setAttempt(this.#headers, this.#attempts);
      const pending = ctx.client.send({
        origin,
        path: this.#target.path,
        method: this.#req.method as string,
        headers: this.#headers,
        body: this.#body?.source() ?? null,
        connectTimeoutMs: retry.connectTimeoutMs,
        headersTimeoutMs: Math.max(1, Math.min(retry.perTryTimeoutMs, policy.deadlineMs - nowMs)),
        bodyIdleTimeoutMs: policy.route.timeoutMs,
      });
      this.#current = pending;
      const result = await pending.result;
      this.#current = undefined;
      last = result;
      const failed = result.kind === 'failure' || result.status >= 500;
      upstream.finish(ctx.now(), permit, this.#clientGone ? undefined : failed);
      this.#outcomes.push(outcomeOf(result));
      this.#tryUpstreams.push(upstream.authority);
      if (this.#clientGone) return this.#leave(result, attempt < policy.attempts);

      const decision = decideRetry({
        policy,
        attempt,
        result:
          result.kind === 'response'
            ? {
                kind: 'response',
                status: result.status,
                retryAfter: headerValue(result.headers['retry-after']),
              }
            : result,
        body: this.#body?.state ?? 'replayable',
        nowMs: ctx.now(),
        previousDelayMs,
        random: ctx.random,
      });
      if (!decision.retry) {
        this.#suppressed = decision.cause;
        if (decision.cause !== undefined)
          ctx.onSuppressed?.(policy.route.name, upstream.authority, attempt, decision.cause);
        return { kind: 'result', result };
      }
      if (upstream.breaker.state(ctx.now()).state === 'open') {
        this.#suppressed = 'circuit-open';
        return { kind: 'result', result };
      }
      // the budget is the last gate: it is the only check with a side effect (SPEC §4)
      if (!upstream.budget.tryWithdraw(ctx.now())) {
        this.#suppressed = 'budget';
        return { kind: 'result', result };
      }
      this.#retryReasons.push(decision.reason);
      ctx.onRetry?.(
        policy.route.name,
        upstream.authority,
        this.#attempts,
        decision.reason,
        decision.delayMs,
      );
      previousDelayMs = decision.backoffMs;
      if (result.kind === 'response') result.response.discard();
      await this.#sleep(decision.delayMs);
      if (this.#clientGone) {
        this.#suppressed = 'client-gone';
        return { kind: 'client-gone' };
      }
    }
  }

  /** The fallback's policy when this end calls for it (SPEC §3 "Fallback"), else undefined. */
  #fallbackFor(end: LoopEnd, policy: RequestPolicy): RequestPolicy | undefined {
    if (policy.route.fallback === undefined || !policy.methodRetryable) return undefined;
    if (this.#body !== undefined && this.#body.state !== 'replayable') return undefined;
    if (this.#ctx.now() >= policy.deadlineMs) return undefined;
    if (end.kind === 'refused' && end.error === 'circuit-open') {
      this.#fallback = 'circuit-open';
    } else if (end.kind === 'result' && end.result.kind === 'failure') {
      const onlyUnreached = this.#outcomes.every((o) => o === 'connect-failure' || o === 'timeout');
      if (!onlyUnreached) return undefined;
      this.#fallback = end.result.failure;
    } else {
      return undefined;
    }
    this.#suppressed = undefined;
    return resolveFallbackPolicy(policy);
  }

  /** Writes the answer; returns the status the client got (0: it went away first). */
  async #commit(end: LoopEnd, policy: RequestPolicy): Promise<number> {
    const ctx = this.#ctx;
    const upstream = this.#tryUpstreams.at(-1) ?? this.#target.authority;
    if (end.kind === 'client-gone' || this.#clientGone) {
      if (end.kind === 'result' && end.result.kind === 'response') end.result.response.discard();
      return 0;
    }
    if (end.kind === 'refused') {
      this.#error = end.error;
      return answer(this.#res, end.error, {
        attempts: this.#attempts,
        upstream,
        viaToken: ctx.viaToken,
        retryAfterSeconds:
          end.error === 'circuit-open'
            ? Math.max(1, Math.ceil(end.retryAfterMs / 1000))
            : undefined,
      });
    }
    const result = end.result;
    if (result.kind === 'failure') {
      const name = failureAnswer(result.failure, ctx.now() >= policy.deadlineMs);
      this.#error = name;
      return answer(this.#res, name, {
        attempts: this.#attempts,
        upstream,
        viaToken: ctx.viaToken,
      });
    }
    const headers = buildClientHeaders(result.rawHeaders, ctx.viaToken, this.#attempts);
    await result.response.relay(this.#res, result.status, headers);
    return result.status;
  }

  #leave(result: TryResult, couldRetry: boolean): LoopEnd {
    if (result.kind === 'response') result.response.discard();
    if (couldRetry) this.#suppressed = 'client-gone';
    return { kind: 'client-gone' };
  }

  #sleep(delayMs: number): Promise<void> {
    if (delayMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#sleepTimer = setTimeout(resolve, delayMs);
    });
  }

  #onClientGone(): void {
    if (this.#clientGone) return;
    this.#clientGone = true;
    this.#current?.abort();
    if (this.#wake !== undefined) {
      clearTimeout(this.#sleepTimer);
      this.#wake();
      this.#wake = undefined;
    }
  }

  #summary(route: string, method: string, status: number): RequestSummary {
    return {
      route,
      upstream: this.#target.authority,
      method,
      path: this.#target.pathname,
      status,
      attempts: this.#attempts,
      outcomes: this.#outcomes,
      tryUpstreams: this.#tryUpstreams,
      retryReasons: this.#retryReasons,
      suppressed: this.#suppressed,
      fallback: this.#fallback,
      error: this.#error,
      durationMs: this.#ctx.now() - this.#startMs,
    };
  }
}

function failureAnswer(failure: FailureName, deadlinePassed: boolean): ErrorName {
  if (deadlinePassed && failure === 'timeout') return 'deadline';
  return failure;
}

function outcomeOf(result: TryResult): TryOutcome {
  return result.kind === 'failure' ? result.failure : statusOutcome(result.status);
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
