/**
 * Counters over a sliding time window, kept in `bucketCount` buckets of `windowMs / bucketCount`.
 * An event counts while its bucket is one of the newest `bucketCount` buckets, so it drops out
 * between `windowMs - windowMs / bucketCount` and `windowMs` after it happened.
 *
 * Several counters ("channels", e.g. tries and failures) share one clock and one set of buckets.
 * Running totals are kept, so `add` and `total` are O(1) amortized and allocate nothing: moving
 * the clock forward clears at most `bucketCount` buckets. Time is passed in (`nowMs`); a clock
 * that steps backwards counts into the newest bucket.
 */
export class SlidingWindow {
  readonly windowMs: number;
  readonly bucketCount: number;
  readonly #channels: number;
  readonly #bucketMs: number;
  /** `bucketCount * channels` counts; bucket `b`, channel `c` is at `b * channels + c`. */
  readonly #counts: Float64Array;
  readonly #totals: Float64Array;
  /** Absolute index (`floor(nowMs / bucketMs)`) of the newest bucket. */
  #newest = Number.NEGATIVE_INFINITY;

  /** Throws a RangeError on a window that is not positive or a bucket count below 1 (a bug). */
  constructor(windowMs: number, channels: number, bucketCount = 10) {
    if (!(windowMs > 0) || !Number.isInteger(channels) || channels < 1) {
      throw new RangeError(`bad sliding window: ${windowMs}ms, ${channels} channels`);
    }
    if (!Number.isInteger(bucketCount) || bucketCount < 1) {
      throw new RangeError(`bad bucket count: ${bucketCount}`);
    }
    this.windowMs = windowMs;
    this.bucketCount = bucketCount;
    this.#channels = channels;
    this.#bucketMs = windowMs / bucketCount;
    this.#counts = new Float64Array(bucketCount * channels);
    this.#totals = new Float64Array(channels);
  }

  /** Adds `amount` (default 1) to `channel` at `nowMs`. */
  add(nowMs: number, channel: number, amount = 1): void {
    this.#advance(nowMs);
    const at = positiveModulo(this.#newest, this.bucketCount) * this.#channels + channel;
    this.#counts[at] = (this.#counts[at] ?? 0) + amount;
    this.#totals[channel] = (this.#totals[channel] ?? 0) + amount;
  }

  /** The sum of `channel` over the window ending at `nowMs`. */
  total(nowMs: number, channel: number): number {
    this.#advance(nowMs);
    return this.#totals[channel] ?? 0;
  }

  /** Forgets every event. */
  reset(): void {
    this.#counts.fill(0);
    this.#totals.fill(0);
  }

  #advance(nowMs: number): void {
    const index = Math.floor(nowMs / this.#bucketMs);
    if (index <= this.#newest) return;
    if (index - this.#newest >= this.bucketCount) {
      this.reset();
    } else {
      const channels = this.#channels;
      for (let i = this.#newest + 1; i <= index; i++) {
        const base = positiveModulo(i, this.bucketCount) * channels;
        for (let c = 0; c < channels; c++) {
          this.#totals[c] = (this.#totals[c] ?? 0) - (this.#counts[base + c] ?? 0);
          this.#counts[base + c] = 0;
        }
      }
    }
    this.#newest = index;
  }
}

function positiveModulo(n: number, m: number): number {
  const r = n % m;
  return r < 0 ? r + m : r;
}
