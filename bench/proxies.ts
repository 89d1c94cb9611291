/**
 * The proxies under test that are not part of the bench: the built reprise, and squid when one
 * is installed.
 */
import { existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { cpuMs, freePort, launch, type Proc, tail, track, waitUntil } from './processes.ts';

/** The built CLI; BENCH_REPRISE_MAIN points at another build (e.g. a baseline copy for A/B). */
export const REPRISE_MAIN =
  process.env.BENCH_REPRISE_MAIN ?? new URL('../dist/cli/main.js', import.meta.url).pathname;

/** How node runs reprise: the variables and flags before the script. */
export interface NodeSettings {
  readonly env: Readonly<Record<string, string>>;
  readonly flags: readonly string[];
}

/**
 * What `npx reprise`, `npm start` and the image run with: the `#!/usr/bin/env -S … node …`
 * line of the built CLI (test/unit/runtime-settings.test.ts keeps the three in step).
 */
export function shippedSettings(main = REPRISE_MAIN): NodeSettings {
  const line = existsSync(main) ? (readFileSync(main, 'utf8').split('\n', 1)[0] ?? '') : '';
  const words = line.replace(/^#!\S*env -S /, '').split(/\s+/);
  const node = words.indexOf('node');
  if (!line.startsWith('#!') || node < 0) return { env: {}, flags: [] };
  const env = Object.fromEntries(
    words.slice(0, node).map((w) => w.split('=', 2) as [string, string]),
  );
  return { env, flags: words.slice(node + 1) };
}

export const UNBOUNDED: NodeSettings = { env: {}, flags: [] };

export interface RepriseOptions {
  /** Default: the shipped settings. */
  readonly node?: NodeSettings;
  /** false: no config file, the embedded defaults (listen 127.0.0.1:3128, admin :9901). */
  readonly file?: boolean;
  /** Another build's main.js (a baseline, side by side); default REPRISE_MAIN. */
  readonly main?: string;
}

/**
 * Starts the built reprise with `config` (SPEC §2 keys; listen and admin are added) and waits
 * for /readyz. Access logs stay on at level info and go to /dev/null, not a terminal.
 * `startupMs` is from spawn to the first 200 from /readyz (polled every 2 ms); `startupCpuMs`
 * the CPU time it took meanwhile, which a busy machine does not stretch.
 */
export async function startReprise(
  config: object,
  dir: string,
  name: string,
  options: RepriseOptions = {},
): Promise<Proc & { readonly startupMs: number; readonly startupCpuMs: number }> {
  const main = options.main ?? REPRISE_MAIN;
  if (!existsSync(main)) {
    throw new Error(`reprise not built: ${main} is missing (run \`npm run build\`)`);
  }
  const node = options.node ?? shippedSettings(main);
  let port = EMBEDDED_PORT;
  let adminPort = EMBEDDED_ADMIN_PORT;
  const args = [...node.flags, main];
  if (options.file !== false) {
    [port, adminPort] = [await freePort(), await freePort()];
    const file = `${dir}/${name}.yaml`;
    const full = {
      version: 1,
      listen: `127.0.0.1:${port}`,
      admin: `127.0.0.1:${adminPort}`,
      ...config,
    };
    // JSON is YAML 1.2, so the config file needs no YAML writer
    await writeFile(file, JSON.stringify(full, null, 2));
    args.push('--config', file);
  }
  const errFile = `${dir}/${name}.stderr`;
  const stdio = ['ignore', openSync('/dev/null', 'w'), openSync(errFile, 'w')];
  const started = performance.now();
  const child = launch(process.execPath, args, stdio, undefined, 'proxy', node.env);
  const proc = track('reprise', child, port, () => tail(errFile));
  const readyz = async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200;
  await waitUntil(readyz, proc, 10_000, 2);
  return { ...proc, startupMs: performance.now() - started, startupCpuMs: cpuMs(proc.pid) };
}

const EMBEDDED_PORT = 3128;
const EMBEDDED_ADMIN_PORT = 9901;

export function squidBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(`${dir}/squid`)) return `${dir}/squid`;
  }
  return undefined;
}

/** Squid as a plain forward proxy (no cache, no access log), one worker, in the foreground. */
export async function startSquid(binary: string, dir: string): Promise<Proc> {
  const port = await freePort();
  // squid started as root drops to an unprivileged user, which must be able to write its logs
  const logs = `${dir}/squid`;
  await mkdir(logs);
  await chmod(dir, 0o711);
  await chmod(logs, 0o777);
  const conf = [
    `http_port 127.0.0.1:${port}`,
    'visible_hostname localhost',
    'http_access allow all',
    'cache deny all',
    'access_log none',
    'shutdown_lifetime 1 seconds',
    `cache_log ${logs}/cache.log`,
    `pid_filename ${logs}/squid.pid`,
    `coredump_dir ${logs}`,
    'workers 1',
  ].join('\n');
  await writeFile(`${logs}/squid.conf`, `${conf}\n`);
  const stderr = openSync(`${logs}/stderr`, 'w');
  const child = launch(binary, ['-N', '-f', `${logs}/squid.conf`], ['ignore', 'ignore', stderr]);
  const proc = track(
    'squid',
    child,
    port,
    () => tail(`${logs}/stderr`) + tail(`${logs}/cache.log`),
  );
  const listening = async () => (await fetch(`http://127.0.0.1:${port}/`)).status > 0;
  await waitUntil(listening, proc, 10_000);
  return proc;
}
