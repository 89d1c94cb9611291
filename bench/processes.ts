/**
 * Child processes of the bench (the upstream, the proxies), each its own process so that none
 * shares an event loop with the load generator. Also reads a process's RSS and CPU time from
 * /proc.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeSettings } from './proxies.ts';
import type { ControlRequest, FaultMode, UpstreamStats } from './upstream.ts';

export interface Proc {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  /** undefined while running, else why it ended. */
  exitReason(): string | undefined;
  stop(): Promise<void>;
}

export interface Upstream extends Proc {
  setMode(mode: FaultMode): Promise<void>;
  /** The counters since the last reset; `reset` zeroes them after reading. */
  stats(reset: boolean): Promise<UpstreamStats>;
}

const BENCH_DIR = new URL('.', import.meta.url).pathname;
const REPO_DIR = new URL('..', import.meta.url).pathname;

/** The soft and hard open-file limits of a shell started from here (children inherit them). */
export function fdLimits(): { soft: number; hard: number } {
  const out = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn'], { encoding: 'utf8' }).stdout;
  const [soft, hard] = out
    .trim()
    .split('\n')
    .map((v) => (v === 'unlimited' ? 1e9 : Number(v)));
  return { soft: soft ?? 1024, hard: hard ?? 1024 };
}

const limits = fdLimits();

/**
 * CPU placement (BENCH_PIN, default on with 2 or more CPUs and `taskset` installed): the
 * proxy under test runs alone on CPU 0; the bench process (the load generator), the upstream
 * and wrk run on the last CPU. So the proxy's CPU time per request is not inflated by sharing
 * its core with the load generator, and a cheaper or dearer load generator does not change it.
 */
export const PROXY_CPU = 0;
const cpuCount = availableParallelism();
export const pinned =
  process.env.BENCH_PIN !== '0' &&
  cpuCount >= 2 &&
  spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
if (pinned) spawnSync('taskset', ['-pc', String(cpuCount - 1), String(process.pid)]);

/** Where a child runs: on the proxy's CPU, or beside the load generator (inherited). */
export type Placement = 'proxy' | 'loadgen';

/**
 * Every child starts through `sh` with its soft fd limit raised to the hard one; `env` adds
 * variables; a proxy is pinned to its own CPU (see `pinned`).
 */
export function launch(
  command: string,
  args: string[],
  stdio: ChildProcess['stdio'] | unknown[],
  cwd = REPO_DIR,
  placement: Placement = 'loadgen',
  env: Record<string, string> = {},
) {
  const pin = pinned && placement === 'proxy' ? `taskset -c ${PROXY_CPU} ` : '';
  const script = `ulimit -n ${Math.min(limits.hard, 1_048_576)} 2>/dev/null; exec ${pin}"$0" "$@"`;
  return spawn('sh', ['-c', script, command, ...args], {
    cwd,
    stdio: stdio as never,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
  });
}

export function track(
  name: string,
  child: ChildProcess,
  port: number,
  describe: () => string,
): Proc {
  let reason: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      reason = `${name} exited (${signal ?? `code ${code}`})${describe()}`;
      resolve();
    });
  });
  return {
    name,
    pid: child.pid ?? -1,
    port,
    exitReason: () => reason,
    async stop() {
      if (reason !== undefined) return;
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => false), sleep(3000, true)]);
      if (killed) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits for the child's IPC `{ type: 'ready', port }`. */
function ready(child: ChildProcess, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type?: string; port?: number }) => {
      if (m.type === 'ready' && m.port !== undefined) resolve(m.port);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`${name} exited with code ${code} at start`)));
  });
}

/** `env`: BENCH_UPSTREAM_CERT and _KEY make it an HTTPS origin (bench/upstream.ts). */
export async function startUpstream(env: Record<string, string> = {}): Promise<Upstream> {
  const args = [`${BENCH_DIR}upstream.ts`];
  const child = launch(process.execPath, args, ['ignore', 1, 2, 'ipc'], REPO_DIR, 'loadgen', env);
  const port = await ready(child, 'upstream');
  const proc = track('upstream', child, port, () => '');
  let nextId = 1;
  const pending = new Map<number, { resolve: (m: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id?: number }) => {
    if (m.id === undefined) return;
    pending.get(m.id)?.resolve(m);
    pending.delete(m.id);
  });
  child.once('exit', () => {
    for (const { reject } of pending.values()) reject(new Error(proc.exitReason()));
  });
  const ask = <T>(message: ControlRequest): Promise<T> =>
    new Promise((resolve, reject) => {
      const why = proc.exitReason();
      if (why !== undefined) return reject(new Error(why));
      const id = nextId++;
      pending.set(id, { resolve: (m) => resolve(m as T), reject });
      child.send({ ...message, id });
    });
  return {
    ...proc,
    setMode: async (mode) => {
      await ask({ type: 'mode', mode });
    },
    stats: async (reset) => (await ask<{ stats: UpstreamStats }>({ type: 'stats', reset })).stats,
  };
}

