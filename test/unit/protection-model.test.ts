/**
 * SPEC §4's rule over many seeds and start phases, on a virtual clock: the real gate, breaker,
 * budget and retry decision with the embedded defaults, against modelled closed-loop and
 * open-loop clients (test/helpers/protection-model.ts). The integration matrix checks the
 * same rows on the real proxy with fewer seeds.
 */
import { describe, expect, it } from 'vitest';
import { embeddedDefaults } from '../../src/config/compile.ts';
import {
  bursty,
  firstBadMoment,
  flapping,
  outage,
  randomFailures,
} from '../helpers/fault-schedules.ts';
import { type ModelOptions, runModel } from '../helpers/protection-model.ts';
import { successShare, triesPerRequest } from '../helpers/scenario.ts';

const config = embeddedDefaults();
const SEEDS = Array.from({ length: 12 }, (_, i) => i + 1);
const model = (options: Omit<ModelOptions, 'config'>) => runModel({ config, ...options });

describe('protection model with the embedded defaults', () => {
  it('heals a bursty upstream from every phase, a bad spell included, never opening', () => {
    for (const seed of SEEDS) {
      const faults = () => bursty(seed);
      for (const phaseMs of [seed * 911, firstBadMoment(faults, seed * 1_000)]) {
        const r = model({ faults, seed, clients: 10, durationMs: 1_500, phaseMs });
        expect(successShare(r.via), `seed ${seed} phase ${phaseMs}`).toBeGreaterThanOrEqual(0.995);
        expect(triesPerRequest(r.via)).toBeLessThanOrEqual(1.15);
        expect(r.via.openMs).toBe(0);
      }
    }
  });

  it('never does worse than direct on random failures up to 90%, at 10 clients or 2 a second', () => {
    for (const failed of [0.1, 0.3, 0.5, 0.7, 0.9]) {
      for (const seed of SEEDS.slice(0, 4)) {
        const faults = () => randomFailures(seed, failed);
        const busy = model({ faults, seed, clients: 10, durationMs: 1_000 });
        expect(successShare(busy.via), `${failed} busy`).toBeGreaterThanOrEqual(
          successShare(busy.direct),
        );
        expect(busy.via.openMs).toBe(0);
        const quiet = model({ faults, seed, requestsPerSecond: 2, durationMs: 120_000 });
        expect(successShare(quiet.via), `${failed} quiet`).toBeGreaterThanOrEqual(
          successShare(quiet.direct),
        );
      }
    }
  });

  it('sheds a total outage at 50 clients within 2 s', () => {
    const r = model({ faults: () => outage(), seed: 1, clients: 50, durationMs: 4_000 });
    const late = r.via.requestTimes.filter((t) => t >= 2_000).length;
    const lateTries = r.via.tryTimes.filter((t) => t >= 2_000).length;
    expect(lateTries / late).toBeLessThanOrEqual(0.05);
    expect(r.via.firstOpenMs).toBeLessThan(2_000);
    // the late requests are answered by reprise itself, not left to time out
    expect(r.via.circuitOpenAnswers).toBeGreaterThanOrEqual(late - lateTries);
  });

  it('engages on a total outage at 2 requests a second, then probes at most once per 5 s', () => {
    for (const seed of SEEDS) {
      const r = model({
        faults: () => outage(),
        seed,
        requestsPerSecond: 2,
        durationMs: 60_000,
        phaseMs: seed * 123,
      });
      const engagedMs = r.via.firstOpenMs as number;
      expect(engagedMs).toBeLessThan(30_000);
      const after = r.via.tryTimes.filter((t) => t > engagedMs).length;
      expect(after).toBeLessThanOrEqual((60_000 - engagedMs) / 5_000);
    }
  });

  it('keeps a fleet of 20 at 2 requests a second each under 1.2 tries per request', () => {
    let requests = 0;
    let tries = 0;
    let lateRequests = 0;
    let lateTries = 0;
    for (let i = 0; i < 20; i++) {
      const r = model({
        faults: () => outage(),
        seed: i + 1,
        requestsPerSecond: 2,
        durationMs: 60_000,
        phaseMs: i * 37,
      });
      requests += r.via.requests;
      tries += r.via.tries;
      lateRequests += r.via.requestTimes.filter((t) => t >= 30_000).length;
      lateTries += r.via.tryTimes.filter((t) => t >= 30_000).length;
    }
    expect(tries).toBeLessThanOrEqual(1.2 * requests);
    expect(lateTries).toBeLessThanOrEqual(0.1 * lateRequests);
  });

  it('heals within 10 s of an outage ending, at 10 clients and at 2 a second', () => {
    for (const seed of SEEDS.slice(0, 4)) {
      const healMs = 10_000 + seed * 777;
      const faults = () => outage(0, healMs);
      for (const traffic of [{ clients: 10 }, { requestsPerSecond: 2 }]) {
        const r = model({ faults, seed, durationMs: healMs + 15_000, ...traffic });
        const after = r.via.requestTimes.filter((t) => t >= healMs + 10_000).length;
        const okAfter = r.via.okTimes.filter((t) => t >= healMs + 10_000).length;
        expect(okAfter / after).toBeGreaterThanOrEqual(0.99);
      }
    }
  });

  it('does at least as well as direct when the upstream flaps 1 s bad, 1 s good', () => {
    for (const phaseMs of [0, 250, 500, 750, 1_000, 1_500]) {
      const r = model({
        faults: () => flapping(1_000, 1_000),
        seed: 1,
        durationMs: 6_000,
        phaseMs,
      });
      expect(successShare(r.via), `phase ${phaseMs}`).toBeGreaterThanOrEqual(
        successShare(r.direct),
      );
      expect(r.via.openMs).toBe(0);
    }
  });
});
