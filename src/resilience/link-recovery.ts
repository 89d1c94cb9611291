/**
 * Whether the link to one upstream is back after a spell of loss, told by quick events: a try
 * answered within `QUICK_MS` of being sent (it needed no resend: 200 ms is Linux's least
 * retransmission timeout), or a probe's connect made within `QUICK_MS` (link-probe.ts). Inside a
 * burst of heavy loss each is rare (a connect needs its SYN and SYN-ACK through: about 4% at 80%
 * loss), and `QUICK_EVENTS` of them within `WINDOW_MS` very rare, so once the link was seen down,
 * that many say it is back, and the requests watching are told once: their tries sent into the
 * loss wait for TCP's next resend, seconds away, while a fresh try is answered at once.
 *
 * Seen down only when a probe got no answer in time: loss in the link itself (a refused
 * connect is an answer, from a host that is there: an upstream that is down is not a lost
 * link). A quiet spell is not enough (an idle upstream, or one slow to answer, is not a lost
 * link): where probes connect at once nothing is ever told, so a request whose tries wait on a
 * slow upstream over a sound link gets no try more this way, whatever quick answers others get.
 *
 * Pure: every call brings its time. Bounded: a ring of `QUICK_EVENTS` times, and one watcher
 * per request waiting, removed when it is done.
 */

/** A try answered (or a probe connected) this soon after it was sent needed no resend. */
export const QUICK_MS = 200;
/** No quick event for this long while a request watches: a probe looks at the link. */
export const QUIET_MS = 1000;
/** Once seen down, this many quick events, each from a different try or probe... */
export const QUICK_EVENTS = 3;
/** ...came this close together. */
export const WINDOW_MS = 500;

export type LinkState = 'down' | 'back';

export interface LinkRecoveryOptions {
  /** Called on each `watch` with where the watcher's tries go: the link's probe starts. */
  readonly onWatched?: (origin: string) => void;
  /** Called when the link is seen down, and when it is seen back (for the log). */
  readonly onChange?: (state: LinkState) => void;
  readonly quickEvents?: number;
}

export class LinkRecovery {
  /** When the last quick events came, oldest first. */
  readonly #quickMs: number[];
  readonly #watchers = new Set<() => void>();
  /** Called on each `watch`: the link's probe starts (link-probe.ts). */
  readonly #onWatched: ((origin: string) => void) | undefined;
  readonly #onChange: ((state: LinkState) => void) | undefined;
  /** Seen down, and not seen back since. */
  #down = false;
  /** A quick event came once: the link can be seen back. */
  #everQuick = false;

  constructor(options: LinkRecoveryOptions = {}) {
    this.#onWatched = options.onWatched;
    this.#onChange = options.onChange;
    const quickEvents = options.quickEvents ?? QUICK_EVENTS;
    this.#quickMs = new Array<number>(quickEvents).fill(Number.NEGATIVE_INFINITY);
  }

  /**
   * Seen down by a lost probe and not back since, on a link once seen quick: one that never
   * was (an upstream further than `QUICK_MS` away) can never be seen back, so it is not down
   * for anyone waiting on it.
   */
  get down(): boolean {
    return this.#down && this.#everQuick;
  }

  /** Requests waiting to be told. */
  get watching(): number {
    return this.#watchers.size;
  }

  /**
   * Whether a probe would tell anything now: someone watches, and the link is down or nothing
   * quick has come for `QUIET_MS`.
   */
  wantsProbe(nowMs: number): boolean {
    return this.#watchers.size > 0 && (this.#down || nowMs - this.#lastQuickMs() >= QUIET_MS);
  }

  /**
   * A try sent at `sentMs` got a good answer at `nowMs` (for a held try, its whole body). Each
   * try reports once, so the answers counted are from different tries.
   */
  answered(sentMs: number, nowMs: number): void {
    if (nowMs - sentMs <= QUICK_MS) this.#quick(nowMs);
  }

  /**
   * A probe started at `startMs` ended at `nowMs`: `reached` when the upstream's host answered
   * (connected, or refused: the refusal came back over the link), else lost in the link. A quick
   * answer is a quick event; any other end says the link is down, and the count starts again.
   */
  probed(startMs: number, nowMs: number, reached: boolean): void {
    if (reached && nowMs - startMs <= QUICK_MS) {
      this.#quick(nowMs);
      return;
    }
    // the quick events before it do not count: the link lost a packet since
    this.#quickMs.fill(Number.NEGATIVE_INFINITY);
    if (this.#down) return;
    this.#down = true;
    this.#onChange?.('down');
  }

  /**
   * Calls `onBack` each time the link is seen back, until the returned function is called;
   * `origin` is where the watcher's tries go (what a probe dials).
   */
  watch(onBack: () => void, origin: string): () => void {
    this.#watchers.add(onBack);
    this.#onWatched?.(origin);
    return () => {
      this.#watchers.delete(onBack);
    };
  }

  #lastQuickMs(): number {
    return this.#quickMs[this.#quickMs.length - 1] as number;
  }

  #quick(nowMs: number): void {
    this.#everQuick = true;
    const times = this.#quickMs;
    times.shift();
    times.push(nowMs);
    if (!this.#down || nowMs - (times[0] as number) > WINDOW_MS) return;
    this.#down = false;
    this.#onChange?.('back');
    for (const watcher of this.#watchers) watcher();
  }
}
