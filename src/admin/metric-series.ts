/**
 * Labelled metrics whose hot path is plain numbers: each distinct label combination gets one
 * series record, found through nested maps by label value (no string built, nothing allocated
 * once the series exists), and prom-client sees the records only at scrape time. The
 * exposition is what prom-client's own Counter and Histogram print for the same updates:
 * series in order of first update, labels in `labelNames` order.
 */
import { Counter, type Metric, type Registry } from './prom-client.ts';

/**
 * Values of one labelled metric, found through one nested map per label, so that a lookup of
 * already-seen label values allocates nothing. `make` runs once per distinct combination.
 */
export class LabelCache<C> {
  readonly #root = new Map<string, unknown>();
  readonly #depth: number;
  readonly #make: (values: string[]) => C;
  // the last values asked for and their child: steady traffic asks for the same series again
  // and again, and four string compares cost less than one hashed lookup per label
  #lastA: string | undefined;
  #lastB = '';
  #lastC = '';
  #lastD = '';
  #last: C | undefined;

  constructor(depth: number, make: (values: string[]) => C) {
    if (depth < 1 || depth > 4) throw new RangeError(`LabelCache depth ${depth} not in 1..4`);
    this.#depth = depth;
    this.#make = make;
  }

  get(a: string, b = '', c = '', d = ''): C {
    if (a === this.#lastA && b === this.#lastB && c === this.#lastC && d === this.#lastD) {
      return this.#last as C;
    }
    const child = this.#find(a, b, c, d);
    this.#lastA = a;
    this.#lastB = b;
    this.#lastC = c;
    this.#lastD = d;
    this.#last = child;
    return child;
  }

  #find(a: string, b: string, c: string, d: string): C {
    let level = this.#root;
    for (let i = 0; i < this.#depth - 1; i++) {
      const key = pick(i, a, b, c, d);
      let next = level.get(key) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    const last = pick(this.#depth - 1, a, b, c, d);
    let child = level.get(last) as C | undefined;
    if (child === undefined) {
      child = this.#make([a, b, c, d].slice(0, this.#depth));
      level.set(last, child);
    }
    return child;
  }
}

function pick(i: number, a: string, b: string, c: string, d: string): string {
  return i === 0 ? a : i === 1 ? b : i === 2 ? c : d;
}

type Labels = Record<string, string>;

/** Series records in order of creation, and the cache that finds them by label values. */
function seriesTable<S>(
  labelNames: readonly string[],
  make: (labels: Labels) => S,
): { readonly all: S[]; readonly cache: LabelCache<S> } {
  const all: S[] = [];
  const cache = new LabelCache(labelNames.length, (values) => {
    const labels: Labels = {};
    for (const [i, name] of labelNames.entries()) labels[name] = values[i] as string;
    const series = make(labels);
    all.push(series);
    return series;
  });
  return { all, cache };
}

interface CounterSeries {
  readonly labels: Labels;
  value: number;
}

/** A prom-client Counter that copies its values from our series records when scraped. */
export class CounterFamily {
  readonly #series: LabelCache<CounterSeries>;

  constructor(registry: Registry, name: string, help: string, labelNames: string[]) {
    const { all, cache } = seriesTable(labelNames, (labels) => ({ labels, value: 0 }));
    this.#series = cache;
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of all) this.inc(s.labels, s.value);
      },
    });
  }

  inc(a: string, b?: string, c?: string, d?: string): void {
    this.#series.get(a, b, c, d).value += 1;
  }

  /** Shows the series with value 0 before its first increment. */
  zero(a: string, b?: string, c?: string, d?: string): void {
    this.#series.get(a, b, c, d);
  }
}

interface HistogramSeries {
  readonly labels: Labels;
  /** Observations per bucket, not cumulative; one past the last bound is not kept. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** A sample as prom-client's Histogram exposes it (lib/histogram.js); `le` is a number there. */
interface Sample {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Labels;
  readonly value: number;
}

/** What a prom-client metric's `get` gives the Registry. */
interface Exposed<V> {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly values: V[];
  readonly aggregator: 'sum';
}

/**
 * A histogram that prom-client's Registry reads like one of its own: `getForPromString` gives
 * what prom-client's Histogram gives, so the text is the same. Observations go to our records,
 * where prom-client's Histogram would hash the label object on every observe.
 */
export class HistogramFamily {
  readonly name: string;
  readonly help: string;
  readonly #bounds: readonly number[];
  readonly #all: readonly HistogramSeries[];
  readonly #series: LabelCache<HistogramSeries>;

  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: string[],
    bounds: readonly number[],
  ) {
    this.name = name;
    this.help = help;
    this.#bounds = [...bounds];
    const { all, cache } = seriesTable(labelNames, (labels) => ({
      labels,
      counts: bounds.map(() => 0),
      sum: 0,
      count: 0,
    }));
    this.#all = all;
    this.#series = cache;
    // the Registry uses only name, getForPromString or get, and reset (resetMetrics)
    registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number, a: string, b?: string, c?: string, d?: string): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const series = this.#series.get(a, b, c, d);
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (series.counts[i] as number)++;
        break;
      }
    }
    series.sum += value;
    series.count += 1;
  }

  /** For Registry.metrics(): cumulative buckets, `+Inf`, sum, count; series labels as shared. */
  async getForPromString(): Promise<Exposed<Sample>> {
    const bucket = `${this.name}_bucket`;
    const values: Sample[] = [];
    for (const s of this.#all) {
      const sharedLabels = s.labels;
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i] as number;
        const labels = { le: this.#bounds[i] as number };
        values.push({ metricName: bucket, labels, sharedLabels, value: cumulative });
      }
      values.push({ metricName: bucket, labels: { le: '+Inf' }, sharedLabels, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: {}, sharedLabels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: {}, sharedLabels, value: s.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }

  /** For Registry.getMetricsAsJSON(): each sample with the series labels folded in. */
  async get(): Promise<Exposed<Omit<Sample, 'sharedLabels'>>> {
    const data = await this.getForPromString();
    const values = data.values.map(({ metricName, labels, sharedLabels, value }) => ({
      metricName,
      labels: { ...labels, ...sharedLabels },
      value,
    }));
    return { ...data, values };
  }

  /** Registry.resetMetrics() leaves the values be, as it does for the CounterFamily counters. */
  reset(): void {}
}
