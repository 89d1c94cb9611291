/**
 * `npm run bench`: starts its own upstream, reference proxy, reprise (and squid when installed),
 * runs the scenarios of issues 7 and 14, prints the tables, and writes bench/results/.
 *
 * CPU placement (processes.ts, `pinned`): the proxy under test alone on CPU 0; the load
 * generator (wrk, or autocannon in this process), the upstream and this process on the last
 * CPU. `proxy CPU µs/req` is the proxy's own utime + stime from /proc/<pid>/stat over the timed
 * part divided by the responses, so it does not depend on what the load generator costs. Other
 * jobs on the machine still disturb it: each row notes the CPU they took.
 *
 * Env: BENCH_DURATION (s per target and scenario, default 6), BENCH_ROUNDS (turns it is split
 * into, default 3), BENCH_WARMUP (s before each turn, default 1), BENCH_ONLY (e.g. 1,7),
 * BENCH_CONNECTIONS (idle connections for scenario 6, default 10000), BENCH_SETTLE (how long
 * they idle before the figure, default 20 s), BENCH_SUSTAIN and
 * BENCH_REST (scenario 7's load and rest, default 60 and 30 s), BENCH_LOADGEN (wrk or
 * autocannon; default wrk when installed), BENCH_PIN=0 (no pinning), BENCH_GE, BENCH_SEED.
 * Section 8 is the resilience matrix (bench/resilience.ts), about 5 minutes on its own; 9 is
 * the packet-loss run (bench/packet-loss.ts: root and network namespaces), only when asked;
 * 10 is TLS origination against bare TLS-originating proxies (bench/tls-origination.ts); 11 the
 * upload burst (bench/upload-burst.ts; BENCH_BURST PUTs, default 1,000); 12 the CPU ratios of
 * issues 22 and 25 with reprise and the reference loaded at once (bench/side-by-side.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { burstyUpstream, totalOutage } from './fault-scenarios.ts';
import { footprint } from './footprint.ts';
import { LOADGEN } from './load.ts';
import { fillRatios, type Row } from './measure.ts';
import { memory } from './memory.ts';
import { packetLoss } from './packet-loss.ts';
import {
  fdLimits,
  type Proc,
  pinned,
  startFloor,
  startReference,
  startUpstream,
} from './processes.ts';
import {
  REPRISE_MAIN,
  shippedSettings,
  squidBinary,
  startReprise,
  startSquid,
  UNBOUNDED,
} from './proxies.ts';
import {
  comparison,
  footprintTable,
  markdownTable,
  readPrevious,
  targetLines,
  writeResults,
} from './report.ts';
import { type MatrixLine, matrixTable, resilienceMatrix } from './resilience.ts';
import { type BenchContext, getThroughput, healedFailures, putReplayBuffer } from './scenarios.ts';
import { sideBySide } from './side-by-side.ts';
import { tlsOrigination } from './tls-origination.ts';
import { uploadBurst } from './upload-burst.ts';

const durationS = Number(process.env.BENCH_DURATION ?? 6);
const warmupS = Number(process.env.BENCH_WARMUP ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const only = new Set((process.env.BENCH_ONLY ?? '1,2,3,4,5,6,7,8,10,11,12').split(',').map(Number));
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

// cpus(), not availableParallelism(): the bench pins itself to one CPU (processes.ts)
const machine = `${cpus().length} cores, ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${process.platform} ${process.arch}`;
const placement = pinned
  ? 'proxy pinned to CPU 0, load generator and upstream to the other'
  : 'no CPU pinning';

/** This process holds the idle client sockets of scenario 6; keep 300 fds for everything else. */
function idleConnectionCount(): number {
  const wanted = Number(process.env.BENCH_CONNECTIONS ?? 10_000);
  const { soft } = fdLimits();
  const possible = Math.max(0, soft - 300);
  if (possible < wanted) {
    progress(`ulimit -n is ${soft}: scenario 6 opens ${possible} connections, not ${wanted}`);
  }
  return Math.min(wanted, possible);
}

