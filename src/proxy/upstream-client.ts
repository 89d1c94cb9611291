/**
 * The only undici user. Sends one try and returns a value: the response head (its body held
 * paused until the caller relays or discards it), or a named failure. Keep-alive pools per
 * origin live in one undici Agent per distinct connect timeout.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type { FailureName } from '../config/types.ts';
import { classifyError } from '../retry/failure.ts';

export interface TryRequest {
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  readonly headers: string[];
  readonly body: Buffer | AsyncIterable<Buffer> | null;
  readonly connectTimeoutMs: number;
  /** Until response headers: min(perTryTimeout, time left before the deadline). */
  readonly headersTimeoutMs: number;
  /** Longest pause between body chunks once the response streams. */
  readonly bodyIdleTimeoutMs: number;
}

export type TryResult =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly rawHeaders: readonly (Buffer | string)[];
      readonly response: UpstreamResponse;
    }
  | { readonly kind: 'failure'; readonly failure: FailureName; readonly error: Error };

/** A response whose head arrived; its body waits, paused, for `relay` or `discard`. */
export interface UpstreamResponse {
  /** Streams the body to the client with backpressure; settles when the client has it all or the exchange broke. */
  relay(res: ServerResponse, status: number, headers: string[]): Promise<'complete' | 'broken'>;
  /** Drops the body; small ones are drained so the connection is reused. */
  discard(): void;
}

/** A try on its way; `abort` cancels it wherever it is (the client went away). */
export interface PendingTry {
  readonly result: Promise<TryResult>;
  abort(): void;
}

const DRAIN_LIMIT_BYTES = 64 * 1024;

class TimeoutMarker extends Error {}
class ClientGone extends Error {}

export class UpstreamClient {
  readonly #agents = new Map<number, Agent>();

  send(request: TryRequest): PendingTry {
    const handler = new TryHandler(request.headersTimeoutMs);
    this.#agentFor(request.connectTimeoutMs).dispatch(
      {
        origin: request.origin,
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: request.body as Dispatcher.DispatchOptions['body'],
        headersTimeout: 0,
        bodyTimeout: request.bodyIdleTimeoutMs,
        idempotent: false,
        blocking: false,
      },
      handler,
    );
    return handler;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#agents.values()].map((agent) => agent.close()));
    this.#agents.clear();
  }

  #agentFor(connectTimeoutMs: number): Agent {
    let agent = this.#agents.get(connectTimeoutMs);
    if (agent === undefined) {
      agent = new Agent({ connect: { timeout: connectTimeoutMs }, keepAliveTimeout: 4_000 });
      this.#agents.set(connectTimeoutMs, agent);
    }
    return agent;
  }
}

type Phase = 'waiting' | 'held' | 'relaying' | 'discarding' | 'done';

class TryHandler implements Dispatcher.DispatchHandler, PendingTry, UpstreamResponse {
  readonly result: Promise<TryResult>;
  #resolve!: (result: TryResult) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #phase: Phase = 'waiting';
  #abortReason: Error | undefined;
  #res: ServerResponse | undefined;
  #settleRelay: ((outcome: 'complete' | 'broken') => void) | undefined;
  #drainedBytes = 0;
  #bodyError: Error | undefined;

  constructor(headersTimeoutMs: number) {
    this.result = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#timer = setTimeout(
      () => this.#fail(new TimeoutMarker('perTryTimeout')),
      headersTimeoutMs,
    );
  }

  abort(): void {
    this.#fail(new ClientGone('client went away'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason !== undefined) controller.abort(this.#abortReason);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (status < 200 || this.#phase !== 'waiting') return;
    clearTimeout(this.#timer);
    this.#phase = 'held';
    controller.pause();
    this.#resolve({
      kind: 'response',
      status,
      headers,
      rawHeaders: (controller.rawHeaders as (Buffer | string)[] | null) ?? [],
      response: this,
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#phase === 'relaying') {
      if (!(this.#res as ServerResponse).write(chunk)) controller.pause();
    } else if (this.#phase === 'discarding') {
      this.#drainedBytes += chunk.length;
      if (this.#drainedBytes > DRAIN_LIMIT_BYTES) controller.abort(new ClientGone('discarded'));
    }
  }

  onResponseEnd(): void {
    const wasRelaying = this.#phase === 'relaying';
    this.#phase = 'done';
    if (wasRelaying) {
      (this.#res as ServerResponse).end();
      this.#settle('complete');
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const phase = this.#phase;
    this.#phase = 'done';
    clearTimeout(this.#timer);
    if (phase === 'waiting') {
      this.#resolve({ kind: 'failure', failure: this.#failureOf(error), error });
    } else if (phase === 'held') {
      this.#bodyError = error;
    } else if (phase === 'relaying') {
      // the head (maybe part of the body) went out: the client must see a broken response,
      // never a clean end
      this.#res?.destroy(error);
      this.#settle('broken');
    }
  }

  relay(res: ServerResponse, status: number, headers: string[]): Promise<'complete' | 'broken'> {
    if (this.#phase === 'done') {
      // the body had already ended (or failed) while held
      return Promise.resolve(this.#relayFinished(res, status, headers));
    }
    this.#res = res;
    this.#phase = 'relaying';
    const settled = new Promise<'complete' | 'broken'>((resolve) => {
      this.#settleRelay = resolve;
    });
    res.writeHead(status, headers);
    res.on('drain', () => this.#controller?.resume());
    res.on('close', () => {
      if (this.#phase === 'relaying') {
        this.#phase = 'done';
        this.#controller?.abort(new ClientGone('client went away'));
        this.#settle('broken');
      }
    });
    this.#controller?.resume();
    return settled;
  }

  discard(): void {
    if (this.#phase !== 'held') return;
    this.#phase = 'discarding';
    this.#controller?.resume();
  }

  /** The body ended while held: empty (nothing is delivered while paused), or broken. */
  #relayFinished(res: ServerResponse, status: number, headers: string[]): 'complete' | 'broken' {
    res.writeHead(status, headers);
    if (this.#bodyError !== undefined) {
      res.destroy(this.#bodyError);
      return 'broken';
    }
    res.end();
    return 'complete';
  }

  #settle(outcome: 'complete' | 'broken'): void {
    const settle = this.#settleRelay;
    this.#settleRelay = undefined;
    settle?.(outcome);
  }

  #fail(reason: Error): void {
    if (this.#phase === 'done') return;
    if (this.#controller === undefined) {
      this.#abortReason = reason;
      if (this.#phase === 'waiting') {
        this.#phase = 'done';
        clearTimeout(this.#timer);
        this.#resolve({ kind: 'failure', failure: this.#failureOf(reason), error: reason });
      }
      return;
    }
    this.#controller.abort(reason);
  }

  #failureOf(error: Error): FailureName {
    if (error instanceof TimeoutMarker) return 'timeout';
    return classifyError(error);
  }
}
