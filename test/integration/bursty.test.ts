/**
 * The defaults must ride out short bursts of failures on a healthy upstream, and never trip
 * the breaker for them (SPEC §4). Nothing is tuned here: the embedded defaults, exactly.
 *
 * The upstream fails in bursts of 10–50 ms, about 10% of the time (a seeded Gilbert–Elliott
 * schedule). Clients are closed-loop (10 at a time, each sending its next request when the
 * last one ends), as a service's workers are.
 */
import { describe, expect, it } from 'vitest';
import { closeAfterEach } from '../helpers/close-after-each.ts';
import { startProxy, type TestProxy, viaProxy } from '../helpers/proxy.ts';
import { burstyFailures, reply, startUpstream } from '../helpers/upstream.ts';

const SEEDS = [1, 2, 3];
const REQUESTS_PER_SEED = 3000;
const CONCURRENCY = 10;

closeAfterEach();

/** Runs the requests against a fresh upstream and proxy; returns how many got a 200. */
async function runSeed(seed: number): Promise<{ ok: number; circuitLines: number }> {
  const bursty = burstyFailures({
    seed,
    badShare: 0.1,
    minBadMs: 10,
    maxBadMs: 50,
    failStep: reply(503, 'burst'),
    okStep: reply(200, 'ok'),
  });
  const upstream = await startUpstream([bursty]);
  const proxy = await startProxy('', { logLevel: 'info' });
  let started = 0;
  let ok = 0;
  const url = `${upstream.origin}/`;
  const worker = async (px: TestProxy) => {
    while (started < REQUESTS_PER_SEED) {
      started++;
      if ((await viaProxy(px.port, 'GET', url)).status === 200) ok++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, () => worker(proxy)));
  const { requests, failed, bursts } = bursty.stats();
  const circuitLines = proxy.logs.filter((line) => line.msg === 'circuit').length;
  console.log(
    `seed ${seed}: upstream failed ${failed} of ${requests} tries ` +
      `(${((100 * failed) / requests).toFixed(1)}%) in ${bursts} bursts; ` +
      `${ok}/${REQUESTS_PER_SEED} requests succeeded (${((100 * ok) / REQUESTS_PER_SEED).toFixed(2)}%)`,
  );
  await proxy.close();
  await upstream.close();
  return { ok, circuitLines };
}

describe('a bursty upstream under the default settings', () => {
  it('heals at least 99.5% of requests and never opens the circuit', async () => {
    let ok = 0;
    for (const seed of SEEDS) {
      const run = await runSeed(seed);
      expect(run.circuitLines, `circuit transitions with seed ${seed}`).toBe(0);
      ok += run.ok;
    }
    const total = SEEDS.length * REQUESTS_PER_SEED;
    console.log(`bursty upstream: ${ok}/${total} succeeded (${((100 * ok) / total).toFixed(2)}%)`);
    expect(ok / total).toBeGreaterThanOrEqual(0.995);
  });
});
