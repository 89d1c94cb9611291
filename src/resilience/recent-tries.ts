/**
 * The last `capacity` tries, each forgotten once it is older than `windowMs`: a count window
 * bounded in time. It answers how many of them there are and how many failed, in O(1)
 * amortized per call and without allocating (a ring of timestamps and outcomes).
 */
export class RecentTries {
  readonly capacity: number;
  readonly windowMs: number;
  readonly #atMs: Float64Array;
  readonly #failed: Uint8Array;
  /** Index of the oldest kept try. */
  #oldest = 0;
  #tries = 0;
  #failures = 0;

  /** Throws a RangeError on a capacity below 1 or a window that is not positive (a bug). */
  constructor(capacity: number, windowMs: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || !(windowMs > 0)) {
      throw new RangeError(`bad recent-tries window: ${capacity} tries, ${windowMs}ms`);
    }
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.#atMs = new Float64Array(capacity);
    this.#failed = new Uint8Array(capacity);
  }

  /** Tries kept at the last `add`. */
  get tries(): number {
    return this.#tries;
  }

  /** Failed tries among them. */
  get failures(): number {
    return this.#failures;
  }

  /** Records a try at `nowMs`; the oldest goes when full, and any older than the window. */
  add(nowMs: number, failed: boolean): void {
    this.#expire(nowMs);
    if (this.#tries === this.capacity) this.#dropOldest();
    const at = (this.#oldest + this.#tries) % this.capacity;
    this.#atMs[at] = nowMs;
    this.#failed[at] = failed ? 1 : 0;
    this.#tries++;
    if (failed) this.#failures++;
  }

  /** Forgets every try. */
  reset(): void {
    this.#oldest = 0;
    this.#tries = 0;
    this.#failures = 0;
  }

  #expire(nowMs: number): void {
    const cutoffMs = nowMs - this.windowMs;
    while (this.#tries > 0 && (this.#atMs[this.#oldest] as number) <= cutoffMs) this.#dropOldest();
  }

  #dropOldest(): void {
    if (this.#failed[this.#oldest] === 1) this.#failures--;
    this.#oldest = (this.#oldest + 1) % this.capacity;
    this.#tries--;
  }
}
