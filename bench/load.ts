/**
 * The load generator: autocannon's programmatic API, in the bench process. Through a proxy the
 * connections go to the proxy port and the request line is absolute-form
 * (`GET http://127.0.0.1:UP/bytes/1024 HTTP/1.1`, Host: 127.0.0.1:UP) — autocannon writes
 * `path` into the request line verbatim, so that is all a forward proxy needs.
 *
 * Latency comes from autocannon's per-response event (float ms), not from its histogram, which
 * records whole milliseconds — too coarse for p99 differences of half a millisecond.
 */
import { createRequire } from 'node:module';

export interface LoadSpec {
  /** Where the connections go: the upstream (direct) or a proxy. */
  readonly port: number;
  /** Origin-form for direct, absolute-form through a proxy. */
  readonly path: string;
  /** The Host header: always the upstream's authority. */
  readonly host: string;
  readonly method: 'GET' | 'PUT';
  readonly body?: Buffer;
  readonly connections: number;
  readonly durationS: number;
}

export interface LoadResult {
  /** Responses of any status. */
  readonly responses: number;
  readonly ok: number;
  /** Connection errors and timeouts (no response). */
  readonly errors: number;
  readonly elapsedS: number;
  readonly reqPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

interface Tracker extends PromiseLike<{ errors: number }> {
  on(
    event: 'response',
    listener: (client: unknown, status: number, bytes: number, ms: number) => void,
  ): void;
}

const autocannon = createRequire(import.meta.url)('autocannon') as (
  options: Record<string, unknown>,
) => Tracker;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let responses = 0;
  let ok = 0;
  const started = performance.now();
  const tracker = autocannon({
    url: `http://127.0.0.1:${spec.port}`,
    connections: spec.connections,
    duration: spec.durationS,
    pipelining: 1,
    timeout: 10,
    requests: [
      { method: spec.method, path: spec.path, headers: { host: spec.host }, body: spec.body },
    ],
  });
  tracker.on('response', (_client, status, _bytes, ms) => {
    if (responses === latencies.length) {
      const bigger = new Float64Array(latencies.length * 2);
      bigger.set(latencies);
      latencies = bigger;
    }
    latencies[responses++] = ms;
    if (status >= 200 && status < 300) ok++;
  });
  const result = await tracker;
  const elapsedS = (performance.now() - started) / 1000;
  const sorted = latencies.subarray(0, responses).sort();
  return {
    responses,
    ok,
    errors: result.errors,
    elapsedS,
    reqPerS: responses / elapsedS,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}
