/**
 * The outputs of a run: one markdown table, the issue-7 targets met or not, a comparison with
 * the previous run, bench/results/last.json and bench/results/chart.svg.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chartSvg } from './chart.ts';
import { RECOVERED_MIB } from './footprint.ts';
import type { Row } from './measure.ts';

const MANIFEST = new URL('../deploy/kubernetes/base/deployment.yaml', import.meta.url).pathname;

export interface RunRecord {
  readonly date: string;
  readonly machine: string;
  readonly durationS: number;
  /** Absent in records written before turns were taken. */
  readonly rounds?: number;
  readonly warmupS: number;
  /** Absent in records written before wrk and pinning. */
  readonly loadgen?: string;
  readonly placement?: string;
  readonly rows: readonly Row[];
}

const RESULTS_DIR = new URL('./results/', import.meta.url).pathname;

// JSON turns NaN into null, so rows read back from last.json may hold null
const isNum = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
const num = (v: number | undefined, digits = 0) =>
  isNum(v)
    ? v.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : '';
const ratio = (v: number | undefined) => (isNum(v) ? `${v.toFixed(2)}×` : '');
const ratioText = (v: number | undefined) => ratio(v) || 'n/a';
const quotient = (a: number | undefined, b: number | undefined) =>
  isNum(a) && isNum(b) && b > 0 ? a / b : undefined;
const pct = (v: number | undefined) => (isNum(v) ? `${(v * 100).toFixed(1)}%` : '');

// an open breaker lets almost nothing through: show 0.002, not 0.00
const tries = (v: number | undefined) => (isNum(v) ? v.toFixed(v > 0 && v < 0.1 ? 3 : 2) : '');

function rss(row: Row): string {
  if (!isNum(row.rssMiB)) return '';
  const delta = isNum(row.rssDeltaMiB) ? ` (+${row.rssDeltaMiB.toFixed(1)})` : '';
  return `${row.rssMiB.toFixed(1)}${delta}`;
}

const HEADER = [
  '#',
  'scenario',
  'via',
  'conns',
  'req/s',
  'p50 ms',
  'p99 ms',
  '× direct',
  '× reference',
  'proxy CPU µs/req',
  'success',
  'upstream tries/req',
  'RSS MiB',
  'note',
];

const EMPTY: string[] = Array(HEADER.length - 5).fill('');

