/**
 * Real kernel packet loss (test/helpers/netns.ts): a namespace of its own per seed (two seeds,
 * side by side), nftables dropping the upstream port's packets in seeded Gilbert–Elliott
 * bursts, clients going direct and through reprise (the embedded defaults, and the same
 * without content-aware retry) at the same time. Whatever the loss does to the figures,
 * reprise's own record of each request must match what its client saw: every broken answer
 * is named, none is logged as clean; while direct still completes requests, reprise answers
 * none with `circuit-open` (SPEC §4); and reprise never completes fewer than direct. Two more
 * seeds do the same with the upstream on HTTPS: the direct client over TLS, reprise's client
 * calling `http://` and reprise originating the TLS (`upstreams[].tls`).
 * Skipped, with the reason in its name, where namespaces or nftables are not allowed.
 */
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  failureKinds,
  type LossRunResult,
  REPRISE_CLI,
  runLossExperiment,
  type SideResult,
} from '../helpers/loss/run.ts';
import { createNetns, type Netns, netnsUnavailable } from '../helpers/netns.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';

const REQUESTS = 60;
/** Two seeds, run side by side in namespaces of their own, so the file stays near a minute. */
const SEEDS = [3, 1];
/** Two more for TLS origination, beside them. */
const TLS_SEEDS = [2, 4];
const unavailable = netnsUnavailable();
const skipNote = unavailable === undefined ? '' : ` (skipped: ${unavailable})`;

const namespaces: Netns[] = [];
const fixtures: TlsFixture[] = [];
afterAll(async () => {
  await Promise.all(namespaces.map((ns) => ns.close()));
  for (const fixture of fixtures) fixture.remove();
});

/** Client outcomes that reprise itself must have logged the same way. */
function namedFailures(side: SideResult): Record<string, number> {
  const named: Record<string, number> = {};
  for (const [outcome, n] of Object.entries(side.outcomes)) {
    if (outcome === 'body-cut') named['200 body-cut'] = n;
    else if (outcome.startsWith('error:')) named[outcome.slice(6)] = n;
  }
  return named;
}

function loggedFailures(side: SideResult): Record<string, number> {
  const logged: Record<string, number> = {};
  for (const line of side.proxyLines ?? []) {
    if (line.error === undefined) continue;
    const key = line.status === 200 ? `200 ${line.error}` : String(line.error);
    logged[key] = (logged[key] ?? 0) + 1;
  }
  return logged;
}

function figures(run: LossRunResult): string {
  const sides = run.sides.map((side) => {
    const kinds = side.proxyLines === undefined ? '' : ` ${JSON.stringify(failureKinds(side))}`;
    return `${side.name} ${side.ok}/${REQUESTS}${kinds}`;
  });
  const { bursts, badMs, droppedPackets } = run.loss;
  return `packet loss seed ${run.seed}: ${bursts} bursts, ${badMs} ms bad, ${droppedPackets} packets dropped; ${sides.join('; ')}`;
}

/** Requests (of 60) by which one run's direct side may beat the via side by chance. */
const SAMPLING_SLACK = 3;

/** What every run must show, whatever the loss did to its figures; `via`: the side that heals. */
function expectNamedAndNoWorse(run: LossRunResult, via: string): void {
  expect(run.loss.bursts).toBeGreaterThan(0);
  expect(run.loss.droppedPackets).toBeGreaterThan(0);
  for (const side of run.sides) {
    const total = Object.values(side.outcomes).reduce((a, b) => a + b, 0);
    expect(total, side.name).toBe(REQUESTS);
    if (side.proxyLines === undefined) continue;
    expect(side.proxyLines, side.name).toHaveLength(REQUESTS);
    expect(loggedFailures(side), side.name).toEqual(namedFailures(side));
  }
  // SPEC §4: a lossy but living link is no outage, so the breaker must not shed it
  const direct = run.sides.find((side) => side.name === 'direct');
  const healing = run.sides.find((side) => side.name === via);
  expect(direct?.ok).toBeGreaterThan(0);
  expect(healing?.outcomes['error:circuit-open'] ?? 0).toBe(0);
  // retries and hedges may only add successes to what the same link gives direct; the two
  // sides are separate samples of one lossy link, 60 requests each, so a gap of a few is
  // sampling (seen: 57 against 59 on a loaded run); the bench's 5 seeds of 100 hold the claim
  expect(healing?.ok ?? 0).toBeGreaterThanOrEqual((direct?.ok ?? 0) - SAMPLING_SLACK);
}

const LOAD = {
  requests: REQUESTS,
  concurrency: 10,
  clientTimeoutMs: 15_000,
  paceMs: 1000,
  loss: { badShare: 0.4, minBadMs: 2000, maxBadMs: 8000, badDropShare: 0.8 },
} as const;

describe.concurrent('real packet loss in a network namespace', () => {
  it.skipIf(unavailable !== undefined).each(SEEDS)(
    `seed %i: names every broken answer as its client saw it, direct and via reprise side by side${skipNote}`,
    async (seed) => {
      expect(existsSync(REPRISE_CLI), 'run `npm run build` first').toBe(true);
      const ns = await createNetns(`reprise-loss-s${seed}`);
      namespaces.push(ns);
      const run = await runLossExperiment(ns, {
        ...LOAD,
        seed,
        variants: [
          { name: 'via-defaults' },
          {
            name: 'via-no-content-retry',
            config: 'defaults:\n  route:\n    retry:\n      responseBuffer: 0\n',
          },
        ],
      });
      console.info(figures(run));
      expectNamedAndNoWorse(run, 'via-defaults');
    },
    60_000,
  );

  // the handshake and every record now cross the lossy link too: a handshake that stalls is a
  // connect-failure (retried for any method), and the client calls http:// as with upstreams[].tls
  it.skipIf(unavailable !== undefined || !hasOpenssl()).each(TLS_SEEDS)(
    `seed %i, TLS origination: the same with the upstream on HTTPS, direct over TLS and via reprise speaking the TLS${skipNote}`,
    async (seed) => {
      expect(existsSync(REPRISE_CLI), 'run `npm run build` first').toBe(true);
      const fixture = tlsFixture();
      fixtures.push(fixture);
      const ca = makeCa(fixture, 'ca');
      const server = makeLeaf(fixture, ca, 'server');
      const ns = await createNetns(`reprise-tls-loss-s${seed}`);
      namespaces.push(ns);
      const run = await runLossExperiment(ns, {
        ...LOAD,
        seed,
        tls: { caFile: ca.certFile, certFile: server.certFile, keyFile: server.keyFile },
        variants: [
          {
            name: 'via-tls',
            config: `upstreams:\n  - match: 127.0.0.1\n    tls: { ca: ${ca.certFile} }\n`,
          },
        ],
      });
      console.info(figures(run));
      expectNamedAndNoWorse(run, 'via-tls');
      const lines = run.sides.find((side) => side.name === 'via-tls')?.proxyLines ?? [];
      expect(lines.filter((line) => line.tls !== true)).toEqual([]);
    },
    60_000,
  );
});
