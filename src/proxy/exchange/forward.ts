/**
 * The attempt loop: one request goes down once and comes back once.
 *
 *   route → policy (once, at the edge) → tries on the primary → maybe the fallback → commit
 *
 * The commit point is the first byte written to the client; after it nothing asks whether to
 * retry. Every exit records why in the summary, which the log line and the metrics share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { UpstreamTls } from '../../config/types.ts';
import type { BreakerPermit } from '../../resilience/circuit-breaker.ts';
import type { Upstream } from '../../resilience/upstream-registry.ts';
import { decideRetry } from '../../retry/decide.ts';
import { statusOutcome } from '../../retry/failure.ts';
import {
  type RequestPolicy,
  resolveFallbackPolicy,
  resolveRequestPolicy,
  tryTimeoutMs,
} from '../../retry/request-policy.ts';
import { matchRoute } from '../../routing/route-table.ts';
import type { Target } from '../../routing/target.ts';
import { type RequestSummary, summarize } from '../../summary.ts';
import type { ErrorName, FailureName, SuppressedCause, TryOutcome } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { type ArrivingRequest, requestOrigin, takeConnectionBytes } from '../correlation.ts';
import { buildClientHeaders, buildUpstreamHeaders, setAttempt, setHost } from '../headers.ts';
import { answer, toRetryAfterSeconds } from '../respond.ts';
import type { DeniedTry, PendingTry, TryResult } from '../upstream/upstream-client.ts';
import { relayResponse } from './relay-response.ts';
import { ReplayableBody } from './replayable-body.ts';

/** How the tries on one origin ended: an answer to relay, one reprise makes, or nobody to tell. */
type LoopEnd =
  | { readonly kind: 'response'; readonly result: ResponseResult }
  | {
      readonly kind: 'error';
      readonly error: FailureName | 'circuit-open' | 'overflow' | 'forbidden';
      readonly upstream: Upstream;
    }
  | { readonly kind: 'client-gone' };

type ResponseResult = Extract<TryResult, { kind: 'response' }>;

