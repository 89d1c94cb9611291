/**
 * Live reload of the built CLI (SPEC §9): a Kubernetes ConfigMap update (an atomic swap of the
 * `..data` symlink), a broken file that leaves the running rules in place, and SIGHUP.
 */
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  configText,
  type RunningCli,
  removeTempDirs,
  samplesOf,
  scrape,
  sleep,
  startCli,
  tempDir,
  writeConfig,
} from '../helpers/cli.ts';
import { viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

/** Every try fails with 503 here: keep the breaker out of the way. */
function rules(attempts: number | string): string {
  return `defaults:
  route:
    retry:
      backoff: { base: 1ms, max: 5ms }
  upstream:
    circuitBreaker: { enabled: false }
routes:
  - name: api
    match: { host: 127.0.0.1 }
    retry:
      attempts: ${attempts}
`;
}

/**
 * A directory laid out as the kubelet mounts a ConfigMap:
 *   dir/..2026_<n>/config.yaml, dir/..data -> ..2026_<n>, dir/config.yaml -> ..data/config.yaml
 */
class ConfigMapDir {
  readonly dir = tempDir();
  readonly file = join(this.dir, 'config.yaml');
  #version = 0;
  #current: string | undefined;

  constructor(text: string) {
    const first = this.#writeVersion(text);
    symlinkSync(first, join(this.dir, '..data'));
    symlinkSync(join('..data', 'config.yaml'), this.file);
  }

  /** What the kubelet does on an update: new timestamped dir, temp symlink, rename over ..data. */
  swap(text: string): void {
    const old = this.#current;
    const next = this.#writeVersion(text);
    const temp = join(this.dir, '..data_tmp');
    symlinkSync(next, temp);
    renameSync(temp, join(this.dir, '..data'));
    if (old !== undefined) rmSync(join(this.dir, old), { recursive: true });
    this.#current = next;
  }

  #writeVersion(text: string): string {
    this.#version++;
    const name = `..2026_01_0${this.#version}_00_00_00.00000000${this.#version}`;
    mkdirSync(join(this.dir, name));
    writeFileSync(join(this.dir, name, 'config.yaml'), text);
    this.#current ??= name;
    return name;
  }
}

let cli: RunningCli | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await cli?.stop();
  await upstream?.close();
  cli = undefined;
  upstream = undefined;
  removeTempDirs();
});

async function attemptsOf(proxyPort: number, up: Upstream): Promise<string | undefined> {
  const res = await viaProxy(proxyPort, 'GET', `${up.origin}/`);
  expect(res.status).toBe(503);
  return res.headers['x-reprise-attempts'] as string | undefined;
}

async function reloads(adminPort: number): Promise<Record<string, number>> {
  const samples = samplesOf(await scrape(adminPort), 'reprise_config_reloads_total');
  return Object.fromEntries(samples.map((s) => [s.labels.result, s.value]));
}

/** Polls until `attemptsOf` says `want`; resolves with the time it took. */
async function untilAttempts(want: string, up: Upstream, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if ((await attemptsOf(cli!.proxyPort, up)) === want) return Date.now() - started;
    await sleep(25);
  }
  throw new Error(`x-reprise-attempts never became ${want} within ${timeoutMs}ms`);
}

describe('reload through a ConfigMap symlink swap', () => {
  it('applies new rules within 2 s of the swap', async () => {
    upstream = await startUpstream([reply(503)]);
    const mount = new ConfigMapDir(configText(rules(1)));
    cli = await startCli(mount.file);
    expect(await attemptsOf(cli.proxyPort, upstream)).toBe('1');

    mount.swap(configText(rules(3)));
    const tookMs = await untilAttempts('3', upstream, 4_000);
    // within 2 s (the issue), and in fact under 1 s: the swap happens right after start, so the
    // 2 s poll (which starts with the CLI) has not looked yet: the directory watch saw it
    expect(tookMs).toBeLessThan(1_000);
    expect(await reloads(cli.adminPort)).toEqual({ ok: 1, error: 0 });
    // log lines reach stdout in batches (within 200 ms)
    await cli.waitForLog(
      () => cli!.logs.filter((line) => line.msg === 'config loaded').length === 2,
    );
  });

  it('keeps serving the previous rules after a broken swap, logs file:line:col and counts it', async () => {
    upstream = await startUpstream([reply(503)]);
    const mount = new ConfigMapDir(configText(rules(1)));
    cli = await startCli(mount.file);
    mount.swap(configText(rules(3)));
    await untilAttempts('3', upstream, 4_000);

    mount.swap(configText(rules(0)));
    const rejected = await cli.waitForLog((line) => line.msg === 'config rejected', 4_000);
    expect(rejected.level).toBe('error');
    expect(rejected.errors).toEqual([
      `${mount.file}:14:17: routes[0].retry.attempts: must be at least 1`,
    ]);
    expect(await attemptsOf(cli.proxyPort, upstream)).toBe('3');
    expect(await reloads(cli.adminPort)).toEqual({ ok: 1, error: 1 });
  });

  it('recovers when a good file follows a broken one', async () => {
    upstream = await startUpstream([reply(503)]);
    const mount = new ConfigMapDir(configText(rules(1)));
    cli = await startCli(mount.file);
    mount.swap('version: 1\nroutes: [');
    await cli.waitForLog((line) => line.msg === 'config rejected', 4_000);
    mount.swap(configText(rules(2)));
    await untilAttempts('2', upstream, 4_000);
    expect(await reloads(cli.adminPort)).toEqual({ ok: 1, error: 1 });
  });
});