/**
 * The bare proxies (bench/bare-proxies.ts) run as plain JavaScript: Node's type stripping loads
 * a TypeScript parser that adds ~17 MiB of RSS, which reprise (run from dist/) does not pay. The
 * types are stripped in a throwaway child (the API prints an ExperimentalWarning) and the result
 * runs with `-e` from the repository root, so that `undici` resolves. `node`: flags and
 * variables to run it with (none: node's defaults).
 */
async function startBareProxy(
  name: 'reference' | 'floor',
  node: NodeSettings = { env: {}, flags: [] },
  env: Record<string, string> = {},
): Promise<Proc> {
  const strip =
    'process.stdout.write(require("node:module").stripTypeScriptTypes(require("node:fs").readFileSync(0, "utf8")))';
  const source = readFileSync(`${BENCH_DIR}bare-proxies.ts`, 'utf8');
  const stripped = spawnSync(process.execPath, ['--no-warnings', '-e', strip], {
    input: source,
    encoding: 'utf8',
  });
  if (stripped.status !== 0) throw new Error(`${name} proxy: ${stripped.stderr.trim()}`);
  const args = [...node.flags, '--input-type=module', '-e', stripped.stdout];
  const childEnv = { ...node.env, ...env, BARE_PROXY: name };
  const child = launch(
    process.execPath,
    args,
    ['ignore', 1, 2, 'ipc'],
    REPO_DIR,
    'proxy',
    childEnv,
  );
  const port = await ready(child, `${name} proxy`);
  return track(name, child, port, () => '');
}

/** undici's `request` and `pipe`, no features; `node`: as for reprise (none: node's defaults). */
export const startReference = (node?: NodeSettings): Promise<Proc> =>
  startBareProxy('reference', node);

/** undici's `dispatch` straight into the response, no features; `node`: as for reprise. */
export const startFloor = (node?: NodeSettings): Promise<Proc> => startBareProxy('floor', node);

/**
 * A bare proxy that originates TLS (bare-proxies.ts, BARE_TLS_CA): `http://` targets are sent
 * as `https://` to the same host and port, verified against `caFile` with SNI `servername`.
 */
export const startBareTls = (
  name: 'reference' | 'floor',
  caFile: string,
  servername: string,
  node?: NodeSettings,
): Promise<Proc> =>
  startBareProxy(name, node, { BARE_TLS_CA: caFile, BARE_TLS_SERVERNAME: servername });

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export function tail(file: string): string {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n').slice(-5).join('\n  ');
    return lines ? `:\n  ${lines}` : '';
  } catch {
    return '';
  }
}

/** A process's resident set size in bytes (VmRSS), or NaN when it is gone. */
export function rssBytes(pid: number): number {
  return resident(pid).bytes;
}

/**
 * VmRSS and the part of it that is file pages (RssFile: mostly the node binary's code, shared
 * and clean), from one read; NaN when the process is gone.
 */
export function resident(pid: number): { bytes: number; fileBytes: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone: both NaN
  }
  const field = (name: string) => {
    const kib = new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1];
    return kib === undefined ? Number.NaN : Number(kib) * 1024;
  };
  return { bytes: field('VmRSS'), fileBytes: field('RssFile') };
}

export const TICK_MS =
  1000 / (Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100);

/** User + system CPU time of a process in ms (10 ms resolution), or NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
  } catch {
    return Number.NaN;
  }
}

export async function waitUntil(
  check: () => Promise<boolean>,
  proc: Proc,
  timeoutMs: number,
  pollMs = 50,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = proc.exitReason();
    if (why !== undefined) throw new Error(why);
    if (await check().catch(() => false)) return;
    await sleep(pollMs);
  }
  await proc.stop();
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms${proc.exitReason() ?? ''}`);
}
