/**
 * Interception: `npx node bench/intercept.ts` (after `npm run build`); `benchIntercept()` gives
 * the figures to a caller.
 *
 *  1. CPU per request, same run: a 1 KiB GET on keep-alive intercepted tunnels (client TLS to
 *     reprise, reprise TLS to an HTTPS upstream) against the same GET proxied as plain
 *     `http://` to a plain upstream. reprise's own utime + stime (/proc) over the timed part
 *     divided by the requests, CONNECTIONS connections each sending in a loop.
 *  2. Mint time p50 / p99: a leaf for a new host (sign + TLS context), in this process.
 *  3. RSS per open intercepted connection: reprise's RSS before and after OPEN_TUNNELS tunnels
 *     that finished their handshake and one request, divided by their number.
 *
 * Env: BENCH_REQUESTS (per target, default 20000), BENCH_CONNECTIONS (default 8),
 * BENCH_TUNNELS (default 500), BENCH_MINTS (default 300).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { parseHostPattern } from '../src/routing/host-pattern.ts';
import { InterceptCa } from '../src/tls/intercept-ca.ts';
import { openTunnel, requestOn } from '../test/helpers/tunnel-client.ts';
import { cpuMs, rssBytes } from './processes.ts';
import { REPRISE_MAIN } from './proxies.ts';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 20_000);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const OPEN_TUNNELS = Number(process.env.BENCH_TUNNELS ?? 500);
const MINTS = Number(process.env.BENCH_MINTS ?? 300);
const BODY = Buffer.alloc(1024, 97);

export interface InterceptFigures {
  readonly plainCpuUsPerRequest: number;
  readonly interceptedCpuUsPerRequest: number;
  readonly cpuRatio: number;
  readonly mintP50Ms: number;
  readonly mintP99Ms: number;
  readonly rssPerTunnelKiB: number;
}

export async function benchIntercept(): Promise<InterceptFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'reprise-bench-intercept-'));
  const children: ChildProcess[] = [];
  try {
    const pem = makeUpstreamCertificate(dir);
    const https = createHttpsServer({ cert: pem.cert, key: pem.key }, (_req, res) => res.end(BODY));
    const http = createHttpServer((_req, res) => res.end(BODY));
    https.keepAliveTimeout = 60_000;
    http.keepAliveTimeout = 60_000;
    https.listen(0, '127.0.0.1');
    http.listen(0, '127.0.0.1');
    await Promise.all([once(https, 'listening'), once(http, 'listening')]);
    const httpsPort = (https.address() as AddressInfo).port;
    const httpPort = (http.address() as AddressInfo).port;
    const { pid, port } = await startReprise(dir, httpsPort, pem.caFile, children);
    const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const authority = `localhost:${httpsPort}`;

    const plain = await cpuPerRequest(pid, plainLoop(port, httpPort));
    const intercepted = await cpuPerRequest(pid, tunnelLoop(port, authority, ca));
    const rss = await rssPerTunnel(pid, port, authority, ca);
    const mint = await mintTimes();
    https.close();
    http.close();
    return {
      plainCpuUsPerRequest: plain,
      interceptedCpuUsPerRequest: intercepted,
      cpuRatio: intercepted / plain,
      mintP50Ms: mint.p50,
      mintP99Ms: mint.p99,
      rssPerTunnelKiB: rss / 1024,
    };
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function makeUpstreamCertificate(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'up.key',
    '-out',
    'up.pem',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost',
  );
  const cert = readFileSync(join(dir, 'up.pem'), 'utf8');
  return { cert, key: readFileSync(join(dir, 'up.key'), 'utf8'), caFile: join(dir, 'up.pem') };
}

async function startReprise(
  dir: string,
  httpsPort: number,
  upstreamCa: string,
  children: ChildProcess[],
) {
  const config = join(dir, 'reprise.yaml');
  writeFileSync(
    config,
    `version: 1
listen: 127.0.0.1:0
admin: 127.0.0.1:0
connect:
  allowedPorts: [${httpsPort}]
  intercept: { hosts: [localhost], writeCa: ${join(dir, 'ca.crt')} }
upstreams:
  - match: localhost
    tls: { ca: ${upstreamCa} }
`,
  );
  const child = spawn(process.execPath, ['--expose-gc', REPRISE_MAIN, '--config', config], {
    stdio: ['ignore', 'pipe', 'ignore'],
    env: { ...process.env, LOG_LEVEL: 'info' },
  });
  children.push(child);
  process.once('exit', () => child.kill('SIGKILL'));
  let out = '';
  child.stdout?.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.on('data', (chunk: string) => {
      out += chunk;
      const match = /"proxy":"127\.0\.0\.1:(\d+)"/.exec(out);
      if (match !== null) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`reprise exited ${code}: ${out}`)));
  });
  // the access lines are not what is measured: drained, not kept
  child.stdout?.removeAllListeners('data');
  child.stdout?.resume();
  return { pid: child.pid as number, port };
}

/** reprise's CPU µs per request over `run` (which makes REQUESTS requests), after a warm-up. */
async function cpuPerRequest(pid: number, run: (count: number) => Promise<void>): Promise<number> {
  await run(Math.min(2000, REQUESTS / 5));
  const before = cpuMs(pid);
  await run(REQUESTS);
  return ((cpuMs(pid) - before) * 1000) / REQUESTS;
}

