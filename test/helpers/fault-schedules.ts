/**
 * When an upstream fails, as a function of time: shared by the model of protection
 * (protection-model.ts), the faulty upstream of the scenario matrix and the bench.
 * Time is ms since the schedule started; every schedule is seeded, so a run repeats.
 */
import { seededRandom } from './seeded-random.ts';

/** Whether a try arriving at `atMs` fails (each call may draw from the schedule's own random). */
export type FaultSchedule = (atMs: number) => boolean;

/** Gilbert–Elliott in steps of `stepMs`: good → bad with `p`, bad → good with `r`, per step. */
export function gilbertElliott(seed: number, p: number, r: number, stepMs = 5): FaultSchedule {
  const random = seededRandom(seed);
  let step = -1;
  let bad = false;
  return (atMs) => {
    const target = Math.floor(atMs / stepMs);
    while (step < target) {
      step++;
      bad = bad ? random() >= r : random() < p;
    }
    return bad;
  };
}

/** The bursty upstream of the field report: bad 9% of the time, in spells of ~25 ms, some 80+. */
export function bursty(seed: number): FaultSchedule {
  return gilbertElliott(seed, 0.02, 0.2);
}

/** Each try fails with probability `share`. */
export function randomFailures(seed: number, share: number): FaultSchedule {
  const random = seededRandom(seed);
  return () => random() < share;
}

/** Fails from `fromMs` until `untilMs`. */
export function outage(fromMs = 0, untilMs = Number.POSITIVE_INFINITY): FaultSchedule {
  return (atMs) => atMs >= fromMs && atMs < untilMs;
}

/** `badMs` failing, then `goodMs` healthy, over and over, starting bad at 0. */
export function flapping(badMs: number, goodMs: number): FaultSchedule {
  return (atMs) => atMs % (badMs + goodMs) < badMs;
}

/**
 * The first moment at or after `fromMs` at which a fresh copy of the schedule fails: a start
 * phase inside a bad spell. `make` must build the same schedule each time (same seed).
 */
export function firstBadMoment(make: () => FaultSchedule, fromMs: number, stepMs = 1): number {
  const schedule = make();
  for (let atMs = fromMs; atMs < fromMs + 3_600_000; atMs += stepMs) {
    if (schedule(atMs)) return atMs;
  }
  throw new Error('the schedule never fails');
}
