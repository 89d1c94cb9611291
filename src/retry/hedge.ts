/**
 * When a hedge starts (SPEC §3): a second try of a safe request while the first still waits,
 * after `retry.hedge.after`, or with `auto` after what this upstream usually takes. Pure.
 */
import type { Hedge } from '../config/types.ts';

/** Only these are hedged: a repeat of them changes nothing upstream (RFC 9110 §9.2.1). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * `auto` trusts what the upstream usually takes once it has this many answers; until then it
 * hedges only a try that has waited `AUTO_CEILING_MS`: the first requests to a lossy upstream
 * are the ones most likely to sit in TCP's back-off, and nothing else would cut them before
 * `perTryTimeout`.
 */
export const AUTO_MIN_SAMPLES = 20;
/** `auto` hedges after this multiple of the upstream's 90th percentile... */
const AUTO_FACTOR = 2;
/** ...but never sooner than this, nor later than `AUTO_CEILING_MS`. */
export const AUTO_FLOOR_MS = 25;
export const AUTO_CEILING_MS = 2000;

/** What an upstream usually takes (resilience/latency-tracker.ts). */
export interface UsualLatency {
  readonly samples: number;
  quantileMs(): number | undefined;
}

/** Whether a request with `method` may be hedged at all under `hedge`. */
export function isHedged(hedge: Hedge, method: string): boolean {
  return hedge.max >= 2 && hedge.afterMs !== 'off' && SAFE_METHODS.has(method);
}

/** Ms after a try starts before a hedge may follow it; undefined: no hedge for this request. */
export function hedgeDelayMs(
  hedge: Hedge,
  method: string,
  usual: UsualLatency,
): number | undefined {
  const { afterMs } = hedge;
  if (afterMs === 'off' || !isHedged(hedge, method)) return undefined;
  if (afterMs !== 'auto') return afterMs;
  const quantileMs = usual.quantileMs();
  if (usual.samples < AUTO_MIN_SAMPLES || quantileMs === undefined) return AUTO_CEILING_MS;
  return Math.min(AUTO_CEILING_MS, Math.max(AUTO_FLOOR_MS, Math.ceil(AUTO_FACTOR * quantileMs)));
}
