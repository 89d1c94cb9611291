/**
 * Scenarios 1–3 of issue 7 (4–5 in fault-scenarios.ts, 6 in memory.ts), and the helpers they
 * share. Each returns its rows; a target that cannot run (reprise not built, a process that
 * died) gives a row with `error` instead of figures.
 */
import {
  figures,
  type Measured,
  measure,
  type RequestShape,
  type Row,
  type Via,
} from './measure.ts';
import type { Proc, Upstream } from './processes.ts';
import type { FaultMode } from './upstream.ts';

export interface BenchContext {
  readonly durationS: number;
  readonly warmupS: number;
  readonly upstream: Upstream;
  readonly tmpDir: string;
  /** The shared reference proxy and default-config reprise (started once, lazily). */
  readonly reference: () => Promise<Proc>;
  /** undici's dispatch straight into node:http, no features: what any proxy here pays at least. */
  readonly floor: () => Promise<Proc>;
  readonly reprise: () => Promise<Proc>;
  /** The same build without its V8 settings: what they cost in CPU, side by side. */
  readonly repriseUnbounded: () => Promise<Proc>;
  readonly squid: Proc | undefined;
  /** Idle connections for scenario 6 (10,000 unless the fd limit forbids). */
  readonly idleConnections: number;
  /** Turns each side of a comparison takes (see `compare`). */
  readonly rounds: number;
  readonly progress: (line: string) => void;
}

type Meta = Pick<Row, 'key' | 'group' | 'scenario' | 'connections'>;
export type Target = { via: Via; proc: () => Promise<Proc | undefined> };

export const OK: FaultMode = { kind: 'ok' };
export const get = (bytes: number): RequestShape => ({ method: 'GET', path: `/bytes/${bytes}` });

export function fmtErr(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'failed';
}

export async function loadRow(
  ctx: BenchContext,
  meta: Meta,
  target: Target,
  request: RequestShape,
  mode: FaultMode,
  extra: (m: Measured) => Partial<Row> = () => ({}),
  durationS = ctx.durationS,
): Promise<Row> {
  const base = { ...meta, id: `${meta.key}/${target.via}`, via: target.via };
  try {
    const m = await measure({
      upstream: ctx.upstream,
      proxy: await target.proc(),
      request,
      connections: meta.connections ?? 50,
      mode,
      durationS,
      warmupS: ctx.warmupS,
    });
    const row = { ...base, ...figures(m), ...extra(m) };
    ctx.progress(
      `${base.id}: ${Math.round(row.reqPerS ?? 0)} req/s, p99 ${row.p99Ms?.toFixed(2)} ms`,
    );
    return row;
  } catch (err) {
    ctx.progress(`${base.id}: ${fmtErr(err)}`);
    return { ...base, error: fmtErr(err) };
  }
}

export const triesPerRequest = (m: Measured) => ({
  triesPerRequest: m.upstreamTries / Math.max(1, m.load.responses),
});

export const DIRECT: Target = { via: 'direct', proc: async () => undefined };

/** `baselines`: also reprise without its V8 settings, and the floor. */
export function targets(ctx: BenchContext, baselines = false): Target[] {
  const list: Target[] = [
    DIRECT,
    { via: 'reference', proc: ctx.reference },
    { via: 'reprise', proc: ctx.reprise },
  ];
  if (baselines) {
    list.push({ via: 'reprise-unbounded', proc: ctx.repriseUnbounded });
    list.push({ via: 'floor', proc: ctx.floor });
  }
  const { squid } = ctx;
  if (squid) list.push({ via: 'squid', proc: async () => squid });
  return list;
}

/** One side of a comparison: a target under one load. */
interface Arm {
  readonly meta: Meta;
  readonly target: Target;
  readonly request: RequestShape;
  readonly mode: FaultMode;
  readonly extra?: (m: Measured) => Partial<Row>;
}

/**
 * Runs the arms in turns, `rounds` times, each turn a share of the run time, and gives each
 * arm the row of its median round. A shared VM has slow spells of a few seconds: taking turns
 * spreads them over every arm instead of letting one arm take the whole of one.
 */