export function markdownTable(rows: readonly Row[]): string {
  const lines = [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const cells = r.error
      ? [String(r.group), r.scenario, r.via, num(r.connections), ...EMPTY, `not run: ${r.error}`]
      : [
          String(r.group),
          r.scenario,
          r.via,
          num(r.connections),
          num(r.reqPerS),
          num(r.p50Ms, 2),
          num(r.p99Ms, 2),
          ratio(r.vsDirect),
          ratio(r.vsReference),
          num(r.proxyCpuUsPerReq),
          (r.group >= 3 && r.group <= 5) || r.group === 11 ? pct(r.successShare) : '',
          tries(r.triesPerRequest),
          rss(r),
          r.note ?? '',
        ];
    lines.push(`| ${cells.map((c) => c.replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

const mib = (v: number | undefined) => (isNum(v) ? v.toFixed(1) : '');

/** Scenario 7, one line per candidate. */
export function footprintTable(rows: readonly Row[]): string {
  const head = [
    'candidate',
    'node settings',
    'start-up ms (CPU ms)',
    'idle RSS, embedded defaults',
    'idle RSS, config file',
    'req/s',
    'proxy CPU µs/req',
    'RSS peak',
    'RSS last 30 s of load',
    'RSS after the rest',
    `back to ≤ ${RECOVERED_MIB} MiB`,
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows.filter((row) => row.group === 7)) {
    const f = r.footprint;
    const cells =
      r.error || !f
        ? [r.via, '', `not run: ${r.error ?? 'no figures'}`, ...Array(head.length - 3).fill('')]
        : [
            r.via,
            f.settings,
            isNum(f.startupMs) ? `${num(f.startupMs)} (${num(f.startupCpuMs)})` : '',
            mib(f.idleEmbeddedMiB),
            mib(f.idleFileMiB),
            num(r.reqPerS),
            num(r.proxyCpuUsPerReq),
            mib(f.peakMiB),
            f.lastWindowMiB ? `${mib(f.lastWindowMiB[0])}–${mib(f.lastWindowMiB[1])}` : '',
            mib(f.afterMiB),
            f.recoveredAfterS === undefined ? 'no' : `after ${f.recoveredAfterS} s`,
          ];
    lines.push(`| ${cells.map((c) => String(c).replaceAll('|', '\\|')).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The sidecar container's memory request and limit in deploy/kubernetes/base (MiB). */
export function manifestMemoryMiB(): { request?: number; limit?: number } {
  let text: string;
  try {
    text = readFileSync(MANIFEST, 'utf8');
  } catch {
    return {};
  }
  const read = (key: string) => {
    const match = new RegExp(`${key}:\\s*\\{[^}]*memory:\\s*(\\d+)Mi`).exec(text);
    return match?.[1] ? Number(match[1]) : undefined;
  };
  // the first container with resources is reprise's (the demo app's come after)
  return { request: read('requests'), limit: read('limits') };
}

interface Goal {
  readonly label: string;
  readonly value: number | undefined;
  readonly goal: number;
  readonly atMost: boolean;
  readonly unit: '×' | 'ms' | 'MiB' | 's';
}

function goalLine(g: Goal): string {
  if (!isNum(g.value) && g.value !== Number.POSITIVE_INFINITY)
    return `- ${g.label}: n/a (not measured)`;
  const met = g.atMost ? g.value <= g.goal : g.value >= g.goal;
  const fmt = (v: number) =>
    g.unit === '×'
      ? `${v.toFixed(2)}×`
      : v === Number.POSITIVE_INFINITY
        ? `more than the rest`
        : `${v.toFixed(g.unit === 'MiB' ? 1 : g.unit === 's' || Math.abs(v) >= 100 ? 0 : 2)} ${g.unit}`;
  const target = `target ${g.atMost ? '≤' : '≥'} ${fmt(g.goal)}`;
  return `- ${g.label}: ${fmt(g.value)} (${target}) ${met ? 'met' : 'NOT met'}`;
}

/** Issues 7 and 14's targets, each as `met`, `NOT met` or `n/a`. */
export function targetLines(rows: readonly Row[]): string[] {
  const by = new Map(rows.map((r) => [r.id, r]));
  const over = (a: string, b: string) => {
    const [x, y] = [by.get(a)?.reqPerS, by.get(b)?.reqPerS];
    return x && y ? x / y : undefined;
  };
  const p99Over = (bytes: number) => {
    const [x, y] = [
      by.get(`get-${bytes}-c10/reprise`)?.p99Ms,
      by.get(`get-${bytes}-c10/reference`)?.p99Ms,
    ];
    return isNum(x) && isNum(y) ? x - y : undefined;
  };
  const connsVia = (via: string) =>
    rows.find((r) => r.key.startsWith('rss-conns-') && r.via === via);
  const conns = connsVia('reprise');
  const cpuOver = (a: string, b: string) => {
    const [x, y] = [by.get(a)?.proxyCpuUsPerReq, by.get(b)?.proxyCpuUsPerReq];
    return isNum(x) && isNum(y) && y > 0 ? x / y : undefined;
  };
  const fp = by.get('footprint/reprise')?.footprint;
  const burst = rows.find((r) => r.group === 11 && r.via === 'reprise');
  const { request: requestMiB, limit: limitMiB } = manifestMemoryMiB();
  const goals: Goal[] = [
    {
      label: '1 KiB GET c50, reprise / reference',
      value: over('get-1024-c50/reprise', 'get-1024-c50/reference'),
      goal: 1,
      atMost: false,
      unit: '×',
    },
    {
      label: '1 KiB GET c50, reprise / squid',
      value: over('get-1024-c50/reprise', 'get-1024-c50/squid'),
      goal: 1.2,
      atMost: false,
      unit: '×',
    },
    {
      label: '64 KiB GET c50, reprise / reference',
      value: over('get-65536-c50/reprise', 'get-65536-c50/reference'),
      goal: 1,
      atMost: false,
      unit: '×',
    },
    {
      label: '1 KiB GET c10, reprise p99 − reference p99',
      value: p99Over(1024),
      goal: 0.5,
      atMost: true,
      unit: 'ms',
    },
    {
      label: '64 KiB GET c10, reprise p99 − reference p99',
      value: p99Over(65536),
      goal: 0.5,
      atMost: true,
      unit: 'ms',
    },
    {
      label: '10% first tries healed (c50) / no-fault run',
      value: over('heal-c50-fail10/reprise', 'heal-c50-nofault/reprise'),
      goal: 0.85,
      atMost: false,
      unit: '×',
    },
    {
      label: '10% first tries healed (c200) / no-fault run',
      value: over('heal-c200-fail10/reprise', 'heal-c200-nofault/reprise'),
      goal: 0.85,
      atMost: false,
      unit: '×',
    },
    {
      label: 'idle RSS 1 s after start, embedded defaults',
      value: by.get('footprint/reprise')?.footprint?.idleEmbeddedMiB,
      goal: 60,
      atMost: true,
      unit: 'MiB',
    },
    {
      label: 'start-up to ready (median of 5, with a config file)',
      value: by.get('footprint/reprise')?.footprint?.startupMs,
      goal: 300,
      atMost: true,
      unit: 'ms',
    },
    {
      label: 'start-up CPU time until ready (what the wall time nears on a quiet machine)',
      value: by.get('footprint/reprise')?.footprint?.startupCpuMs,
      goal: 300,
      atMost: true,
      unit: 'ms',
    },
    {
      label: 'RSS peak under sustained full load',
      value: fp?.peakMiB,
      goal: 160,
      atMost: true,
      unit: 'MiB',
    },
    {
      label: 'RSS spread over the last 30 s of the load (flat: ±5 MiB)',
      value: fp?.lastWindowMiB ? fp.lastWindowMiB[1] - fp.lastWindowMiB[0] : undefined,
      goal: 10,
      atMost: true,
      unit: 'MiB',
    },
    {
      label: `seconds after the load until RSS ≤ ${RECOVERED_MIB} MiB`,
      value: fp ? (fp.recoveredAfterS ?? Number.POSITIVE_INFINITY) : undefined,
      goal: 30,
      atMost: true,
      unit: 's',
    },
    {
      label: `manifests' memory limit (${num(limitMiB)} Mi) / measured peak`,
      value: limitMiB !== undefined && fp?.peakMiB ? limitMiB / fp.peakMiB : undefined,
      goal: 1.5,
      atMost: false,
      unit: '×',
    },
    {
      label: `manifests' memory request (${num(requestMiB)} Mi) − RSS at the end of the load`,
      value:
        requestMiB !== undefined && fp?.lastWindowMiB
          ? requestMiB - fp.lastWindowMiB[1]
          : undefined,
      goal: 0,
      atMost: false,
      unit: 'MiB',
    },
    {
      label: `RSS added by ${num(conns?.connections)} idle connections`,
      value: conns?.rssDeltaMiB,
      goal: 120,
      atMost: true,
      unit: 'MiB',
    },
    {
      label: `RSS added by ${num(conns?.connections)} idle connections to the floor (node:http alone)`,
      value: connsVia('floor')?.rssDeltaMiB,
      goal: 120,
      atMost: true,
      unit: 'MiB',
    },
    {
      label: '1 KiB GET c50, proxy CPU per request, reprise / reference',
      value: cpuOver('get-1024-c50/reprise', 'get-1024-c50/reference'),
      goal: 0.8,
      atMost: true,
      unit: '×',
    },
    {
      label: `1 KiB GET c50 (issue 25), every default on: proxy CPU per request, reprise / reference (the floor: ${ratioText(cpuOver('get-1024-c50/floor', 'get-1024-c50/reference'))})`,
      value: cpuOver('get-1024-c50/reprise', 'get-1024-c50/reference'),
      goal: 1,
      atMost: true,
      unit: '×',
    },
    {
      label: `1 KiB GET c50 (issue 25), every default on: req/s, reprise / reference (the floor: ${ratioText(over('get-1024-c50/floor', 'get-1024-c50/reference'))})`,
      value: over('get-1024-c50/reprise', 'get-1024-c50/reference'),
      goal: 1,
      atMost: false,
      unit: '×',
    },
    {
      label:
        '1 KiB GET c50 (issue 25), side by side on one CPU: proxy CPU per request, reprise / reference',
      value: by.get('sbs-get-1024-c50/reprise')?.cpuVsReference,
      goal: 1,
      atMost: true,
      unit: '×',
    },
    {
      label: '1 KiB GET c50 (issue 25), side by side on one CPU: req/s, reprise / reference',
      value: by.get('sbs-get-1024-c50/reprise')?.vsReference,
      goal: 1,
      atMost: false,
      unit: '×',
    },
    {
      label:
        "1 KiB GET c50, side by side on one CPU: proxy CPU per request, reprise / the reference run with reprise's V8 settings",
      value: by.get('sbs-get-1024-c50-bounded/reprise')?.cpuVsReference,
      goal: 1,
      atMost: true,
      unit: '×',
    },
    {
      label:
        '1 KiB GET c50, side by side on one CPU: proxy CPU per request, with / without the V8 settings',
      value: quotient(
        by.get('sbs-get-1024-c50/reprise')?.cpuVsReference,
        by.get('sbs-get-1024-c50/reprise-unbounded')?.cpuVsReference,
      ),
      goal: 1.05,
      atMost: true,
      unit: '×',
    },
    {
      label:
        "TLS origination 1 KiB GET c50, side by side on one CPU: proxy CPU per request, reprise / bare TLS reference at node's defaults (carries the plain gap of issue 25)",
      value: by.get('sbs-tls-get-1024-c50/reprise')?.cpuVsReference,
      goal: 1.1,
      atMost: true,
      unit: '×',
    },
    {
      label:
        "TLS origination 1 KiB GET c50 (issue 22), side by side on one CPU: proxy CPU per request, reprise / the bare TLS reference run with reprise's V8 settings",
      value: by.get('sbs-tls-get-1024-c50-bounded/reprise')?.cpuVsReference,
      goal: 1.1,
      atMost: true,
      unit: '×',
    },
    {
      label: '1 KiB GET c50, proxy CPU per request, the floor (no features) / reference',
      value: cpuOver('get-1024-c50/floor', 'get-1024-c50/reference'),
      goal: 0.8,
      atMost: true,
      unit: '×',
    },
    {
      label: '1 KiB GET c50, proxy CPU per request, with / without the V8 settings',
      value: cpuOver('get-1024-c50/reprise', 'get-1024-c50/reprise-unbounded'),
      goal: 1.05,
      atMost: true,
      unit: '×',
    },
    {
      label: `upload burst (${num(burst?.connections)} × 1 MiB PUT), reprise's RSS peak / the sidecar's memory limit (${num(limitMiB)} Mi), all complete: ${pct(burst?.successShare)}`,
      value: limitMiB !== undefined && burst?.rssMiB ? burst.rssMiB / limitMiB : undefined,
      goal: 0.8,
      atMost: true,
      unit: '×',
    },
    ...[65536, 262144].map((bytes) => ({
      label: `${bytes / 1024} KiB PUT c50, reprise / reference`,
      value: over(`put-${bytes}-c50/reprise`, `put-${bytes}-c50/reference`),
      goal: 1,
      atMost: false,
      unit: '×' as const,
    })),
    ...[65536, 262144].map((bytes) => ({
      label: `${bytes / 1024} KiB PUT c50, proxy CPU per request, with / without the V8 settings`,
      value: cpuOver(`put-${bytes}-c50/reprise`, `put-${bytes}-c50/reprise-unbounded`),
      goal: 1.05,
      atMost: true,
      unit: '×' as const,
    })),
  ];
  return goals.map(goalLine);
}

function comparable(row: Row): [string, number | undefined] {
  if (isNum(row.rssMiB)) return ['RSS MiB', row.rssDeltaMiB ?? row.rssMiB];
  if (row.group === 4 || row.group === 5) return ['tries/req', row.triesPerRequest];
  return ['req/s', row.reqPerS];
}

/** Rows present in both runs: the main figure then and now. */
export function comparison(previous: RunRecord, rows: readonly Row[]): string {
  const before = new Map(previous.rows.map((r) => [r.id, r]));
  const lines = [
    `Compared with the previous run (${previous.date}, ${previous.machine}, ${previous.durationS} s per run):`,
    '',
    '| row | figure | before | now | change | p99 ms before → now |',
    '|---|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const old = before.get(row.id);
    if (!old) continue;
    const [label, now] = comparable(row);
    const then = comparable(old)[1];
    if (!isNum(now) || !isNum(then)) continue;
    const change =
      then === 0 ? '' : `${now >= then ? '+' : ''}${(((now - then) / then) * 100).toFixed(1)}%`;
    const p99 =
      isNum(row.p99Ms) && isNum(old.p99Ms)
        ? `${old.p99Ms.toFixed(2)} → ${row.p99Ms.toFixed(2)}`
        : '';
    lines.push(`| ${row.id} | ${label} | ${num(then, 2)} | ${num(now, 2)} | ${change} | ${p99} |`);
  }
  return lines.length > 4 ? lines.join('\n') : 'No rows in common with the previous run.';
}

export function readPrevious(): RunRecord | undefined {
  const file = `${RESULTS_DIR}last.json`;
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
  } catch {
    return undefined;
  }
}

export function writeResults(record: RunRecord): { json: string; svg: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = `${RESULTS_DIR}last.json`;
  const svg = `${RESULTS_DIR}chart.svg`;
  writeFileSync(json, `${JSON.stringify(record, null, 2)}\n`);
  writeFileSync(svg, chartSvg(record.rows, record.machine));
  return { json, svg };
}
