/**
 * What one upstream usually takes: the time from sending a try to its answer (its head, or its
 * held body whole), over the last `capacity` answers. Bounded (a ring of numbers) and cheap on
 * the hot path: the percentile is worked out again only every `RECOMPUTE_EVERY` answers, by
 * selecting it in a copy kept for that purpose (quickselect: linear, where a sort of the copy
 * and its two views cost a few microseconds), so neither adding nor asking allocates.
 */

const RECOMPUTE_EVERY = 16;

export class LatencyTracker {
  readonly #ring: Float64Array;
  readonly #scratch: Float64Array;
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
    this.#scratch = new Float64Array(capacity);
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
    const values = this.#scratch;
    const ring = this.#ring;
    for (let i = 0; i < n; i++) values[i] = ring[i] as number;
    this.#valueMs = select(values, n, Math.min(n - 1, Math.floor(this.#quantile * n)));
  }
}

/**
 * The `k`-th smallest of `values[0, n)` (0-based), as a sort would place it; reorders them.
 * Hoare's quickselect with a median-of-three pivot.
 */
function select(values: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    // median of three at mid: values[lo] <= values[mid] <= values[hi]
    if ((values[mid] as number) < (values[lo] as number)) swap(values, lo, mid);
    if ((values[hi] as number) < (values[lo] as number)) swap(values, lo, hi);
    if ((values[hi] as number) < (values[mid] as number)) swap(values, mid, hi);
    const pivot = values[mid] as number;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((values[i] as number) < pivot) i++;
      while ((values[j] as number) > pivot) j--;
      if (i <= j) {
        swap(values, i, j);
        i++;
        j--;
      }
    }
    // [lo, j] <= pivot <= [i, hi]; between them, values equal to the pivot
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return values[k] as number;
  }
  return values[k] as number;
}

function swap(values: Float64Array, a: number, b: number): void {
  const t = values[a] as number;
  values[a] = values[b] as number;
  values[b] = t;
}
