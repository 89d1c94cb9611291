/**
 * /metrics after real exchanges through the proxy (SPEC §8): exact values from the parsed
 * Prometheus text, the cap on distinct `upstream` label values, and the Grafana dashboard's
 * queries checked against what /metrics really exposes.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import {
  RETRY_ON_FAILURES,
  SUPPRESSED_CAUSES,
  TRY_OUTCOMES,
  TUNNEL_OUTCOMES,
} from '../../src/vocabulary.ts';
import { countedOf, parsePrometheus, type Sample, samplesOf } from '../helpers/cli.ts';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { FAST, startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { deadPort, reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

closeAfterEach();

// set by each test; closeAfterEach closes them
let proxy: TestProxy | undefined;
let upstream: Upstream | undefined;

/** Sends `CONNECT authority` on a raw socket; resolves with what came back before close. */
function connectThrough(port: number, authority: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`),
    );
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

async function metrics(px: TestProxy): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${px.adminPort}/metrics`);
  expect(res.status).toBe(200);
  return parsePrometheus(await res.text());
}

/** `labelName=value` of every sample of `name`, with its value, sorted: an exact picture. */
function table(samples: readonly Sample[], name: string, labelName: string, all = false): string[] {
  return (all ? samplesOf(samples, name) : countedOf(samples, name))
    .map((s) => `${s.labels[labelName]}=${s.value}`)
    .sort();
}

