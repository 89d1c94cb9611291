/**
 * Memory and time bounds, measured on the built CLI (`npm run build` first) in a child
 * process, so the figures are the proxy's own: VmRSS (now) and VmHWM (peak) from
 * /proc/PID/status, open sockets from /proc/PID/fd, the heap from its /metrics after a
 * forced GC (the soak's child runs with --expose-gc and collects on SIGUSR2).
 *
 * Growth is measured on a warmed-up process (a first, smaller run of the same kind; then
 * the peak is reset): what a running sidecar pays per scenario. The first run's one-time
 * growth (code compiled, allocator arenas and V8's young generation grown) is logged.
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  parsePrometheus,
  type RunningCli,
  removeTempDirs,
  startCli,
  writeConfig,
} from '../helpers/cli.ts';
import { viaProxy } from '../helpers/proxy.ts';
import {
  delayed,
  dropConnection,
  echo,
  reply,
  seededRandom,
  startUpstream,
  truncate,
  type Upstream,
} from '../helpers/upstream.ts';

const MiB = 1024 * 1024;
/**
 * A 256 MiB stream through a warmed-up proxy may grow RSS by this much, a quarter of the body:
 * holding the body, or more than the in-flight window, goes past it. Below it is the read
 * buffers that died since V8's last collection (it collects on external memory growth) and
 * where glibc happens to place the new ones: the same build measured 4–48 MiB across runs.
 */
const STREAM_GROWTH_BOUND = 64 * MiB;
const GC_ON_SIGUSR2 =
  "--expose-gc --import=data:text/javascript,process.on('SIGUSR2',()=>globalThis.gc())";

let cli: RunningCli | undefined;
let server: Server | undefined;
let upstream: Upstream | undefined;
afterEach(async () => {
  await cli?.stop();
  if (server !== undefined) {
    server.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  }
  await upstream?.close();
  cli = server = upstream = undefined;
  removeTempDirs();
});

async function startReprise(yaml: string, env: Record<string, string> = {}): Promise<RunningCli> {
  cli = await startCli(writeConfig(yaml), {
    LOG_LEVEL: 'info',
    ...env,
  });
  return cli;
}

/**
 * VmRSS, VmHWM and RssFile of a process, in bytes. RssFile is the node binary's own pages: code
 * first run during a scenario, not memory it holds, so growth figures leave its growth out.
 */
function memoryOf(pid: number): { rssBytes: number; peakBytes: number; fileBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]);
  return {
    rssBytes: kib('VmRSS') * 1024,
    peakBytes: kib('VmHWM') * 1024,
    fileBytes: kib('RssFile') * 1024,
  };
}

/** Peak RSS since `idle` was taken, less the pages of code first run meanwhile. */
function growthSince(pid: number, idle: { rssBytes: number; fileBytes: number }): number {
  const now = memoryOf(pid);
  return now.peakBytes - idle.rssBytes - Math.max(0, now.fileBytes - idle.fileBytes);
}

/**
 * Starts a new peak: VmHWM := VmRSS (Linux `clear_refs` 5). Measured from here, a peak is the
 * scenario's own, not start-up's or warm-up's.
 */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

function openSockets(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;
}

async function adminJson(px: RunningCli, path: string): Promise<Record<string, number>> {
  return (await fetch(`http://127.0.0.1:${px.adminPort}${path}`)).json() as Promise<
    Record<string, number>
  >;
}

async function metrics(px: RunningCli) {
  return parsePrometheus(await (await fetch(`http://127.0.0.1:${px.adminPort}/metrics`)).text());
}

async function startServer(
  handler: (req: IncomingMessage, res: import('node:http').ServerResponse) => void,
) {
  server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await new Promise((resolve) => server?.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends `totalBytes` of `chunk` as the body of one request; resolves with the status. */
function upload(
  proxyPort: number,
  url: string,
  chunk: Buffer,
  totalBytes: number,
  progress?: { sentBytes: number },
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: proxyPort,
      method: 'PUT',
      path: url,
      agent: false,
      headers: { 'content-length': String(totalBytes) },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    let sent = 0;
    const pump = (): void => {
      while (sent < totalBytes) {
        const piece = chunk.subarray(0, Math.min(chunk.length, totalBytes - sent));
        sent += piece.length;
        const more = req.write(piece, () => {
          if (progress) progress.sentBytes += piece.length;
        });
        if (!more) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

/**
 * Waits until `sent()` has not moved for 500 ms (at most 5 s): the sender is held back.
 * Returns the bytes then in flight (sent, not yet received), or undefined when the sender
 * never stalled short of `totalBytes`.
 */
async function inFlightWhenStalled(
  sent: () => number,
  received: () => number,
  totalBytes: number,
): Promise<number | undefined> {
  let last = sent();
  let stillSinceMs = Date.now();
  for (const deadlineMs = Date.now() + 5_000; Date.now() < deadlineMs; ) {
    await sleep(50);
    const now = sent();
    if (now !== last) {
      last = now;
      stillSinceMs = Date.now();
    } else if (Date.now() - stillSinceMs >= 500) {
      return now >= totalBytes ? undefined : now - received();
    }
  }
  return undefined;
}

/** Sends a request and closes the connection as soon as the response head arrives. */
function leaveAfterHead(proxyPort: number, method: string, url: string): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: proxyPort,
      method,
      path: url,
      agent: false,
    });
    req.on('response', () => {
      req.destroy();
      resolve();
    });
    req.on('error', () => resolve());
    req.end();
  });
}

