/**
 * `npm run bench`: starts its own upstream, reference proxy, reprise (and squid when installed),
 * runs the scenarios of issue 7, prints one markdown table, and writes bench/results/.
 *
 * CPU placement on a small machine: three processes, no pinning. The load generator
 * (autocannon, this process), the upstream (a child) and the proxy under test (a child) are
 * separate processes so that none shares an event loop; the proxy, single-threaded, takes at
 * most one core and the scheduler gives the rest to the load generator and the upstream. So on
 * 2 cores the "direct" row is bounded by the load generator and upstream sharing 2 cores, and
 * every proxied row by the proxy's own core. `proxy CPU µs/req` does not depend on that split.
 *
 * Env: BENCH_DURATION (s per target and scenario, default 6), BENCH_ROUNDS (turns it is split
 * into, default 3), BENCH_WARMUP (s before each turn, default 1), BENCH_ONLY (e.g. 1,6),
 * BENCH_CONNECTIONS (idle connections for scenario 6, default 10000), BENCH_GE, BENCH_SEED.
 * Section 7 is the resilience matrix (bench/resilience.ts), about 5 minutes on its own; 8 is
 * the packet-loss run (bench/packet-loss.ts: root and network namespaces), only when asked.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { burstyUpstream, totalOutage } from './fault-scenarios.ts';
import { fillRatios, type Row } from './measure.ts';
import { memory } from './memory.ts';
import { packetLoss } from './packet-loss.ts';
import { fdLimits, type Proc, startReference, startUpstream } from './processes.ts';
import { REPRISE_MAIN, squidBinary, startReprise, startSquid } from './proxies.ts';
import { comparison, markdownTable, readPrevious, targetLines, writeResults } from './report.ts';
import { type MatrixLine, matrixTable, resilienceMatrix } from './resilience.ts';
import { type BenchContext, getThroughput, healedFailures, putReplayBuffer } from './scenarios.ts';

const durationS = Number(process.env.BENCH_DURATION ?? 6);
const warmupS = Number(process.env.BENCH_WARMUP ?? 1);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const only = new Set((process.env.BENCH_ONLY ?? '1,2,3,4,5,6,7').split(',').map(Number));
const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

const machine = `${availableParallelism()} cores, ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, node ${process.version}, ${process.platform} ${process.arch}`;

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
  progress(`reprise: ${REPRISE_MAIN}`);
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
    reprise: memo(() => startReprise({}, tmpDir, 'reprise-default'), procs),
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
    if (only.has(7)) matrix = await resilienceMatrix(tmpDir, progress);
    // not in the default set: it needs root and network namespaces, and takes minutes
    if (only.has(8)) lossLines = await packetLoss(progress);
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
  const record = { date: new Date().toISOString(), machine, durationS, rounds, warmupS, rows };
  const files = writeResults(record);
  const lines = [
    '',
    `Machine: ${machine}. ${durationS} s per target in ${rounds} turns taken in rotation, each after ${warmupS} s warm-up; the median turn is shown. autocannon, keep-alive.`,
    '',
    markdownTable(rows),
    '',
    'Targets (issue 7):',
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