describe('metrics after a scripted exchange (503, 503, 200)', () => {
  async function exchange(): Promise<{ samples: Sample[]; up: Upstream }> {
    const upstream = await startUpstream([reply(503), reply(503), reply(200, 'ok')]);
    const proxy = await startProxy(FAST);
    const res = await viaProxy(proxy.port, 'GET', `${upstream.origin}/items`);
    expect(res.status).toBe(200);
    return { samples: await metrics(proxy), up: upstream };
  }

  it('counts one request, with status 200, labelled with route, upstream and method', async () => {
    const { samples, up } = await exchange();
    const requests = samplesOf(samples, 'reprise_requests_total');
    expect(requests).toEqual([
      {
        name: 'reprise_requests_total',
        labels: { route: 'default', upstream: up.authority, method: 'GET', status: '200' },
        value: 1,
      },
    ]);
  });

  it('counts two retries, both with reason 503', async () => {
    const { samples, up } = await exchange();
    expect(table(samples, 'reprise_retries_total', 'reason')).toEqual(['503=2']);
    expect(samplesOf(samples, 'reprise_retries_total')[0]?.labels.upstream).toBe(up.authority);
  });

  it('counts three attempts: two 5xx and one 2xx', async () => {
    const { samples } = await exchange();
    expect(table(samples, 'reprise_attempts_total', 'outcome')).toEqual(['2xx=1', '5xx=2']);
  });

  it('records no suppressed retry and no fallback', async () => {
    const { samples } = await exchange();
    expect(countedOf(samples, 'reprise_retries_suppressed_total')).toEqual([]);
    expect(samplesOf(samples, 'reprise_fallbacks_total')).toEqual([]);
  });

  it('observes the duration once in the histogram', async () => {
    const { samples, up } = await exchange();
    const labels = { route: 'default', upstream: up.authority };
    expect(samplesOf(samples, 'reprise_request_duration_seconds_count', labels)).toHaveLength(1);
    expect(samplesOf(samples, 'reprise_request_duration_seconds_count', labels)[0]?.value).toBe(1);
    const inf = samplesOf(samples, 'reprise_request_duration_seconds_bucket', { le: '+Inf' });
    expect(inf.map((s) => s.value)).toEqual([1]);
  });

  it('shows the upstream closed with its budget left, and the build info', async () => {
    const { samples, up } = await exchange();
    const state = samplesOf(samples, 'reprise_circuit_state', { upstream: up.authority });
    expect(state.map((s) => `${s.labels.state}=${s.value}`).sort()).toEqual([
      'closed=1',
      'half-open=0',
      'open=0',
    ]);
    const budget = samplesOf(samples, 'reprise_retry_budget_available', {
      upstream: up.authority,
    });
    // minPerSecond 10 × window 10s + ratio 0.2 × 1 first try − 2 retries, floored
    expect(budget.map((s) => s.value)).toEqual([98]);
    expect(samplesOf(samples, 'reprise_buffered_bytes').map((s) => s.value)).toEqual([0]);
    expect(samplesOf(samples, 'reprise_build_info')[0]?.labels.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(samplesOf(samples, 'process_cpu_user_seconds_total')).toHaveLength(1);
  });
});

describe('series that start at 0 (so the first burst shows in rate() and increase())', () => {
  const zeros = (values: readonly string[]) => values.map((v) => `${v}=0`);

  it('shows every reason, cause, outcome and transition of the pair after the first retry', async () => {
    upstream = await startUpstream([reply(503), reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`)).status).toBe(200);
    const samples = await metrics(proxy);
    const pair = { route: 'default', upstream: upstream.authority };
    const of = (name: string, label: string) =>
      samplesOf(samples, name, pair)
        .map((s) => `${s.labels[label]}=${s.value}`)
        .sort();
    // the default retry.on: connect-failure, reset, timeout, 429, 502, 503, 504
    const reasons = [...RETRY_ON_FAILURES, '429', '502', '504'];
    expect(of('reprise_retries_total', 'reason')).toEqual([...zeros(reasons), '503=1'].sort());
    expect(of('reprise_retries_suppressed_total', 'cause')).toEqual(
      zeros(SUPPRESSED_CAUSES).sort(),
    );
    const outcomes = TRY_OUTCOMES.filter((o) => o !== '2xx' && o !== '5xx');
    expect(of('reprise_attempts_total', 'outcome')).toEqual(
      [...zeros(outcomes), '2xx=1', '5xx=1'].sort(),
    );
    const transitions = samplesOf(samples, 'reprise_circuit_transitions_total', {
      upstream: upstream.authority,
    });
    expect(transitions.map((s) => `${s.labels.to}=${s.value}`).sort()).toEqual(
      zeros(['closed', 'half-open', 'open']),
    );
    // no fallback on this route: no fallback series to start
    expect(samplesOf(samples, 'reprise_fallbacks_total')).toEqual([]);
  });

  it('starts nothing for a request refused before it had an upstream', async () => {
    proxy = await startProxy(FAST);
    expect((await viaProxy(proxy.port, 'GET', '/not-absolute')).status).toBe(400);
    const samples = await metrics(proxy);
    const zeroed = samples.filter(
      (s) => s.name.endsWith('_total') && s.labels.upstream === '' && s.value === 0,
    );
    expect(zeroed).toEqual([]);
    expect(countedOf(samples, 'reprise_requests_total', { upstream: '' })).toHaveLength(1);
  });

  it("starts the fallback causes and both policies' reasons on a route with a fallback", async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(`${FAST}routes:
  - name: cached
    match: { host: 127.0.0.1 }
    retry: { on: [connect-failure] }
    fallback: { upstream: http://127.0.0.1:1, retry: { on: [500] } }
`);
    expect((await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`)).status).toBe(200);
    const pair = { route: 'cached', upstream: upstream.authority };
    const samples = await metrics(proxy);
    expect(
      table(
        samplesOf(samples, 'reprise_retries_total', pair),
        'reprise_retries_total',
        'reason',
        true,
      ),
    ).toEqual(['500=0', 'connect-failure=0']);
    expect(
      samplesOf(samples, 'reprise_fallbacks_total', pair).map(
        (s) => `${s.labels.cause}=${s.value}`,
      ),
    ).toEqual(['connect-failure=0', 'timeout=0', 'circuit-open=0']);
  });

  it('starts every tunnel outcome of an upstream at its first CONNECT', async () => {
    proxy = await startProxy(`${FAST}connect: { allowedPorts: [1], retry: { attempts: 1 } }\n`);
    const answer = await connectThrough(proxy.port, '127.0.0.1:1');
    expect(answer).toMatch(/^HTTP\/1\.1 502 /);
    const samples = await metrics(proxy);
    const tunnels = samplesOf(samples, 'reprise_tunnels_total', { upstream: '127.0.0.1:1' });
    expect(tunnels.map((s) => `${s.labels.outcome}=${s.value}`).sort()).toEqual(
      [
        ...zeros(TUNNEL_OUTCOMES.filter((o) => o !== 'connect-failure')),
        'connect-failure=1',
      ].sort(),
    );
  });
});

describe("the client's own limit on tries", () => {
  it('counts x-reprise-retry: off as a suppressed retry, cause client-limit, in the access line too', async () => {
    upstream = await startUpstream([reply(503)]);
    proxy = await startProxy(FAST);
    const answer = await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`, {
      headers: { 'x-reprise-retry': 'off' },
    });
    expect(answer.status).toBe(503);
    expect(proxy.requests()).toEqual([
      expect.objectContaining({ attempts: 1, retries: [], suppressed: 'client-limit' }),
    ]);
    const pair = { route: 'default', upstream: upstream.authority };
    expect(
      countedOf(await metrics(proxy), 'reprise_retries_suppressed_total', pair).map(
        (s) => `${s.labels.cause}=${s.value}`,
      ),
    ).toEqual(['client-limit=1']);
  });

  it('leaves no suppressed cause when the tries the client allowed ended in success', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    proxy = await startProxy(FAST);
    await viaProxy(proxy.port, 'GET', `${upstream.origin}/a`, {
      headers: { 'x-reprise-retry': 'off' },
    });
    expect(proxy.requests()[0]?.suppressed).toBeUndefined();
  });
});

describe('metric names', () => {
  it('gives no gauge, histogram or summary a _total suffix (promtool check metrics)', async () => {
    proxy = await startProxy(FAST);
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)];
    expect(types.length).toBeGreaterThan(20);
    const misnamed = types.filter(
      ([, name, type]) => type !== 'counter' && name?.endsWith('_total'),
    );
    expect(misnamed.map(([line]) => line)).toEqual([]);
    // the labelled gauges the left-out sums came from are still there
    expect(text).toMatch(/^# TYPE nodejs_active_handles gauge$/m);
  });
});

describe('the upstream label cap', () => {
  it('keeps at most 501 distinct upstream label values after 600 distinct upstreams', async () => {
    // 600 authorities on loopback (127.0.0.0/8 routes to lo): nothing listens on the port,
    // so each single try ends at once in connect-failure
    const port = await deadPort();
    const proxy = await startProxy(FAST, { logLevel: 'warn' });
    const authorities = Array.from(
      { length: 600 },
      (_, i) => `127.${1 + Math.floor(i / 250)}.${i % 250}.1:${port}`,
    );
    let next = 0;
    const worker = async () => {
      while (next < authorities.length) {
        const authority = authorities[next++] as string;
        const res = await viaProxy(proxy!.port, 'GET', `http://${authority}/`, {
          headers: { 'x-reprise-retry': 'off' },
        });
        expect(res.headers['x-reprise-error']).toBe('connect-failure');
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));

    const samples = await metrics(proxy);
    const labels = new Set(samples.flatMap((s) => s.labels.upstream ?? []));
    expect(labels.size).toBeLessThanOrEqual(501);
    expect(labels.has('other')).toBe(true);
    const requests = samplesOf(samples, 'reprise_requests_total');
    expect(requests.reduce((sum, s) => sum + s.value, 0)).toBe(600);
    expect(samplesOf(requests, 'reprise_requests_total', { upstream: 'other' })[0]?.value).toBe(
      100,
    );
  });
});

