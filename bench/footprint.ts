/**
 * Scenario 7, the sidecar's footprint, for every candidate (reprise as shipped, reprise
 * without its V8 settings, the bare reference): start-up to ready, idle RSS, and RSS under
 * sustained full load (1 KiB GET, 50 connections, BENCH_SUSTAIN s, default 60) sampled every
 * second, then for BENCH_REST s (default 30) after the load stops. Each candidate is a fresh
 * process, so that one's heap growth does not carry over to the next.
 */
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoad } from './load.ts';
import type { Footprint, Row, Via } from './measure.ts';
import { cpuMs, type Proc, rssBytes, startReference } from './processes.ts';
import { type NodeSettings, shippedSettings, startReprise, UNBOUNDED } from './proxies.ts';
import { type BenchContext, fmtErr } from './scenarios.ts';

const MiB = 1024 * 1024;
const sustainS = Number(process.env.BENCH_SUSTAIN ?? 60);
const restS = Number(process.env.BENCH_REST ?? 30);
const STARTS = 5;
/** The issue-14 level RSS must come back to after the load. */
export const RECOVERED_MIB = 100;

interface Candidate {
  readonly via: Via;
  readonly settings: string;
  /** A fresh process; `file: false` = the embedded defaults. */
  readonly start: (
    name: string,
    file: boolean,
  ) => Promise<Proc & { startupMs?: number; startupCpuMs?: number }>;
  readonly embedded: boolean;
}

function describe(node: NodeSettings): string {
  const words = [...Object.entries(node.env).map(([k, v]) => `${k}=${v}`), ...node.flags];
  return words.length > 0 ? words.join(' ') : 'none';
}

function candidates(ctx: BenchContext): Candidate[] {
  const shipped = shippedSettings();
  const reprise = (node: NodeSettings) => (name: string, file: boolean) =>
    startReprise({}, ctx.tmpDir, name, { node, file });
  return [
    { via: 'reprise', settings: describe(shipped), start: reprise(shipped), embedded: true },
    {
      via: 'reprise-unbounded',
      settings: describe(UNBOUNDED),
      start: reprise(UNBOUNDED),
      embedded: true,
    },
    { via: 'reference', settings: 'none', start: () => startReference(), embedded: false },
  ];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function withProc<T>(start: () => Promise<Proc>, use: (p: Proc) => Promise<T>) {
  const proc = await start();
  try {
    return await use(proc);
  } finally {
    await proc.stop();
  }
}

/** Median start-up (wall and CPU ms) of `STARTS` fresh processes with a config file. */
async function startup(c: Candidate): Promise<{ wall?: number; cpu?: number }> {
  if (c.via === 'reference') return {};
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const proc = await c.start(`startup-${c.via}`, true);
    await proc.stop();
    wall.push(proc.startupMs ?? Number.NaN);
    cpu.push(proc.startupCpuMs ?? Number.NaN);
  }
  return { wall: median(wall), cpu: median(cpu) };
}

const idleRss = (p: Proc) => sleep(1000).then(() => rssBytes(p.pid) / MiB);

/** Sustained load on a fresh process, then the rest after it. */
async function sustained(
  ctx: BenchContext,
  c: Candidate,
): Promise<Partial<Footprint> & Partial<Row>> {
  return withProc(
    () => c.start(`sustain-${c.via}`, true),
    async (proc) => {
      await sleep(1000);
      const authority = `127.0.0.1:${ctx.upstream.port}`;
      const during: number[] = [];
      const sampler = setInterval(() => during.push(rssBytes(proc.pid) / MiB), 1000);
      const cpu0 = cpuMs(proc.pid);
      const load = await runLoad({
        port: proc.port,
        path: `http://${authority}/bytes/1024`,
        host: authority,
        method: 'GET',
        connections: 50,
        durationS: sustainS,
      }).finally(() => clearInterval(sampler));
      const cpu = cpuMs(proc.pid) - cpu0;
      const after: number[] = [];
      for (let s = 0; s < restS; s++) {
        await sleep(1000);
        after.push(rssBytes(proc.pid) / MiB);
      }
      const last = during.slice(-Math.min(30, Math.floor(during.length / 2)));
      const back = after.findIndex((v) => v <= RECOVERED_MIB);
      const died = proc.exitReason();
      if (died !== undefined) throw new Error(died);
      return {
        reqPerS: load.reqPerS,
        p99Ms: load.p99Ms,
        proxyCpuUsPerReq: (cpu * 1000) / Math.max(1, load.responses),
        peakMiB: Math.max(...during, ...after),
        lastWindowMiB: [Math.min(...last), Math.max(...last)],
        afterMiB: after.at(-1),
        recoveredAfterS: back < 0 ? undefined : back + 1,
      };
    },
  );
}

/** 7: the footprint of every candidate. */
export async function footprint(ctx: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const c of candidates(ctx)) {
    const base = {
      key: 'footprint',
      id: `footprint/${c.via}`,
      group: 7,
      scenario: `footprint: ${sustainS} s of 1 KiB GET at 50 connections, then ${restS} s idle`,
      via: c.via,
      connections: 50,
    };
    try {
      const { wall: startupMs, cpu: startupCpuMs } = await startup(c);
      let idleEmbeddedMiB: number | undefined;
      if (c.embedded && (await portFree(3128)) && (await portFree(9901))) {
        idleEmbeddedMiB = await withProc(() => c.start(`idle-${c.via}`, false), idleRss);
      } else if (c.embedded) {
        ctx.progress(
          `${c.via}: ports 3128/9901 busy, idle RSS on the embedded defaults not measured`,
        );
      }
      const idleFileMiB = await withProc(() => c.start(`idle-file-${c.via}`, true), idleRss);
      ctx.progress(`${c.via}: sustained load for ${sustainS} s, then ${restS} s idle`);
      const load = await sustained(ctx, c);
      const footprint: Footprint = {
        settings: c.settings,
        startupMs,
        startupCpuMs,
        idleEmbeddedMiB,
        idleFileMiB,
        peakMiB: load.peakMiB,
        lastWindowMiB: load.lastWindowMiB,
        afterMiB: load.afterMiB,
        recoveredAfterS: load.recoveredAfterS,
      };
      rows.push({
        ...base,
        reqPerS: load.reqPerS,
        p99Ms: load.p99Ms,
        proxyCpuUsPerReq: load.proxyCpuUsPerReq,
        rssMiB: load.peakMiB,
        footprint,
      });
      ctx.progress(
        `${c.via}: start-up ${startupMs?.toFixed(0) ?? '-'} ms, idle ${idleEmbeddedMiB?.toFixed(1) ?? '-'} / ${idleFileMiB.toFixed(1)} MiB, peak ${load.peakMiB?.toFixed(1)} MiB, after ${load.afterMiB?.toFixed(1)} MiB`,
      );
    } catch (err) {
      ctx.progress(`${c.via} footprint: ${fmtErr(err)}`);
      rows.push({ ...base, error: fmtErr(err) });
    }
  }
  return rows;
}
