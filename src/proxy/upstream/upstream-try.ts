/**
 * One try on the wire: the undici handler and everything that try knows (its timers, its
 * head, the body bytes it holds). `result` settles once the attempt loop can decide:
 *
 * - held whole (`holdBytes` > 0, content-aware retry): when the body has ended; when it broke,
 *   stalled or was not whole within the try's time (`body-cut`; a body of no length streams
 *   instead); or when it outgrew `holdBytes` (then it streams);
 * - otherwise at the head, after one look at the bytes that came with it.
 *
 * The try never writes to the client: relay-response.ts does, through a `BodySink`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { OverdueFailure } from '../../retry/attempt-events.ts';
import { classifyError } from '../../retry/failure.ts';
import type { Timer, Timers } from '../../timers.ts';
import type { FailureName } from '../../vocabulary.ts';
import type { BufferPool } from '../buffer-pool.ts';
import { DialError } from './dialer.ts';

export type TryResult =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      /** Names and values as they came: latin1 bytes (headers.ts decodes them when relayed). */
      readonly rawHeaders: readonly (string | Buffer)[];
      readonly response: UpstreamTry;
    }
  | { readonly kind: 'failure'; readonly failure: FailureName; readonly error: Error };

/** The try never left: the upstream's address is in `access.deniedUpstreams` (403 forbidden). */
export interface DeniedTry {
  readonly kind: 'denied';
  readonly address: string;
}

/** What a try needs to know besides the request itself. */
export interface TryLimits {
  readonly method: string;
  /** From the start of the try until the head, and until a held body is whole. */
  readonly tryTimeoutMs: number;
  /** Body bytes held before the loop sees the answer; 0 = answer at the head. */
  readonly holdBytes: number;
  /** Longest pause between body bytes while held. */
  readonly bodyTimeoutMs: number;
  /** Longest pause between body bytes once streaming (or once holding gave up). */
  readonly streamIdleTimeoutMs: number;
  /** Bounds held bytes of all tries and replay copies together. */
  readonly pool: BufferPool;
  /** Called once the try is connected and its request is being written. */
  readonly onSent?: () => void;
  /**
   * A sent try had `tryTimeoutMs` without a head (`timeout`), or its held body of known length
   * stalled (`body-cut`): called instead of failing it, and the try goes on until aborted or
   * until it answers after all (the attempt loop decides). Without it the try fails so.
   */
  readonly onOverdue?: (failure: OverdueFailure) => void;
}

/** Where the rest of a relayed body goes. */
export interface BodySink {
  /** false: the client is full; the try pauses until `resume`. */
  write(chunk: Buffer): boolean;
  end(): void;
  fail(error: Error): void;
}

