/**
 * The proxies under test that are not part of the bench: the built reprise, and squid when one
 * is installed.
 */
import { existsSync, openSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { freePort, launch, type Proc, tail, track, waitUntil } from './processes.ts';

/** The built CLI; BENCH_REPRISE_MAIN points at another build (e.g. a baseline copy for A/B). */
export const REPRISE_MAIN =
  process.env.BENCH_REPRISE_MAIN ?? new URL('../dist/cli/main.js', import.meta.url).pathname;

/**
 * Starts the built reprise with `config` (SPEC §2 keys; listen and admin are added) and waits
 * for /readyz. Access logs stay on at level info and go to /dev/null, not a terminal.
 */
export async function startReprise(config: object, dir: string, name: string): Promise<Proc> {
  if (!existsSync(REPRISE_MAIN)) {
    throw new Error(`reprise not built: ${REPRISE_MAIN} is missing (run \`npm run build\`)`);
  }
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = `${dir}/${name}.yaml`;
  const full = {
    version: 1,
    listen: `127.0.0.1:${port}`,
    admin: `127.0.0.1:${adminPort}`,
    ...config,
  };
  // JSON is YAML 1.2, so the config file needs no YAML writer
  await writeFile(file, JSON.stringify(full, null, 2));
  const errFile = `${dir}/${name}.stderr`;
  const stdio = ['ignore', openSync('/dev/null', 'w'), openSync(errFile, 'w')];
  const child = launch(process.execPath, [REPRISE_MAIN, '--config', file], stdio);
  const proc = track('reprise', child, port, () => tail(errFile));
  const readyz = async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).status === 200;
  await waitUntil(readyz, proc, 10_000);
  return proc;
}

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
