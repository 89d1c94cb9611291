/**
 * Section 8: the resilience matrix of SPEC §4 with the embedded defaults, longer than the
 * suite's short form (test/integration/resilience-matrix.test.ts) and over more seeds and
 * start phases. Each run drives one faulty loopback upstream direct and through reprise at the
 * same time; a row holds when its check holds in every run, and the worst run is shown.
 */

import {
  bursty,
  firstBadMoment,
  flapping,
  outage,
  randomFailures,
} from '../test/helpers/fault-schedules.ts';
import {
  describeLatencies,
  firstCircuitOpenMs,
  latencyQuantileMs,
  runScenario,
  type ScenarioOptions,
  type ScenarioResult,
  stallsBeforeHead,
  successShare,
  successShareBetween,
  triesPerRequest,
  triesPerRequestFrom,
} from '../test/helpers/scenario.ts';
import { runLoad } from './load.ts';
import { startReprise } from './proxies.ts';

interface MatrixRow {
  readonly name: string;
  readonly must: string;
  readonly runs: readonly { readonly label: string; readonly options: ScenarioOptions }[];
  /** undefined when the run meets the row; else what fell short. */
  check(r: ScenarioResult): string | undefined;
  /** What the row shows besides success (latencies): of its worst run. */
  summary?(runs: readonly ScenarioResult[]): string;
}

export interface MatrixLine {
  readonly row: string;
  readonly must: string;
  readonly direct: number;
  readonly via: number;
  readonly triesPerRequest: number;
  readonly openMs: number;
  readonly runs: number;
  readonly failures: readonly string[];
  readonly extra: string;
}

const SEEDS = [1, 2, 3, 4, 5];
const pct = (share: number) => `${(100 * share).toFixed(2)}%`;

function burstyRuns(requests: number | undefined, durationMs: number, seeds: number[]) {
  return seeds.flatMap((seed) =>
    [seed * 700, firstBadMoment(() => bursty(seed), seed * 1_000)].map((phaseMs, i) => ({
      label: `seed ${seed} ${i === 0 ? 'phase' : 'bad-spell phase'} ${phaseMs} ms`,
      options: { schedule: bursty(seed), phaseMs, seed, requests, durationMs } as ScenarioOptions,
    })),
  );
}

function burstyCheck(r: ScenarioResult): string | undefined {
  if (successShare(r.via) < 0.995) return `success ${pct(successShare(r.via))}`;
  if (triesPerRequest(r.via) > 1.15) return `tries/request ${triesPerRequest(r.via).toFixed(3)}`;
  return r.via.openMs > 0 ? `open ${r.via.openMs} ms` : undefined;
}

function atLeastDirect(r: ScenarioResult): string | undefined {
  return successShare(r.via) < successShare(r.direct)
    ? `via ${pct(successShare(r.via))} < direct ${pct(successShare(r.direct))}`
    : undefined;
}

function neverOpen(r: ScenarioResult): string | undefined {
  return r.via.openMs > 0 ? `open ${Math.round(r.via.openMs)} ms` : undefined;
}

