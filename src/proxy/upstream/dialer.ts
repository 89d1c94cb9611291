/**
 * The one place reprise connects to upstreams (SPEC §6), the way caddy's transport is the only
 * place that dials: a try's pooled connection (connector.ts adapts it for undici), a CONNECT
 * tunnel and an Upgrade all come here, so the deny list, the connect timeout and the failure
 * names are the same on every path.
 *
 * One dial: resolve (through the guarded lookup, which drops denied addresses before any
 * packet is sent; an IP literal is checked directly), connect within `connectTimeoutMs` (an
 * exact timer: undici's own ticks in steps of about a second), check the address actually
 * connected to (the last word), and hand back a socket or a named failure. Expected outcomes
 * are values (`denied`, `connect-failure`), never exceptions.
 */
import { type BlockList, connect, isIP, type Socket } from 'node:net';
import { classifyDialError } from '../../retry/failure.ts';
import { isDenied } from '../../routing/address-list.ts';
import type { DialFailure } from '../../vocabulary.ts';
import { DeniedAddressError, guardedLookup } from './address-guard.ts';

export interface DialTarget {
  /** A name or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Bounds the TCP connect (and the TLS handshake, where there is one). */
  readonly connectTimeoutMs: number;
  /** Keep each side's end apart (tunnels pass a half-close through). */
  readonly allowHalfOpen?: boolean;
}

/** A dial that did not give a socket: `failure` says how; nothing was sent to the upstream. */
export class DialError extends Error {
  readonly failure: DialFailure;
  /** `denied`: the address in `access.deniedUpstreams` that was not dialled. */
  readonly address: string | undefined;

  constructor(failure: DialFailure, message: string, cause?: unknown, address?: string) {
    super(message, cause === undefined ? undefined : { cause });
    this.failure = failure;
    this.address = address;
  }
}

export type Dialed =
  | { readonly kind: 'connected'; readonly socket: Socket }
  | { readonly kind: 'failed'; readonly error: DialError };

/** A dial on its way; `cancel` stops it (its result is then a `connect-failure`). */
export interface PendingDial {
  readonly result: Promise<Dialed>;
  cancel(): void;
}

export interface DialerOptions {
  /** The deny list in force, read per dial (a reload may change it). */
  readonly deniedUpstreams?: () => BlockList | undefined;
}

export class Dialer {
  readonly #denied: () => BlockList | undefined;
  #lookupList: BlockList | undefined;
  #lookup: ReturnType<typeof guardedLookup> | undefined;

  constructor(options: DialerOptions = {}) {
    this.#denied = options.deniedUpstreams ?? (() => undefined);
  }

  /** The deny list dials are checked against now. */
  get deniedUpstreams(): BlockList | undefined {
    return this.#denied();
  }

  dial(target: DialTarget): PendingDial {
    const denied = this.#denied();
    const { host, port, connectTimeoutMs } = target;
    if (isIP(host) !== 0 && isDenied(denied, host)) {
      return settled(deniedError(host));
    }
    const socket = connect({
      host,
      port,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: 60_000,
      allowHalfOpen: target.allowHalfOpen === true,
      ...(denied !== undefined && { lookup: this.#lookupFor(denied) }),
    });
    // stays attached: an error after the dial, before its user listens, must not crash
    socket.on('error', ignore);
    let finish: (dialed: Dialed) => void = ignore;
    const result = new Promise<Dialed>((resolve) => {
      finish = resolve;
    });
    let done = false;
    const fail = (error: DialError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      finish({ kind: 'failed', error });
    };
    const timer = setTimeout(
      () => fail(new DialError('connect-failure', timeoutMessage(connectTimeoutMs))),
      connectTimeoutMs,
    );
    socket.once('error', (err: Error) => {
      fail(
        err instanceof DeniedAddressError
          ? deniedError(err.address)
          : new DialError(classifyDialError(err), err.message, err),
      );
    });
    socket.once('connect', () => {
      if (done) return;
      // the last word: the address actually connected to, whatever resolved or was spelled
      const address = socket.remoteAddress ?? '';
      if (isDenied(denied, address)) {
        fail(deniedError(address));
        return;
      }
      done = true;
      clearTimeout(timer);
      finish({ kind: 'connected', socket });
    });
    return {
      result,
      cancel: () => fail(new DialError('connect-failure', 'the dial was cancelled')),
    };
  }

  #lookupFor(list: BlockList): ReturnType<typeof guardedLookup> {
    if (list !== this.#lookupList || this.#lookup === undefined) {
      this.#lookupList = list;
      this.#lookup = guardedLookup(list);
    }
    return this.#lookup;
  }
}

function deniedError(address: string): DialError {
  return new DialError('denied', `${address} is in access.deniedUpstreams`, undefined, address);
}

function settled(error: DialError): PendingDial {
  return { result: Promise.resolve({ kind: 'failed', error }), cancel: ignore };
}

function timeoutMessage(timeoutMs: number): string {
  return `no connection within connectTimeout (${timeoutMs} ms)`;
}

function ignore(): void {}
