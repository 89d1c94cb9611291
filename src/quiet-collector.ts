/**
 * Gives memory back when traffic stops. V8 collects garbage only when JavaScript allocates, so
 * a proxy that goes quiet after a busy spell keeps the heap it grew and the buffers that died
 * in it: RSS stayed at its peak (~112 MiB after full load, against ~60 MiB idle). Checked once
 * a period: when requests came in since the last collection, none arrived (and none was in
 * flight) for `quietPeriods` periods in a row, and (after the first collection) the heap, with
 * the memory of array buffers, has grown by `minGrowthBytes` since the last one, one full
 * collection runs (app.ts). The first needs no growth: the heap at start-up holds the garbage
 * of loading the config, so it is no baseline.
 *
 * Why wait several periods: after a forced collection the next burst runs slower while V8
 * grows the heap and compiles again what the collection dropped (1 KiB GETs at 50
 * connections, the 2 s after one against a process left alone, side by side: 161–206 against
 * 119–130 µs of CPU per request). Bursts less than the quiet time apart never pay it; a
 * proxy left alone does, once. A steady trickle never pays it either.
 */
export interface QuietCollectorOptions {
  /** The heap's size plus the memory of array buffers, now. */
  readonly heapBytes: () => number;
  /** A full garbage collection. */
  readonly collect: () => void;
  readonly minGrowthBytes: number;
  readonly quietPeriods: number;
}

export class QuietCollector {
  readonly #options: QuietCollectorOptions;
  #seen = 0;
  /** The heap after the last collection. */
  #baselineBytes: number | undefined;
  #busySinceCollect = false;
  #quietFor = 0;

  constructor(options: QuietCollectorOptions) {
    this.#options = options;
  }

  /**
   * Called once a period with the count of requests started so far and of those not finished
   * yet; true when it collected.
   */
  tick(started: number, inFlight: number): boolean {
    const arrived = started !== this.#seen;
    this.#seen = started;
    if (arrived || inFlight > 0) {
      this.#busySinceCollect = true;
      this.#quietFor = 0;
      return false;
    }
    this.#quietFor++;
    if (!this.#busySinceCollect || this.#quietFor < this.#options.quietPeriods) return false;
    const baseline = this.#baselineBytes;
    if (
      baseline !== undefined &&
      this.#options.heapBytes() - baseline < this.#options.minGrowthBytes
    ) {
      return false;
    }
    this.#options.collect();
    this.#busySinceCollect = false;
    this.#baselineBytes = this.#options.heapBytes();
    return true;
  }
}