const ROWS: MatrixRow[] = [
  {
    name: 'bursty (9% bad, ~25 ms spells), 2,000 requests, 10 clients',
    must: '≥ 99.5%; ≤ 1.15 tries/request; never open',
    runs: burstyRuns(2_000, 60_000, SEEDS),
    check: burstyCheck,
  },
  {
    name: 'bursty, 30 s, 10 clients',
    must: '≥ 99.5%; never open',
    runs: burstyRuns(undefined, 30_000, [1]),
    check: burstyCheck,
  },
  {
    name: 'steady 10% random failures, 10 s',
    must: '≥ 99.5%; never open',
    runs: SEEDS.slice(0, 2).map((seed) => ({
      label: `seed ${seed}`,
      options: { schedule: randomFailures(seed, 0.1), seed, durationMs: 10_000 },
    })),
    check: (r) =>
      successShare(r.via) < 0.995 ? `success ${pct(successShare(r.via))}` : neverOpen(r),
  },
  {
    name: '30% random failures, 10 s',
    must: '≥ direct; never open',
    runs: SEEDS.slice(0, 2).map((seed) => ({
      label: `seed ${seed}`,
      options: { schedule: randomFailures(seed, 0.3), seed, durationMs: 10_000 },
    })),
    check: (r) => atLeastDirect(r) ?? neverOpen(r),
  },
  {
    name: 'total outage, 50 clients, 10 s',
    must: 'after 2 s: tries ≤ 5% of requests; circuit-open answers carry Retry-After',
    runs: [
      {
        label: 'seed 1',
        options: { schedule: outage(), seed: 1, clients: 50, durationMs: 10_000 },
      },
    ],
    check: (r) => {
      const lateTries = triesPerRequestFrom(r.via, 2_000);
      if (lateTries > 0.05) return `${lateTries.toFixed(3)} tries per request after 2 s`;
      const late = r.via.outcomes.filter((o) => o.startMs >= 2_000);
      const refused = late.filter((o) => o.error === 'circuit-open');
      if (refused.length === 0) return 'no circuit-open answer';
      // how fast they come is measured below, with reprise in its own process
      return refused.every((o) => o.retryAfter)
        ? undefined
        : 'a circuit-open answer without Retry-After';
    },
  },
  {
    name: 'outage that ends at 20 s, 10 clients, 40 s',
    must: '≥ 99% from 10 s after healing',
    runs: [
      {
        label: 'seed 1',
        options: { schedule: outage(0, 20_000), seed: 1, durationMs: 40_000 },
      },
    ],
    check: (r) => {
      const after = successShareBetween(r.via, 30_000, 40_000);
      return after < 0.99 ? `${pct(after)} after 30 s` : undefined;
    },
  },
  {
    name: 'flapping 1 s bad / 1 s good, 20 s',
    must: '≥ direct',
    runs: [0, 500].map((phaseMs) => ({
      label: `phase ${phaseMs} ms`,
      options: { schedule: flapping(1_000, 1_000), phaseMs, seed: 1, durationMs: 20_000 },
    })),
    check: atLeastDirect,
  },
  {
    name: 'slow upstream (every answer +300 ms), 10 s',
    must: '100%; never open',
    runs: [
      {
        label: 'seed 1',
        options: { schedule: () => false, delayMs: 300, seed: 1, durationMs: 10_000 },
      },
    ],
    check: (r) => (successShare(r.via) < 1 ? `success ${pct(successShare(r.via))}` : neverOpen(r)),
  },
];

const p = latencyQuantileMs;
/** 2% of answers stall 1 s before the head, the rest take 5 ms. */
const TAIL_STALLS = stallsBeforeHead(0.02, 1_000, 5);

function tailCheck(r: ScenarioResult): string | undefined {
  const p50 = p(r.via, 0.5);
  const p99 = p(r.via, 0.99);
  if (p99 > 10 * p50) return `p99 ${p99.toFixed(1)} ms > 10 × p50 ${p50.toFixed(1)} ms`;
  if (p99 >= p(r.direct, 0.99) / 4) return `p99 ${p99.toFixed(1)} ms ≥ ¼ of direct's`;
  if (triesPerRequest(r.via) > 1.05) return `tries/request ${triesPerRequest(r.via).toFixed(3)}`;
  return atLeastDirect(r);
}

/** The run with the highest p99 through reprise, with its latencies. */
function worstTail(runs: readonly ScenarioResult[]): string {
  const worst = runs.reduce((a, b) => (p(b.via, 0.99) > p(a.via, 0.99) ? b : a));
  return `worst run ${describeLatencies(worst)}`;
}

