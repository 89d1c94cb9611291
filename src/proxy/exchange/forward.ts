/**
 * The I/O of one request's attempt loop: it feeds the attempt machine (retry/attempt-machine.ts)
 * what happened — a try's end, a timer, the client leaving — and does what the machine says:
 * send a try, cancel one, wait, answer. Every rule lives in the machine; this file only does I/O.
 *
 * The commit point is the first byte written to the client; after it nothing asks whether to
 * retry. Every exit records why in the summary, which the log line and the metrics share.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appended, emptyList } from '../../lists.ts';
import type {
  AttemptAction,
  AttemptEvent,
  LoopAnswer,
  OriginTarget,
  TryEnd,
} from '../../retry/attempt-events.ts';
import { AttemptMachine } from '../../retry/attempt-machine.ts';
import { resolveRequestPolicy } from '../../retry/request-policy.ts';
import { matchRoute } from '../../routing/route-table.ts';
import type { Target } from '../../routing/target.ts';
import { type RequestSummary, summarize } from '../../summary.ts';
import type { Timer } from '../../timers.ts';
import type { ProxyContext } from '../context.ts';
import { type ArrivingRequest, requestOrigin, takeConnectionBytes } from '../correlation.ts';
import { buildClientHeaders, buildUpstreamHeaders, setAttempt, setHost } from '../headers.ts';
import { answer, DENIED_UPSTREAM, toRetryAfterSeconds } from '../respond.ts';
import type { DeniedTry, PendingTry, TryResult } from '../upstream/upstream-client.ts';
import { type RelayOutcome, relayResponse } from './relay-response.ts';
import { ReplayableBody } from './replayable-body.ts';

type ResponseResult = Extract<TryResult, { kind: 'response' }>;
type SendAction = Extract<AttemptAction, { type: 'send' }>;

/** One try on its way, as the driver holds it. */
interface Flight {
  readonly tryId: number;
  readonly pending: PendingTry;
  readonly source: Buffer | AsyncIterable<Buffer> | null;
  response: ResponseResult | undefined;
  cancelled: boolean;
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
  /** The upstream request head: the first try's own, copied by every later try. */
  readonly #headers: string[];
  /** Lists made on their first item: most requests make one try and set one wait (a hedge's). */
  #flights: Flight[] = emptyList();
  /** Every wait set, fired or not, all cleared at the end (a fired one is ignored). */
  #waits: Timer[] = emptyList();
  #body: ReplayableBody | undefined;
  #machine: AttemptMachine | undefined;
  #routeName = '';
  #answered: ((answer: LoopAnswer) => void) | undefined;
  /** Where the last try that reached a connection connected to. */
  #upstreamAddress: string | undefined;
  #clientGone = false;
  /** The last try was sent over TLS. */
  #tls = false;
  /** The message of a refusal (a 403: why), for the access line too. */
  #reason: string | undefined;
  /** Stops watching the upstream's link (`watch-link`). */
  #unwatch: (() => void) | undefined;
  /** A `link-back` is on its way to the machine: more news of the link adds nothing. */
  #linkBackQueued = false;

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
    this.#routeName = route.name;
    const policy = resolveRequestPolicy(route, method, this.#req.headers, this.#startMs);
    const keepCopy =
      policy.methodRetryable && (policy.attempts > 1 || route.fallback !== undefined);
    this.#body = ReplayableBody.wrap(this.#req, policy.retry.bufferBytes, ctx.pool, keepCopy);
    const fallback = route.fallback;
    const machine = new AttemptMachine({
      policy,
      method,
      primary: {
        gate: ctx.upstreams.get(this.#target.authority, this.#startMs),
        origin: this.#target.origin,
        hostHeader: undefined,
        tls: this.#target.tls,
      },
      fallback:
        fallback &&
        ((nowMs): OriginTarget => ({
          gate: ctx.upstreams.get(fallback.authority, nowMs),
          origin: fallback.origin,
          hostHeader: fallback.hostHeader,
          tls: fallback.tls,
        })),
      body: () => this.#body?.state ?? 'replayable',
      random: ctx.random,
    });
    this.#machine = machine;
    let status = 0;
    try {
      const end = new Promise<LoopAnswer>((resolve) => {
        this.#answered = resolve;
      });
      this.#feed({ type: 'start' });
      const committed = this.#commit(await end);
      status = typeof committed === 'number' ? committed : await committed;
    } finally {
      this.#unwatchLink();
      for (const timer of this.#waits) ctx.timers.clear(timer);
      machine.finish(ctx.now());
      this.#body?.release();
      ctx.onDone(this.#summary(route.name, status));
    }
  }

  /** Hands the machine one event and does what it says. */
  #feed(event: AttemptEvent): void {
    const ctx = this.#ctx;
    const actions = (this.#machine as AttemptMachine).handle(event, ctx.now());
    for (const action of actions) {
      switch (action.type) {
        case 'send':
          this.#send(action);
          break;
        case 'cancel':
          this.#cancel(action.tryId);
          break;
        case 'stop-holding':
          this.#flightOf(action.tryId)?.pending.release();
          break;
        case 'wait': {
          const { timerId, delayMs } = action;
          const timer = ctx.timers.set(() => this.#feed({ type: 'timer', timerId }), delayMs);
          this.#waits = appended(this.#waits, timer);
          break;
        }
        case 'retry':
          ctx.onRetry?.(
            this.#origin.requestId,
            this.#routeName,
            action.upstream,
            action.attempt,
            action.reason,
            action.delayMs,
          );
          break;
        case 'suppressed':
          ctx.onSuppressed?.(
            this.#origin.requestId,
            this.#routeName,
            action.upstream,
            action.attempt,
            action.cause,
          );
          break;
        case 'watch-link':
          this.#unwatch = action.link.watch(() => this.#onLinkBack(), action.origin);
          break;
        case 'answer':
          this.#unwatchLink();
          this.#answered?.(action.answer);
          break;
      }
    }
  }

  #send(action: SendAction): void {
    const { retry } = action;
    // each try its own head: a try queued in the pool reads its headers when it leaves; the
    // first try to the primary sends the head as built (attempt 1, its Host), later ones a copy
    let headers = this.#headers;
    if (action.attempt !== 1 || action.hostHeader !== undefined) {
      headers = headers.slice();
      if (action.hostHeader !== undefined) setHost(headers, action.hostHeader);
      setAttempt(headers, action.attempt);
    }
    const source = this.#body?.source() ?? null;
    this.#tls = action.tls !== undefined;
    const pending = this.#ctx.client.send({
      origin: action.origin,
      path: this.#target.path,
      method: this.#req.method as string,
      headers,
      body: source,
      connectTimeoutMs: retry.connectTimeoutMs,
      tls: action.tls,
      tryTimeoutMs: action.tryTimeoutMs,
      holdBytes: action.hold ? retry.responseBufferBytes : 0,
      bodyTimeoutMs: retry.bodyTimeoutMs,
      streamIdleTimeoutMs: retry.streamIdleTimeoutMs,
      pool: this.#ctx.pool,
      // never fed to the machine from inside the actions it is doing now
      onSent: () => queueMicrotask(() => this.#feed({ type: 'try-sent', tryId: action.tryId })),
      onOverdue: (failure) => this.#feed({ type: 'try-overdue', tryId: action.tryId, failure }),
    });
    const flight: Flight = {
      tryId: action.tryId,
      pending,
      source,
      response: undefined,
      cancelled: false,
    };
    this.#flights = appended(this.#flights, flight);
    pending.result.then((result) => this.#onResult(flight, result));
  }

  #onResult(flight: Flight, result: TryResult | DeniedTry): void {
    this.#upstreamAddress = flight.pending.upstreamAddress ?? this.#upstreamAddress;
    if (result.kind === 'response') {
      flight.response = result;
      if (flight.cancelled) result.response.discard();
    } else {
      this.#body?.stop(flight.source);
      this.#flights.splice(this.#flights.indexOf(flight), 1);
    }
    this.#feed({ type: 'try-ended', tryId: flight.tryId, end: endOf(result) });
  }

  #cancel(tryId: number): void {
    const flight = this.#flightOf(tryId);
    if (flight === undefined || flight.cancelled) return;
    flight.cancelled = true;
    if (flight.response !== undefined) flight.response.response.discard();
    else flight.pending.abort();
    this.#body?.stop(flight.source);
  }

  /**
   * Writes the answer; returns the status the client got (0: it went away first), once the
   * body is relayed: at once when it was all there.
   */
  #commit(end: LoopAnswer): number | Promise<number> {
    const ctx = this.#ctx;
    const record = (this.#machine as AttemptMachine).record;
    const response = end.kind === 'response' ? this.#flightOf(end.tryId)?.response : undefined;
    if (end.kind === 'client-gone' || this.#clientGone) {
      response?.response.discard();
      return 0;
    }
    if (response !== undefined) {
      const headers = buildClientHeaders(response, ctx.viaToken, record.attempts);
      const relayed = relayResponse(response.response, this.#res, response.status, headers);
      if (typeof relayed === 'string') return this.#relayed(relayed, response.status);
      return relayed.then((outcome) => this.#relayed(outcome, response.status));
    }
    if (end.kind !== 'error') throw new Error('the answer names a try that has no response');
    const retryAfterSeconds =
      end.error === 'circuit-open'
        ? toRetryAfterSeconds(end.gate.breaker.retryAfterMs(ctx.now()))
        : undefined;
    if (end.error === 'forbidden') {
      this.#reason = DENIED_UPSTREAM;
    }
    return answer(this.#res, end.error, {
      message: this.#reason,
      attempts: record.attempts,
      upstream: end.gate.authority,
      viaToken: ctx.viaToken,
      retryAfterSeconds,
    });
  }

  #flightOf(tryId: number): Flight | undefined {
    for (const flight of this.#flights) if (flight.tryId === tryId) return flight;
    return undefined;
  }

  #relayed(outcome: RelayOutcome, status: number): number {
    // the client has the head and maybe part of the body: too late to retry, not to tell
    if (outcome === 'body-cut') (this.#machine as AttemptMachine).record.markRelayCut();
    return status;
  }

  /** Told by another request's answer: fed once that one's actions are done. */
  #onLinkBack(): void {
    if (this.#linkBackQueued) return;
    this.#linkBackQueued = true;
    queueMicrotask(() => {
      this.#linkBackQueued = false;
      if (this.#unwatch !== undefined) this.#feed({ type: 'link-back' });
    });
  }

  #unwatchLink(): void {
    this.#unwatch?.();
    this.#unwatch = undefined;
  }

  #onClientGone(): void {
    if (this.#clientGone) return;
    this.#clientGone = true;
    this.#unwatchLink();
    this.#feed({ type: 'client-gone' });
  }

  #summary(route: string, status: number): RequestSummary {
    const bytes = takeConnectionBytes(this.#req.socket);
    const record = (this.#machine as AttemptMachine).record;
    const end = {
      route,
      upstream: this.#target.authority,
      path: this.#target.pathname,
      status,
      attempts: record.attempts,
      outcomes: record.outcomes,
      tryUpstreams: record.tryUpstreams,
      retryReasons: record.retryReasons,
      retryUpstreams: record.retryUpstreams,
      suppressed: record.suppressed,
      fallback: record.fallback,
      error: record.error,
      hedges: record.hedgeResults,
      wonAttempt: record.wonAttempt,
      upstreamAddress: this.#upstreamAddress,
      tls: this.#tls,
      reason: this.#reason,
      bytesIn: bytes.bytesIn,
      bytesOut: bytes.bytesOut,
    };
    return summarize(this.#origin, end, this.#ctx.now());
  }
}

function endOf(result: TryResult | DeniedTry): TryEnd {
  if (result.kind === 'denied') return result;
  if (result.kind === 'failure') return result;
  const value = result.headers['retry-after'];
  const retryAfter = Array.isArray(value) ? value[0] : value;
  return { kind: 'response', status: result.status, retryAfter };
}
