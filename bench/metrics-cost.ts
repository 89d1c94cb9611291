/**
 * The cost of metrics on the hot path (issue 4): throughput of `startApp` with metrics on and
 * with `metrics: false`, in one run, 1 KiB GETs through the proxy. Not a test.
 *
 *   npx node bench/metrics-cost.ts        (env: COST_DURATION s per run, default 3;
 *                                          COST_ROUNDS, default 2; COST_CONNECTIONS, default 50)
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
const rounds = Number(process.env.COST_ROUNDS ?? 2);
const connections = Number(process.env.COST_CONNECTIONS ?? 50);
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
  const mean = (mode: Mode, pick: (r: Run) => number) => {
    const selected = runs.filter((r) => r.mode === mode);
    return selected.reduce((sum, r) => sum + pick(r), 0) / selected.length;
  };
  const on = mean('on', (r) => r.reqPerS);
  const off = mean('off', (r) => r.reqPerS);
  const cpuOn = mean('on', (r) => r.cpuUsPerReq);
  const cpuOff = mean('off', (r) => r.cpuUsPerReq);
  process.stdout.write(
    `${rounds * 2} runs of ${durationS}s, ${connections} connections, GET ${BYTES} B\n` +
      `throughput with metrics / without: ${on.toFixed(0)} / ${off.toFixed(0)} req/s = ` +
      `${(on / off).toFixed(3)}\n` +
      `proxy CPU per request: ${cpuOn.toFixed(1)} µs with, ${cpuOff.toFixed(1)} µs without ` +
      `(+${(cpuOn - cpuOff).toFixed(1)} µs)\n`,
  );
}