/** Tail latency (SPEC §3 hedging): what the tactics cut, and what they must not add. */
const TAIL_ROWS: MatrixRow[] = [
  {
    name: 'tail: 2% of answers stall 1 s before the head, the rest 5 ms, 10 clients, 10 s',
    must: 'p99 ≤ 10× p50 and < ¼ of direct; ≤ 1.05 tries/request',
    runs: SEEDS.map((seed) => ({
      label: `seed ${seed}`,
      options: { schedule: () => false, answerDelayMs: TAIL_STALLS, seed, durationMs: 10_000 },
    })),
    check: tailCheck,
    summary: worstTail,
  },
  {
    name: 'saturated: 8 served at a time (5 ms each), the rest queue, 24 clients, 10 s',
    must: '≤ 1.05 tries/request; ≥ direct',
    runs: SEEDS.slice(0, 3).map((seed) => ({
      label: `seed ${seed}`,
      options: {
        schedule: () => false,
        answerDelayMs: () => 5,
        maxServing: 8,
        clients: 24,
        seed,
        durationMs: 10_000,
      },
    })),
    check: (r) =>
      triesPerRequest(r.via) > 1.05
        ? `tries/request ${triesPerRequest(r.via).toFixed(3)}`
        : atLeastDirect(r),
    summary: worstTail,
  },
];

/** Rows at a few requests a second load nothing: they run side by side. */
const QUIET_ROWS: MatrixRow[] = [
  {
    name: 'total outage, 2 requests/s, 60 s',
    must: 'engages within 30 s; then ≤ 1 try per 5 s',
    runs: [
      {
        label: 'seed 1',
        options: { schedule: outage(), seed: 1, requestsPerSecond: 2, durationMs: 60_000 },
      },
    ],
    check: (r) => {
      const at = firstCircuitOpenMs(r.via);
      if (at === undefined || at > 30_000) return `engaged at ${at ?? 'never'}`;
      const later = r.via.tryTimes.filter((t) => t > at).length;
      return later > (60_000 - at) / 5_000 ? `${later} tries in ${60_000 - at} ms` : undefined;
    },
  },
  {
    name: 'outage that ends at 30 s, 2 requests/s, 60 s',
    must: '≥ 99% from 10 s after healing',
    runs: [
      {
        label: 'seed 2',
        options: {
          schedule: outage(0, 30_000),
          seed: 2,
          requestsPerSecond: 2,
          durationMs: 60_000,
        },
      },
    ],
    check: (r) => {
      const after = successShareBetween(r.via, 40_000, 60_000);
      return after < 0.99 ? `${pct(after)} after 40 s` : undefined;
    },
  },
  {
    name: 'fleet: 20 reprises at 2 requests/s each, upstream down 60 s',
    must: 'tries ≤ 1.2× requests over the minute, ≤ 0.1× in its last 30 s',
    runs: [
      {
        label: 'seed 3',
        options: {
          schedule: outage(),
          seed: 3,
          requestsPerSecond: 2,
          durationMs: 60_000,
          fleet: 20,
        },
      },
    ],
    check: (r) => {
      if (r.via.tries > 1.2 * r.via.requests)
        return `${triesPerRequest(r.via).toFixed(2)}× requests`;
      const lateTries = triesPerRequestFrom(r.via, 30_000);
      return lateTries > 0.1 ? `${lateTries.toFixed(2)}× in the last 30 s` : undefined;
    },
  },
];

async function runRow(
  row: MatrixRow,
  progress: (line: string) => void,
  extraRuns: readonly { label: string; result: ScenarioResult }[] = [],
): Promise<MatrixLine> {
  const done: { label: string; result: ScenarioResult }[] = [...extraRuns];
  if (extraRuns.length === 0) {
    for (const run of row.runs) {
      progress(`resilience: ${row.name}, ${run.label}`);
      done.push({ label: run.label, result: await runScenario(run.options) });
    }
  }
  const failures = done.flatMap(({ label, result }) => {
    const shortfall = row.check(result);
    return shortfall === undefined ? [] : [`${label}: ${shortfall}`];
  });
  // the worst run: the lowest via success relative to direct
  const worst = done.reduce((a, b) =>
    successShare(b.result.via) - successShare(b.result.direct) <
    successShare(a.result.via) - successShare(a.result.direct)
      ? b
      : a,
  ).result;
  const engaged = firstCircuitOpenMs(worst.via);
  return {
    row: row.name,
    must: row.must,
    direct: successShare(worst.direct),
    via: successShare(worst.via),
    triesPerRequest: Math.max(...done.map((d) => triesPerRequest(d.result.via))),
    openMs: Math.max(...done.map((d) => d.result.via.openMs)),
    runs: done.length,
    failures,
    extra:
      row.summary?.(done.map((d) => d.result)) ??
      (engaged === undefined
        ? ''
        : `first circuit-open answer at ${(engaged / 1000).toFixed(1)} s`),
  };
}

