/**
 * Whether the link to one upstream is back after a spell of loss, told by what reprise already
 * sees: quick answers. A try answered within `QUICK_MS` of being sent needed no resend (200 ms
 * is Linux's least retransmission timeout). Inside a burst of heavy loss that is rare for one
 * answer and very rare for two, so after `QUIET_MS` with none, `QUICK_ANSWERS` of them within
 * `WINDOW_MS` say the link is back, and the requests watching are told once: their tries sent
 * into the loss wait for TCP's next resend, seconds away, while a fresh try is answered at
 * once. Where quick answers never stop (a busy upstream, a slow one that queues) nothing is
 * told: no link came back, and a try more would only add to the queue.
 *
 * Pure: every call brings its time. Bounded: a ring of `QUICK_ANSWERS` times, and one watcher
 * per request waiting, removed when it is done.
 */

/** A try answered this soon after it was sent needed no resend. */
export const QUICK_MS = 200;
/** No quick answer for this long: the link was down (or idle)... */
export const QUIET_MS = 1000;
/** ...until this many quick answers, each from a different try... */
export const QUICK_ANSWERS = 2;
/** ...came this close together. */
export const WINDOW_MS = 500;

export class LinkRecovery {
  /** When the last quick answers came, oldest first. */
  readonly #quickMs: number[];
  readonly #watchers = new Set<() => void>();
  /** No quick answer came for `QUIET_MS`, and the link has not been seen back since. */
  #down = false;

  constructor(quickAnswers = QUICK_ANSWERS) {
    this.#quickMs = new Array<number>(quickAnswers).fill(Number.NEGATIVE_INFINITY);
  }

  /** Requests waiting to be told. */
  get watching(): number {
    return this.#watchers.size;
  }

  /**
   * A try sent at `sentMs` got a good answer at `nowMs` (for a held try, its whole body). Each
   * try reports once, so the answers counted are from different tries.
   */
  answered(sentMs: number, nowMs: number): void {
    if (nowMs - sentMs > QUICK_MS) return;
    const times = this.#quickMs;
    if (nowMs - (times[times.length - 1] as number) >= QUIET_MS) this.#down = true;
    times.shift();
    times.push(nowMs);
    if (!this.#down || nowMs - (times[0] as number) > WINDOW_MS) return;
    this.#down = false;
    for (const watcher of this.#watchers) watcher();
  }

  /** Calls `onBack` each time the link is seen back, until the returned function is called. */
  watch(onBack: () => void): () => void {
    this.#watchers.add(onBack);
    return () => {
      this.#watchers.delete(onBack);
    };
  }
}