describe('memory bounds (the built CLI in a child process)', () => {
  it('completes 1,000 concurrent 1 MiB uploads with replay copies under maxBufferedBytes', async () => {
    // each upload is held 300 ms once received, so without the cap all 1,000 copies would coexist
    const origin = await startServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => res.end('stored'), 300));
    });
    const px = await startReprise(
      'limits:\n  maxBufferedBytes: 64MiB\ndefaults:\n  upstream:\n    maxConcurrent: 5000\n',
    );
    const pid = px.child.pid as number;
    const body = Buffer.alloc(MiB, 7);
    // a warmed-up sidecar: code compiled, pools and allocator arenas grown by a first batch
    const cold = memoryOf(pid).rssBytes;
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => upload(px.proxyPort, `${origin}/w${i}`, body, MiB)),
    );
    const warmUpGrowth = memoryOf(pid).peakBytes - cold;
    await sleep(300);
    resetPeak(pid);
    const idle = memoryOf(pid);
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push((await adminJson(px, '/state')).bufferedBytes as number);
        await sleep(20);
      }
    })();
    const started = Date.now();
    const statuses = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => upload(px.proxyPort, `${origin}/u${i}`, body, MiB)),
    );
    const elapsedMs = Date.now() - started;
    sampling = false;
    await sampler;
    const peak = memoryOf(pid).peakBytes;
    console.log(
      `1000 x 1 MiB uploads: ${elapsedMs} ms; buffered max ${(Math.max(...samples) / MiB).toFixed(1)} MiB ` +
        `over ${samples.length} samples; RSS idle ${(idle.rssBytes / MiB).toFixed(0)} MiB, ` +
        `peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - idle.rssBytes) / MiB).toFixed(0)} MiB); ` +
        `the 100-upload warm-up grew it by ${(warmUpGrowth / MiB).toFixed(0)} MiB from cold`,
    );
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(Math.max(...samples)).toBeLessThanOrEqual(64 * MiB);
    // the cap was under pressure, not idle
    expect(Math.max(...samples)).toBeGreaterThanOrEqual(32 * MiB);
    expect(peak - idle.rssBytes).toBeLessThan(192 * MiB);
    expect((await adminJson(px, '/state')).bufferedBytes).toBe(0);
  }, 60_000);

  it('streams a 256 MiB download with RSS growth under 64 MiB; a slow reader stalls the upstream', async () => {
    const totalBytes = 256 * MiB;
    const chunk = Buffer.alloc(MiB, 1);
    const written = { bytes: 0, done: false };
    const origin = await startServer((req, res) => {
      // /warm: 64 MiB at full speed; anything else: the 256 MiB that is measured
      const size = req.url === '/warm' ? 64 * MiB : totalBytes;
      written.bytes = 0;
      res.writeHead(200, { 'content-length': String(size) });
      const pump = (): void => {
        while (written.bytes < size) {
          written.bytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        written.done = true;
        res.end();
      };
      pump();
    });
    const px = await startReprise('');
    const pid = px.child.pid as number;
    const cold = memoryOf(pid).rssBytes;
    await viaProxy(px.proxyPort, 'GET', `${origin}/warm`);
    const warmUpGrowth = memoryOf(pid).peakBytes - cold;
    await sleep(300);
    resetPeak(pid);
    const idle = memoryOf(pid);
    let received = 0;
    let stalledInFlight: number | undefined;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: px.proxyPort,
        path: `${origin}/big`,
        agent: false,
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let paused = false;
        res.on('data', (data: Buffer) => {
          received += data.length;
          if (!paused && received >= 32 * MiB) {
            paused = true;
            res.pause();
            // a reader that stops: the upstream must stop too, short of the end
            void inFlightWhenStalled(
              () => written.bytes,
              () => received,
              totalBytes,
            ).then((n) => {
              stalledInFlight = n;
              res.resume();
            });
          }
        });
        res.on('end', () => resolve());
      });
      req.end();
    });
    const growth = growthSince(pid, idle);
    console.log(
      `256 MiB download: RSS growth ${(growth / MiB).toFixed(1)} MiB; the upstream stalled ` +
        `with ${((stalledInFlight ?? Number.NaN) / MiB).toFixed(1)} MiB in flight; a 64 MiB warm-up grew it by ` +
        `${(warmUpGrowth / MiB).toFixed(1)} MiB from cold`,
    );
    expect(received).toBe(totalBytes);
    expect(stalledInFlight).toBeLessThan(64 * MiB);
    expect(growth).toBeLessThan(STREAM_GROWTH_BOUND);
  }, 30_000);

  it('streams a 256 MiB upload with RSS growth under 64 MiB; a slow upstream stalls the client', async () => {
    const totalBytes = 256 * MiB;
    let receivedBytes = 0;
    let stalledInFlight: number | undefined;
    const progress = { sentBytes: 0 };
    const origin = await startServer((req, res) => {
      if (req.url === '/warm') {
        req.resume();
        return void req.on('end', () => res.end('ok'));
      }
      let paused = false;
      req.on('data', (data: Buffer) => {
        receivedBytes += data.length;
        if (!paused && receivedBytes >= 32 * MiB) {
          paused = true;
          req.pause();
          // an upstream that stops reading: the client must be held back too
          const sent = () => progress.sentBytes;
          void inFlightWhenStalled(sent, () => receivedBytes, totalBytes).then((n) => {
            stalledInFlight = n;
            req.resume();
          });
        }
      });
      req.on('end', () => res.end('ok'));
    });
    const px = await startReprise('');
    const pid = px.child.pid as number;
    const cold = memoryOf(pid).rssBytes;
    await upload(px.proxyPort, `${origin}/warm`, Buffer.alloc(MiB, 2), 128 * MiB);
    const warmUpGrowth = memoryOf(pid).peakBytes - cold;
    await sleep(300);
    resetPeak(pid);
    const idle = memoryOf(pid);
    const status = await upload(
      px.proxyPort,
      `${origin}/big`,
      Buffer.alloc(MiB, 2),
      totalBytes,
      progress,
    );
    const growth = growthSince(pid, idle);
    console.log(
      `256 MiB upload: RSS growth ${(growth / MiB).toFixed(1)} MiB; the client stalled with ` +
        `${((stalledInFlight ?? Number.NaN) / MiB).toFixed(1)} MiB in flight; a 128 MiB warm-up grew it by ` +
        `${(warmUpGrowth / MiB).toFixed(1)} MiB from cold`,
    );
    expect(status).toBe(200);
    expect(receivedBytes).toBe(totalBytes);
    expect(stalledInFlight).toBeLessThan(64 * MiB);
    expect(growth).toBeLessThan(STREAM_GROWTH_BOUND);
  }, 30_000);
});

