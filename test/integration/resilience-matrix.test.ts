/**
 * SPEC §4's rule, on real parts with the embedded defaults: for every failure pattern, at least
 * as many requests succeed through reprise as direct, whatever the phase at which traffic
 * starts; shedding only in a real outage, and there upstream load falls to a trickle at any
 * traffic level. Each row drives one faulty loopback upstream direct and through reprise at
 * the same time, with several seeds and start phases (one inside a bad spell). The bench runs
 * the same rows longer (`npm run bench`); test/unit/protection-model.test.ts runs them over
 * many more seeds on a virtual clock.
 */
import { describe, expect, it } from 'vitest';
import {
  bursty,
  firstBadMoment,
  flapping,
  outage,
  randomFailures,
} from '../helpers/fault-schedules.ts';
import {
  describeLatencies,
  describeRun,
  firstCircuitOpenMs,
  latencyQuantileMs,
  runScenario,
  type ScenarioResult,
  stallsBeforeHead,
  successShare,
  successShareBetween,
  triesPerRequest,
  triesPerRequestFrom,
} from '../helpers/scenario.ts';

const SEEDS = [1, 2, 3];

function report(name: string, r: ScenarioResult): ScenarioResult {
  console.log(describeRun(name, r));
  return r;
}

describe('protection with the embedded defaults (SPEC §4)', { timeout: 120_000 }, () => {
  it('heals a bursty upstream from any start phase, inside a bad spell too, without opening', async () => {
    for (const seed of SEEDS) {
      const phases = [seed * 700, firstBadMoment(() => bursty(seed), seed * 1_000)];
      for (const phaseMs of phases) {
        const r = report(
          `bursty seed ${seed} phase ${phaseMs} ms`,
          await runScenario({
            schedule: bursty(seed),
            phaseMs,
            seed,
            clients: 10,
            requests: 2_000,
            durationMs: 30_000,
          }),
        );
        expect(successShare(r.via), `seed ${seed} phase ${phaseMs}`).toBeGreaterThanOrEqual(0.995);
        expect(triesPerRequest(r.via)).toBeLessThanOrEqual(1.15);
        expect(r.via.openMs).toBe(0);
      }
    }
  });

  it('heals steady 10% failures without opening', async () => {
    for (const seed of SEEDS.slice(0, 2)) {
      const r = report(
        `10% random, seed ${seed}`,
        await runScenario({ schedule: randomFailures(seed, 0.1), seed, durationMs: 3_000 }),
      );
      expect(successShare(r.via)).toBeGreaterThanOrEqual(0.995);
      expect(r.via.openMs).toBe(0);
    }
  });

  it('does at least as well as direct on 30% failures, without opening', async () => {
    for (const seed of SEEDS.slice(0, 2)) {
      const r = report(
        `30% random, seed ${seed}`,
        await runScenario({ schedule: randomFailures(seed, 0.3), seed, durationMs: 3_000 }),
      );
      expect(successShare(r.via)).toBeGreaterThanOrEqual(successShare(r.direct));
      expect(r.via.openMs).toBe(0);
    }
  });

  it('does at least as well as direct when the upstream flaps 1 s bad, 1 s good', async () => {
    for (const phaseMs of [0, 500, 1_500]) {
      const r = report(
        `flapping 1 s / 1 s, phase ${phaseMs} ms`,
        await runScenario({
          schedule: flapping(1_000, 1_000),
          phaseMs,
          seed: 1,
          durationMs: 4_000,
        }),
      );
      expect(successShare(r.via)).toBeGreaterThanOrEqual(successShare(r.direct));
    }
  });

  it('passes a slow but correct upstream through untouched', async () => {
    const r = report(
      'every answer +300 ms',
      await runScenario({ schedule: () => false, delayMs: 300, seed: 1, durationMs: 3_000 }),
    );
    expect(successShare(r.via)).toBe(1);
    expect(r.via.openMs).toBe(0);
  });

  it('sheds a total outage at 50 clients: after 2 s, tries stay under 5% of requests', async () => {
    const r = report(
      'total outage, 50 clients',
      await runScenario({ schedule: outage(), seed: 1, clients: 50, durationMs: 5_000 }),
    );
    const late = r.via.outcomes.filter((o) => o.startMs >= 2_000);
    expect(late.length).toBeGreaterThan(0);
    expect(triesPerRequestFrom(r.via, 2_000)).toBeLessThanOrEqual(0.05);
    const refused = late.filter((o) => o.error === 'circuit-open');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((o) => o.retryAfter)).toBe(true);
  });

  it('heals fast once an outage ends: at least 99% succeed from 2 s after', async () => {
    const healMs = 3_000;
    const r = report(
      'outage that ends at 3 s, 10 clients',
      await runScenario({ schedule: outage(0, healMs), seed: 1, durationMs: 8_000 }),
    );
    expect(r.via.openMs).toBeGreaterThan(0);
    expect(successShareBetween(r.via, healMs + 2_000, 8_000)).toBeGreaterThanOrEqual(0.99);
  });

  it('engages at 2 requests a second, then probes at most once per 5 s, and heals', async () => {
    // the three low-traffic rows barely load the machine, so they share their 30 s
    const [low, fleet, ends] = await Promise.all([
      runScenario({ schedule: outage(), seed: 1, requestsPerSecond: 2, durationMs: 30_000 }),
      runScenario({
        schedule: outage(),
        seed: 2,
        requestsPerSecond: 2,
        durationMs: 30_000,
        fleet: 20,
      }),
      runScenario({
        schedule: outage(0, 15_000),
        seed: 3,
        requestsPerSecond: 2,
        durationMs: 30_000,
      }),
    ]);
    report('total outage, 2 requests/s', low);
    report('fleet of 20, 2 requests/s each, total outage', fleet);
    report('outage that ends at 15 s, 2 requests/s', ends);

    const engagedMs = firstCircuitOpenMs(low.via);
    expect(engagedMs).toBeDefined();
    // 50 tries at 6 a second fill the window by ~8 s, then failingFor: ~10 s (bench: 10.0 s)
    expect(engagedMs as number).toBeLessThan(20_000);
    const laterTries = low.via.tryTimes.filter((t) => t > (engagedMs as number)).length;
    expect(laterTries).toBeLessThanOrEqual(Math.ceil((30_000 - (engagedMs as number)) / 5_000));

    expect(fleet.via.tries).toBeLessThanOrEqual(1.2 * fleet.via.requests);
    expect(triesPerRequestFrom(fleet.via, 15_000)).toBeLessThanOrEqual(0.1);

    expect(successShareBetween(ends.via, 25_000, 30_000)).toBeGreaterThanOrEqual(0.99);
  });
});

