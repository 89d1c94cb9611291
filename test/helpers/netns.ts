/**
 * Real packet loss for tests and benchmarks: a network namespace of its own (only its
 * loopback, 127.0.0.1), processes run inside it with `ip netns exec`, and nftables dropping
 * the packets of chosen TCP ports while a seeded Gilbert–Elliott channel is in its bad state.
 * The kernel does the rest: lost SYNs are retransmitted after 1 s and 3 s, lost data after
 * 0.2 s, 0.6 s, 1.4 s…, exactly as on a lossy network.
 *
 *   const why = netnsUnavailable();            // a reason to skip, or undefined
 *   const ns = await createNetns('reprise-loss');
 *   try {
 *     const up = ns.spawn(process.execPath, ['upstream.ts']);
 *     const loss = await ns.startBurstLoss({ ports: [8080], seed: 1, badShare: 0.2, ... });
 *     ...
 *     loss.stop();                              // the channel stays good from here on
 *   } finally {
 *     await ns.close();                         // ends every process, deletes the namespace
 *   }
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { seededRandom } from './seeded-random.ts';

const TABLE = 'reprise_loss';

/** Why namespaces with nftables cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'creating a network namespace needs root';
  for (const tool of ['ip', 'nft']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (Debian: ${tool === 'ip' ? 'iproute2' : 'nftables'})`;
    }
  }
  const probe = `reprise-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'exec', probe, 'nft', 'list', 'tables'], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    const detail = String((err as { stderr?: Buffer }).stderr ?? err).trim();
    return `network namespaces or nftables are not allowed here: ${detail.split('\n')[0]}`;
  } finally {
    try {
      execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    } catch {}
  }
}

/** A Gilbert–Elliott channel: alternating good and bad spells, seeded. */
export interface BurstLossOptions {
  /** TCP ports whose packets (to and from) are dropped while bad. */
  readonly ports: readonly number[];
  readonly seed: number;
  /** Share of the time spent bad, about. */
  readonly badShare: number;
  readonly minBadMs: number;
  readonly maxBadMs: number;
  /** Share of the packets dropped while bad (1 = every one). */
  readonly badDropShare: number;
  /** The first good spell, so a run's first connections are made: 1 s unless given. */
  readonly firstGoodMs?: number;
}

export interface LossStats {
  /** Bad spells begun. */
  readonly bursts: number;
  /** Time spent bad, about. */
  readonly badMs: number;
  /** Packets the rules dropped (nft counters). */
  readonly droppedPackets: number;
}

export interface BurstLoss {
  /** Ends the loss (the channel stays good) and tells what it did. */
  stop(): Promise<LossStats>;
}

export interface Netns {
  readonly name: string;
  /** Starts a process inside the namespace; it is killed by `close` if still running. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Drops the ports' packets in seeded bursts, toggled through one long-lived `nft -i`. */
  startBurstLoss(options: BurstLossOptions): Promise<BurstLoss>;
  /** Ends every process started here and deletes the namespace. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * A new namespace named `prefix-PID-N`, its loopback up with an Ethernet-sized MTU (1500
 * unless given), so a 7 KB answer travels as several segments, as it would between hosts.
 */
export async function createNetns(prefix: string, mtu = 1500): Promise<Netns> {
  removeStale(prefix);
  const name = `${prefix}-${process.pid}-${Date.now() % 100_000}`;
  execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
  const children = new Set<ChildProcess>();
  let closed = false;
  const spawnInside = (command: string, args: readonly string[], options: SpawnOptions = {}) => {
    const child = spawn('ip', ['netns', 'exec', name, command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options,
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const ns: Netns = {
    name,
    spawn: spawnInside,
    startBurstLoss: (options) => startBurstLoss(name, spawnInside, options),
    async close() {
      if (closed) return;
      closed = true;
      const exits = [...children].map((child) =>
        child.exitCode !== null || child.signalCode !== null ? undefined : once(child, 'exit'),
      );
      for (const child of children) child.kill('SIGKILL');
      await Promise.all(exits);
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
      } catch {}
    },
  };
  try {
    const lo = ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'mtu', String(mtu), 'up'];
    execFileSync('ip', lo, { stdio: 'pipe' });
  } catch (err) {
    await ns.close();
    throw err;
  }
  return ns;
}

/** Namespaces a killed run left behind (its process is gone): their processes, then them. */
function removeStale(prefix: string): void {
  const listed = execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' }).toString();
  for (const line of listed.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${prefix}-(\\d+)-\\d+$`).exec(name);
    if (match === null || isAlive(Number(match[1]))) continue;
    const pids = execFileSync('ip', ['netns', 'pids', name], { stdio: 'pipe' }).toString();
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {}
    }
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'pipe' });
    } catch {}
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function startBurstLoss(
  name: string,
  spawnInside: Netns['spawn'],
  options: BurstLossOptions,
): Promise<BurstLoss> {
  const percent = Math.round(options.badDropShare * 100);
  const sample = percent >= 100 ? '' : `numgen random mod 100 < ${percent} `;
  const ruleset = `table inet ${TABLE} {
  set lossy { type inet_service; }
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport @lossy ${sample}counter drop
    tcp sport @lossy ${sample}counter drop
  }
}
`;
  execFileSync('ip', ['netns', 'exec', name, 'nft', '-f', '-'], { input: ruleset, stdio: 'pipe' });
  const nft = spawnInside('nft', ['-i'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let errors = '';
  nft.stderr?.on('data', (chunk: Buffer) => {
    errors += chunk.toString();
  });
  const write = (line: string) => nft.stdin?.write(`${line}\n`);
  const elements = `{ ${options.ports.join(', ')} }`;
  const random = seededRandom(options.seed);
  const meanBadMs = (options.minBadMs + options.maxBadMs) / 2;
  const meanGoodMs = (meanBadMs * (1 - options.badShare)) / options.badShare;
  let bad = false;
  let bursts = 0;
  let badMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const next = (): void => {
    if (stopped) return;
    bad = !bad;
    const spanMs = bad
      ? options.minBadMs + random() * (options.maxBadMs - options.minBadMs)
      : meanGoodMs * 2 * random();
    if (bad) {
      bursts++;
      badMs += spanMs;
      write(`add element inet ${TABLE} lossy ${elements}`);
    } else {
      write(`delete element inet ${TABLE} lossy ${elements}`);
    }
    timer = setTimeout(next, spanMs);
  };
  // start in a good spell, so the first connects of a run are not all lost at once
  timer = setTimeout(next, options.firstGoodMs ?? 1000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (nft.exitCode !== null) throw new Error(`nft -i exited: ${errors}`);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      if (bad) write(`delete element inet ${TABLE} lossy ${elements}`);
      bad = false;
      nft.stdin?.end();
      if (nft.exitCode === null) await once(nft, 'exit');
      if (errors.trim() !== '') throw new Error(`nft: ${errors.trim()}`);
      const rules = execFileSync('ip', [
        'netns',
        'exec',
        name,
        'nft',
        'list',
        'table',
        'inet',
        TABLE,
      ]);
      let droppedPackets = 0;
      for (const match of rules.toString().matchAll(/counter packets (\d+)/g)) {
        droppedPackets += Number(match[1]);
      }
      return { bursts, badMs: Math.round(badMs), droppedPackets };
    },
  };
}