/** Where tries go: the target, or the route's fallback; with TLS where it has settings. */
interface Destination {
  readonly origin: string;
  readonly tls?: UpstreamTls | undefined;
}

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
  readonly #origin: ArrivingRequest;
  readonly #headers: string[];
  #body: ReplayableBody | undefined;
  #attempts = 0;
  readonly #outcomes: TryOutcome[] = [];
  readonly #tryUpstreams: string[] = [];
  readonly #retryReasons: string[] = [];
  readonly #retryUpstreams: string[] = [];
  #suppressed: SuppressedCause | undefined;
  #fallback: string | undefined;
  #error: ErrorName | undefined;
  /** The message of a refusal (a 403: why), for the access line too. */
  #reason: string | undefined;
  /** Where the last try that reached a connection connected to. */
  #upstreamAddress: string | undefined;
  #clientGone = false;
  /** The last try was sent over TLS. */
  #tls = false;
  #current: PendingTry | undefined;
  /** The upstream whose concurrency slot the answer being relayed still holds (maxConcurrent). */
  #slot: Upstream | undefined;
  /** Ends the backoff wait early (the client went away). */
  #wake: (() => void) | undefined;

  constructor(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, target: Target) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res;
    this.#target = target;
    this.#startMs = ctx.now();
    this.#origin = requestOrigin(req.method as string, req.headers, req.socket, this.#startMs);
    // a request id made here goes upstream too, so the upstream's logs join on it
    const madeId = this.#origin.requestIdMade ? this.#origin.requestId : undefined;
    this.#headers = buildUpstreamHeaders(req, target.hostHeader, ctx.viaToken, madeId);
    res.on('close', () => {
      if (!res.writableFinished) this.#onClientGone();
    });
  }

  async run(): Promise<void> {
    const ctx = this.#ctx;
    const method = this.#req.method as string;
    const { host, port, pathname } = this.#target;
    const route = matchRoute(ctx.config, host, port, pathname, method);
    const policy = resolveRequestPolicy(route, method, this.#req.headers, this.#startMs);
    const keepCopy =
      policy.methodRetryable && (policy.attempts > 1 || route.fallback !== undefined);
    this.#body = ReplayableBody.wrap(this.#req, policy.retry.bufferBytes, ctx.pool, keepCopy);
    let status = 0;
    try {
      const primary = ctx.upstreams.get(this.#target.authority, this.#startMs);
      let end = await this.#tryOrigin(primary, this.#target, policy);
      const fallbackPolicy = this.#fallbackFor(end, policy);
      if (fallbackPolicy !== undefined && route.fallback !== undefined) {
        this.#releaseSlot();
        setHost(this.#headers, route.fallback.hostHeader);
        const secondary = ctx.upstreams.get(route.fallback.authority, ctx.now());
        end = await this.#tryOrigin(secondary, route.fallback, fallbackPolicy);
      }
      status = await this.#commit(end, policy);
    } finally {
      this.#releaseSlot();
      this.#body?.release();
      ctx.onDone(this.#summary(route.name, status));
    }
  }

  /** Tries one origin until an answer is final, a retry is refused, or the client leaves. */
  async #tryOrigin(
    upstream: Upstream,
    origin: Destination,
    policy: RequestPolicy,
  ): Promise<LoopEnd> {
    const ctx = this.#ctx;
    const first = upstream.gate(ctx.now(), 1);
    if (first === 'circuit-open' || first === 'overflow') {
      return { kind: 'error', error: first, upstream };
    }
    let permit: BreakerPermit = first;
    // the request holds one in-flight slot here until its answer is relayed or dropped
    this.#slot = upstream;
    let previousDelayMs = policy.retry.backoff.baseMs;
    for (let attempt = 1; ; attempt++) {
      // a probe's answer must reach the breaker at its head: holding it would keep the circuit
      // half-open until its body ended
      const hold = permit !== 'probe' && this.#mayRetryBodyCut(policy, attempt);
      const result = await this.#send(origin, policy, hold);
      this.#upstreamAddress = this.#current?.upstreamAddress ?? this.#upstreamAddress;
      this.#current = undefined;
      if (result.kind === 'denied') {
        // access.deniedUpstreams: the try never left, so there is nothing to learn or retry
        upstream.record(ctx.now(), permit, undefined);
        return { kind: 'error', error: 'forbidden', upstream };
      }
      this.#attempts++;
      // the breaker learns at once: a probe must not wait for a long body to end
      const failed = result.kind === 'failure' || result.status >= 500;
      upstream.record(ctx.now(), permit, this.#clientGone ? undefined : failed);
      this.#outcomes.push(outcomeOf(result));
      this.#tryUpstreams.push(upstream.authority);
      if (this.#clientGone) {
        if (result.kind === 'response') result.response.discard();
        if (attempt < policy.attempts) this.#suppressed = 'client-gone';
        return { kind: 'client-gone' };
      }

      const decision = decideRetry({
        policy,
        attempt,
        result:
          result.kind === 'response'
            ? { kind: 'response', status: result.status, retryAfter: retryAfterOf(result) }
            : result,
        body: this.#body?.state ?? 'replayable',
        nowMs: ctx.now(),
        previousDelayMs,
        random: ctx.random,
      });
      if (!decision.retry) return this.#stop(decision.cause, result, upstream, policy);
      const next = upstream.gate(ctx.now(), attempt + 1);
      // refused: the client gets the answer it would have got without reprise
      if (next === 'circuit-open' || next === 'budget') {
        return this.#stop(next, result, upstream, policy);
      }
      permit = next;
      const { reason, delayMs } = decision;
      const id = this.#origin.requestId;
      ctx.onRetry?.(id, policy.route.name, upstream.authority, this.#attempts, reason, delayMs);
      previousDelayMs = decision.backoffMs;
      if (result.kind === 'response') result.response.discard();
      await this.#sleep(delayMs);
      if (this.#clientGone) {
        upstream.record(ctx.now(), permit, undefined);
        this.#suppressed = 'client-gone';
        return { kind: 'client-gone' };
      }
      if (!upstream.confirm(ctx.now(), permit)) {
        // the answer that led here was discarded for the retry: reprise answers instead
        this.#suppressed = 'circuit-open';
        const { requestId } = this.#origin;
        const { authority } = upstream;
        ctx.onSuppressed?.(requestId, policy.route.name, authority, this.#attempts, 'circuit-open');
        return { kind: 'error', error: 'circuit-open', upstream };
      }
      // counted once it is made: a client that left during the wait got no retry
      this.#retryReasons.push(reason);
      this.#retryUpstreams.push(upstream.authority);
    }
  }

  /** Ends the tries on this origin with `result`; `cause`: why a due retry was not made. */
  #stop(
    cause: SuppressedCause | undefined,
    result: TryResult,
    upstream: Upstream,
    policy: RequestPolicy,
  ): LoopEnd {
    this.#suppressed = cause;
    if (cause !== undefined) {
      const { requestId } = this.#origin;
      const { authority } = upstream;
      this.#ctx.onSuppressed?.(requestId, policy.route.name, authority, this.#attempts, cause);
    }
    if (result.kind === 'response') return { kind: 'response', result };
    return { kind: 'error', error: result.failure, upstream };
  }

  /**
   * Sends the next try on this origin; settles when its response head arrived, or, with
   * `hold`, once the body is whole (content-aware retry), or when it failed.
   */
  #send(to: Destination, policy: RequestPolicy, hold: boolean): Promise<TryResult | DeniedTry> {
    const { retry } = policy;
    setAttempt(this.#headers, this.#attempts + 1);
    this.#tls = to.tls !== undefined;
    this.#current = this.#ctx.client.send({
      origin: to.origin,
      path: this.#target.path,
      method: this.#req.method as string,
      headers: this.#headers,
      body: this.#body?.source() ?? null,
      connectTimeoutMs: retry.connectTimeoutMs,
      tls: to.tls,
      tryTimeoutMs: tryTimeoutMs(policy, this.#ctx.now()),
      holdBytes: hold ? retry.responseBufferBytes : 0,
      bodyTimeoutMs: retry.bodyTimeoutMs,
      streamIdleTimeoutMs: retry.streamIdleTimeoutMs,
      pool: this.#ctx.pool,
    });
    return this.#current.result;
  }

  /** Holding a response is worth its wait only if a cut body could be retried. */
  #mayRetryBodyCut(policy: RequestPolicy, attempt: number): boolean {
    const { retry } = policy;
    return (
      attempt < policy.attempts &&
      policy.methodRetryable &&
      !retry.observeOnly &&
      retry.onFailures.has('body-cut') &&
      (this.#body === undefined || this.#body.state === 'replayable')
    );
  }

  /** The fallback's policy when this end calls for it (SPEC §3 "Fallback"), else undefined. */
  #fallbackFor(end: LoopEnd, policy: RequestPolicy): RequestPolicy | undefined {
    if (policy.route.fallback === undefined || !policy.methodRetryable) return undefined;
    if (end.kind !== 'error' || end.error === 'overflow' || end.error === 'forbidden') {
      return undefined;
    }
    if (this.#body !== undefined && this.#body.state !== 'replayable') return undefined;
    if (this.#ctx.now() >= policy.deadlineMs) return undefined;
    // never after an HTTP answer or a reset (the primary had the request); an open circuit: always
    const unreached = this.#outcomes.every((o) => o === 'connect-failure' || o === 'timeout');
    if (end.error !== 'circuit-open' && !unreached) return undefined;
    // the client's x-reprise-retry / x-reprise-max-attempts cap the tries on both origins
    const fallback = resolveFallbackPolicy(policy, this.#attempts);
    if (fallback === undefined) return undefined;
    this.#fallback = end.error;
    this.#suppressed = undefined;
    return fallback;
  }

  /** Writes the answer; returns the status the client got (0: it went away first). */
  async #commit(end: LoopEnd, policy: RequestPolicy): Promise<number> {
    const ctx = this.#ctx;
    if (end.kind === 'client-gone' || this.#clientGone) {
      if (end.kind === 'response') end.result.response.discard();
      return 0;
    }
    if (end.kind === 'response') {
      const { status, response } = end.result;
      const headers = buildClientHeaders(end.result, ctx.viaToken, this.#attempts);
      const relayed = await relayResponse(response, this.#res, status, headers);
      if (relayed === 'body-cut') {
        // the client has the head and maybe part of the body: too late to retry, not to tell
        this.#outcomes[this.#outcomes.length - 1] = 'body-cut';
        this.#error = 'body-cut';
      }
      return status;
    }
    const deadlinePassed = end.error === 'timeout' && ctx.now() >= policy.deadlineMs;
    this.#error = deadlinePassed ? 'deadline' : end.error;
    const retryAfterSeconds =
      end.error === 'circuit-open'
        ? toRetryAfterSeconds(end.upstream.breaker.retryAfterMs(ctx.now()))
        : undefined;
    if (end.error === 'forbidden') {
      this.#reason = 'the upstream address is in access.deniedUpstreams';
    }
    return answer(this.#res, this.#error, {
      message: this.#reason,
      attempts: this.#attempts,
      upstream: end.upstream.authority,
      viaToken: ctx.viaToken,
      retryAfterSeconds,
    });
  }

  #releaseSlot(): void {
    this.#slot?.leave(this.#ctx.now());
    this.#slot = undefined;
  }

  #sleep(delayMs: number): Promise<void> {
    if (delayMs <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #onClientGone(): void {
    if (this.#clientGone) return;
    this.#clientGone = true;
    this.#current?.abort();
    this.#wake?.();
  }

  #summary(route: string, status: number): RequestSummary {
    const bytes = takeConnectionBytes(this.#req.socket);
    const end = {
      route,
      upstream: this.#target.authority,
      path: this.#target.pathname,
      status,
      attempts: this.#attempts,
      outcomes: this.#outcomes,
      tryUpstreams: this.#tryUpstreams,
      retryReasons: this.#retryReasons,
      retryUpstreams: this.#retryUpstreams,
      suppressed: this.#suppressed,
      fallback: this.#fallback,
      error: this.#error,
      reason: this.#reason,
      upstreamAddress: this.#upstreamAddress,
      tls: this.#tls,
      bytesIn: bytes.bytesIn,
      bytesOut: bytes.bytesOut,
    };
    return summarize(this.#origin, end, this.#ctx.now());
  }
}

function outcomeOf(result: TryResult): TryOutcome {
  return result.kind === 'failure' ? result.failure : statusOutcome(result.status);
}

function retryAfterOf(result: ResponseResult): string | undefined {
  const value = result.headers['retry-after'];
  return Array.isArray(value) ? value[0] : value;
}