/** 2% of answers stall 1 s before the head, the rest take 5 ms (SPEC §3 hedging). */
const tailStalls = stallsBeforeHead(0.02, 1_000, 5);

describe('tail latency with the embedded defaults', { timeout: 120_000 }, () => {
  it('cuts the tail of an upstream whose answers sometimes stall, with few extra tries', async () => {
    for (const seed of SEEDS) {
      const r = report(
        `tail (2% stall 1 s), seed ${seed}`,
        await runScenario({
          schedule: () => false,
          answerDelayMs: tailStalls,
          seed,
          durationMs: 4_000,
        }),
      );
      console.log(describeLatencies(r));
      expect(latencyQuantileMs(r.via, 0.99)).toBeLessThan(latencyQuantileMs(r.direct, 0.99) / 4);
      expect(triesPerRequest(r.via)).toBeLessThanOrEqual(1.05);
      expect(successShare(r.via)).toBe(1);
    }
  });

  it('adds no load to a saturated upstream (8 served at a time, 24 clients)', async () => {
    const r = report(
      'saturated (8 at a time, 24 clients)',
      await runScenario({
        schedule: () => false,
        answerDelayMs: () => 5,
        maxServing: 8,
        clients: 24,
        seed: 1,
        durationMs: 4_000,
      }),
    );
    console.log(describeLatencies(r));
    expect(triesPerRequest(r.via)).toBeLessThanOrEqual(1.05);
    expect(successShare(r.via)).toBe(1);
  });
});
