/**
 * The bench upstream: a bare node:http origin run as its own child process (see run.ts for the
 * CPU placement), controlled over the IPC channel so that the load generator never shares its
 * event loop.
 *
 * Routes: `GET /bytes/N` answers N bytes (Content-Length); any request with a body (the PUT
 * sink) is read to the end and answered `200 ok`, or `400` when fewer bytes arrived than
 * announced; under `/slow/MS/` no sooner than MS ms after its head arrived (a slow upstream
 * that still reads every byte). A fault mode, set over IPC, decides before routing whether to answer 503.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { seededRandom } from '../test/helpers/seeded-random.ts';

export type FaultMode =
  | { kind: 'ok' }
  /** The first try (`x-reprise-attempt` absent or 1) fails with 503 with this probability. */
  | { kind: 'first-try-fail'; rate: number }
  /** Gilbert–Elliott: a good/bad Markov chain with per-ms transition probabilities; bad answers 503. */
  | { kind: 'gilbert-elliott'; goodToBadPerMs: number; badToGoodPerMs: number }
  | { kind: 'outage' };

export interface UpstreamStats {
  requests: number;
  firstTries: number;
  retries: number;
  failed: number;
  /** TLS handshakes completed (an HTTPS upstream only). */
  handshakes: number;
}

export type ControlRequest = { type: 'mode'; mode: FaultMode } | { type: 'stats'; reset: boolean };
export type ControlMessage = ControlRequest & { id: number };

const seed = Number(process.env.BENCH_SEED ?? 7);
const random = seededRandom(seed);
let mode: FaultMode = { kind: 'ok' };
const NO_STATS: UpstreamStats = {
  requests: 0,
  firstTries: 0,
  retries: 0,
  failed: 0,
  handshakes: 0,
};
let stats: UpstreamStats = { ...NO_STATS };

/**
 * The Gilbert–Elliott chain as a schedule of good and bad spells (geometric lengths in ms) drawn
 * from its own generator, reseeded on every mode change: a direct run and a proxied run see the
 * same bursts at the same offsets from the mode change.
 */
let chainRandom = seededRandom(seed);
let bad = false;
let spellEndMs = 0;

function spellMs(leaveProbabilityPerMs: number): number {
  return Math.max(1, Math.ceil(Math.log(1 - chainRandom()) / Math.log(1 - leaveProbabilityPerMs)));
}

function isBadNow(goodToBad: number, badToGood: number, nowMs: number): boolean {
  while (nowMs >= spellEndMs) {
    bad = !bad;
    spellEndMs += spellMs(bad ? badToGood : goodToBad);
  }
  return bad;
}

function startChain(goodToBad: number): void {
  chainRandom = seededRandom(seed);
  bad = false;
  spellEndMs = performance.now() + spellMs(goodToBad);
}

function shouldFail(isFirstTry: boolean): boolean {
  switch (mode.kind) {
    case 'ok':
      return false;
    case 'first-try-fail':
      return isFirstTry && random() < mode.rate;
    case 'gilbert-elliott':
      return isBadNow(mode.goodToBadPerMs, mode.badToGoodPerMs, performance.now());
    case 'outage':
      return true;
  }
}

const payloads = new Map<number, Buffer>();
function payload(bytes: number): Buffer {
  let buf = payloads.get(bytes);
  if (buf === undefined) {
    buf = Buffer.alloc(bytes, 'x');
    payloads.set(bytes, buf);
  }
  return buf;
}

const UNAVAILABLE = Buffer.from('unavailable\n');
const MAX_BYTES = 16 * 1024 * 1024;

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const attempt = req.headers['x-reprise-attempt'];
  const isFirstTry = attempt === undefined || attempt === '1';
  stats.requests++;
  if (isFirstTry) stats.firstTries++;
  else stats.retries++;
  if (shouldFail(isFirstTry)) {
    stats.failed++;
    res.writeHead(503, { 'content-type': 'text/plain', 'content-length': UNAVAILABLE.length });
    res.end(UNAVAILABLE);
    return;
  }
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/bytes/')) {
    const bytes = Number(url.slice('/bytes/'.length));
    if (Number.isInteger(bytes) && bytes >= 0 && bytes <= MAX_BYTES) {
      const body = payload(bytes);
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': body.length,
      });
      res.end(body);
      return;
    }
  }
  if (req.method === 'PUT' || req.method === 'POST') {
    sink(req, res);
    return;
  }
  res.writeHead(404, { 'content-length': 0 });
  res.end();
}

const SLOW = /^\/slow\/(\d+)\//;

function sink(req: http.IncomingMessage, res: http.ServerResponse): void {
  const expected = Number(req.headers['content-length'] ?? -1);
  const delayMs = Number(SLOW.exec(req.url ?? '')?.[1] ?? 0);
  const answerAt = performance.now() + delayMs;
  let received = 0;
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  req.on('end', () => {
    const complete = expected < 0 || received === expected;
    const answer = () => {
      res.writeHead(complete ? 200 : 400, { 'content-type': 'text/plain', 'content-length': 3 });
      res.end(complete ? 'ok\n' : 'bad');
    };
    const waitMs = answerAt - performance.now();
    if (waitMs > 0) setTimeout(answer, waitMs);
    else answer();
  });
}

function onControl(message: ControlMessage): void {
  if (message.type === 'mode') {
    mode = message.mode;
    if (mode.kind === 'gilbert-elliott') startChain(mode.goodToBadPerMs);
    process.send?.({ id: message.id, ok: true });
    return;
  }
  process.send?.({ id: message.id, stats });
  if (message.reset) stats = { ...NO_STATS };
}

// BENCH_UPSTREAM_CERT and _KEY (PEM files): an HTTPS origin, for TLS origination
const certFile = process.env.BENCH_UPSTREAM_CERT;
const keyFile = process.env.BENCH_UPSTREAM_KEY;
const options = { keepAliveTimeout: 120_000, requestTimeout: 0 };
const server =
  certFile !== undefined && keyFile !== undefined
    ? https.createServer(
        { ...options, cert: readFileSync(certFile), key: readFileSync(keyFile) },
        handle,
      )
    : http.createServer(options, handle);
server.on('secureConnection', () => {
  stats.handshakes++;
});
server.headersTimeout = 0;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.on('message', onControl);
  process.send?.({ type: 'ready', port });
});
// the parent going away (IPC closed) ends the upstream too
process.on('disconnect', () => process.exit(0));
