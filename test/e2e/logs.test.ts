/**
 * The built CLI's access log when nobody reads its stdout (a stalled log collector): the proxy
 * keeps answering, at most 1 MiB of lines waits, later lines are dropped, and once stdout is
 * read again every request is accounted for: logged, or counted in `log lines dropped`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type RunningCli, removeTempDirs, sleep, startCli, writeConfig } from '../helpers/cli.ts';
import { viaProxy } from '../helpers/proxy.ts';
import { reply, startUpstream, type Upstream } from '../helpers/upstream.ts';

let cli: RunningCli | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await cli?.stop();
  await upstream?.close();
  cli = upstream = undefined;
  removeTempDirs();
});

describe('access log with an unread stdout', () => {
  it('never stalls the proxy, and counts the lines it had to drop', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    cli = await startCli(writeConfig(''));
    const running = cli;
    // the pipe fills (64 KiB), then 1 MiB waits in the proxy: ~200-byte lines, so about 5,500
    running.child.stdout?.pause();
    const total = 10_000;
    let sent = 0;
    let ok = 0;
    const worker = async () => {
      while (sent < total) {
        sent++;
        const answer = await viaProxy(running.proxyPort, 'GET', `${upstream?.origin}/n`);
        if (answer.status === 200) ok++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, worker));
    expect(ok).toBe(total);

    running.child.stdout?.resume();
    const requests = () => running.logs.filter((line) => line.msg === 'request').length;
    const dropped = () =>
      running.logs
        .filter((line) => line.msg === 'log lines dropped: stdout was not read')
        .reduce((sum, line) => sum + Number(line.dropped), 0);
    for (let i = 0; i < 100 && requests() + dropped() < total; i++) await sleep(50);
    expect(dropped()).toBeGreaterThan(0);
    expect(requests()).toBeGreaterThan(3_000);
    expect(requests() + dropped()).toBe(total);
  }, 60_000);
});
