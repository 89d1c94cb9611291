/**
 * The floor: node:http and undici's `dispatch` with nothing between them — the head and each
 * body chunk written to the client as undici hands them over, no stream, no promise, no
 * feature. What any proxy on this runtime pays at the least; reprise sends its tries the same
 * way. Answers 502 when the upstream cannot be reached. Run like the reference:
 * `node floor-proxy.ts PORT` as a child process.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';

// RFC 9110 §7.6.1 hop-by-hop headers, plus what undici sets itself. The same list as the
// reference's: each bare proxy is one self-contained script (processes.ts runs it with `-e`)
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

const agent = new Agent({ keepAliveTimeout: 60_000 });

function endToEnd(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, raw[i + 1] as string);
  }
  return out;
}

function forward(req: http.IncomingMessage, res: http.ServerResponse): void {
  let url: URL;
  try {
    url = new URL(req.url ?? '');
  } catch {
    res.writeHead(400, { 'content-length': 0 }).end();
    return;
  }
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'];
  let controller: Dispatcher.DispatchController | undefined;
  res.on('close', () => {
    if (!res.writableFinished) controller?.abort(new Error('client went away'));
  });
  agent.dispatch(
    {
      origin: url.origin,
      path: url.pathname + url.search,
      method: req.method as Dispatcher.HttpMethod,
      headers: endToEnd(req.rawHeaders),
      body: hasBody ? req : null,
    },
    {
      onRequestStart(c) {
        controller = c;
      },
      onResponseStart(c, status) {
        const raw = (c.rawHeaders ?? []) as (Buffer | string)[];
        res.writeHead(status, endToEnd(raw.map((h) => h.toString('latin1'))));
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

const server = http.createServer({ keepAliveTimeout: 120_000 }, forward);
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', port });
});
process.on('disconnect', () => process.exit(0));
