/**
 * Scenarios 4 and 5: a bursty upstream and a total outage, each through a reprise of its own so
 * that breaker and budget state start fresh.
 */
import type { Row } from './measure.ts';
import type { Proc } from './processes.ts';
import { startReprise } from './proxies.ts';
import {
  type BenchContext,
  DIRECT,
  get,
  loadRow,
  type Target,
  triesPerRequest,
} from './scenarios.ts';
import type { FaultMode } from './upstream.ts';

/** Gilbert–Elliott parameters: `BENCH_GE=goodToBadPerMs,badToGoodPerMs`. */
function burstyMode(): FaultMode & { kind: 'gilbert-elliott' } {
  const [p, r] = (process.env.BENCH_GE ?? '0.005,0.04').split(',').map(Number);
  return { kind: 'gilbert-elliott', goodToBadPerMs: p ?? 0.005, badToGoodPerMs: r ?? 0.04 };
}

/** A reprise of its own, so that breaker and budget state start fresh; stopped afterwards. */
async function withOwnReprise<T>(
  ctx: BenchContext,
  name: string,
  config: object,
  use: (t: Target) => Promise<T>,
): Promise<T> {
  let started: Promise<Proc> | undefined;
  const target: Target = {
    via: 'reprise',
    proc: () => (started ??= startReprise(config, ctx.tmpDir, name)),
  };
  try {
    return await use(target);
  } finally {
    await started?.then(
      (p) => p.stop(),
      () => undefined,
    );
  }
}

/** 4: a bursty upstream; success share direct vs through reprise, tries per client request. */
export async function burstyUpstream(ctx: BenchContext): Promise<Row[]> {
  const mode = burstyMode();
  const pi = mode.goodToBadPerMs / (mode.goodToBadPerMs + mode.badToGoodPerMs);
  const scenario = `1 KiB GET, bursty upstream (bad ${(pi * 100).toFixed(0)}% of the time, bursts ~${Math.round(1 / mode.badToGoodPerMs)} ms)`;
  const meta = { key: 'get-1024-c50-bursty', group: 4, scenario, connections: 50 };
  const direct = await loadRow(ctx, meta, DIRECT, get(1024), mode, triesPerRequest);
  const viaReprise = await withOwnReprise(ctx, 'reprise-bursty', {}, (t) =>
    loadRow(ctx, meta, t, get(1024), mode, triesPerRequest),
  );
  return [direct, viaReprise];
}

const BREAKER_OFF = { circuitBreaker: { enabled: false } };
const OUTAGE_VARIANTS = [
  { name: 'default', label: 'default budget and breaker', config: {} },
  {
    name: 'budget',
    label: 'default budget, breaker off',
    config: { defaults: { upstream: BREAKER_OFF } },
  },
  {
    name: 'nobudget',
    label: 'budget off (ratio 1, minPerSecond 1e6), breaker off, attempts 3',
    config: {
      defaults: {
        route: { retry: { attempts: 3 } },
        upstream: { ...BREAKER_OFF, budget: { ratio: 1, minPerSecond: 1_000_000 } },
      },
    },
  },
];

/** 5: total outage (every try 503): upstream tries per client request. */
export async function totalOutage(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const v of OUTAGE_VARIANTS) {
    const meta = {
      key: `outage-${v.name}`,
      group: 5,
      scenario: `outage: ${v.label}`,
      connections: 50,
    };
    rows.push(
      await withOwnReprise(ctx, `reprise-outage-${v.name}`, v.config, (t) =>
        loadRow(ctx, meta, t, get(1024), { kind: 'outage' }, triesPerRequest),
      ),
    );
  }
  return rows;
}
