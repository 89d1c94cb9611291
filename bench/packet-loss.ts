/**
 * The long packet-loss run: the suite's test (test/integration/packet-loss.test.ts) at full
 * length, several seeds. Each seed: a network namespace of its own, nftables dropping 80% of
 * the upstream port's packets in Gilbert–Elliott bursts of 2–10 s (about 35% of the time),
 * 10 clients making 100 GETs of a 7 KB JSON per side with a 15 s client timeout, direct and
 * through five reprises at the same time: the embedded defaults, without hedging (to see what
 * it gains), without content-aware retry (`responseBuffer: 0`), and both with the breaker
 * held off (to see what the breaker costs).
 *
 * `node bench/packet-loss.ts` (needs root, ip, nft and a built dist/), or BENCH_ONLY=9 with
 * `npm run bench`. Env: BENCH_LOSS_SEEDS (default 1,2,3,4,5).
 */
import { failureKinds, runLossExperiment, type SideResult } from '../test/helpers/loss/run.ts';
import { createNetns, netnsUnavailable } from '../test/helpers/netns.ts';

const REQUESTS = 100;
const NO_CONTENT_RETRY = 'defaults:\n  route:\n    retry:\n      responseBuffer: 0\n';
const NO_BREAKER = 'upstreams:\n  - match: "127.0.0.1"\n    circuitBreaker: { enabled: false }\n';

const NO_HEDGE = 'defaults:\n  route:\n    retry:\n      hedge: { after: off }\n';

const VARIANTS = [
  { name: 'defaults' },
  { name: 'hedge off', config: NO_HEDGE },
  { name: 'responseBuffer 0', config: NO_CONTENT_RETRY },
  { name: 'breaker off', config: NO_BREAKER },
  { name: 'breaker off, responseBuffer 0', config: NO_BREAKER + NO_CONTENT_RETRY },
];

function cell(side: SideResult): string {
  if (side.proxyLines === undefined) return String(side.ok);
  const { bodyCut, circuitOpen, other } = failureKinds(side);
  return `${side.ok} (cut ${bodyCut}, open ${circuitOpen}, other ${other})`;
}

/** Runs every seed; returns the markdown lines of the table. */
export async function packetLoss(progress: (line: string) => void): Promise<string[]> {
  const why = netnsUnavailable();
  if (why !== undefined) {
    progress(`packet loss: skipped: ${why}`);
    return [];
  }
  const seeds = (process.env.BENCH_LOSS_SEEDS ?? '1,2,3,4,5').split(',').map(Number);
  const lines = [
    `Packet loss: successes of ${REQUESTS} per side (failures through reprise: body cut, circuit-open, other).`,
    '',
    `| seed | bursts, bad time | direct | ${VARIANTS.map((v) => `via ${v.name}`).join(' | ')} |`,
    `|---|---|---|${VARIANTS.map(() => '---').join('|')}|`,
  ];
  for (const seed of seeds) {
    progress(`packet loss: seed ${seed}`);
    const ns = await createNetns('reprise-bench-loss');
    try {
      const run = await runLossExperiment(ns, {
        seed,
        requests: REQUESTS,
        concurrency: 10,
        clientTimeoutMs: 15_000,
        paceMs: 2000,
        loss: { badShare: 0.35, minBadMs: 2000, maxBadMs: 10_000, badDropShare: 0.8 },
        variants: VARIANTS,
      });
      const { bursts, badMs } = run.loss;
      lines.push(
        `| ${seed} | ${bursts}, ${(badMs / 1000).toFixed(1)} s | ${run.sides.map(cell).join(' | ')} |`,
      );
    } finally {
      await ns.close();
    }
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  packetLoss((line) => process.stderr.write(`bench: ${line}\n`)).then(
    (lines) => process.stdout.write(`${lines.join('\n')}\n`),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
