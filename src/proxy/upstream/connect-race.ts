/**
 * One TCP connect raced against fresh copies of itself, in the spirit of RFC 8305's
 * connection attempt delay: when a connect has not completed after `afterMs`, another connect
 * to the same place starts beside it (a fresh SYN from a fresh port), and so on up to `max` in
 * flight; the first to connect wins and the others are destroyed.
 *
 * Why: a lost SYN is sent again by the kernel only after 1 s and 3 s, so under bursty loss a
 * connect waits seconds after the link has come back. More SYNs spread over the wait give
 * the link more chances, and nothing has been sent to the upstream yet, so it is safe for
 * every method. The caller keeps its own connect timeout over the whole race.
 */
import type { EventEmitter } from 'node:events';
import { REAL_TIMERS, type Timer, type Timers } from '../../timers.ts';

/** RFC 8305's recommended connection attempt delay. */
export const RACE_AFTER_MS = 250;
/**
 * Connects in flight at once for one dial, the first included. Eight, started 250 ms apart,
 * keep a SYN going out at least every 250 ms until the default connect timeout (3.5 s): the
 * racers' own resends (1 s and 3 s after each) fill in after the last has started. With three
 * the link was tried only at 1.5 s and then not before 3 s, and under 80% loss about half the
 * connects failed within 3.5 s. An upstream nearer than 750 ms costs no more than with three.
 */
export const RACE_MAX = 8;

/**
 * Spare connects (every racer but a dial's first) in flight at once across all dials. Under
 * loss at 10 clients a few dozen race; without a cap, 1,000 requests to a black-holed upstream
 * would hold 8,000 connecting sockets (with hedges, twice that) until their timeouts.
 */
export const SPARE_CONNECTS_MAX = 256;

/** The spare connects of every race of one dialer, counted against `max`. */
export class SpareConnects {
  readonly max: number;
  #inFlight = 0;

  constructor(max: number) {
    this.max = max;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether one more spare may start; if so it is counted until `give`. */
  take(): boolean {
    if (this.#inFlight >= this.max) return false;
    this.#inFlight++;
    return true;
  }

  give(count: number): void {
    this.#inFlight -= count;
  }
}

/** What a racer needs of a socket: `connect` and `error` events, and `destroy`. */
export interface RacingSocket extends EventEmitter {
  destroy(): unknown;
}

export interface RaceOptions {
  readonly afterMs: number;
  readonly max: number;
  /** Shared by the races of one dialer; when none is free, a race waits `afterMs` again. */
  readonly spares?: SpareConnects;
  /** The dialer's (the app's); real timers unless given. */
  readonly timers?: Timers;
}

export interface RaceHandlers<S> {
  /** The winner: the one socket not destroyed. Called at most once, and never after `failed`. */
  connected(socket: S): void;
  /** A racer failed (refused, denied, …): the whole race ends with it, as one connect would. */
  failed(error: Error): void;
}

/**
 * Starts the race with `open()` (one unconnected socket per call); returns `cancel`, which
 * destroys every racer still connecting (never the winner: it is the caller's from then on).
 */
export function raceConnect<S extends RacingSocket>(
  open: () => S,
  handlers: RaceHandlers<S>,
  options: RaceOptions,
): () => void {
  const timers = options.timers ?? REAL_TIMERS;
  const racers: S[] = [];
  let settled = false;
  let sparesTaken = 0;
  let timer: Timer | undefined;
  const stop = (): void => {
    settled = true;
    timers.clear(timer);
    for (const racer of racers) racer.destroy();
    racers.length = 0;
    options.spares?.give(sparesTaken);
    sparesTaken = 0;
  };
  const start = (): void => {
    if (racers.length > 0 && options.spares !== undefined) {
      if (!options.spares.take()) {
        timer = timers.set(start, options.afterMs);
        return;
      }
      sparesTaken++;
    }
    const socket = open();
    // stays attached: a loser's late error must not crash
    socket.on('error', ignore);
    racers.push(socket);
    socket.once('error', (err: Error) => {
      if (settled) return;
      stop();
      handlers.failed(err);
    });
    socket.once('connect', () => {
      if (settled) return;
      racers.splice(racers.indexOf(socket), 1);
      stop();
      handlers.connected(socket);
    });
    if (racers.length < options.max) timer = timers.set(start, options.afterMs);
  };
  start();
  return () => {
    if (!settled) stop();
  };
}

function ignore(): void {}
