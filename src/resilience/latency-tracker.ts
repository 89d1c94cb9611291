/**
 * What one upstream usually takes: the time from sending a try to its answer (its head, or its
 * held body whole), over the last `capacity` answers. Bounded (a ring of numbers) and cheap on
 * the hot path: the percentile is worked out again only every `RECOMPUTE_EVERY` answers, by
 * sorting a copy kept for that purpose, so asking for it allocates nothing.
 */

const RECOMPUTE_EVERY = 16;

export class LatencyTracker {
  readonly #ring: Float64Array;
  readonly #sorted: Float64Array;
  readonly #quantile: number;
  #count = 0;
  #next = 0;
  #sinceRecompute = 0;
  #valueMs: number | undefined;

  /** `quantile` in (0, 1), such as 0.9; throws a RangeError on anything else (a bug). */
  constructor(capacity: number, quantile: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || !(quantile > 0 && quantile < 1)) {
      throw new RangeError(`bad latency tracker: ${capacity} samples, quantile ${quantile}`);
    }
    this.#ring = new Float64Array(capacity);
    this.#sorted = new Float64Array(capacity);
    this.#quantile = quantile;
  }

  /** Answers seen so far, up to the capacity. */
  get samples(): number {
    return this.#count;
  }

  /** One answer that took `ms`. */
  add(ms: number): void {
    this.#ring[this.#next] = ms;
    this.#next = (this.#next + 1) % this.#ring.length;
    if (this.#count < this.#ring.length) this.#count++;
    if (++this.#sinceRecompute >= RECOMPUTE_EVERY || this.#valueMs === undefined) {
      this.#recompute();
    }
  }

  /** The quantile of the kept answers in ms; undefined before the first. */
  quantileMs(): number | undefined {
    return this.#valueMs;
  }

  #recompute(): void {
    this.#sinceRecompute = 0;
    const n = this.#count;
    const sorted = this.#sorted.subarray(0, n);
    sorted.set(this.#ring.subarray(0, n));
    sorted.sort();
    this.#valueMs = sorted[Math.min(n - 1, Math.floor(this.#quantile * n))];
  }
}
