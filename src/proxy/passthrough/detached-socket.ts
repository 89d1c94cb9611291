/**
 * Sockets the HTTP server let go of (CONNECT, Upgrade): holding one until its other side is
 * ready, splicing two together, and writing a reprise-made answer on one. Shared by tunnel.ts
 * and websocket.ts.
 */
import { type IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Timers } from '../../timers.ts';
import type { ErrorName } from '../../vocabulary.ts';
import { type AnswerDetails, answer } from '../respond.ts';

/** Bytes a client may send before its other side is ready; past this reprise stops reading. */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * Holds a client socket the HTTP server let go of (CONNECT, Upgrade) until it is spliced:
 * keeps the bytes it sends early (bounded) and notices it leaving, so waits can be cancelled.
 */
export class ClientHold {
  gone = false;
  readonly #socket: Socket;
  readonly #chunks: Buffer[] = [];
  #bytes = 0;
  #onGone: (() => void) | undefined;

  constructor(socket: Socket, head: Buffer) {
    this.#socket = socket;
    if (head.length > 0) this.#keep(head);
    socket.on('error', () => socket.destroy());
    socket.on('data', this.#keep);
    socket.once('end', this.#leave);
    socket.once('close', this.#leave);
  }

  /** Called once if the client leaves; undefined clears it. */
  onGone(callback: (() => void) | undefined): void {
    this.#onGone = callback;
  }

  /** Waits `delayMs` on `timers`, less if the client leaves. */
  sleep(delayMs: number, timers: Timers): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        timers.clear(timer);
        this.#onGone = undefined;
        resolve();
      };
      const timer = timers.set(done, delayMs);
      this.#onGone = done;
    });
  }

  /** Stops holding (the socket stays paused until piped); returns the bytes held, in order. */
  release(): Buffer {
    this.#socket.pause();
    this.#socket.off('data', this.#keep);
    this.#socket.off('end', this.#leave);
    this.#socket.off('close', this.#leave);
    return Buffer.concat(this.#chunks);
  }

  readonly #keep = (chunk: Buffer): void => {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes >= MAX_EARLY_BYTES) this.#socket.pause();
  };

  readonly #leave = (): void => {
    if (this.gone) return;
    // an EOF before the other side is ready counts as leaving: without writing to the client,
    // a half-close cannot be told apart from a close
    this.gone = true;
    this.#onGone?.();
  };
}

/**
 * Pipes both ways until both sides are done. A half-close travels through (each side is
 * allowHalfOpen, and `pipe` ends the other side's writing when one side's reading ends). An
 * error or `idleTimeoutMs` without a byte on a side destroys both, so neither can leak.
 * `onClosed` runs once the client's side has closed: the pass-through is over.
 */
export function splice(
  client: Socket,
  upstream: Socket,
  idleTimeoutMs: number,
  onClosed?: () => void,
): void {
  if (onClosed !== undefined) client.once('close', onClosed);
  const destroyBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  for (const [from, to] of [
    [client, upstream],
    [upstream, client],
  ] as const) {
    from.setNoDelay(true);
    from.on('error', destroyBoth);
    from.setTimeout(idleTimeoutMs, destroyBoth);
    // closed cleanly: let the other side flush what it still has; abruptly: drop it too
    from.once('close', (hadError: boolean) => (hadError ? to.destroy() : to.destroySoon()));
    from.pipe(to);
  }
}

/**
 * A reprise-made answer (respond.ts' one table) on a socket that has no ServerResponse
 * (CONNECT, Upgrade); the connection closes after it.
 */
export function answerOnSocket(
  req: IncomingMessage,
  socket: Socket,
  name: ErrorName,
  details: AnswerDetails,
): number {
  return answer(socketResponse(req, socket), name, details);
}

/** A ServerResponse written to a socket the HTTP server let go of; closes it when finished. */
export function socketResponse(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
  res.assignSocket(socket);
  res.once('finish', () => {
    res.detachSocket(socket);
    socket.destroySoon();
  });
  return res;
}
