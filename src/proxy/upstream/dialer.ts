/**
 * The one place reprise connects to upstreams (SPEC §6), the way caddy's transport is the only
 * place that dials: a try's pooled connection (connector.ts adapts it for undici), a CONNECT
 * tunnel and an Upgrade all come here, so the deny list, the connect timeout and the failure
 * names are the same on every path.
 *
 * One dial: resolve (through the guarded lookup, which drops denied addresses before any
 * packet is sent; an IP literal is checked directly), connect within `connectTimeoutMs` (an
 * exact timer: undici's own ticks in steps of about a second), racing a slow connect with
 * fresh ones (connect-race.ts; each resolved through the same guarded lookup), check the
 * address actually connected to (the last word), speak TLS where the upstream has it, and
 * hand back a socket or a named failure. Expected outcomes are values (`denied`, `connect-failure`,
 * `upstream-certificate`), never exceptions.
 *
 * TLS (upstream-tls.ts) is started on the connected socket where the target has settings;
 * the connect timeout covers the TCP connect and the handshake together.
 */
import { type BlockList, connect, isIP, type Socket } from 'node:net';
import type { UpstreamTls } from '../../config/types.ts';
import { classifyDialError } from '../../retry/failure.ts';
import { isDenied } from '../../routing/address-list.ts';
import { REAL_TIMERS, type Timers } from '../../timers.ts';
import type { DialFailure, HandshakeResult } from '../../vocabulary.ts';
import { DeniedAddressError, guardedLookup } from './address-guard.ts';
import {
  RACE_AFTER_MS,
  RACE_MAX,
  type RaceOptions,
  raceConnect,
  SPARE_CONNECTS_MAX,
  SpareConnects,
} from './connect-race.ts';
import { startTls, TlsSessions } from './upstream-tls.ts';

export interface DialTarget {
  /** A name or an IP literal (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Bounds the TCP connect (and the TLS handshake, where there is one). */
  readonly connectTimeoutMs: number;
  /** Keep each side's end apart (tunnels pass a half-close through). */
  readonly allowHalfOpen?: boolean;
  /** Speak TLS on the connection, with these settings; undefined: plain TCP. */
  readonly tls?: UpstreamTls | undefined;
}

/** A dial that did not give a socket: `failure` says how; nothing was sent to the upstream. */
export class DialError extends Error {
  readonly failure: DialFailure;
  /** `denied`: the address in `access.deniedUpstreams` that was not dialled. */
  readonly address: string | undefined;
  /** The code of the error behind it (ECONNREFUSED, CERT_HAS_EXPIRED, …), for the log. */
  readonly reason: string | undefined;

  constructor(failure: DialFailure, message: string, cause?: unknown, address?: string) {
    super(message, cause === undefined ? undefined : { cause });
    this.failure = failure;
    this.address = address;
    const code = (cause as { code?: unknown } | undefined)?.code;
    this.reason = typeof code === 'string' ? code : undefined;
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
  /**
   * A TLS handshake ended (`reprise_tls_handshakes_total{side="upstream"}`); `error` says why
   * it failed (the certificate's error code and message, for the log).
   */
  readonly onHandshake?: (result: HandshakeResult, target: DialTarget, error?: DialError) => void;
  /** Arms the connect timeout and the race's timer (connect-race.ts). */
  readonly timers?: Timers;
}

export class Dialer {
  readonly #denied: () => BlockList | undefined;
  readonly #onHandshake: DialerOptions['onHandshake'];
  readonly #sessions = new TlsSessions();
  readonly #race: RaceOptions;
  readonly #timers: Timers;
  #lookupList: BlockList | undefined;
  #lookup: ReturnType<typeof guardedLookup> | undefined;

  constructor(options: DialerOptions = {}) {
    this.#denied = options.deniedUpstreams ?? (() => undefined);
    this.#onHandshake = options.onHandshake;
    const timers = options.timers ?? REAL_TIMERS;
    this.#timers = timers;
    // a slow connect is raced: 250 ms apart, 8 at most, 256 spares across every dial
    this.#race = {
      afterMs: RACE_AFTER_MS,
      max: RACE_MAX,
      spares: new SpareConnects(SPARE_CONNECTS_MAX),
      timers,
    };
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
    const open = (): Socket =>
      connect({
        host,
        port,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 60_000,
        allowHalfOpen: target.allowHalfOpen === true,
        ...(denied !== undefined && { lookup: this.#lookupFor(denied) }),
      });
    let finish: (dialed: Dialed) => void = ignore;
    const result = new Promise<Dialed>((resolve) => {
      finish = resolve;
    });
    let done = false;
    /** The socket handed back: the TCP one that won, or the TLS one over it. */
    let current: Socket | undefined;
    let tcp: Socket | undefined;
    let handshaking = false;
    let cancelRace: () => void = ignore;
    const fail = (error: DialError): void => {
      if (done) return;
      done = true;
      this.#timers.clear(timer);
      cancelRace();
      current?.destroy();
      tcp?.destroy();
      if (handshaking && error.failure !== 'denied') {
        this.#onHandshake?.(error.failure, target, error);
      }
      finish({ kind: 'failed', error });
    };
    const succeed = (connected: Socket): void => {
      done = true;
      this.#timers.clear(timer);
      finish({ kind: 'connected', socket: connected });
    };
    const timer = this.#timers.set(
      () => fail(new DialError('connect-failure', timeoutMessage(connectTimeoutMs))),
      connectTimeoutMs,
    );
    const connected = (socket: Socket): void => {
      current = socket;
      tcp = socket;
      // the race's own listener ignores errors from here on: a dial that connected may still fail
      socket.once('error', (err: Error) => {
        fail(new DialError(classifyDialError(err), err.message, err));
      });
      // the last word: the address actually connected to, whatever resolved or was spelled
      const address = socket.remoteAddress ?? '';
      if (isDenied(denied, address)) {
        fail(deniedError(address));
        return;
      }
      const tls = target.tls;
      if (tls === undefined) {
        succeed(socket);
        return;
      }
      handshaking = true;
      current = this.#handshake(socket, host, tls, fail, () => {
        handshaking = false;
        this.#onHandshake?.('ok', target);
        succeed(current as Socket);
      });
    };
    cancelRace = raceConnect(
      open,
      {
        connected,
        failed: (err) =>
          fail(
            err instanceof DeniedAddressError
              ? deniedError(err.address)
              : new DialError(classifyDialError(err), err.message, err),
          ),
      },
      this.#race,
    );
    return {
      result,
      cancel: () => {
        // the caller gave up (the client left): not the upstream's handshake failing
        handshaking = false;
        fail(new DialError('connect-failure', 'the dial was cancelled'));
      },
    };
  }

  /** Starts TLS on the connected `socket`; calls `secured` or `fail` once it is settled. */
  #handshake(
    socket: Socket,
    host: string,
    tls: UpstreamTls,
    fail: (error: DialError) => void,
    secured: () => void,
  ): Socket {
    const secure = startTls(socket, host, tls, this.#sessions);
    secure.on('error', ignore);
    secure.once('error', (err: Error) => {
      fail(new DialError(classifyDialError(err), err.message, err));
    });
    secure.once('secureConnect', secured);
    return secure;
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
