/**
 * Scenario 12: CPU per request as a ratio that a noisy machine does not move. Two proxies are
 * loaded at the same time, each by its own wrk, both pinned to the proxy CPU (processes.ts), so
 * a slow spell of the machine falls on both alike; each round gives one ratio, and the median
 * of the rounds is reported. On a shared VM the turns of scenarios 1 and 10 (one proxy at a
 * time) moved the reference's own CPU per request between 58 and 130 µs within minutes, while
 * the rounds' ratios here stay within a few percent of each other.
 *
 * Each proxy then has half the CPU, so it serves about half the req/s it would alone and does
 * a little more work per request (fewer requests per read): the ratios, not the absolute
 * figures, are what this scenario is for. Pairs: reprise (its shipped settings) and reprise
 * without its V8 settings against the bare reference, plain HTTP and TLS origination; and
 * reprise against the bare reference run with reprise's V8 settings (`-bounded` keys), which
 * parts what reprise's work costs from what its bounded heap costs.
 */

import { type LoadResult, runLoad } from './load.ts';
import type { Row } from './measure.ts';
import { cpuMs, type Proc, startBareTls, startReference, startUpstream } from './processes.ts';
import { shippedSettings, startReprise, UNBOUNDED } from './proxies.ts';
import type { BenchContext } from './scenarios.ts';
import { makeCertificates, TLS_SERVERNAME } from './tls-origination.ts';

const CONNECTIONS = 50;
const PATH = '/bytes/1024';

interface Pair {
  readonly key: string;
  readonly scenario: string;
  readonly via: 'reprise' | 'reprise-unbounded';
  readonly reference: Proc;
  readonly proxy: Proc;
  readonly upstreamPort: number;
}

interface Side {
  readonly cpuUs: number;
  readonly reqPerS: number;
  readonly errors: number;
}

const median = (values: readonly number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** Loads both proxies at once for `durationS`: the reference's side, then the proxy's. */
async function loadBoth(pair: Pair, durationS: number): Promise<[Side, Side]> {
  const authority = `127.0.0.1:${pair.upstreamPort}`;
  const procs = [pair.reference, pair.proxy];
  const spec = (proc: Proc) => ({
    port: proc.port,
    path: `http://${authority}${PATH}`,
    host: authority,
    method: 'GET' as const,
    connections: CONNECTIONS,
    durationS,
  });
  const cpu0 = procs.map((p) => cpuMs(p.pid));
  const loads = await Promise.all(procs.map((p) => runLoad(spec(p))));
  return procs.map((p, i) => {
    const load = loads[i] as LoadResult;
    const cpuUs = ((cpuMs(p.pid) - (cpu0[i] as number)) * 1000) / Math.max(1, load.responses);
    return { cpuUs, reqPerS: load.reqPerS, errors: load.errors + load.responses - load.ok };
  }) as [Side, Side];
}

/** The same pair against the reference run with reprise's V8 settings (the `-bounded` rows). */
const againstBounded = (pair: Pair, boundedReference: Proc): Pair => ({
  ...pair,
  key: `${pair.key}-bounded`,
  scenario: `${pair.scenario}, the reference with reprise's V8 settings`,
  reference: boundedReference,
});

async function measurePair(ctx: BenchContext, pair: Pair): Promise<Row> {
  const rounds = Math.max(3, ctx.rounds * 2);
  const durationS = Math.max(2, Math.round(ctx.durationS / 2));
  await loadBoth(pair, ctx.warmupS + 2);
  const cpu: number[] = [];
  const rate: number[] = [];
  const reprise: Side[] = [];
  let errors = 0;
  for (let round = 0; round < rounds; round++) {
    await loadBoth(pair, ctx.warmupS);
    const [reference, proxy] = await loadBoth(pair, durationS);
    cpu.push(proxy.cpuUs / reference.cpuUs);
    rate.push(proxy.reqPerS / reference.reqPerS);
    reprise.push(proxy);
    errors += reference.errors + proxy.errors;
  }
  const row: Row = {
    key: pair.key,
    id: `${pair.key}/${pair.via}`,
    group: 12,
    scenario: pair.scenario,
    via: pair.via,
    connections: CONNECTIONS,
    reqPerS: median(reprise.map((s) => s.reqPerS)),
    proxyCpuUsPerReq: median(reprise.map((s) => s.cpuUs)),
    vsReference: median(rate),
    cpuVsReference: median(cpu),
    note: `CPU per request / the reference's, ${rounds} rounds: ${cpu.map((r) => r.toFixed(2)).join(' ')}${errors > 0 ? `; ${errors} errors or non-2xx` : ''}`,
  };
  ctx.progress(
    `${row.id}: ${(row.cpuVsReference as number).toFixed(2)}× the reference's CPU per request, ${(row.vsReference as number).toFixed(2)}× its req/s`,
  );
  return row;
}

/**
 * 12: reprise and the bare reference loaded at once on one CPU, plain HTTP and TLS; the
 * reference also with reprise's V8 settings.
 */
export async function sideBySide(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  const plain = [await startReference(), await startReprise({}, ctx.tmpDir, 'sbs-reprise')];
  plain.push(await startReprise({}, ctx.tmpDir, 'sbs-unbounded', { node: UNBOUNDED }));
  plain.push(await startReference(shippedSettings()));
  const [reference, reprise, unbounded, boundedReference] = plain as [Proc, Proc, Proc, Proc];
  try {
    const shipped: Pair = {
      key: 'sbs-get-1024-c50',
      scenario: '1 KiB GET, side by side on one CPU',
      via: 'reprise',
      reference,
      proxy: reprise,
      upstreamPort: ctx.upstream.port,
    };
    rows.push(await measurePair(ctx, shipped));
    rows.push(await measurePair(ctx, { ...shipped, via: 'reprise-unbounded', proxy: unbounded }));
    rows.push(await measurePair(ctx, againstBounded(shipped, boundedReference)));
  } finally {
    await Promise.all(plain.map((p) => p.stop()));
  }
  const { caFile, certFile, keyFile } = makeCertificates(ctx.tmpDir);
  const upstream = await startUpstream({
    BENCH_UPSTREAM_CERT: certFile,
    BENCH_UPSTREAM_KEY: keyFile,
  });
  const config = {
    upstreams: [{ match: '127.0.0.1', tls: { ca: caFile, servername: TLS_SERVERNAME } }],
  };
  const tls: Proc[] = [];
  try {
    tls.push(await startBareTls('reference', caFile, TLS_SERVERNAME));
    tls.push(await startReprise(config, ctx.tmpDir, 'sbs-reprise-tls'));
    tls.push(await startBareTls('reference', caFile, TLS_SERVERNAME, shippedSettings()));
    const [tlsReference, tlsReprise, tlsBoundedReference] = tls as [Proc, Proc, Proc];
    const originating: Pair = {
      key: 'sbs-tls-get-1024-c50',
      scenario: '1 KiB GET, proxy originates TLS, side by side on one CPU',
      via: 'reprise',
      reference: tlsReference,
      proxy: tlsReprise,
      upstreamPort: upstream.port,
    };
    rows.push(await measurePair(ctx, originating));
    rows.push(await measurePair(ctx, againstBounded(originating, tlsBoundedReference)));
  } finally {
    await Promise.all([...tls.map((p) => p.stop()), upstream.stop()]);
  }
  return rows;
}