describe('the Grafana dashboard (deploy/grafana/reprise-dashboard.json)', () => {
  interface Panel {
    readonly title: string;
    readonly datasource?: { uid: string };
    readonly targets?: { expr: string; datasource?: { uid: string } }[];
  }
  interface Variable {
    readonly name: string;
    readonly type: string;
    readonly query?: unknown;
    readonly datasource?: { uid: string };
  }
  const text = readFileSync('deploy/grafana/reprise-dashboard.json', 'utf8');
  const dashboard = JSON.parse(text) as {
    panels: Panel[];
    templating: { list: Variable[] };
    __inputs?: unknown[];
  };
  // a literal string here: Grafana substitutes the variable
  const DATASOURCE = ['$', '{datasource}'].join('');
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it('queries, in valid PromQL, only metrics that /metrics exposes', async () => {
    const proxy = await startProxy(FAST);
    const text = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    const exposed = new Set<string>();
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exposed.add(name as string);
      if (type === 'histogram')
        for (const s of ['_bucket', '_sum', '_count']) exposed.add(name + s);
    }
    const used = new Set<string>();
    for (const query of queries) {
      const tree = promql.parse(query.replaceAll('$__rate_interval', '5m'));
      tree.iterate({
        enter: (node) => {
          expect(node.type.isError, `${query} does not parse`).toBe(false);
          if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') {
            used.add(query.replaceAll('$__rate_interval', '5m').slice(node.from, node.to));
          }
        },
      });
    }
    expect([...used].filter((name) => !exposed.has(name))).toEqual([]);
    expect(used.size).toBeGreaterThanOrEqual(10);
  });

  it('reads every panel and variable from a datasource variable, with no import input', () => {
    // file provisioning (kube-prometheus-stack's sidecar) fills in no __inputs: a
    // ${DS_...} placeholder would stay unresolved there, so there must be none
    expect(dashboard.__inputs ?? []).toEqual([]);
    expect(text).not.toMatch(/\$\{?DS_/);
    const [first] = dashboard.templating.list;
    expect(first).toMatchObject({ name: 'datasource', type: 'datasource', query: 'prometheus' });
    const queried = dashboard.panels.filter((p) => p.targets !== undefined);
    expect(queried.length).toBeGreaterThanOrEqual(10);
    expect(queried.filter((p) => p.datasource?.uid !== DATASOURCE).map((p) => p.title)).toEqual([]);
    const targets = queried.flatMap((p) => p.targets ?? []);
    expect(targets.filter((t) => t.datasource?.uid !== DATASOURCE)).toEqual([]);
    const queryVariables = dashboard.templating.list.filter((v) => v.type === 'query');
    expect(queryVariables.filter((v) => v.datasource?.uid !== DATASOURCE)).toEqual([]);
  });

  it('refers only to variables it defines, or to Grafana built-ins', () => {
    const defined = new Set(dashboard.templating.list.map((v) => v.name));
    const referred = [...text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map(
      (m) => m[1] as string,
    );
    expect(referred.length).toBeGreaterThan(0);
    expect(referred.filter((name) => !name.startsWith('__') && !defined.has(name))).toEqual([]);
  });

  it('offers $upstream and $route, and every reprise query is filtered by upstream', () => {
    expect(dashboard.templating.list.map((v) => v.name)).toEqual([
      'datasource',
      'upstream',
      'route',
    ]);
    const unfiltered = queries.filter(
      (q) => !q.includes('$upstream') && !/reprise_(buffered_bytes|config_reloads)/.test(q),
    );
    expect(unfiltered).toEqual([]);
  });
});
