/**
 * The only undici user. Sends one try and returns a value: the response head (its body
 * held until the caller relays or discards it), a named failure, or `denied`. Keep-alive
 * pools per origin live in one undici Agent per distinct connect timeout.
 * Every connection is made by `connector.ts`.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { Dispatcher } from 'undici';
import type { FailureName } from '../config/types.ts';
import { classifyError } from '../retry/failure.ts';
import { DeniedAddressError } from './address-guard.ts';
import { guardedConnector, isDeliveringReset } from './connector.ts';
import { Agent } from './undici-agent.ts';

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
      /** Names and values as they came: latin1 bytes (headers.ts decodes them when relayed). */
      readonly rawHeaders: readonly (string | Buffer)[];
      readonly response: UpstreamResponse;
    }
  | { readonly kind: 'failure'; readonly failure: FailureName; readonly error: Error };

/** The try never left: the upstream's address is in `access.deniedUpstreams` (403 forbidden). */
export interface DeniedTry {
  readonly kind: 'denied';
  readonly address: string;
}

/** A response whose head arrived; its body waits (paused past a limit) for `relay` or `discard`. */
export interface UpstreamResponse {
  /** Streams the body to the client with backpressure; settles when the client has it all or the exchange broke. */
  relay(res: ServerResponse, status: number, headers: string[]): Promise<'complete' | 'broken'>;
  /** Drops the body; small ones are drained so the connection is reused. */
  discard(): void;
}

/** A try on its way; `abort` cancels it wherever it is (the client went away). */
export interface PendingTry {
  readonly result: Promise<TryResult | DeniedTry>;
  abort(): void;
}

export interface UpstreamClientOptions {
  /** The deny list in force (read per try; when it changes, new pools replace the old). */
  readonly deniedUpstreams?: () => BlockList | undefined;
}

const DRAIN_LIMIT_BYTES = 64 * 1024;
/**
 * Body bytes kept while the attempt loop decides; past this the upstream is paused. A small
 * body is then whole before `relay`, which writes it at once with no pause and resume.
 */
const HOLD_LIMIT_BYTES = 64 * 1024;

class TimeoutMarker extends Error {}
class ClientGone extends Error {}
class BodyReset extends Error {
  readonly code = 'ECONNRESET';
}

export class UpstreamClient {
  readonly #denied: () => BlockList | undefined;
  #agentsDenied: BlockList | undefined;
  readonly #agents = new Map<number, Agent>();
  readonly #retiring = new Set<Promise<void>>();

  constructor(options: UpstreamClientOptions = {}) {
    this.#denied = options.deniedUpstreams ?? (() => undefined);
  }

  send(request: TryRequest): PendingTry {
    const handler = new TryHandler(request.headersTimeoutMs, request.method);
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
    this.#retire();
    await Promise.all(this.#retiring);
  }

  #agentFor(connectTimeoutMs: number): Agent {
    const denied = this.#denied();
    // pooled connections were checked against the list of their day: start afresh
    if (denied !== this.#agentsDenied) {
      this.#retire();
      this.#agentsDenied = denied;
    }
    let agent = this.#agents.get(connectTimeoutMs);
    if (agent === undefined) {
      agent = new Agent({
        connect: guardedConnector(connectTimeoutMs, denied),
        keepAliveTimeout: 4_000,
      });
      this.#agents.set(connectTimeoutMs, agent);
    }
    return agent;
  }

  /** Closes the pools gracefully: tries in flight finish, idle connections close. */
  #retire(): void {
    for (const agent of this.#agents.values()) {
      const closing = agent.close().catch(() => {});
      this.#retiring.add(closing);
      closing.then(() => this.#retiring.delete(closing));
    }
    this.#agents.clear();
  }
}

type Phase = 'waiting' | 'peeking' | 'held' | 'relaying' | 'discarding' | 'done';

class TryHandler implements Dispatcher.DispatchHandler, PendingTry, UpstreamResponse {
  readonly result: Promise<TryResult | DeniedTry>;
  readonly #method: string;
  #resolve!: (result: TryResult | DeniedTry) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #phase: Phase = 'waiting';
  #abortReason: Error | undefined;
  #head: Extract<TryResult, { kind: 'response' }> | undefined;
  #closeDelimited = false;
  /** Body bytes that arrived before `relay`/`discard` (about HOLD_LIMIT_BYTES at most). */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #ended = false;
  #bodyError: Error | undefined;
  #res: ServerResponse | undefined;
  #settleRelay: ((outcome: 'complete' | 'broken') => void) | undefined;
  #drainedBytes = 0;

