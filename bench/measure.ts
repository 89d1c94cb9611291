/**
 * One measured run: warm-up, then the timed load, with the upstream's try counters and the CPU
 * time of the proxy, the upstream and the load generator over the timed part only.
 */

import { readFileSync } from 'node:fs';
import { type LoadResult, runLoad } from './load.ts';
import { cpuMs, type Proc, TICK_MS, type Upstream } from './processes.ts';
import type { FaultMode } from './upstream.ts';

/** `reprise-unbounded`: the same build without the V8 settings it ships with. */
export type Via = 'direct' | 'reference' | 'floor' | 'reprise' | 'reprise-unbounded' | 'squid';

/** Scenario 7's figures for one candidate (MiB of RSS unless named otherwise). */
export interface Footprint {
  /** The node flags and environment it ran with. */
  readonly settings: string;
  /** Spawn to the first 200 from /readyz, median of 5 starts with a config file. */
  readonly startupMs: number | undefined;
  /** Its CPU time until ready (utime + stime, 10 ms ticks), median of the same starts. */
  readonly startupCpuMs: number | undefined;
  /** 1 s after ready, on the embedded defaults (no file). */
  readonly idleEmbeddedMiB: number | undefined;
  /** 1 s after ready, with a config file (the YAML parser and the schema loaded). */
  readonly idleFileMiB: number | undefined;
  readonly peakMiB: number | undefined;
  /** Lowest and highest sample over the last 30 s of the load. */
  readonly lastWindowMiB: readonly [number, number] | undefined;
  /** At the end of the rest after the load. */
  readonly afterMiB: number | undefined;
  /** Seconds after the load until RSS was at most 100 MiB; undefined = not within the rest. */
  readonly recoveredAfterS: number | undefined;
}

/** One line of the results table; fields a scenario does not measure stay undefined. */
export interface Row {
  /** Stable across runs (`key/via`): what the comparison with the previous run matches on. */
  readonly id: string;
  readonly key: string;
  readonly group: number;
  readonly scenario: string;
  readonly via: Via;
  readonly connections?: number;
  reqPerS?: number;
  p50Ms?: number;
  p99Ms?: number;
  vsDirect?: number;
  vsReference?: number;
  proxyCpuUsPerReq?: number;
  /** Scenario 12: CPU per request over the reference's, both loaded at once (median round). */
  cpuVsReference?: number;
  /** Share of CPU time over the run, 1 = one core: proxy, upstream, load generator. */
  cpuCores?: { proxy: number; upstream: number; loadgen: number; other: number };
  successShare?: number;
  triesPerRequest?: number;
  rssMiB?: number;
  rssDeltaMiB?: number;
  footprint?: Footprint;
  note?: string;
  /** Why the row has no figures. */
  error?: string;
}

export interface RequestShape {
  readonly method: 'GET' | 'PUT';
  readonly path: string;
  readonly body?: Buffer;
}

export interface Measured {
  readonly load: LoadResult;
  readonly upstreamTries: number;
  /** TLS handshakes the upstream completed (an HTTPS upstream only). */
  readonly upstreamHandshakes: number;
  readonly proxyCpuMs: number;
  readonly upstreamCpuMs: number;
  readonly loadgenCpuMs: number;
  /** CPU time used on the machine by anything else (other jobs skew the figures). */
  readonly otherCpuMs: number;
}

export interface MeasureOptions {
  readonly upstream: Upstream;
  /** undefined = direct to the upstream. */
  readonly proxy: Proc | undefined;
  readonly request: RequestShape;
  readonly connections: number;
  readonly mode: FaultMode;
  readonly durationS: number;
  readonly warmupS: number;
}

/** CPU time (ms) all cores spent busy since boot, from /proc/stat (idle and iowait excluded). */
function machineCpuMs(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = ticks.reduce((a, b) => a + b, 0) - (ticks[3] ?? 0) - (ticks[4] ?? 0);
  return busy * TICK_MS;
}

