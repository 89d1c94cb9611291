/**
 * The two bare forward proxies the bench measures reprise against, neither with any feature
 * (no retries, no logs, no metrics); each answers 400 to a target that is not a URL and 502
 * when the upstream cannot be reached. `BARE_PROXY` picks one:
 *
 * - `reference`: undici's `Agent.request` and `pipe`, the way a Node proxy is usually written;
 * - `floor`: undici's `dispatch` with nothing between it and node:http — the head and each body
 *   chunk written to the client as undici hands them over, no stream, no promise. What any
 *   proxy on this runtime pays at the least; reprise sends its tries the same way.
 *
 * With `BARE_TLS_CA` (a PEM file) and `BARE_TLS_SERVERNAME`, either originates TLS: an
 * `http://host:port` target is sent to `https://host:port`, verified against that CA with that
 * SNI, on kept-alive connections with undici's session cache (what reprise's TLS origination
 * is measured against).
 *
 * Run as a child process: `BARE_PROXY=floor node bare-proxies.ts [PORT]`; it reports its port
 * over IPC. One self-contained script: processes.ts strips its types and runs it with `-e`.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';

// RFC 9110 §7.6.1 hop-by-hop headers, plus what undici sets itself
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

const tlsCa = process.env.BARE_TLS_CA;
const agent = new Agent({
  keepAliveTimeout: 60_000,
  ...(tlsCa !== undefined && {
    connect: { ca: readFileSync(tlsCa, 'utf8'), servername: process.env.BARE_TLS_SERVERNAME },
  }),
});

/** Where a target is sent: its own origin, or the same host and port over TLS. */
const originOf = (url: URL) => (tlsCa === undefined ? url.origin : `https://${url.host}`);

/** The absolute-form target, or undefined once a 400 has answered it. */
function targetOf(req: http.IncomingMessage, res: http.ServerResponse): URL | undefined {
  try {
    return new URL(req.url ?? '');
  } catch {
    res.writeHead(400, { 'content-length': 0 }).end();
    return undefined;
  }
}

const hasBody = (req: http.IncomingMessage) =>
  req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;

function reference(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = targetOf(req, res);
  if (url !== undefined) void referenceForward(url, req, res);
}

function endToEndObject(
  headers: http.IncomingHttpHeaders | Record<string, string | string[] | undefined>,
) {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

async function referenceForward(
  url: URL,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  try {
    const upstream = await agent.request({
      origin: originOf(url),
      path: url.pathname + url.search,
      method: req.method as 'GET',
      headers: endToEndObject(req.headers),
      body: hasBody(req) ? req : null,
    });
    res.writeHead(upstream.statusCode, endToEndObject(upstream.headers));
    // a client gone mid-body destroys the upstream body, which then errors: nothing to answer
    upstream.body.on('error', () => res.destroy());
    res.on('close', () => upstream.body.destroy());
    upstream.body.pipe(res);
  } catch {
    if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
    res.end();
  }
}

function endToEndRaw(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1] as string);
  }
  return out;
}

function floor(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = targetOf(req, res);
  if (url === undefined) return;
  let controller: Dispatcher.DispatchController | undefined;
  res.on('close', () => {
    if (!res.writableFinished) controller?.abort(new Error('client went away'));
  });
  agent.dispatch(
    {
      origin: originOf(url),
      path: url.pathname + url.search,
      method: req.method as Dispatcher.HttpMethod,
      headers: endToEndRaw(req.rawHeaders),
      body: hasBody(req) ? req : null,
    },
    {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(c, status) {
        const raw = (c.rawHeaders ?? []) as (Buffer | string)[];
        res.writeHead(status, endToEndRaw(raw.map((h) => h.toString('latin1'))));
      },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause();
          res.once('drain', () => c.resume());
        }
      },
      onResponseEnd() {
        res.end();
      },
      onResponseError() {
        if (res.headersSent) res.destroy();
        else res.writeHead(502, { 'content-length': 0 }).end();
      },
    },
  );
}

const PROXIES = { reference, floor };
const name = process.env.BARE_PROXY as keyof typeof PROXIES;
const handler = PROXIES[name];
if (handler === undefined) throw new Error(`BARE_PROXY: one of ${Object.keys(PROXIES)}`);

const server = http.createServer({ keepAliveTimeout: 120_000 }, handler);
server.listen(Number(process.argv.at(-1)) || 0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', port });
});
process.on('disconnect', () => process.exit(0));