  constructor(headersTimeoutMs: number, method: string) {
    this.#method = method;
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
    // an interim answer (102, 103) is dropped; the final one follows on the same connection
    if (status < 200 || this.#phase !== 'waiting') return;
    clearTimeout(this.#timer);
    const rawHeaders = (controller.rawHeaders as (Buffer | string)[] | null) ?? [];
    this.#head = { kind: 'response', status, headers, rawHeaders, response: this };
    this.#closeDelimited =
      headers['content-length'] === undefined &&
      headers['transfer-encoding'] === undefined &&
      status !== 204 &&
      status !== 304 &&
      this.#method !== 'HEAD';
    // the parser goes on with the bytes already received, so bad framing right behind the
    // head (an invalid chunk size) still fails this try before anything reaches the client;
    // undici reports it once the socket has closed, after one more turn of the event loop
    this.#phase = 'peeking';
    setImmediate(() => {
      // usually body bytes came with the head and ended the peek at once
      if (this.#phase === 'peeking') setImmediate(() => this.#hold());
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    switch (this.#phase) {
      case 'peeking':
      case 'held':
        this.#held.push(chunk);
        this.#heldBytes += chunk.length;
        if (this.#heldBytes >= HOLD_LIMIT_BYTES) controller.pause();
        this.#hold();
        break;
      case 'relaying':
        if (!(this.#res as ServerResponse).write(chunk)) controller.pause();
        break;
      case 'discarding':
        this.#drainedBytes += chunk.length;
        if (this.#drainedBytes > DRAIN_LIMIT_BYTES) controller.abort(new ClientGone('discarded'));
        break;
    }
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    if (this.#closeDelimited && isDeliveringReset()) {
      this.onResponseError(controller, new BodyReset('reset during a close-delimited body'));
      return;
    }
    const phase = this.#phase;
    this.#ended = true;
    if (phase === 'peeking') this.#hold();
    else if (phase === 'relaying') {
      this.#phase = 'done';
      (this.#res as ServerResponse).end();
      this.#settle('complete');
    } else if (phase === 'discarding') this.#phase = 'done';
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    const phase = this.#phase;
    clearTimeout(this.#timer);
    if (phase === 'waiting' || phase === 'peeking') {
      this.#phase = 'done';
      this.#resolve(
        error instanceof DeniedAddressError
          ? { kind: 'denied', address: error.address }
          : { kind: 'failure', failure: failureOf(error), error },
      );
    } else if (phase === 'held') {
      this.#bodyError = error;
    } else if (phase === 'relaying') {
      this.#phase = 'done';
      // the head (maybe part of the body) went out: the client must see a broken response,
      // never a clean end
      this.#res?.destroy(error);
      this.#settle('broken');
    } else {
      this.#phase = 'done';
    }
  }

  relay(res: ServerResponse, status: number, headers: string[]): Promise<'complete' | 'broken'> {
    res.writeHead(status, headers);
    const held = this.#held;
    this.#held = [];
    // the head and every held chunk leave in one write
    res.cork();
    for (const chunk of held) res.write(chunk);
    res.uncork();
    if (this.#bodyError !== undefined) {
      this.#phase = 'done';
      res.destroy(this.#bodyError);
      return Promise.resolve('broken');
    }
    if (this.#ended) {
      this.#phase = 'done';
      res.end();
      return Promise.resolve('complete');
    }
    // nothing of the body yet (a stream that starts later): the client gets the head now
    if (held.length === 0) res.flushHeaders();
    this.#res = res;
    this.#phase = 'relaying';
    const settled = new Promise<'complete' | 'broken'>((resolve) => {
      this.#settleRelay = resolve;
    });
    res.on('drain', () => this.#controller?.resume());
    res.on('close', () => {
      if (this.#phase === 'relaying') {
        this.#phase = 'done';
        this.#controller?.abort(new ClientGone('client went away'));
        this.#settle('broken');
      }
    });
    if (!res.writableNeedDrain) this.#controller?.resume();
    return settled;
  }

  discard(): void {
    if (this.#phase !== 'held') return;
    this.#drainedBytes = this.#heldBytes;
    this.#held = [];
    if (this.#ended || this.#bodyError !== undefined) {
      this.#phase = 'done';
      return;
    }
    this.#phase = 'discarding';
    this.#controller?.resume();
  }

  /** The head is final: hand it to the attempt loop; the body waits for relay or discard. */
  #hold(): void {
    if (this.#phase !== 'peeking') return;
    this.#phase = 'held';
    this.#resolve(this.#head as Extract<TryResult, { kind: 'response' }>);
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
        this.#resolve({ kind: 'failure', failure: failureOf(reason), error: reason });
      }
      return;
    }
    this.#controller.abort(reason);
  }
}

function failureOf(error: Error): FailureName {
  if (error instanceof TimeoutMarker) return 'timeout';
  return classifyError(error);
}
