/**
 * A rotated certificate is picked up with no restart (SPEC §9, issue 22): the PEM files of
 * `upstreams[].tls` live in a directory laid out as the kubelet mounts a Secret (cert-manager
 * updates it by swapping the `..data` symlink), and the built CLI reloads when they change.
 */
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type RunningCli,
  removeTempDirs,
  samplesOf,
  scrape,
  sleep,
  startCli,
  tempDir,
  writeConfig,
} from '../helpers/cli.ts';
import { type HttpsUpstream, startHttpsUpstream } from '../helpers/https-upstream.ts';
import { viaProxy } from '../helpers/proxy.ts';
import { hasOpenssl, makeCa, makeLeaf, type TlsFixture, tlsFixture } from '../helpers/tls.ts';
import { reply } from '../helpers/upstream.ts';

/** dir/..<n>/FILE, dir/..data -> ..<n>, dir/FILE -> ..data/FILE: a Secret volume. */
class SecretDir {
  readonly dir = tempDir();
  #version = 0;

  constructor(files: Record<string, string>) {
    symlinkSync(this.#writeVersion(files), join(this.dir, '..data'));
    for (const name of Object.keys(files)) symlinkSync(join('..data', name), join(this.dir, name));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** What the kubelet does on an update: new timestamped dir, temp symlink, rename over ..data. */
  swap(files: Record<string, string>): void {
    const temp = join(this.dir, '..data_tmp');
    symlinkSync(this.#writeVersion(files), temp);
    renameSync(temp, join(this.dir, '..data'));
  }

  #writeVersion(files: Record<string, string>): string {
    this.#version++;
    const name = `..2026_01_0${this.#version}_00_00_00.00000000${this.#version}`;
    mkdirSync(join(this.dir, name));
    for (const [file, text] of Object.entries(files))
      writeFileSync(join(this.dir, name, file), text);
    return name;
  }
}

let fixture: TlsFixture;
const pems: Record<string, string> = {};
beforeAll(() => {
  if (!hasOpenssl()) return;
  fixture = tlsFixture();
  const read = (files: { certFile: string; keyFile: string }, name: string) => {
    pems[`${name}.crt`] = readFileSync(files.certFile, 'utf8');
    pems[`${name}.key`] = readFileSync(files.keyFile, 'utf8');
  };
  const caA = makeCa(fixture, 'ca-a');
  const caB = makeCa(fixture, 'ca-b');
  read(caA, 'ca-a');
  read(caB, 'ca-b');
  read(makeLeaf(fixture, caB, 'server-b'), 'server-b');
  read(makeLeaf(fixture, caB, 'server-b-for-mtls'), 'server-b-mtls');
  read(makeLeaf(fixture, caA, 'client-1', { usage: 'clientAuth' }), 'client-1');
  read(makeLeaf(fixture, caA, 'client-2', { usage: 'clientAuth' }), 'client-2');
});
afterAll(() => fixture?.remove());

let cli: RunningCli | undefined;
let upstream: HttpsUpstream | undefined;
afterEach(async () => {
  await cli?.stop();
  await upstream?.close();
  cli = undefined;
  upstream = undefined;
  removeTempDirs();
});

const pem = (name: string): string => pems[name] as string;

function config(secret: SecretDir, tls: string): string {
  return writeConfig(`upstreams:
  - match: 127.0.0.1
    tls: { servername: localhost, ${tls.replaceAll('SECRET', secret.dir)} }
`);
}

async function reloads(adminPort: number): Promise<Record<string, number>> {
  const samples = samplesOf(await scrape(adminPort), 'reprise_config_reloads_total');
  return Object.fromEntries(samples.map((s) => [s.labels.result, s.value]));
}

/** Polls until `check` holds, every 50 ms, for up to `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`not so within ${timeoutMs}ms`);
}

describe.skipIf(!hasOpenssl())('rotating the TLS files of an upstream', () => {
  it('reloads when a mounted CA file changes, with no change to the config file', async () => {
    const secret = new SecretDir({ 'ca.crt': pem('ca-a.crt') });
    cli = await startCli(config(secret, 'ca: SECRET/ca.crt'));
    secret.swap({ 'ca.crt': pem('ca-b.crt') });
    await until(async () => (await reloads(cli!.adminPort)).ok === 1, 4_000);
    expect(await reloads(cli.adminPort)).toEqual({ ok: 1, error: 0 });
  });

  it('keeps the running files when a rotated key does not match its certificate', async () => {
    const secret = new SecretDir({
      'tls.crt': pem('client-1.crt'),
      'tls.key': pem('client-1.key'),
    });
    cli = await startCli(config(secret, 'cert: SECRET/tls.crt, key: SECRET/tls.key'));
    secret.swap({ 'tls.crt': pem('client-1.crt'), 'tls.key': pem('client-2.key') });
    const rejected = await cli.waitForLog((line) => line.msg === 'config rejected', 4_000);
    expect(String((rejected.errors as string[])[0])).toContain(
      'upstreams[0].tls.key: does not match the certificate in',
    );
  });

  it('trusts a rotated CA for new connections', async () => {
    upstream = await startHttpsUpstream([reply(200, 'ok')], {
      cert: pem('server-b.crt'),
      key: pem('server-b.key'),
    });
    const secret = new SecretDir({ 'ca.crt': pem('ca-a.crt') });
    cli = await startCli(config(secret, 'ca: SECRET/ca.crt'));
    const url = `http://127.0.0.1:${upstream.port}/`;
    const before = await viaProxy(cli.proxyPort, 'GET', url);
    expect(before.headers['x-reprise-error']).toBe('upstream-certificate');

    secret.swap({ 'ca.crt': pem('ca-b.crt') });
    await until(async () => (await viaProxy(cli!.proxyPort, 'GET', url)).status === 200, 4_000);
  });

  it('presents a rotated client certificate on new connections', async () => {
    upstream = await startHttpsUpstream([reply(200, 'ok')], {
      cert: pem('server-b-mtls.crt'),
      key: pem('server-b-mtls.key'),
      clientCa: pem('ca-a.crt'),
    });
    const secret = new SecretDir({
      'ca.crt': pem('ca-b.crt'),
      'tls.crt': pem('client-1.crt'),
      'tls.key': pem('client-1.key'),
    });
    cli = await startCli(
      config(secret, 'ca: SECRET/ca.crt, cert: SECRET/tls.crt, key: SECRET/tls.key'),
    );
    const url = `http://127.0.0.1:${upstream.port}/`;
    expect((await viaProxy(cli.proxyPort, 'GET', url)).status).toBe(200);
    expect(upstream.clientNames).toEqual(['client-1']);

    secret.swap({
      'ca.crt': pem('ca-b.crt'),
      'tls.crt': pem('client-2.crt'),
      'tls.key': pem('client-2.key'),
    });
    await until(async () => {
      await viaProxy(cli!.proxyPort, 'GET', url);
      return upstream!.clientNames.at(-1) === 'client-2';
    }, 4_000);
  });
});
