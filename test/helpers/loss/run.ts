/**
 * One packet-loss run (the experiment, shortened): inside a namespace of its own, an
 * upstream serving a 7 KB JSON, one reprise per variant (the first may be the embedded
 * defaults, no file at all), and one client per side, direct and through each reprise, all at
 * the same time under the same seeded Gilbert–Elliott loss on the upstream's port. With `tls`
 * the upstream speaks HTTPS: the direct client calls it so, the others call `http://` and each
 * variant's config says how reprise originates the TLS.
 * Shared by test/integration/packet-loss.test.ts and the bench's longer run.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import type { BurstLossOptions, LossStats, Netns } from '../netns.ts';

const UPSTREAM_PORT = 8080;
const HERE = new URL('.', import.meta.url).pathname;
export const REPRISE_CLI = new URL('../../../dist/cli/main.js', import.meta.url).pathname;

export interface Variant {
  readonly name: string;
  /** YAML under `version: 1` (listen and admin are added); undefined = the embedded defaults. */
  readonly config?: string;
}

export interface LossRunOptions {
  readonly seed: number;
  readonly requests: number;
  readonly concurrency: number;
  readonly clientTimeoutMs: number;
  readonly paceMs: number;
  readonly loss: Omit<BurstLossOptions, 'ports' | 'seed'>;
  readonly variants: readonly Variant[];
  /** The upstream's certificate and key, and the CA that signed them (PEM files). */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
}

export interface SideResult {
  readonly name: string;
  /** How each request ended for the client (`ok`, `body-cut`, `error:circuit-open`, …). */
  readonly outcomes: Readonly<Record<string, number>>;
  readonly ok: number;
  readonly durationMs: number;
  /** For a reprise side: its own access lines' `error` and retry reasons, counted. */
  readonly proxyErrors?: Readonly<Record<string, number>>;
  readonly proxyRetries?: Readonly<Record<string, number>>;
  /** For a reprise side: its access lines. */
  readonly proxyLines?: readonly Record<string, unknown>[];
}

export interface LossRunResult {
  readonly seed: number;
  readonly loss: LossStats;
  readonly sides: readonly SideResult[];
}

interface Reprise {
  readonly name: string;
  readonly port: number;
  readonly lines: Record<string, unknown>[];
}

export async function runLossExperiment(
  ns: Netns,
  options: LossRunOptions,
): Promise<LossRunResult> {
  const dir = mkdtempSync(`${tmpdir()}/reprise-loss-`);
  try {
    const { tls } = options;
    const upstreamArgs = tls === undefined ? [] : [tls.certFile, tls.keyFile];
    const upstream = ns.spawn(process.execPath, [
      `${HERE}upstream.ts`,
      String(UPSTREAM_PORT),
      ...upstreamArgs,
    ]);
    const ready = await firstLine(upstream);
    const expectBytes = Number(ready.split(' ')[1]);
    const reprises = await Promise.all(
      options.variants.map((variant, i) => startReprise(ns, dir, variant, i)),
    );
    const loss = await ns.startBurstLoss({
      ...options.loss,
      ports: [UPSTREAM_PORT],
      seed: options.seed,
    });
    const url = `http://127.0.0.1:${UPSTREAM_PORT}/doc`;
    const plan = (proxyPort?: number) => ({
      url,
      proxyPort,
      requests: options.requests,
      concurrency: options.concurrency,
      timeoutMs: options.clientTimeoutMs,
      paceMs: options.paceMs,
      expectBytes,
      caFile: tls?.caFile,
    });
    const runs = [
      runClient(ns, 'direct', plan()),
      ...reprises.map((r) => runClient(ns, r.name, plan(r.port))),
    ];
    const results = await Promise.all(runs);
    const lossStats = await loss.stop();
    // the access lines of the last requests are written as they finish: give them a moment
    await new Promise((resolve) => setTimeout(resolve, 200));
    const sides = results.map((side, i) => {
      const reprise = i === 0 ? undefined : reprises[i - 1];
      if (reprise === undefined) return side;
      const requests = reprise.lines.filter((l) => l.msg === 'request');
      return {
        ...side,
        proxyLines: requests,
        proxyErrors: count(requests.map((l) => String(l.error ?? 'none'))),
        proxyRetries: count(requests.flatMap((l) => (l.retries as string[] | undefined) ?? [])),
      };
    });
    return { seed: options.seed, loss: lossStats, sides };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Failures through a reprise side, grouped as the issue counts them. */
export function failureKinds(side: SideResult): {
  bodyCut: number;
  circuitOpen: number;
  other: number;
} {
  let bodyCut = 0;
  let circuitOpen = 0;
  let other = 0;
  for (const [outcome, n] of Object.entries(side.outcomes)) {
    if (outcome === 'ok') continue;
    if (outcome === 'body-cut' || outcome === 'body-timeout' || outcome === 'error:body-cut') {
      bodyCut += n;
    } else if (outcome === 'error:circuit-open') circuitOpen += n;
    else other += n;
  }
  return { bodyCut, circuitOpen, other };
}

async function startReprise(ns: Netns, dir: string, variant: Variant, i: number): Promise<Reprise> {
  const port = 3128 + i;
  const args = [REPRISE_CLI];
  if (variant.config !== undefined || i > 0) {
    const file = `${dir}/${i}.yaml`;
    const text = `version: 1\nlisten: 127.0.0.1:${port}\nadmin: 127.0.0.1:${9901 + i}\n${variant.config ?? ''}`;
    writeFileSync(file, text);
    args.push('--config', file);
  }
  const child = ns.spawn(process.execPath, args, { env: { ...process.env, LOG_LEVEL: 'info' } });
  const lines: Record<string, unknown>[] = [];
  const listening = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`reprise (${variant.name}) exited: ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      lines.push(line);
      if (line.msg === 'listening') resolve();
    });
  });
  await listening;
  return { name: variant.name, port, lines };
}

async function runClient(ns: Netns, name: string, plan: object): Promise<SideResult> {
  const child = ns.spawn(process.execPath, [`${HERE}client.ts`, JSON.stringify(plan)]);
  const line = await firstLine(child);
  const { outcomes, durationMs } = JSON.parse(line) as {
    outcomes: Record<string, number>;
    durationMs: number;
  };
  return { name, outcomes, ok: outcomes.ok ?? 0, durationMs };
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited with ${code}: ${stderr.trim()}`)));
  });
}

function count(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}
