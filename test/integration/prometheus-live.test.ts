/**
 * A real Prometheus (Debian's `prometheus` binary, on a loopback port with a temp data dir,
 * scraping the proxy's admin port every second) after real traffic: every dashboard query
 * and every alert expression returns data, and the first burst of budget-suppressed retries
 * on a new upstream shows in increase() (it could not while series appeared at their first
 * increment). Skipped, saying so, where the binary is missing.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { failEvery, reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

const hasPrometheus = spawnSync('prometheus', ['--version']).status === 0;
const SKIPPED = hasPrometheus ? '' : ' (skipped: no prometheus binary; apt-get install prometheus)';
const LIVE_TIMEOUT_MS = 90_000;

interface QueryResult {
  readonly status: string;
  readonly error?: string;
  readonly data?: { readonly result: readonly { metric: object; value: [number, string] }[] };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The queries of every dashboard panel, with Grafana's variables as "All" would set them. */
function dashboardQueries(): { title: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync('deploy/grafana/reprise-dashboard.json', 'utf8')) as {
    panels: { title: string; targets?: { expr: string }[] }[];
  };
  return dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      title: p.title,
      expr: t.expr
        .replaceAll('$__rate_interval', '30s')
        .replaceAll('$upstream', '.*')
        .replaceAll('$route', '.*'),
    })),
  );
}

/**
 * Every alert's expression without its final threshold: the part that must return data for
 * the alert to be able to fire at all.
 */
function alertQueries(): { title: string; expr: string }[] {
  const rule = parse(readFileSync('deploy/prometheus/alerts.yaml', 'utf8'));
  const rules = rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules) as {
    alert: string;
    expr: string;
  }[];
  return rules.map((r) => ({
    title: r.alert,
    expr: r.expr.trim().replace(/\s*(==|!=|>=|<=|>|<)\s*[\d.]+$/, ''),
  }));
}

describe.skipIf(!hasPrometheus)(`a real Prometheus scraping reprise${SKIPPED}`, () => {
  let prometheus: ChildProcess | undefined;
  let promPort = 0;
  let proxy: TestProxy;
  let flaky: Upstream;
  let failing: Upstream;
  const scratch = mkdtempSync(join(tmpdir(), 'reprise-prometheus-'));
  let traffic = true;
  let background: Promise<void> = Promise.resolve();

  async function query(expr: string): Promise<QueryResult> {
    const url = `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(expr)}`;
    return (await (await fetch(url)).json()) as QueryResult;
  }

  /** The number a one-sample query gives, or undefined while it gives none. */
  async function sampleValue(expr: string): Promise<number | undefined> {
    const result = await query(expr);
    expect(result.status, `${expr}: ${result.error}`).toBe('success');
    const sample = result.data?.result[0];
    return sample === undefined ? undefined : Number(sample.value[1]);
  }

  beforeAll(async () => {
    flaky = await startUpstream([failEvery(3, reply(503), reply(200, 'ok'))]);
    // healthy for its first request, then failing: the burst is the first suppression it sees
    failing = await startUpstream([reply(200, 'ok'), reply(503)]);
    // no budget and no breaker for `failing`: every retry it is due is suppressed by the budget
    proxy = await startProxy(`${FAST}routes:
  - name: flaky
    match: { host: 127.0.0.1, path: /flaky }
    fallback: { upstream: "http://127.0.0.1:1" }
upstreams:
  - match: "127.0.0.1:${failing.port}"
    budget: { ratio: 0, minPerSecond: 0 }
    circuitBreaker: { enabled: false }
`);
    promPort = await freePort();
    const config = join(scratch, 'prometheus.yml');
    writeFileSync(
      config,
      `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: reprise
    static_configs: [{ targets: ["127.0.0.1:${proxy.adminPort}"] }]
`,
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(scratch, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--log.level=warn',
      ],
      { stdio: 'ignore' },
    );
    await vi.waitFor(
      async () => {
        const ready = await fetch(`http://127.0.0.1:${promPort}/-/ready`).catch(() => undefined);
        expect(ready?.status).toBe(200);
      },
      { timeout: 30_000, interval: 250 },
    );
    // steady traffic on the flaky route while the queries run: retries, fallback series
    background = (async () => {
      while (traffic) {
        await viaProxy(proxy.port, 'GET', `${flaky.origin}/flaky/x`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
  }, LIVE_TIMEOUT_MS);

  afterAll(async () => {
    traffic = false;
    await background;
    prometheus?.kill('SIGTERM');
    if (prometheus !== undefined && prometheus.exitCode === null) {
      await new Promise((resolve) => prometheus?.once('exit', resolve));
    }
    await proxy?.close();
    await flaky?.close();
    await failing?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it(
    "shows a new upstream's first burst of budget-suppressed retries in increase()",
    async () => {
      const upstream = `127.0.0.1:${failing.port}`;
      const selector = `reprise_retries_suppressed_total{cause="budget",upstream="${upstream}"}`;
      // a healthy first request makes the pair's series; Prometheus scrapes them at 0
      expect((await viaProxy(proxy.port, 'GET', `${failing.origin}/first`)).status).toBe(200);
      await vi.waitFor(async () => expect(await sampleValue(selector)).toBe(0), {
        timeout: 30_000,
        interval: 250,
      });
      const before = 0;
      const burst = 20;
      await Promise.all(
        Array.from({ length: burst }, () => viaProxy(proxy.port, 'GET', `${failing.origin}/b`)),
      );
      await vi.waitFor(async () => expect(await sampleValue(selector)).toBe(before + burst), {
        timeout: 30_000,
        interval: 250,
      });
      const increase = await sampleValue(`sum(increase(${selector}[1m]))`);
      expect(increase).toBeGreaterThanOrEqual(burst * 0.9);
      // and the alert's own expression sees it
      const alert = alertQueries().find((q) => q.title === 'RepriseRetriesSuppressedByBudget');
      expect(await sampleValue(alert?.expr as string)).toBeGreaterThan(0);
    },
    LIVE_TIMEOUT_MS,
  );

  it(
    'returns data for every dashboard query and every alert expression',
    async () => {
      const queries = [...dashboardQueries(), ...alertQueries()];
      expect(queries.length).toBeGreaterThanOrEqual(20);
      let empty: string[] = [];
      await vi.waitFor(
        async () => {
          empty = [];
          for (const q of queries) {
            const result = await query(q.expr);
            expect(result.status, `${q.title}: ${q.expr}: ${result.error}`).toBe('success');
            if ((result.data?.result.length ?? 0) === 0) empty.push(`${q.title}: ${q.expr}`);
          }
          expect(empty).toEqual([]);
        },
        { timeout: 60_000, interval: 1_000 },
      );
    },
    LIVE_TIMEOUT_MS,
  );
});
