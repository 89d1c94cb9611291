/**
 * What the built bundle (scripts/build.ts) loads: serving plain HTTP, through the proxy and the
 * admin port, it never loads Node's HTTP/2, TLS, HTTPS or zlib code (about 8 MiB of RSS
 * together), which undici and prom-client would load from their package indexes, nor what
 * the ESM facade of a built-in would read: Node's own copy of undici (node:http's lazy
 * WebSocket export) or readline (node:fs's promises).
 */
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningCli, removeTempDirs, startCli, writeConfig } from '../helpers/cli.ts';
import { viaProxy } from '../helpers/proxy.ts';
import { startUpstream, type Upstream } from '../helpers/upstream.ts';

const REPORT = resolve('test/helpers/report-builtins.cjs');

let cli: RunningCli | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  cli?.child.kill('SIGKILL');
  await cli?.exited;
  await upstream?.close();
  removeTempDirs();
});

describe('the built bundle', () => {
  it('serves a proxied GET and a scrape without loading http2, tls, https or zlib', async () => {
    upstream = await startUpstream();
    cli = await startCli(writeConfig(''), { NODE_OPTIONS: `--require ${REPORT}` });
    const answer = await viaProxy(cli.proxyPort, 'GET', `${upstream.origin}/x`);
    expect(answer.status).toBe(200);
    const scrape = await fetch(`http://127.0.0.1:${cli.adminPort}/metrics`);
    expect(await scrape.text()).toContain('reprise_requests_total');

    expect(await cli.stop()).toEqual({ code: 0, signal: null });
    const line = cli
      .stderr()
      .split('\n')
      .find((l) => l.startsWith('builtins: '));
    const builtins = (line ?? '').slice('builtins: '.length).split(' ');
    expect(builtins).toContain('http');
    const unwanted = [
      'http2',
      'tls',
      'https',
      'zlib',
      'internal/readline/interface',
      'internal/deps/undici/undici',
    ];
    expect(builtins.filter((name) => unwanted.includes(name))).toEqual([]);
  });
});