/** Body bytes kept unasked while the loop decides; past this the upstream is paused. */
const PEEK_LIMIT_BYTES = 64 * 1024;
/** A discarded body up to this is drained so its connection is reused; past it, closed. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

class TryTimeout extends Error {}
class BodyStall extends Error {
  constructor(ms: number) {
    super(`no response body bytes for ${ms} ms`);
  }
}
class ClientGone extends Error {}

type Phase =
  | 'waiting' // no head yet
  | 'peeking' // head in, one look at what came with it
  | 'holding' // head in, body held until whole (content-aware)
  | 'held' // result given; body waits for relay or discard
  | 'streaming'
  | 'discarding'
  | 'done';

export class UpstreamTry implements Dispatcher.DispatchHandler {
  readonly result: Promise<TryResult | DeniedTry>;
  readonly #limits: TryLimits;
  #resolve!: (result: TryResult | DeniedTry) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #phase: Phase = 'waiting';
  #abortReason: Error | undefined;
  readonly #timers: Timers;
  #tryTimer: Timer | undefined;
  #idleTimer: Timer | undefined;
  #idleMs = 0;
  #paused = false;
  #head: Extract<TryResult, { kind: 'response' }> | undefined;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #reservedBytes = 0;
  #ended = false;
  #bodyError: Error | undefined;
  #sink: BodySink | undefined;
  /** The connection's address holder, set by the pooled client the try is dispatched to. */
  peer: { readonly address: string | undefined } | undefined;
  upstreamAddress: string | undefined;

  constructor(limits: TryLimits, timers: Timers) {
    this.#limits = limits;
    this.#timers = timers;
    this.result = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#tryTimer = timers.set(() => this.#onTryTimeout(), limits.tryTimeoutMs);
  }

  /** Cancels the try wherever it is (the client went away). */
  abort(): void {
    this.#fail(new ClientGone('client went away'));
  }

  /** Stops holding the body: the head is given now, the body streams as it comes. */
  release(): void {
    if (this.#phase === 'holding') this.#stopHolding();
  }

  // --- undici's side

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    this.upstreamAddress = this.peer?.address;
    if (this.#abortReason !== undefined) {
      controller.abort(this.#abortReason);
      return;
    }
    this.#limits.onSent?.();
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
  ): void {
    // an interim answer (102, 103) is dropped; the final one follows on the same connection
    if (status < 200 || this.#phase !== 'waiting') return;
    const rawHeaders = (controller.rawHeaders as (Buffer | string)[] | null) ?? [];
    this.#head = { kind: 'response', status, headers, rawHeaders, response: this };
    if (this.#limits.holdBytes > 0 && isWorthHolding(headers, this.#limits.holdBytes)) {
      // the try's timer goes on: holding never outlasts the try
      this.#phase = 'holding';
      // a small body usually came in the same read as the head, and undici hands it over and
      // ends it before this turn is over: the body's stall timer is armed only if it did not
      queueMicrotask(() => {
        if (this.#phase === 'holding') this.#startIdle(this.#limits.bodyTimeoutMs);
      });
      return;
    }
    this.#timers.clear(this.#tryTimer);
    this.#startIdle(this.#limits.streamIdleTimeoutMs);
    // the parser goes on with the bytes already received, so bad framing right behind the
    // head (an invalid chunk size) still fails this try before anything reaches the client;
    // undici reports it once the socket has closed, after one more turn of the event loop
    this.#phase = 'peeking';
    setImmediate(() => {
      // usually body bytes came with the head and ended the peek at once
      if (this.#phase === 'peeking') setImmediate(() => this.#give());
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#idleTimer?.refresh();
    switch (this.#phase) {
      case 'streaming':
        if (!(this.#sink as BodySink).write(chunk)) this.#pause(controller);
        return;
      case 'holding':
        if (!this.#limits.pool.tryReserve(chunk.length)) {
          this.#keep(chunk);
          this.#stopHolding();
          return;
        }
        this.#reservedBytes += chunk.length;
        this.#keep(chunk);
        if (this.#heldBytes > this.#limits.holdBytes) this.#stopHolding();
        return;
      case 'peeking':
        this.#keep(chunk);
        this.#give();
        return;
      case 'held':
        this.#keep(chunk);
        return;
      case 'discarding':
        this.#heldBytes += chunk.length;
        if (this.#heldBytes > DRAIN_LIMIT_BYTES) controller.abort(new ClientGone('discarded'));
        return;
    }
  }

  onResponseEnd(): void {
    this.#stopTimers();
    this.#ended = true;
    switch (this.#phase) {
      case 'streaming':
        this.#phase = 'done';
        (this.#sink as BodySink).end();
        return;
      case 'holding':
      case 'peeking':
        this.#give();
        return;
      case 'discarding':
        this.#phase = 'done';
        return;
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#stopTimers();
    switch (this.#phase) {
      case 'waiting':
        this.#finish(
          error instanceof DialError && error.failure === 'denied'
            ? { kind: 'denied', address: error.address ?? '' }
            : {
                kind: 'failure',
                failure: failureBeforeHead(error, this.#controller !== undefined),
                error,
              },
        );
        return;
      case 'holding':
      case 'peeking':
        // the head came, the body broke before the client saw any of it
        this.#finish({ kind: 'failure', failure: 'body-cut', error });
        return;
      case 'held':
        this.#bodyError = error;
        return;
      case 'streaming':
        this.#phase = 'done';
        (this.#sink as BodySink).fail(error);
        return;
      default:
        this.#phase = 'done';
    }
  }

  // --- the relay's side (relay-response.ts)

  /** The chunks that arrived before the relay; the caller owns them from now on. */
  takeHeld(): Buffer[] {
    const held = this.#held;
    this.#held = [];
    this.#releasePool();
    return held;
  }

  /** How the body stands before streaming: whole, broken (with why), or still coming. */
  get bodyEnd(): 'ended' | Error | undefined {
    return this.#bodyError ?? (this.#ended ? 'ended' : undefined);
  }

  /** Sends the rest of the body to `sink`, with backpressure through `resume`. */
  stream(sink: BodySink, clientFull: boolean): void {
    if (this.#phase !== 'held') return;
    this.#sink = sink;
    this.#phase = 'streaming';
    if (!clientFull) this.resume();
  }

  resume(): void {
    if (!this.#paused || this.#phase === 'done') return;
    this.#paused = false;
    this.#controller?.resume();
    this.#startIdle(this.#idleMs);
  }

  /** The client went away while the body streamed: stop the upstream. */
  cancel(): void {
    if (this.#phase !== 'streaming') return;
    this.#phase = 'done';
    this.#stopTimers();
    this.#controller?.abort(new ClientGone('client went away'));
  }

  /** Drops the body; a small rest is drained so the connection is reused. */
  discard(): void {
    if (this.#phase !== 'held') return;
    this.#held = [];
    this.#releasePool();
    if (this.#ended || this.#bodyError !== undefined) {
      this.#phase = 'done';
      return;
    }
    this.#phase = 'discarding';
    if (this.#paused) {
      this.#paused = false;
      this.#controller?.resume();
    }
  }

  // --- inside

  #keep(chunk: Buffer): void {
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    // a held body is bounded by holdBytes (see onResponseData), any other by the peek limit
    if (
      this.#phase !== 'holding' &&
      this.#heldBytes >= PEEK_LIMIT_BYTES &&
      this.#controller !== undefined
    ) {
      this.#pause(this.#controller);
    }
  }

  /** Holding ends without a whole body (too large, pool full, a body of no length paused): it will stream. */
  #stopHolding(): void {
    this.#timers.clear(this.#tryTimer);
    this.#idleMs = this.#limits.streamIdleTimeoutMs;
    if (!this.#paused) this.#startIdle(this.#idleMs);
    this.#give();
  }

  /** Hands the head to the attempt loop; the body waits for relay or discard. */
  #give(): void {
    if (this.#phase !== 'peeking' && this.#phase !== 'holding') return;
    this.#phase = 'held';
    this.#resolve(this.#head as Extract<TryResult, { kind: 'response' }>);
  }

  #finish(result: TryResult | DeniedTry): void {
    this.#phase = 'done';
    this.#held = [];
    this.#releasePool();
    this.#resolve(result);
  }

  #pause(controller: Dispatcher.DispatchController): void {
    this.#paused = true;
    controller.pause();
    // a client that reads slowly is not an upstream that stalls
    this.#timers.clear(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #startIdle(ms: number): void {
    this.#timers.clear(this.#idleTimer);
    this.#idleMs = ms;
    this.#idleTimer = this.#timers.set(() => this.#onIdle(ms), ms);
  }

  #onIdle(ms: number): void {
    if (this.#phase === 'holding') this.#onHeldStall(new BodyStall(ms));
    else this.#fail(new BodyStall(ms));
  }

  /**
   * A held body is not whole in time (bodyTimeout or perTryTimeout, whichever noticed first):
   * nothing has reached the client, so the try failed (SPEC §3), and the attempt loop cuts it,
   * keeps it beside another try, or has it stop holding — unless the body has no length, which
   * may be a stream whose pauses are its nature: it goes to the client as it comes.
   */
  #onHeldStall(reason: Error): void {
    const { onOverdue } = this.#limits;
    if (this.#head?.headers['content-length'] === undefined) this.#stopHolding();
    else if (onOverdue !== undefined) onOverdue('body-cut');
    else this.#fail(reason);
  }

  #stopTimers(): void {
    this.#timers.clear(this.#tryTimer);
    this.#timers.clear(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  #onTryTimeout(): void {
    if (this.#phase === 'holding') {
      this.#onHeldStall(new TryTimeout('perTryTimeout'));
    } else if (this.#phase === 'waiting') {
      // a sent try is the attempt loop's to cut or to keep beside another (attempt-machine.ts)
      const { onOverdue } = this.#limits;
      if (this.#controller !== undefined && onOverdue !== undefined) onOverdue('timeout');
      else this.#fail(new TryTimeout('perTryTimeout'));
    }
  }

  #releasePool(): void {
    this.#limits.pool.release(this.#reservedBytes);
    this.#reservedBytes = 0;
  }

  #fail(reason: Error): void {
    if (this.#phase === 'done') return;
    if (this.#controller === undefined) {
      // undici has not started writing the request: it is still queued or connecting
      this.#abortReason = reason;
      if (this.#phase === 'waiting') {
        this.#stopTimers();
        this.#finish({ kind: 'failure', failure: failureBeforeHead(reason, false), error: reason });
      }
      return;
    }
    this.#controller.abort(reason);
  }
}

/**
 * A body that fits the buffer, or of no length, is held; an event stream never is: it does
 * not end, and its pauses are its nature, not a fault.
 */
function isWorthHolding(headers: IncomingHttpHeaders, holdBytes: number): boolean {
  const length = headers['content-length'];
  if (length !== undefined) return Number(length) <= holdBytes;
  return headers['content-type']?.startsWith('text/event-stream') !== true;
}

/** `sent`: whether undici had started writing the request when the try ended. */
function failureBeforeHead(error: Error, sent: boolean): FailureName {
  // perTryTimeout cut a connect short: nothing was sent, so every method may retry it
  if (error instanceof TryTimeout) return sent ? 'timeout' : 'connect-failure';
  // the dialer named it: nothing was sent
  if (error instanceof DialError && error.failure !== 'denied') return error.failure;
  return classifyError(error);
}
