/**
 * The cost of metrics on the hot path (issue 4): throughput of `startApp` with metrics on and
 * with `metrics: false`, in one run, 1 KiB GETs through the proxy. Not a test.
 *
 *   npx node bench/metrics-cost.ts        (env: COST_DURATION s per run, default 3;
 *                                          COST_ROUNDS, default 3; COST_CONNECTIONS, default 50)
 *
 * The proxy runs in a child process (this file with `--serve on|off`), so that it does not share
 * an event loop with autocannon; the upstream is the bench's own child. Runs go in ABBA order
 * (on, off, off, on, …) so that drift over the run (thermal, page cache) falls on both sides.
 * Logs stay on at `info`, written to /dev/null, as a sidecar would run.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { runLoad } from './load.ts';
import { cpuMs, startUpstream } from './processes.ts';

const durationS = Number(process.env.COST_DURATION ?? 3);
const rounds = Number(process.env.COST_ROUNDS ?? 3);
const connections = Number(process.env.COST_CONNECTIONS ?? 50);
const profileDir = process.env.COST_PROFILE;
const warmupS = 1;
const BYTES = 1024;

type Mode = 'on' | 'off';

if (process.argv[2] === '--serve') {
  await serve(process.argv[3] === 'on');
} else {
  await main();
}

/** The child: startApp with or without metrics; reports its port over IPC; stops on SIGTERM. */
async function serve(metrics: boolean): Promise<void> {
  const { startApp } = await import('../src/app.ts');
  const { loadConfigText } = await import('../src/config/load.ts');
  const { createLogger } = await import('../src/log.ts');
  // the bench makes only healthy requests: no breaker or budget takes part
  const config = loadConfigText(
    'version: 1\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\n',
    'metrics-cost.yaml',
  );
  const app = await startApp(config, { logger: createLogger({ level: 'info' }), metrics });
  process.send?.({ type: 'ready', port: app.proxyPort });
  process.once('SIGTERM', () => {
    void app.stop().then(() => process.exit(0));
  });
}

async function startProxy(mode: Mode): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(new URL(import.meta.url).pathname, ['--serve', mode], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    // COST_PROFILE=DIR writes a CPU profile of each proxy run into DIR/on and DIR/off
    execArgv:
      profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${mode}`],
  });
  const [message] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: message.port };
}

interface Run {
  readonly mode: Mode;
  readonly reqPerS: number;
  readonly p99Ms: number;
  readonly cpuUsPerReq: number;
  readonly errors: number;
}

async function measure(mode: Mode, upstreamPort: number): Promise<Run> {
  const { child, port } = await startProxy(mode);
  try {
    const spec = {
      port,
      path: `http://127.0.0.1:${upstreamPort}/bytes/${BYTES}`,
      host: `127.0.0.1:${upstreamPort}`,
      method: 'GET' as const,
      connections,
    };
    await runLoad({ ...spec, durationS: warmupS });
    const cpuBefore = cpuMs(child.pid ?? -1);
    const load = await runLoad({ ...spec, durationS });
    const cpuUsed = cpuMs(child.pid ?? -1) - cpuBefore;
    return {
      mode,
      reqPerS: load.reqPerS,
      p99Ms: load.p99Ms,
      cpuUsPerReq: (cpuUsed * 1000) / Math.max(1, load.responses),
      errors: load.errors + (load.responses - load.ok),
    };
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

async function main(): Promise<void> {
  const upstream = await startUpstream();
  const runs: Run[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      const order: Mode[] = round % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
      for (const mode of order) {
        const run = await measure(mode, upstream.port);
        runs.push(run);
        process.stderr.write(
          `metrics ${mode}: ${run.reqPerS.toFixed(0)} req/s, p99 ${run.p99Ms.toFixed(2)} ms, ` +
            `${run.cpuUsPerReq.toFixed(1)} µs CPU/req, ${run.errors} errors\n`,
        );
      }
    }
  } finally {
    await upstream.stop();
  }
  // each round's two runs ran back to back: their ratio is the least disturbed by a machine
  // whose load changes over the run; the median of the rounds resists one bad round
  const ratios: number[] = [];
  const cpuExtra: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const pair = runs.slice(round * 2, round * 2 + 2);
    const on = pair.find((r) => r.mode === 'on') as Run;
    const off = pair.find((r) => r.mode === 'off') as Run;
    ratios.push(on.reqPerS / off.reqPerS);
    cpuExtra.push(on.cpuUsPerReq - off.cpuUsPerReq);
  }
  process.stdout.write(
    `${rounds} rounds of on/off, ${durationS}s each, ${connections} connections, GET ${BYTES} B\n` +
      `throughput with metrics / without, per round: ${ratios.map((r) => r.toFixed(3)).join(' ')}\n` +
      `median ratio: ${median(ratios).toFixed(3)}\n` +
      `proxy CPU per request added by metrics, median: ${median(cpuExtra).toFixed(1)} µs\n`,
  );
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
