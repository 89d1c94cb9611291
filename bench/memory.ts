/**
 * Scenario 6, memory: RSS of a fresh proxy, then with idle keep-alive client connections: raw
 * sockets to the proxy port, each sending one absolute-form request and reading its answer, then
 * left open — the realistic idle state of a pooled client connection — and measured once they
 * have idled for BENCH_SETTLE seconds (default 20), and 1 s after opening.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Row, Via } from './measure.ts';
import { type Proc, resident, rssBytes, startFloor, startReference } from './processes.ts';
import { shippedSettings, startReprise } from './proxies.ts';
import { type BenchContext, fmtErr } from './scenarios.ts';

const MiB = 1024 * 1024;
/** How long the connections idle before the figure is taken (BENCH_SETTLE). */
const SETTLE_S = Number(process.env.BENCH_SETTLE ?? 20);

export interface IdleConnections {
  /** Connections that got a 200 and are still open. */
  open(): number;
  /** Connections that could not be opened or got no 200. */
  readonly failed: number;
  close(): void;
}

function openOne(port: number, request: Buffer, sockets: Set<Socket>): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answered = false;
    socket.once('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      answered = true;
      const ok = chunk.subarray(0, 12).toString('latin1') === 'HTTP/1.1 200';
      if (ok) sockets.add(socket);
      else socket.destroy();
      resolve(ok);
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      sockets.delete(socket);
      if (!answered) resolve(false);
    });
  });
}

/**
 * Opens `count` connections to a proxy on `port`, `concurrency` at a time so the proxy's own
 * upstream pool stays small, each asking `GET http://upstream/bytes/16` once.
 */
export async function openIdleConnections(
  port: number,
  upstreamAuthority: string,
  count: number,
  concurrency = 200,
): Promise<IdleConnections> {
  const request = Buffer.from(
    `GET http://${upstreamAuthority}/bytes/16 HTTP/1.1\r\nHost: ${upstreamAuthority}\r\n\r\n`,
  );
  const sockets = new Set<Socket>();
  let started = 0;
  let failed = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      if (!(await openOne(port, request, sockets))) failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return {
    open: () => sockets.size,
    failed,
    close() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
  };
}

/** 6: idle RSS of a fresh process, and with `ctx.idleConnections` idle keep-alive clients. */
export async function memory(ctx: BenchContext): Promise<Row[]> {
  const starters: [Via, () => Promise<Proc>][] = [
    ['reference', startReference],
    // node:http's own cost per connection: the floor under the heap settings reprise runs with
    ['floor', () => startFloor(shippedSettings())],
    ['reprise', () => startReprise({}, ctx.tmpDir, 'reprise-memory')],
  ];
  const n = ctx.idleConnections;
  const rows: Row[] = [];
  for (const [via, start] of starters) {
    const idleMeta = {
      key: 'rss-idle',
      id: `rss-idle/${via}`,
      group: 6,
      scenario: 'idle RSS',
      via,
    };
    const connMeta = {
      key: `rss-conns-${n}`,
      id: `rss-conns-${n}/${via}`,
      group: 6,
      via,
      scenario: `RSS, ${n.toLocaleString('en')} idle keep-alive connections`,
      connections: n,
    };
    let proc: Proc | undefined;
    try {
      proc = await start();
      await sleep(1000);
      const atIdle = resident(proc.pid);
      const idle = atIdle.bytes / MiB;
      rows.push({ ...idleMeta, rssMiB: idle });
      const conns = await openIdleConnections(proc.port, `127.0.0.1:${ctx.upstream.port}`, n);
      await sleep(1000);
      const fresh = rssBytes(proc.pid) / MiB;
      // 1 s after, RSS may still hold the garbage of the requests that opened the connections;
      // what they cost is what stays once they have idled (measured: the same within 0.5 MiB)
      await sleep(SETTLE_S * 1000);
      const atLoaded = resident(proc.pid);
      const loaded = atLoaded.bytes / MiB;
      // code first run by the requests that opened them: the node binary's pages, not per connection
      const fileGrowth = (atLoaded.fileBytes - atIdle.fileBytes) / MiB;
      const note = `${conns.open()} open, ${conns.failed} failed; after ${SETTLE_S + 1} s idle ${(((loaded - idle) * 1024) / Math.max(1, conns.open())).toFixed(1)} KiB per connection, of the +${(loaded - idle).toFixed(1)} MiB ${fileGrowth.toFixed(1)} file pages (code first run); 1 s after opening ${fresh.toFixed(1)} (+${(fresh - idle).toFixed(1)})`;
      conns.close();
      rows.push({ ...connMeta, rssMiB: loaded, rssDeltaMiB: loaded - idle, note });
      ctx.progress(
        `${via}: idle ${idle.toFixed(1)} MiB, with ${n} connections ${loaded.toFixed(1)} MiB`,
      );
    } catch (err) {
      ctx.progress(`${via} memory: ${fmtErr(err)}`);
      if (!rows.some((r) => r.id === idleMeta.id)) rows.push({ ...idleMeta, error: fmtErr(err) });
      rows.push({ ...connMeta, error: fmtErr(err) });
    } finally {
      await proc?.stop();
    }
  }
  return rows;
}