describe('idle keep-alive connections', () => {
  it('hold no finished exchange: heap per idle connection as node:http itself needs', async () => {
    upstream = await startUpstream([reply(200, 'ok')]);
    const px = await startReprise('', { NODE_OPTIONS: GC_ON_SIGUSR2 });
    const heapUsed = async () => {
      px.child.kill('SIGUSR2');
      await sleep(200);
      const samples = await metrics(px);
      return samples.find((s) => s.name === 'nodejs_heap_size_used_bytes')?.value ?? Number.NaN;
    };
    const request = Buffer.from(
      `GET ${upstream.origin}/idle HTTP/1.1\r\nHost: ${new URL(upstream.origin).host}\r\n\r\n`,
    );
    const openIdle = async (count: number): Promise<Socket[]> => {
      const sockets: Socket[] = [];
      for (let i = 0; i < count; i += 100) {
        const batch = Array.from({ length: Math.min(100, count - i) }, () =>
          answeredOnce(px.proxyPort, request),
        );
        sockets.push(...(await Promise.all(batch)));
      }
      return sockets;
    };
    // warm-up: code compiled, pools made
    for (const socket of await openIdle(200)) socket.destroy();
    const before = await heapUsed();
    const count = 2_000;
    const idle = await openIdle(count);
    const after = await heapUsed();
    for (const socket of idle) socket.destroy();
    const perConnection = (after - before) / count;
    console.log(`idle keep-alive: ${(perConnection / 1024).toFixed(2)} KiB of heap each`);
    // node:http's own socket, parser and timers take about 3.3 KiB; keeping the last request,
    // response and exchange of each connection took about 6.8
    expect(perConnection).toBeLessThan(5 * 1024);
  }, 30_000);
});