/**
 * How fast reprise refuses while open, measured as a client sees it: reprise in its own
 * process, 50 keep-alive connections from autocannon, a dead upstream (a port nobody listens on).
 * The in-process scenarios cannot show this: their clients share the event loop.
 */
async function refusalLatency(
  tmpDir: string,
  progress: (line: string) => void,
): Promise<MatrixLine> {
  progress('resilience: circuit-open answers, reprise in its own process, 50 connections');
  const proc = await startReprise({}, tmpDir, 'reprise-refusals');
  try {
    const load = (durationS: number) =>
      runLoad({
        port: proc.port,
        path: 'http://127.0.0.1:1/',
        host: '127.0.0.1:1',
        method: 'GET',
        connections: 50,
        durationS,
      });
    // 1.5 s of failed connects opens the circuit; then measure the refusals alone
    await load(3);
    const r = await load(5);
    const failures = r.p99Ms < 5 ? [] : [`p99 ${r.p99Ms.toFixed(2)} ms`];
    return {
      row: 'total outage (nothing listening), 50 connections, reprise in its own process',
      must: 'circuit-open answers < 5 ms',
      direct: 0,
      via: r.ok / Math.max(1, r.responses),
      triesPerRequest: Number.NaN,
      openMs: Number.NaN,
      runs: 1,
      failures,
      extra: `${Math.round(r.reqPerS)} answers/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms`,
    };
  } finally {
    await proc.stop();
  }
}

/** Runs the whole matrix; one line per row. */
export async function resilienceMatrix(
  tmpDir: string,
  progress: (line: string) => void,
): Promise<MatrixLine[]> {
  const lines: MatrixLine[] = [];
  for (const row of [...ROWS, ...TAIL_ROWS]) lines.push(await runRow(row, progress));
  lines.push(await refusalLatency(tmpDir, progress));
  progress(`resilience: ${QUIET_ROWS.map((r) => r.name).join('; ')} (side by side)`);
  const quiet = await Promise.all(
    QUIET_ROWS.map(async (row) =>
      Promise.all(
        row.runs.map(async (run) => ({ label: run.label, result: await runScenario(run.options) })),
      ),
    ),
  );
  for (const [i, row] of QUIET_ROWS.entries()) {
    lines.push(await runRow(row, progress, quiet[i]));
  }
  return lines;
}

/** The matrix as a markdown table, worst run per row. */
export function matrixTable(lines: readonly MatrixLine[]): string {
  const out = [
    '| scenario | must show | runs | direct (worst run) | via reprise | max tries/request | max circuit open | holds |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const l of lines) {
    const holds = l.failures.length === 0 ? 'yes' : `**no**: ${l.failures.join('; ')}`;
    const open = Number.isNaN(l.openMs)
      ? ''
      : l.openMs === 0
        ? 'never'
        : `${(l.openMs / 1000).toFixed(1)} s`;
    const extra = l.extra === '' ? '' : open === '' ? l.extra : ` (${l.extra})`;
    const tries = Number.isNaN(l.triesPerRequest) ? '–' : l.triesPerRequest.toFixed(3);
    out.push(
      `| ${l.row} | ${l.must} | ${l.runs} | ${pct(l.direct)} | ${pct(l.via)} | ${tries} | ${open}${extra} | ${holds} |`,
    );
  }
  return out.join('\n');
}