/** Processes measured before: a fresh process gets a longer warm-up, for the JIT. */
const warmed = new WeakSet<Proc | Upstream>();
const FIRST_WARMUP_EXTRA_S = 2;

export async function measure(o: MeasureOptions): Promise<Measured> {
  const authority = `127.0.0.1:${o.upstream.port}`;
  const spec = {
    port: o.proxy?.port ?? o.upstream.port,
    path: o.proxy ? `http://${authority}${o.request.path}` : o.request.path,
    host: authority,
    method: o.request.method,
    body: o.request.body,
    connections: o.connections,
  };
  await o.upstream.setMode(o.mode);
  try {
    const target = o.proxy ?? o.upstream;
    const extraS = warmed.has(target) ? 0 : FIRST_WARMUP_EXTRA_S;
    warmed.add(target);
    if (o.warmupS > 0) await runLoad({ ...spec, durationS: o.warmupS + extraS });
    // again, so the timed part starts the fault pattern afresh (same bursts for every target)
    await o.upstream.setMode(o.mode);
    await o.upstream.stats(true);
    const machine0 = machineCpuMs();
    const proxyPid = o.proxy?.pid;
    const proxy0 = proxyPid === undefined ? 0 : cpuMs(proxyPid);
    const upstream0 = cpuMs(o.upstream.pid);
    const load = await runLoad({ ...spec, durationS: o.durationS });
    const machineBusyMs = machineCpuMs() - machine0;
    const stats = await o.upstream.stats(true);
    const died = o.proxy?.exitReason();
    if (died !== undefined) throw new Error(died);
    const proxyCpuMs = proxyPid === undefined ? 0 : cpuMs(proxyPid) - proxy0;
    const upstreamCpuMs = cpuMs(o.upstream.pid) - upstream0;
    const { loadgenCpuMs } = load;
    return {
      load,
      upstreamTries: stats.requests,
      upstreamHandshakes: stats.handshakes,
      proxyCpuMs: proxyPid === undefined ? Number.NaN : proxyCpuMs,
      upstreamCpuMs,
      loadgenCpuMs,
      otherCpuMs: Math.max(0, machineBusyMs - proxyCpuMs - upstreamCpuMs - loadgenCpuMs),
    };
  } finally {
    await o.upstream.setMode({ kind: 'ok' });
  }
}

/** The figures every load row carries. */
export function figures(m: Measured): Partial<Row> {
  const { load } = m;
  const wallMs = load.elapsedS * 1000;
  const notes: string[] = [];
  if (load.errors > 0) notes.push(`${load.errors} socket errors/timeouts`);
  // 0.25 core is well above what kernel threads take on an idle machine
  if (m.otherCpuMs / wallMs > 0.25) {
    notes.push(`machine busy: ${(m.otherCpuMs / wallMs).toFixed(2)} cores used by other processes`);
  }
  return {
    reqPerS: load.reqPerS,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    successShare: load.responses > 0 ? load.ok / load.responses : Number.NaN,
    proxyCpuUsPerReq: (m.proxyCpuMs * 1000) / load.responses,
    cpuCores: {
      proxy: m.proxyCpuMs / wallMs,
      upstream: m.upstreamCpuMs / wallMs,
      loadgen: m.loadgenCpuMs / wallMs,
      other: m.otherCpuMs / wallMs,
    },
    note: notes.length > 0 ? notes.join('; ') : undefined,
  };
}

/** Fills `vsDirect` and `vsReference`: req/s over the row of the same key via that target. */
export function fillRatios(rows: Row[]): void {
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const row of rows) {
    if (row.reqPerS === undefined) continue;
    const direct = byId.get(`${row.key}/direct`)?.reqPerS;
    const reference = byId.get(`${row.key}/reference`)?.reqPerS;
    if (row.via !== 'direct' && direct) row.vsDirect = row.reqPerS / direct;
    if (row.via !== 'reference' && row.via !== 'direct' && reference) {
      row.vsReference = row.reqPerS / reference;
    }
  }
}