function memo<T>(start: () => Promise<T>, started: Promise<T>[]): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => {
    if (promise === undefined) {
      promise = start();
      // each row that needs it reports the failure; this only keeps it from being unhandled
      promise.catch(() => undefined);
      started.push(promise);
    }
    return promise;
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const tmpDir = mkdtempSync(`${tmpdir()}/reprise-bench-`);
  const procs: Promise<Proc>[] = [];
  progress(
    `${machine}; ${durationS} s per target in ${rounds} turns, each after ${warmupS} s warm-up`,
  );
  progress(`reprise: ${REPRISE_MAIN}; load generator: ${LOADGEN}; ${placement}`);
  const upstream = await startUpstream();
  const squidPath = squidBinary();
  let squid: Proc | undefined;
  if (squidPath === undefined) progress('squid: not installed');
  else
    squid = await startSquid(squidPath, tmpDir).catch((err: Error) => {
      progress(`squid: ${err.message}`);
      return undefined;
    });
  const ctx: BenchContext = {
    durationS,
    warmupS,
    upstream,
    tmpDir,
    reference: memo(startReference, procs),
    floor: memo(startFloor, procs),
    reprise: memo(() => startReprise({}, tmpDir, 'reprise-default'), procs),
    repriseUnbounded: memo(
      () => startReprise({}, tmpDir, 'reprise-unbounded', { node: UNBOUNDED }),
      procs,
    ),
    squid,
    idleConnections: only.has(6) ? idleConnectionCount() : 0,
    rounds,
    progress,
  };
  const rows: Row[] = [];
  let matrix: MatrixLine[] = [];
  let lossLines: string[] = [];
  try {
    if (only.has(1)) rows.push(...(await getThroughput(ctx)));
    if (only.has(2)) rows.push(...(await putReplayBuffer(ctx)));
    if (only.has(3)) rows.push(...(await healedFailures(ctx)));
    if (only.has(4)) rows.push(...(await burstyUpstream(ctx)));
    if (only.has(5)) rows.push(...(await totalOutage(ctx)));
    if (only.has(6)) rows.push(...(await memory(ctx)));
    if (only.has(7)) rows.push(...(await footprint(ctx)));
    if (only.has(11)) rows.push(...(await uploadBurst(ctx)));
    if (only.has(8)) matrix = await resilienceMatrix(tmpDir, progress);
    if (only.has(10)) rows.push(...(await tlsOrigination(ctx)));
    if (only.has(12)) rows.push(...(await sideBySide(ctx)));
    // not in the default set: it needs root and network namespaces, and takes minutes
    if (only.has(9)) lossLines = await packetLoss(progress);
  } finally {
    const all = [...procs, Promise.resolve(upstream), ...(squid ? [Promise.resolve(squid)] : [])];
    await Promise.all(
      all.map((p) =>
        p.then(
          (proc) => proc.stop(),
          () => undefined,
        ),
      ),
    );
    rmSync(tmpDir, { recursive: true, force: true });
  }
  fillRatios(rows);
  const previous = readPrevious();
  const settings = shippedSettings();
  const record = {
    date: new Date().toISOString(),
    machine,
    loadgen: LOADGEN,
    placement,
    durationS,
    rounds,
    warmupS,
    rows,
  };
  const files = writeResults(record);
  const lines = [
    '',
    `Machine: ${machine}. ${durationS} s per target in ${rounds} turns taken in rotation, each after ${warmupS} s warm-up; the median turn is shown. ${LOADGEN}, keep-alive; ${placement}. reprise runs with ${[...Object.entries(settings.env).map(([k, v]) => `${k}=${v}`), ...settings.flags].join(' ') || 'no node flags'}; reprise-unbounded is the same build without them.`,
    '',
    markdownTable(rows.filter((r) => r.group !== 7)),
    '',
    ...(rows.some((r) => r.group === 7) ? [footprintTable(rows), ''] : []),
    'Targets (issues 7 and 14):',
    ...targetLines(rows),
    '',
  ];
  const busy = rows.filter((r) => (r.cpuCores?.other ?? 0) > 0.25).length;
  if (busy > 0) {
    lines.push(
      `Warning: ${busy} runs shared the machine with other processes (see notes); rerun on a quiet machine.`,
      '',
    );
  }
  if (previous) lines.push(comparison(previous, rows), '');
  if (matrix.length > 0) {
    lines.push('Resilience matrix (SPEC §4, embedded defaults; worst run per row):', '');
    lines.push(matrixTable(matrix), '');
  }
  if (lossLines.length > 0) lines.push(...lossLines, '');
  const minutes = ((performance.now() - started) / 60_000).toFixed(1);
  lines.push(`Results: ${files.json}, chart: ${files.svg}. Took ${minutes} min.`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