export async function compare(ctx: BenchContext, arms: readonly Arm[]): Promise<Row[]> {
  const rounds = Math.max(1, ctx.rounds);
  const durationS = Math.max(1, ctx.durationS / rounds);
  const runs: Row[][] = arms.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (const [i, arm] of arms.entries()) {
      const { meta, target, request, mode, extra } = arm;
      runs[i]?.push(await loadRow(ctx, meta, target, request, mode, extra, durationS));
    }
  }
  return runs.map((rows) => medianRound(rows));
}

function medianRound(rows: readonly Row[]): Row {
  const failed = rows.find((r) => r.error !== undefined);
  if (failed !== undefined || rows.length === 1) return failed ?? (rows[0] as Row);
  const sorted = [...rows].sort((a, b) => (a.reqPerS ?? 0) - (b.reqPerS ?? 0));
  const median = sorted[Math.floor(sorted.length / 2)] as Row;
  const span = `median of ${rows.length} rounds (${Math.round(sorted[0]?.reqPerS ?? 0)}–${Math.round(sorted.at(-1)?.reqPerS ?? 0)} req/s)`;
  return { ...median, note: [span, median.note].filter(Boolean).join('; ') };
}

/** 1: 1 KiB and 64 KiB GET at 50 connections (throughput) and 10 (latency). */
export async function getThroughput(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [bytes, label] of [
    [1024, '1 KiB'],
    [65536, '64 KiB'],
  ] as const) {
    for (const connections of [50, 10]) {
      const meta = {
        key: `get-${bytes}-c${connections}`,
        group: 1,
        scenario: `${label} GET`,
        connections,
      };
      // the V8 settings' CPU cost and the floor are read where they matter most: small
      // requests at full load
      const baselines = bytes === 1024 && connections === 50;
      const arms = targets(ctx, baselines).map((target) => ({
        meta,
        target,
        request: get(bytes),
        mode: OK,
      }));
      rows.push(...(await compare(ctx, arms)));
    }
  }
  return rows;
}

/** 2: 64 KiB and 256 KiB PUT: through reprise they take the replay-buffer path. */
export async function putReplayBuffer(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [bytes, label] of [
    [65536, '64 KiB'],
    [262144, '256 KiB'],
  ] as const) {
    const request: RequestShape = { method: 'PUT', path: '/sink', body: Buffer.alloc(bytes, 'p') };
    const meta = { key: `put-${bytes}-c50`, group: 2, scenario: `${label} PUT`, connections: 50 };
    const arms = targets(ctx, true)
      .filter((t) => t.via !== 'squid')
      .map((target) => ({ meta, target, request, mode: OK }));
    rows.push(...(await compare(ctx, arms)));
  }
  return rows;
}

/**
 * 3: 10% of first tries answer 503, healed by one retry; throughput against a no-fault run of
 * the same reprise measured just before. At 50 connections (closed loop) the backoff waits lower
 * throughput by themselves; at 200 connections the proxy stays busy during them, so the ratio
 * shows the CPU cost of healing.
 */
export async function healedFailures(ctx: BenchContext): Promise<Row[]> {
  const reprise: Target = { via: 'reprise', proc: ctx.reprise };
  const fault: FaultMode = { kind: 'first-try-fail', rate: 0.1 };
  const rows: Row[] = [];
  for (const connections of [50, 200]) {
    const [clean, faulty] = (await compare(ctx, [
      {
        meta: {
          key: `heal-c${connections}-nofault`,
          group: 3,
          scenario: '1 KiB GET, no faults',
          connections,
        },
        target: reprise,
        request: get(1024),
        mode: OK,
      },
      {
        meta: {
          key: `heal-c${connections}-fail10`,
          group: 3,
          scenario: '1 KiB GET, 10% first tries 503',
          connections,
        },
        target: reprise,
        request: get(1024),
        mode: fault,
        extra: triesPerRequest,
      },
    ])) as [Row, Row];
    if (faulty.reqPerS !== undefined && clean.reqPerS) {
      faulty.note = [
        `${(faulty.reqPerS / clean.reqPerS).toFixed(2)}× the no-fault run`,
        faulty.note,
      ]
        .filter(Boolean)
        .join('; ');
    }
    rows.push(clean, faulty);
  }
  return rows;
}