describe('reload on SIGHUP', () => {
  it('reloads the file and counts the reload', async () => {
    upstream = await startUpstream([reply(503)]);
    const file = writeConfig(rules(2));
    cli = await startCli(file);
    const first = cli.logs.find((line) => line.msg === 'config loaded');
    cli.child.kill('SIGHUP');
    await cli.waitForLog((line) => line.msg === 'config loaded' && line !== first, 2_000);
    expect(await reloads(cli.adminPort)).toEqual({ ok: 1, error: 0 });
    expect(await attemptsOf(cli.proxyPort, upstream)).toBe('2');
    expect(cli.child.exitCode).toBeNull();
  });

  it('counts a broken file as an error and keeps running on the old rules', async () => {
    upstream = await startUpstream([reply(503)]);
    const file = writeConfig(rules(2));
    cli = await startCli(file);
    writeFileSync(file, configText(rules('many')));
    cli.child.kill('SIGHUP');
    const rejected = await cli.waitForLog((line) => line.msg === 'config rejected', 4_000);
    expect(rejected.errors).toEqual([
      `${file}:14:17: routes[0].retry.attempts: must be a whole number`,
    ]);
    expect(await attemptsOf(cli.proxyPort, upstream)).toBe('2');
    // the watcher may see the same change too; each sighting is one rejected reload
    expect((await reloads(cli.adminPort)).error).toBeGreaterThanOrEqual(1);
    expect((await reloads(cli.adminPort)).ok).toBe(0);
  });
});

describe('what a reload keeps', () => {
  /** Rewrites the plain config file and reloads it with SIGHUP. */
  async function reloadWith(file: string, yaml: string): Promise<void> {
    const loaded = cli!.logs.filter((line) => line.msg === 'config loaded').length;
    writeFileSync(file, configText(yaml));
    cli!.child.kill('SIGHUP');
    await cli!.waitForLog(
      () => cli!.logs.filter((line) => line.msg === 'config loaded').length > loaded,
    );
  }

  it('lets a request in flight finish on the policy it started with', async () => {
    upstream = await startUpstream([reply(503), reply(200, 'second try'), reply(503)]);
    const slowRetry = (attempts: number) =>
      `defaults:\n  route:\n    retry:\n      attempts: ${attempts}\n` +
      '      backoff: { base: 700ms, max: 700ms, jitter: none }\n';
    const file = writeConfig(slowRetry(3));
    cli = await startCli(file);
    const pending = viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/`);
    while (upstream.seen.length === 0) await sleep(10);
    await reloadWith(file, slowRetry(1));

    const res = await pending;
    expect(res.body.toString()).toBe('second try');
    expect(res.headers['x-reprise-attempts']).toBe('2');
    expect(await attemptsOf(cli.proxyPort, upstream)).toBe('1');
  });

  it('keeps the breaker state of an upstream whose settings did not change', async () => {
    upstream = await startUpstream([reply(503)]);
    const yaml = (attempts: number) =>
      `defaults:\n  route:\n    retry: { attempts: ${attempts} }\n` +
      '  upstream:\n    circuitBreaker: { consecutiveFailures: 1, failingFor: 0ms, openFor: 1m, maxOpenFor: 1m }\n';
    const file = writeConfig(yaml(1));
    cli = await startCli(file);
    await viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/`);
    const open = await viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/`);
    expect(open.headers['x-reprise-error']).toBe('circuit-open');

    await reloadWith(file, yaml(2));
    const after = await viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/`);
    expect(after.headers['x-reprise-error']).toBe('circuit-open');
    expect(upstream.seen).toHaveLength(1);
  });
});
