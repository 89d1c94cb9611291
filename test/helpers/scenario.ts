/**
 * One resilience scenario on real parts: a loopback upstream that fails on a time schedule,
 * and clients driving it direct and through a real reprise at the same time, so both sides
 * meet the same bad spells. Used by the suite's matrix (short runs, several seeds and start
 * phases) and by `npm run bench` (longer runs).
 *
 *   const r = await runScenario({ schedule: gilbertElliott(1, 0.02, 0.2), clients: 10, ... });
 *   r.direct.ok / r.direct.requests  vs  r.via.ok / r.via.requests
 */
import { once } from 'node:events';
import { Agent, createServer, request, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { FaultSchedule } from './fault-schedules.ts';
import { startProxy, type TestProxy } from './proxy.ts';
import { seededRandom } from './seeded-random.ts';

/** How traffic meets a fault schedule: shared by the real scenarios and the model. */
export interface Traffic {
  /** Where in the fault schedule traffic starts (the schedule runs from 0). */
  readonly phaseMs?: number;
  readonly seed: number;
  /** Closed-loop clients per side (each sends its next request when the last one ends)... */
  readonly clients?: number;
  /** ...or an open loop: this many requests a second per side, evenly spaced. */
  readonly requestsPerSecond?: number;
  readonly durationMs: number;
}

export interface ScenarioOptions extends Traffic {
  /** When the upstream fails, in ms since it started. */
  readonly schedule: FaultSchedule;
  /** How a failing upstream answers: 503, a reset before the head, or either at random. */
  readonly failWith?: '503' | 'reset' | 'mixed';
  /** Every answer (good or bad) is delayed this long... */
  readonly delayMs?: number;
  /** ...or each by what this returns (given the upstream's seeded random), before its head. */
  readonly answerDelayMs?: (random: () => number) => number;
  /** The upstream serves this many requests at a time; the rest queue in arrival order. */
  readonly maxServing?: number;
  /** Closed loop: stop after this many requests per side (and at `durationMs` at the latest). */
  readonly requests?: number;
  /** Config for the proxy, without version/listen/admin; '' = the embedded defaults. */
  readonly proxyYaml?: string;
  /** A client gives up on a request after this long (counted as failed). */
  readonly clientTimeoutMs?: number;
  /** This many reprise processes side by side, each driven as one via side is (default 1). */
  readonly fleet?: number;
}

export interface Outcome {
  /** Ms since traffic started. */
  readonly startMs: number;
  readonly endMs: number;
  readonly ok: boolean;
  /** The `x-reprise-error` of an answer reprise made itself. */
  readonly error: string | undefined;
  readonly retryAfter: boolean;
}

/** What both the real scenarios and the virtual-clock model count on each side. */
export interface SideCounts {
  readonly requests: number;
  readonly ok: number;
  /** Tries that reached the upstream, with when they arrived (ms since traffic started). */
  readonly tries: number;
  readonly tryTimes: readonly number[];
}

export interface SideResult extends SideCounts {
  readonly outcomes: readonly Outcome[];
}

export interface ScenarioResult {
  readonly direct: SideResult;
  readonly via: SideResult & {
    /** Ms the circuit spent away from closed. */
    readonly openMs: number;
    readonly circuitOpenAnswers: number;
  };
}

const DIRECT = 'direct';
const VIA = 'via';

/** Runs one scenario to its end; everything it started is closed before it returns. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const upstream = await startScheduledUpstream(options);
  const proxies: TestProxy[] = [];
  try {
    for (let i = 0; i < (options.fleet ?? 1); i++) {
      proxies.push(await startProxy(options.proxyYaml ?? '', { logLevel: 'info' }));
    }
    const startedAt = performance.now();
    upstream.start(startedAt);
    const [direct, ...vias] = await Promise.all([
      drive(options, startedAt, DIRECT, upstream.port, undefined),
      ...proxies.map((proxy) => drive(options, startedAt, VIA, upstream.port, proxy.port)),
    ]);
    const outcomes = vias.flatMap((via) => via.outcomes).sort((a, b) => a.startMs - b.startMs);
    return {
      direct: { ...direct, ...upstream.tries(DIRECT) },
      via: {
        requests: outcomes.length,
        ok: outcomes.filter((o) => o.ok).length,
        outcomes,
        ...upstream.tries(VIA),
        openMs: Math.max(...proxies.map((proxy) => circuitOpenMs(proxy, startedAt))),
        circuitOpenAnswers: outcomes.filter((o) => o.error === 'circuit-open').length,
      },
    };
  } finally {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await upstream.close();
  }
}

/** The share of requests that succeeded, 0..1. */
export function successShare(side: SideCounts): number {
  return side.requests === 0 ? 0 : side.ok / side.requests;
}

/** Upstream tries per client request. */
export function triesPerRequest(side: SideCounts): number {
  return side.tries / Math.max(1, side.requests);
}

/**
 * The same share, over the requests that started in [fromMs, toMs); NaN when none did, so
 * that a proxy that stopped answering fails any bound rather than passing it.
 */
export function successShareBetween(side: SideResult, fromMs: number, toMs: number): number {
  const within = side.outcomes.filter((o) => o.startMs >= fromMs && o.startMs < toMs);
  return within.length === 0 ? Number.NaN : within.filter((o) => o.ok).length / within.length;
}

/** Upstream tries per client request, counting both from `fromMs` (ms after traffic started). */
export function triesPerRequestFrom(side: SideResult, fromMs: number): number {
  const requests = side.outcomes.filter((o) => o.startMs >= fromMs).length;
  const tries = side.tryTimes.filter((t) => t >= fromMs).length;
  return tries / Math.max(1, requests);
}

/** Answer delays where `share` of the answers stall `stallMs` before the head, the rest `usualMs`. */
export function stallsBeforeHead(
  share: number,
  stallMs: number,
  usualMs: number,
): (random: () => number) => number {
  return (random) => (random() < share ? stallMs : usualMs);
}

/** p50 / p99 / p99.9 of both sides, for a test log or the bench. */
export function describeLatencies(r: ScenarioResult): string {
  const q = (side: SideResult) =>
    [0.5, 0.99, 0.999].map((p) => latencyQuantileMs(side, p).toFixed(1)).join(' / ');
  return `p50 / p99 / p99.9: direct ${q(r.direct)} ms, via reprise ${q(r.via)} ms`;
}

/** The `q` quantile (0..1) of the client-side latency of every request, in ms. */
export function latencyQuantileMs(side: SideResult, q: number): number {
  const sorted = side.outcomes.map((o) => o.endMs - o.startMs).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** When reprise first answered `circuit-open`, ms after traffic started; undefined if never. */
export function firstCircuitOpenMs(side: SideResult): number | undefined {
  return side.outcomes.find((o) => o.error === 'circuit-open')?.startMs;
}

/** A readable line for a test log or the bench. */
export function describeRun(name: string, r: ScenarioResult): string {
  const pct = (side: SideResult) => `${(100 * successShare(side)).toFixed(2)}%`;
  const perRequest = triesPerRequest(r.via).toFixed(3);
  return (
    `${name}: direct ${pct(r.direct)} of ${r.direct.requests}, via reprise ${pct(r.via)} of ` +
    `${r.via.requests}; ${perRequest} upstream tries per request via reprise; circuit open ` +
    `${Math.round(r.via.openMs)} ms, ${r.via.circuitOpenAnswers} circuit-open answers`
  );
}

interface ScheduledUpstream {
  readonly port: number;
  start(atMs: number): void;
  tries(side: string): { tries: number; tryTimes: number[] };
  close(): Promise<void>;
}

async function startScheduledUpstream(options: ScenarioOptions): Promise<ScheduledUpstream> {
  const random = seededRandom(options.seed * 31 + 7);
  const phaseMs = options.phaseMs ?? 0;
  const failWith = options.failWith ?? 'mixed';
  let startedAt = Number.NaN;
  const seen = new Map<string, number[]>([
    [DIRECT, []],
    [VIA, []],
  ]);
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const sinceStart = performance.now() - startedAt;
    const side = req.headers.via === undefined ? DIRECT : VIA;
    seen.get(side)?.push(sinceStart);
    const failed = options.schedule(sinceStart + phaseMs);
    const answer = () => {
      if (failed && (failWith === 'reset' || (failWith === 'mixed' && random() < 0.5))) {
        req.socket.destroy();
        return;
      }
      const body = failed ? 'bad spell' : 'ok';
      res.writeHead(failed ? 503 : 200, {
        'content-type': 'text/plain',
        'content-length': body.length,
      });
      res.end(body);
    };
    req.resume();
    req.on('end', () => serve(res, answer));
  });
  // a served answer holds its slot until its response ends or its connection goes
  let serving = 0;
  const queue: (() => void)[] = [];
  const serve = (res: ServerResponse, answer: () => void): void => {
    const go = (): void => {
      // its client left while it queued (a cancelled hedge): the next one goes
      if (res.socket === null || res.socket.destroyed) {
        queue.shift()?.();
        return;
      }
      serving++;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        serving--;
        queue.shift()?.();
      };
      res.on('close', release);
      const delayMs = options.answerDelayMs?.(random) ?? options.delayMs;
      if (delayMs === undefined) {
        answer();
        return;
      }
      const timer = setTimeout(answer, delayMs);
      res.on('close', () => clearTimeout(timer));
    };
    if (options.maxServing === undefined || serving < options.maxServing) go();
    else queue.push(go);
  };
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    start(atMs) {
      startedAt = atMs;
    },
    tries(side) {
      const times = seen.get(side) ?? [];
      return { tries: times.length, tryTimes: times };
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Drives one side: closed-loop clients or an open loop, until the scenario's end. */
async function drive(
  options: ScenarioOptions,
  startedAt: number,
  side: string,
  upstreamPort: number,
  proxyPort: number | undefined,
): Promise<{ requests: number; ok: number; outcomes: Outcome[] }> {
  const clients = options.clients ?? 10;
  const agent = new Agent({ keepAlive: true, maxSockets: Math.max(clients, 64) });
  const outcomes: Outcome[] = [];
  const endAt = startedAt + options.durationMs;
  const url = `http://127.0.0.1:${upstreamPort}/${side}`;
  const timeoutMs = options.clientTimeoutMs ?? 15_000;
  const one = async (): Promise<void> => {
    const startMs = performance.now() - startedAt;
    const answer = await send(agent, url, proxyPort, timeoutMs);
    outcomes.push({ startMs, endMs: performance.now() - startedAt, ...answer });
  };
  if (options.requestsPerSecond !== undefined) {
    const gapMs = 1000 / options.requestsPerSecond;
    const pending: Promise<void>[] = [];
    for (let i = 0; startedAt + i * gapMs < endAt; i++) {
      const waitMs = startedAt + i * gapMs - performance.now();
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      pending.push(one());
    }
    await Promise.all(pending);
  } else {
    const limit = options.requests ?? Number.POSITIVE_INFINITY;
    let started = 0;
    const worker = async (): Promise<void> => {
      while (started < limit && performance.now() < endAt) {
        started++;
        await one();
      }
    };
    await Promise.all(Array.from({ length: clients }, worker));
  }
  agent.destroy();
  outcomes.sort((a, b) => a.startMs - b.startMs);
  return { requests: outcomes.length, ok: outcomes.filter((o) => o.ok).length, outcomes };
}

/** One GET, direct or through the proxy; any error or timeout is a failed request. */
function send(
  agent: Agent,
  url: string,
  proxyPort: number | undefined,
  timeoutMs: number,
): Promise<{ ok: boolean; error: string | undefined; retryAfter: boolean }> {
  const target = new URL(url);
  return new Promise((resolve) => {
    const req = request({
      agent,
      host: '127.0.0.1',
      port: proxyPort ?? Number(target.port),
      path: proxyPort === undefined ? target.pathname : url,
    });
    const timer = setTimeout(() => req.destroy(new Error('client timeout')), timeoutMs);
    let settled = false;
    const done = (ok: boolean, error?: string, retryAfter = false) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok, error, retryAfter });
    };
    req.on('error', () => done(false));
    req.on('response', (res) => {
      const error = res.headers['x-reprise-error'] as string | undefined;
      const retryAfter = res.headers['retry-after'] !== undefined;
      res.on('error', () => done(false));
      res.on('end', () => done(res.statusCode === 200 && res.complete, error, retryAfter));
      res.resume();
    });
    req.end();
  });
}

/** Ms the circuit spent away from closed, from the proxy's `circuit` warn lines. */
function circuitOpenMs(proxy: TestProxy, startedAt: number): number {
  const epochAtStart = Date.now() - (performance.now() - startedAt);
  let openedAt: number | undefined;
  let total = 0;
  for (const line of proxy.logs) {
    if (line.msg !== 'circuit') continue;
    const at = Number(line.time) - epochAtStart;
    if (line.to === 'closed') {
      if (openedAt !== undefined) total += at - openedAt;
      openedAt = undefined;
    } else {
      openedAt ??= at;
    }
  }
  if (openedAt !== undefined) total += performance.now() - startedAt - openedAt;
  return total;
}
