/**
 * A real loopback upstream that misbehaves on cue. Each request takes the next step of the
 * script (the last step repeats):
 *
 *   const up = await startUpstream([reply(503), dropConnection(), reply(200, 'ok')]);
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { closeLater } from './close-after-each.ts';
import { seededRandom } from './seeded-random.ts';

export { seededRandom };

export interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly rawHeaders: string[];
  readonly body: Buffer;
  /** Which TCP connection carried it (1, 2, …). */
  readonly connection: number;
}

export type Step = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export function reply(
  status: number,
  body: string | Buffer = '',
  headers: Record<string, string> = {},
): Step {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(body);
  };
}

/** Echoes the request body back with 200. */
export function echo(): Step {
  return (_req, res, body) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(body);
  };
}

/** Closes the connection without answering (a reset before response headers). */
export function dropConnection(): Step {
  return (req) => req.socket.destroy();
}

/** Never answers. */
export function hang(): Step {
  return () => {};
}

/** Answers after a while. */
export function delayed(ms: number, step: Step): Step {
  return (req, res, body) => {
    const timer = setTimeout(() => step(req, res, body), ms);
    res.on('close', () => clearTimeout(timer));
  };
}

/** Sends headers and part of the body, then dies. */
export function truncate(declaredBytes: number, sentBytes: number): Step {
  return (req, res) => {
    res.writeHead(200, { 'content-length': String(declaredBytes) });
    res.write(Buffer.alloc(sentBytes, 97), () => setTimeout(() => req.socket.destroy(), 20));
  };
}

/** Sends the headers at once and the body after a while (in flight until the body ends). */
export function slowBody(ms: number, body = 'slow'): Step {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
    res.flushHeaders();
    const timer = setTimeout(() => res.end(body), ms);
    res.on('close', () => clearTimeout(timer));
  };
}

/** A step whose behaviour a test changes while it runs: `const s = switchable(reply(503)); s.set(reply(200))`. */
export function switchable(initial: Step): Step & { set(next: Step): void } {
  let current = initial;
  const step: Step = (req, res, body) => current(req, res, body);
  return Object.assign(step, {
    set(next: Step) {
      current = next;
    },
  });
}

/** Every `n`th request (n, 2n, …) takes `failStep`; the others `okStep`. */
export function failEvery(n: number, failStep: Step, okStep: Step): Step {
  let count = 0;
  return (req, res, body) => {
    count++;
    (count % n === 0 ? failStep : okStep)(req, res, body);
  };
}

export interface BurstStats {
  readonly requests: number;
  readonly failed: number;
  readonly bursts: number;
}

/**
 * Fails in bursts of time, as a flapping dependency does (a Gilbert–Elliott channel): bad
 * spells of `minBadMs`–`maxBadMs` answered with `failStep`, good spells between them sized so
 * that about `badShare` of the time is bad. Seeded, so the schedule is the same on every run.
 */
export function burstyFailures(options: {
  readonly seed: number;
  readonly badShare: number;
  readonly minBadMs: number;
  readonly maxBadMs: number;
  readonly failStep: Step;
  readonly okStep: Step;
}): Step & { stats(): BurstStats } {
  const random = seededRandom(options.seed);
  const meanBadMs = (options.minBadMs + options.maxBadMs) / 2;
  const meanGoodMs = (meanBadMs * (1 - options.badShare)) / options.badShare;
  let bad = false;
  let spellEndsAt = -1;
  let requests = 0;
  let failed = 0;
  let bursts = 0;
  const step: Step = (req, res, body) => {
    const now = performance.now();
    if (spellEndsAt < 0) spellEndsAt = now + meanGoodMs * 2 * random();
    while (now >= spellEndsAt) {
      bad = !bad;
      if (bad) bursts++;
      const spanMs = bad
        ? options.minBadMs + random() * (options.maxBadMs - options.minBadMs)
        : meanGoodMs * 2 * random();
      spellEndsAt += spanMs;
    }
    requests++;
    if (bad) {
      failed++;
      options.failStep(req, res, body);
    } else {
      options.okStep(req, res, body);
    }
  };
  return Object.assign(step, { stats: () => ({ requests, failed, bursts }) });
}

export interface Upstream {
  readonly port: number;
  readonly origin: string;
  readonly authority: string;
  /** Requests whose body has been read, in order. */
  readonly seen: Seen[];
  /** Requests whose head has arrived, bodies read or not. */
  readonly heads: number;
  readonly connections: number;
  close(): Promise<void>;
}

export async function startUpstream(script: Step[] = [reply(200, 'ok')]): Promise<Upstream> {
  const seen: Seen[] = [];
  let connections = 0;
  let heads = 0;
  const sockets = new Set<Socket>();
  const ids = new WeakMap<Socket, number>();
  const server: Server = createServer((req, res) => {
    heads++;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const index = seen.length;
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body,
        connection: ids.get(req.socket) ?? 0,
      });
      const step = script[Math.min(index, script.length - 1)] as Step;
      step(req, res, body);
    });
  });
  server.on('connection', (socket: Socket) => {
    ids.set(socket, ++connections);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    authority: `127.0.0.1:${port}`,
    seen,
    get heads() {
      return heads;
    },
    get connections() {
      return connections;
    },
    close: closeLater(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }),
  };
}

/** A loopback port with nothing listening on it. */
export async function deadPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
