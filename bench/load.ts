/**
 * The load generator: wrk when installed (BENCH_LOADGEN=wrk|autocannon to choose), else
 * autocannon's programmatic API in the bench process. Through a proxy the connections go to
 * the proxy port and the request line is absolute-form
 * (`GET http://127.0.0.1:UP/bytes/1024 HTTP/1.1`, Host: 127.0.0.1:UP): both write the path
 * into the request line verbatim, so that is all a forward proxy needs.
 *
 * wrk (C, one thread) costs a fraction of autocannon's CPU per request, so it drives a
 * single-threaded proxy harder on two cores; either way the proxy's CPU per request is read
 * from /proc and the load generator runs on the other CPU (processes.ts, `pinned`).
 * autocannon's latency comes from its per-response event (float ms), not from its histogram,
 * which records whole milliseconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { TICK_MS } from './processes.ts';

const wrkInstalled = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
export const LOADGEN: 'wrk' | 'autocannon' =
  process.env.BENCH_LOADGEN === 'autocannon' || !wrkInstalled ? 'autocannon' : 'wrk';
if (process.env.BENCH_LOADGEN === 'wrk' && !wrkInstalled) {
  process.stderr.write('bench: BENCH_LOADGEN=wrk but wrk is not installed: using autocannon\n');
}

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
  /** CPU time the load generator used (ms). */
  readonly loadgenCpuMs: number;
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

export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return LOADGEN === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const cpu0 = process.cpuUsage();
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
    loadgenCpuMs: cpuUsageMs(process.cpuUsage(cpu0)),
  };
}

const cpuUsageMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

const luaString = (s: string) => JSON.stringify(s);

/**
 * wrk, one thread, with a Lua script that sets the request and prints one JSON line at the
 * end. It runs under `sh`, which prints its own /proc stat after wrk has ended: the children's
 * CPU time (cutime + cstime) is then wrk's.
 */
/** Runs started by this process: each writes a script of its own, so runs may overlap. */
let wrkRuns = 0;

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  const script = `${tmpdir()}/reprise-bench-wrk-${process.pid}-${++wrkRuns}.lua`;
  const body = spec.body ? `wrk.body = string.rep("p", ${spec.body.length})\n` : '';
  writeFileSync(
    script,
    `wrk.method = ${luaString(spec.method)}
wrk.path = ${luaString(spec.path)}
wrk.headers["Host"] = ${luaString(spec.host)}
${body}done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nRESULT {"requests":%d,"non2xx":%d,"errors":%d,"us":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
`,
  );
  const args = [
    '-t1',
    `-c${spec.connections}`,
    `-d${spec.durationS}s`,
    '--timeout',
    '10s',
    '-s',
    script,
    `http://127.0.0.1:${spec.port}`,
  ];
  const child = spawn('sh', ['-c', 'wrk "$@"; cat /proc/$$/stat', 'wrk', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  await new Promise((resolve) => child.once('close', resolve));
  const match = /RESULT (\{.*\})/.exec(out);
  if (!match?.[1]) throw new Error(`wrk gave no result: ${out.trim().split('\n').at(-1) ?? ''}`);
  const r = JSON.parse(match[1]) as Record<
    'requests' | 'non2xx' | 'errors' | 'us' | 'p50' | 'p99',
    number
  >;
  const stat = out.slice(out.lastIndexOf(')') + 2).split(' ');
  const elapsedS = r.us / 1e6;
  return {
    responses: r.requests,
    ok: r.requests - r.non2xx,
    errors: r.errors,
    elapsedS,
    reqPerS: r.requests / elapsedS,
    p50Ms: r.p50 / 1000,
    p99Ms: r.p99 / 1000,
    loadgenCpuMs: (Number(stat[13]) + Number(stat[14])) * TICK_MS,
  };
}
