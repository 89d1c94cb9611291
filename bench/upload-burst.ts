/**
 * Scenario 11, an upload burst (issue 25): BENCH_BURST (default 1,000) PUTs of 1 MiB at once
 * through a fresh reprise, to an upstream that reads every byte and answers 200 ms after each
 * head. Every one must complete; the figure is reprise's peak RSS (VmHWM) against the
 * sidecar's memory limit in deploy/ (the kernel kills a container that passes it, and every
 * request in flight with it).
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Row } from './measure.ts';
import { type Proc, rssBytes } from './processes.ts';
import { startReprise } from './proxies.ts';
import { manifestMemoryMiB } from './report.ts';
import { type BenchContext, fmtErr } from './scenarios.ts';

const MiB = 1024 * 1024;
const BODY = Buffer.alloc(MiB, 'u');
const UPSTREAM_DELAY_MS = 200;

/** Peak resident set size of a process (VmHWM), in bytes; NaN when it is gone. */
function peakRssBytes(pid: number): number {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? Number.NaN : Number(kib) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** One PUT on its own connection; resolves with the status (0: no answer). */
function put(port: number, upstreamAuthority: string): Promise<number> {
  const head = Buffer.from(
    `PUT http://${upstreamAuthority}/slow/${UPSTREAM_DELAY_MS}/burst HTTP/1.1\r\nHost: ${upstreamAuthority}\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`,
  );
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let status = 0;
    socket.once('connect', () => {
      socket.write(head);
      socket.write(BODY);
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      if (status !== 0) return;
      answer += chunk;
      const line = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (line !== null) {
        status = Number(line[1]);
        socket.destroy();
        resolve(status);
      }
    });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(status));
  });
}

/** Sends `count` PUTs at once; returns how many got 200. */
async function burst(port: number, upstreamAuthority: string, count: number): Promise<number> {
  const statuses = await Promise.all(
    Array.from({ length: count }, () => put(port, upstreamAuthority)),
  );
  return statuses.filter((s) => s === 200).length;
}

export async function uploadBurst(ctx: BenchContext): Promise<Row[]> {
  const count = Number(process.env.BENCH_BURST ?? 1000);
  const meta = {
    key: `upload-burst-${count}`,
    id: `upload-burst-${count}/reprise`,
    group: 11,
    scenario: `${count.toLocaleString('en')} concurrent 1 MiB PUTs, upstream answers after ${UPSTREAM_DELAY_MS} ms`,
    via: 'reprise' as const,
    connections: count,
  };
  let proc: Proc | undefined;
  try {
    proc = await startReprise({}, ctx.tmpDir, 'reprise-burst');
    await sleep(1000);
    const idleMiB = rssBytes(proc.pid) / MiB;
    const authority = `127.0.0.1:${ctx.upstream.port}`;
    const started = performance.now();
    const ok = await burst(proc.port, authority, count);
    const seconds = (performance.now() - started) / 1000;
    const peakMiB = peakRssBytes(proc.pid) / MiB;
    const why = proc.exitReason();
    if (why !== undefined) throw new Error(why);
    const { limit } = manifestMemoryMiB();
    const share =
      limit === undefined ? '' : `; ${(peakMiB / limit).toFixed(2)}× the ${limit} Mi limit`;
    const note = `${ok} of ${count} got 200 in ${seconds.toFixed(1)} s; idle ${idleMiB.toFixed(1)} MiB, peak ${peakMiB.toFixed(1)}${share}`;
    ctx.progress(`upload burst: ${note}`);
    return [
      { ...meta, rssMiB: peakMiB, rssDeltaMiB: peakMiB - idleMiB, successShare: ok / count, note },
    ];
  } catch (err) {
    ctx.progress(`upload burst: ${fmtErr(err)}`);
    return [{ ...meta, error: fmtErr(err) }];
  } finally {
    await proc?.stop();
  }
}
