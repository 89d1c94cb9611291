/**
 * The bare pass-through reference: a forward proxy with no features (no retries, no logs, no
 * metrics), using undici's `Agent.request` and `pipe` — the floor any Node proxy pays. Answers
 * 502 when the upstream cannot be reached. Run as a child process: `node reference-proxy.ts PORT`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';

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

const agent = new Agent({ keepAliveTimeout: 60_000 });

function endToEnd(
  headers: http.IncomingHttpHeaders | Record<string, string | string[] | undefined>,
) {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

async function forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '');
  } catch {
    res.writeHead(400, { 'content-length': 0 }).end();
    return;
  }
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'];
  try {
    const upstream = await agent.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: req.method as 'GET',
      headers: endToEnd(req.headers),
      body: hasBody ? req : null,
    });
    res.writeHead(upstream.statusCode, endToEnd(upstream.headers));
    // a client gone mid-body destroys the upstream body, which then errors: nothing to answer
    upstream.body.on('error', () => res.destroy());
    res.on('close', () => upstream.body.destroy());
    upstream.body.pipe(res);
  } catch {
    if (!res.headersSent) res.writeHead(502, { 'content-length': 0 });
    res.end();
  }
}

const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  void forward(req, res);
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', port });
});
process.on('disconnect', () => process.exit(0));