/** A connection that sent `request`, got its 200 head, and stays open. */
function answeredOnce(port: number, request: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    socket.once('data', (chunk: Buffer) => {
      if (chunk.subarray(0, 12).toString('latin1') === 'HTTP/1.1 200') resolve(socket);
      else reject(new Error(`unexpected answer: ${chunk.subarray(0, 40).toString('latin1')}`));
    });
    socket.once('error', reject);
  });
}

describe('soak (seconds here, minutes in npm run bench)', () => {
  it('returns heap and sockets to baseline and accounts for every request in the metrics', async () => {
    const random = seededRandom(42);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    upstream = await startUpstream([
      (req, res, body) =>
        pick([
          reply(200, 'ok'),
          reply(200, 'ok'),
          echo(),
          reply(503, 'busy'),
          dropConnection(),
          truncate(20_000, 1000),
          delayed(20, reply(200, 'late')),
        ])(req, res, body),
    ]);
    const px = await startReprise(
      'defaults:\n  route:\n    retry:\n      backoff: { base: 1ms, max: 10ms }\n' +
        '  upstream:\n    circuitBreaker: { enabled: false }\n',
      { NODE_OPTIONS: GC_ON_SIGUSR2 },
    );
    const pid = px.child.pid as number;
    const heapUsed = async () => {
      px.child.kill('SIGUSR2');
      await sleep(200);
      const samples = await metrics(px);
      return samples.find((s) => s.name === 'nodejs_heap_size_used_bytes')?.value ?? Number.NaN;
    };
    const socketsBaseline = openSockets(pid);
    const body = Buffer.alloc(10_000, 3);
    let sent = 0;
    const outcomes = { complete: 0, broken: 0, left: 0, failed: 0 };
    const runFor = async (ms: number) => {
      const until = Date.now() + ms;
      const worker = async () => {
        while (Date.now() < until) {
          const method = pick(['GET', 'GET', 'HEAD', 'PUT', 'POST', 'DELETE']);
          const withBody = method === 'PUT' || method === 'POST';
          const url = `${upstream?.origin}/s${++sent}`;
          if (random() < 0.03) {
            // a client that leaves once the answer starts: the proxy surely had its request
            await leaveAfterHead(px.proxyPort, method, url);
            outcomes.left++;
            continue;
          }
          try {
            const res = await viaProxy(px.proxyPort, method, url, {
              body: withBody ? body : undefined,
            });
            outcomes[res.complete ? 'complete' : 'broken']++;
          } catch {
            outcomes.failed++;
          }
        }
      };
      await Promise.all(Array.from({ length: 24 }, worker));
    };
    await runFor(500);
    const heapBaseline = await heapUsed();
    const sentBefore = sent;
    await runFor(4000);
    let state = await adminJson(px, '/state');
    for (let i = 0; i < 50 && state.inFlight !== 0; i++) {
      await sleep(100);
      state = await adminJson(px, '/state');
    }
    const heapAfter = await heapUsed();
    // upstream keep-alive sockets close once idle (4 s in the pool)
    let sockets = openSockets(pid);
    for (let i = 0; i < 60 && sockets > socketsBaseline; i++) {
      await sleep(100);
      sockets = openSockets(pid);
    }
    let counted = 0;
    for (let i = 0; i < 20; i++) {
      counted = (await metrics(px))
        .filter((s) => s.name === 'reprise_requests_total')
        .reduce((sum, s) => sum + s.value, 0);
      if (counted === sent) break;
      await sleep(100);
    }
    console.log(
      `soak: ${sent} requests (${sent - sentBefore} after the baseline): ${JSON.stringify(outcomes)}; ` +
        `counted ${counted}; heap ${(heapBaseline / MiB).toFixed(1)} -> ${(heapAfter / MiB).toFixed(1)} MiB; ` +
        `sockets ${socketsBaseline} -> ${sockets}; buffered ${state.bufferedBytes}`,
    );
    expect(counted).toBe(sent);
    expect(state.inFlight).toBe(0);
    expect(state.bufferedBytes).toBe(0);
    expect(sockets).toBeLessThanOrEqual(socketsBaseline);
    expect(heapAfter - heapBaseline).toBeLessThan(8 * MiB);
    expect(outcomes.broken).toBeGreaterThan(0);
  }, 30_000);
});
