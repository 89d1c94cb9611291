/**
 * Probes the link to one upstream while it matters (link-recovery.ts): while a request watches
 * it and the link is down or quiet, one TCP connect every `PROBE_EVERY_MS`, each abandoned if
 * not connected within `QUICK_MS` (one SYN, no kernel resend) and closed at once if it is (no
 * request sent). Quick answers need fresh tries, and when every request to the upstream is
 * stuck in the loss none are sent: the probe is the fresh traffic that sees the link come back.
 *
 * The connect itself is injected (`ConnectProbe`: the app's one dialer, deny list included), and
 * so are the timers and the clock. Bounded: one loop per upstream, stopped when nobody watches,
 * and at most `MAX_PENDING` connects in flight.
 */
import type { Timer, Timers } from '../timers.ts';
import type { LinkRecovery } from './link-recovery.ts';

/**
 * Between connects while probing: once a burst is over, `QUICK_EVENTS` quick connects say so
 * within 0.3–0.45 s, well inside the 0.9 s good spell the packet-loss bench's seed 3 has.
 */
export const PROBE_EVERY_MS = 150;
/** Connects in flight at once: each ends within `QUICK_MS` (200 ms), one starts per tick. */
const MAX_PENDING = 2;

/**
 * Starts one connect to where `origin` (`scheme://host:port`) is; calls `done` once: `reached`
 * when the host answered within `QUICK_MS` (connected, and closed at once; or refused), or not.
 * The returned function abandons it (`done` may still come).
 */
export type ConnectProbe = (origin: string, done: (reached: boolean) => void) => () => void;

export interface LinkProbing {
  readonly connect: ConnectProbe;
  readonly timers: Timers;
  readonly now: () => number;
}

interface Pending {
  cancel: () => void;
}

export class LinkProbe {
  /** Where the tries of the latest watcher go: what is dialled. */
  #origin = '';
  readonly #link: LinkRecovery;
  readonly #probing: LinkProbing;
  #timer: Timer | undefined;
  readonly #pending = new Set<Pending>();

  constructor(link: LinkRecovery, probing: LinkProbing) {
    this.#link = link;
    this.#probing = probing;
  }

  /** Connects in flight (for tests). */
  get pending(): number {
    return this.#pending.size;
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Someone watches the link: the loop runs (one at most). */
  start(origin: string): void {
    this.#origin = origin;
    if (this.#timer !== undefined) return;
    this.#timer = this.#probing.timers.set(this.#tick, PROBE_EVERY_MS);
  }

  readonly #tick = (): void => {
    const link = this.#link;
    if (link.watching === 0) {
      this.#stop();
      return;
    }
    const nowMs = this.#probing.now();
    if (link.wantsProbe(nowMs) && this.#pending.size < MAX_PENDING) this.#probe(nowMs);
    this.#timer = this.#probing.timers.set(this.#tick, PROBE_EVERY_MS);
  };

  #probe(startMs: number): void {
    const pending: Pending = { cancel: ignore };
    this.#pending.add(pending);
    pending.cancel = this.#probing.connect(this.#origin, (reached) => {
      // abandoned when the loop stopped: nothing to learn
      if (!this.#pending.delete(pending)) return;
      this.#link.probed(startMs, this.#probing.now(), reached);
    });
  }

  #stop(): void {
    this.#timer = undefined;
    for (const pending of this.#pending) pending.cancel();
    this.#pending.clear();
  }
}

function ignore(): void {}
