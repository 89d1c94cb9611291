import { describe, expect, it } from 'vitest';
import { LabelCache, Metrics, type MetricsProviders } from '../../src/admin/metrics.ts';
import { loadConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import { VERSION } from '../../src/version.ts';
import { makeSummary } from '../helpers/policy-factory.ts';

type Labels = Record<string, string>;
interface Sample {
  readonly name: string;
  readonly labels: Labels;
  readonly value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k as string] = v as string;
    }
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with exactly these labels; undefined when absent. */
async function value(
  metrics: Metrics,
  name: string,
  labels: Labels = {},
): Promise<number | undefined> {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = parse(await metrics.text()).filter(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want,
  );
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

const summary = makeSummary;

const noUpstreams: MetricsProviders = { upstreams: () => [], bufferedBytes: () => 0 };
const API = { route: 'api', upstream: 'api.example.com:80' };

describe('series that start at 0', () => {
  const configWith = (on: string): Config =>
    loadConfigText(
      `version: 1\nroutes:\n  - name: api\n    match: { host: api.example.com }\n    retry: { on: ${on} }\n`,
      't.yaml',
    );

  it("starts the reasons of the route's retry.on at the pair's first request, and none before", async () => {
    const config = configWith('[reset, 503, 5xx]');
    const metrics = new Metrics({
      ...noUpstreams,
      route: (name) => config.routes.find((r) => r.name === name),
    });
    expect(
      await value(metrics, 'reprise_retries_total', { ...API, reason: '503' }),
    ).toBeUndefined();
    metrics.requestDone(summary());
    const reasons = parse(await metrics.text())
      .filter((s) => s.name === 'reprise_retries_total')
      .map((s) => `${s.labels.reason}=${s.value}`);
    // 5xx: the registered statuses 500-511 only, not 100 series
    expect(reasons).toContain('reset=0');
    expect(reasons).toContain('503=0');
    expect(reasons).toContain('511=0');
    expect(reasons).not.toContain('599=0');
    expect(reasons).not.toContain('timeout=0');
    expect(reasons.length).toBeLessThanOrEqual(14);
  });

  it('starts the new reasons of already seen pairs after a good reload', async () => {
    let config = configWith('[503]');
    const metrics = new Metrics({
      ...noUpstreams,
      route: (name) => config.routes.find((r) => r.name === name),
    });
    metrics.requestDone(summary());
    expect(
      await value(metrics, 'reprise_retries_total', { ...API, reason: '429' }),
    ).toBeUndefined();
    config = configWith('[503, 429]');
    metrics.configReload('ok');
    expect(await value(metrics, 'reprise_retries_total', { ...API, reason: '429' })).toBe(0);
    expect(await value(metrics, 'reprise_retries_total', { ...API, reason: '503' })).toBe(0);
  });

  it("starts the 'other' upstream's series once, at the 501st upstream", async () => {
    const metrics = new Metrics(noUpstreams);
    for (let i = 0; i < 502; i++) metrics.upstreamLabel(`u${i}:80`);
    const other = parse(await metrics.text()).filter(
      (s) => s.name === 'reprise_circuit_transitions_total' && s.labels.upstream === 'other',
    );
    expect(other.map((s) => `${s.labels.to}=${s.value}`)).toEqual([
      'closed=0',
      'half-open=0',
      'open=0',
    ]);
  });
});

describe('Metrics', () => {
  it('counts a retried request once, its tries by outcome and its retries by reason', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(
      summary({
        attempts: 3,
        outcomes: ['5xx', '5xx', '2xx'],
        tryUpstreams: ['api.example.com:80', 'api.example.com:80', 'api.example.com:80'],
        retryReasons: ['503', '503'],
        retryUpstreams: ['api.example.com:80', 'api.example.com:80'],
      }),
    );
    const requests = { ...API, method: 'GET', status: '200' };
    expect(await value(metrics, 'reprise_requests_total', requests)).toBe(1);
    expect(await value(metrics, 'reprise_retries_total', { ...API, reason: '503' })).toBe(2);
    expect(await value(metrics, 'reprise_attempts_total', { ...API, outcome: '5xx' })).toBe(2);
    expect(await value(metrics, 'reprise_attempts_total', { ...API, outcome: '2xx' })).toBe(1);
  });

  it('records the duration in seconds', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(summary({ durationMs: 42 }));
    const name = 'reprise_request_duration_seconds';
    expect(await value(metrics, `${name}_sum`, API)).toBeCloseTo(0.042, 9);
    expect(await value(metrics, `${name}_count`, API)).toBe(1);
    expect(await value(metrics, `${name}_bucket`, { ...API, le: '0.025' })).toBe(0);
    expect(await value(metrics, `${name}_bucket`, { ...API, le: '0.05' })).toBe(1);
    expect(await value(metrics, `${name}_bucket`, { ...API, le: '30' })).toBe(1);
  });

  it('labels each try with the upstream it went to and a fallback with the primary', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(
      summary({
        attempts: 2,
        outcomes: ['connect-failure', '2xx'],
        tryUpstreams: ['api.example.com:80', 'cache:8080'],
        fallback: 'connect-failure',
      }),
    );
    const failed = { ...API, outcome: 'connect-failure' };
    expect(await value(metrics, 'reprise_attempts_total', failed)).toBe(1);
    const onCache = { route: 'api', upstream: 'cache:8080', outcome: '2xx' };
    expect(await value(metrics, 'reprise_attempts_total', onCache)).toBe(1);
    const fallback = { ...API, cause: 'connect-failure' };
    expect(await value(metrics, 'reprise_fallbacks_total', fallback)).toBe(1);
  });

  it('counts a suppressed retry by cause', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(summary({ status: 503, outcomes: ['5xx'], suppressed: 'budget' }));
    const labels = { ...API, cause: 'budget' };
    expect(await value(metrics, 'reprise_retries_suppressed_total', labels)).toBe(1);
  });

  it('labels a method outside the standard set as other', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(summary({ method: 'PROPFIND' }));
    const labels = { ...API, method: 'other', status: '200' };
    expect(await value(metrics, 'reprise_requests_total', labels)).toBe(1);
  });

  it('labels status 0 when the client left before an answer', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.requestDone(summary({ status: 0, suppressed: 'client-gone' }));
    const labels = { ...API, method: 'GET', status: '0' };
    expect(await value(metrics, 'reprise_requests_total', labels)).toBe(1);
  });

  it('keeps the first 500 upstreams by name and labels later ones other, stably', async () => {
    const metrics = new Metrics(noUpstreams);
    for (let i = 0; i < 600; i++) {
      const upstream = `host-${i}:80`;
      metrics.requestDone(summary({ upstream, tryUpstreams: [upstream] }));
    }
    metrics.requestDone(summary({ upstream: 'host-0:80', tryUpstreams: ['host-0:80'] }));
    const requests = parse(await metrics.text()).filter((s) => s.name === 'reprise_requests_total');
    const upstreams = new Set(requests.map((s) => s.labels.upstream));
    expect(upstreams.size).toBe(501);
    const count = (upstream: string) => requests.find((s) => s.labels.upstream === upstream)?.value;
    expect(count('host-0:80')).toBe(2);
    expect(count('host-499:80')).toBe(1);
    expect(count('host-500:80')).toBeUndefined();
    expect(count('other')).toBe(100);
  });

  it('counts tunnels, circuit transitions and config reloads', async () => {
    const metrics = new Metrics(noUpstreams);
    metrics.tunnelDone('api.example.com:443', 'connect-failure');
    metrics.circuitTransition('api.example.com:80', 'open');
    metrics.configReload('error');
    const tunnel = { upstream: 'api.example.com:443', outcome: 'connect-failure' };
    expect(await value(metrics, 'reprise_tunnels_total', tunnel)).toBe(1);
    const transition = { upstream: 'api.example.com:80', to: 'open' };
    expect(await value(metrics, 'reprise_circuit_transitions_total', transition)).toBe(1);
    expect(await value(metrics, 'reprise_config_reloads_total', { result: 'error' })).toBe(1);
    expect(await value(metrics, 'reprise_config_reloads_total', { result: 'ok' })).toBe(0);
  });

  it('reads the upstream gauges from the providers at scrape time', async () => {
    let state: 'closed' | 'open' = 'closed';
    let bufferedBytes = 100;
    let failingForMs = 0;
    const metrics = new Metrics({
      upstreams: () => [
        { authority: 'a:80', state, budgetAvailable: 7, circuit: { failingForMs, enabled: true } },
      ],
      bufferedBytes: () => bufferedBytes,
    });
    expect(
      await value(metrics, 'reprise_circuit_state', { upstream: 'a:80', state: 'closed' }),
    ).toBe(1);
    expect(await value(metrics, 'reprise_circuit_failing_seconds', { upstream: 'a:80' })).toBe(0);
    failingForMs = 1_250;
    expect(await value(metrics, 'reprise_circuit_failing_seconds', { upstream: 'a:80' })).toBe(
      1.25,
    );
    state = 'open';
    bufferedBytes = 2048;
    expect(await value(metrics, 'reprise_circuit_state', { upstream: 'a:80', state: 'open' })).toBe(
      1,
    );
    expect(
      await value(metrics, 'reprise_circuit_state', { upstream: 'a:80', state: 'closed' }),
    ).toBe(0);
    expect(
      await value(metrics, 'reprise_circuit_state', { upstream: 'a:80', state: 'half-open' }),
    ).toBe(0);
    expect(await value(metrics, 'reprise_retry_budget_available', { upstream: 'a:80' })).toBe(7);
    expect(await value(metrics, 'reprise_buffered_bytes')).toBe(2048);
  });

  it('says which upstreams have their breaker off, and how many are on among other', async () => {
    const upstream = (authority: string, enabled: boolean) => ({
      authority,
      state: 'closed' as const,
      budgetAvailable: 0,
      circuit: { failingForMs: 0, enabled },
    });
    const metrics = new Metrics({
      upstreams: () => [upstream('on:80', true), upstream('off:80', false)],
      bufferedBytes: () => 0,
    });
    expect(await value(metrics, 'reprise_circuit_enabled', { upstream: 'on:80' })).toBe(1);
    expect(await value(metrics, 'reprise_circuit_enabled', { upstream: 'off:80' })).toBe(0);
  });

  it('drops an upstream from the gauges once the provider no longer lists it', async () => {
    let upstreams = [
      {
        authority: 'a:80',
        state: 'closed' as const,
        budgetAvailable: 7,
        circuit: { failingForMs: 0, enabled: true },
      },
    ];
    const metrics = new Metrics({ upstreams: () => upstreams, bufferedBytes: () => 0 });
    expect(await value(metrics, 'reprise_retry_budget_available', { upstream: 'a:80' })).toBe(7);
    upstreams = [];
    expect(
      await value(metrics, 'reprise_retry_budget_available', { upstream: 'a:80' }),
    ).toBeUndefined();
  });

  it('reports the build version and Node version', async () => {
    const metrics = new Metrics(noUpstreams);
    const labels = { version: VERSION, node: process.version };
    expect(await value(metrics, 'reprise_build_info', labels)).toBe(1);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('includes the default process metrics on its own registry', async () => {
    const first = new Metrics(noUpstreams);
    const second = new Metrics(noUpstreams);
    first.configReload('ok');
    expect(await value(first, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(await value(second, 'reprise_config_reloads_total', { result: 'ok' })).toBe(0);
  });
});

describe('LabelCache', () => {
  it('returns the same child for the same label values', () => {
    const cache = new LabelCache(3, (values) => ({ values }));
    expect(cache.get('a', 'b', 'c')).toBe(cache.get('a', 'b', 'c'));
  });

  it('gives each combination its own child when lookups alternate and repeat', () => {
    const cache = new LabelCache(2, (values) => ({ values }));
    const order: [string, string][] = [
      ['r', 'u1'],
      ['r', 'u1'],
      ['r', 'u2'],
      ['r', 'u1'],
      ['s', 'u1'],
      ['s', 'u1'],
      ['r', 'u2'],
    ];
    for (const [a, b] of order) expect(cache.get(a, b).values).toEqual([a, b]);
    expect(cache.get('r', 'u2')).toBe(cache.get('r', 'u2'));
    expect(cache.get('r', 'u1')).not.toBe(cache.get('r', 'u2'));
  });

  it('makes one child per distinct combination, with no collision across label boundaries', () => {
    const made: string[][] = [];
    const cache = new LabelCache(2, (values) => made.push(values));
    cache.get('ab', 'c');
    cache.get('a', 'bc');
    cache.get('ab', 'c');
    expect(made).toEqual([
      ['ab', 'c'],
      ['a', 'bc'],
    ]);
  });
});