function plainLoop(proxyPort: number, httpPort: number) {
  return async (count: number) => {
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    const one = () =>
      new Promise<void>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port: proxyPort, path: `http://127.0.0.1:${httpPort}/x`, agent },
          (res) => {
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', reject);
        req.end();
      });
    await inLoops(count, one);
    agent.destroy();
  };
}

function tunnelLoop(proxyPort: number, authority: string, ca: string) {
  return async (count: number) => {
    const sockets = await Promise.all(
      Array.from({ length: CONNECTIONS }, () => intercepted(proxyPort, authority, ca)),
    );
    // one lane per tunnel: an HTTP/1.1 connection carries one request at a time
    await Promise.all(
      sockets.map(async (socket, lane) => {
        for (let i = lane; i < count; i += sockets.length) {
          await requestOn(socket, authority, { headers: { connection: 'keep-alive' } });
        }
      }),
    );
    for (const socket of sockets) socket.destroy();
  };
}

async function intercepted(proxyPort: number, authority: string, ca: string): Promise<TLSSocket> {
  const socket: Socket = await openTunnel(proxyPort, authority);
  const tls = tlsConnect({ socket, ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
  await once(tls, 'secureConnect');
  return tls;
}

/** `count` calls of `one`, CONNECTIONS (or `width`) at a time, each lane sequential. */
async function inLoops(count: number, one: () => Promise<void>, width = CONNECTIONS) {
  let left = count;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (left-- > 0) await one();
    }),
  );
}

async function rssPerTunnel(pid: number, proxyPort: number, authority: string, ca: string) {
  const sockets: TLSSocket[] = [];
  await new Promise((resolve) => setTimeout(resolve, 500));
  const before = rssBytes(pid);
  for (let i = 0; i < OPEN_TUNNELS; i++) {
    const tls = await intercepted(proxyPort, authority, ca);
    await requestOn(tls, authority, { headers: { connection: 'keep-alive' } });
    sockets.push(tls);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const grown = rssBytes(pid) - before;
  for (const socket of sockets) socket.destroy();
  return grown / OPEN_TUNNELS;
}

async function mintTimes(): Promise<{ p50: number; p99: number }> {
  const hosts = [parseHostPattern('*.bench.example')].filter((h) => typeof h !== 'string');
  const ca = await InterceptCa.start(
    { hosts: hosts as never, ca: undefined, writeCa: undefined, writeBundle: undefined, id: 'b' },
    { now: Date.now },
  );
  // warmed up first: the first signatures also compile the code that makes them
  for (let i = 0; i < 20; i++) await ca.contextFor(`warm${i}.bench.example`, 443);
  const times: number[] = [];
  for (let i = 0; i < MINTS; i++) {
    const start = performance.now();
    await ca.contextFor(`h${i}.bench.example`, 443);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) =>
    times[Math.min(times.length - 1, Math.floor(q * times.length))] as number;
  return { p50: at(0.5), p99: at(0.99) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = await benchIntercept();
  const row = (name: string, value: string) => console.log(`${name.padEnd(46)} ${value}`);
  row('plain http:// through reprise, CPU µs/req', f.plainCpuUsPerRequest.toFixed(1));
  row('intercepted https:// in a tunnel, CPU µs/req', f.interceptedCpuUsPerRequest.toFixed(1));
  row('ratio (target ≤ 1.5)', f.cpuRatio.toFixed(2));
  row(
    'mint p50 / p99 ms (target p50 ≤ 5)',
    `${f.mintP50Ms.toFixed(2)} / ${f.mintP99Ms.toFixed(2)}`,
  );
  row('RSS per open intercepted connection, KiB', f.rssPerTunnelKiB.toFixed(1));
}
