/**
 * `reprise demo-upstream`: a flaky HTTP server on loopback, so that the first minute with
 * reprise shows a request retried and healed on this machine, with nothing else installed.
 *
 * Each request id fails its first `failures` tries with 503 and succeeds after. The id is the
 * `x-request-id` that reprise sends on every try of one request (made by reprise when the
 * client sent none), so through reprise a GET heals on its third try; called directly, without
 * an id, every request gets 503, which is what the same client would see without reprise.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const DEMO_LISTEN = { host: '127.0.0.1', port: 8503 } as const;
/** Tries of one request id that fail before it is answered 200. */
const DEMO_FAILURES = 2;
/** Request ids still counted; the oldest is forgotten past this, so memory stays bounded. */
const REMEMBERED_IDS = 10_000;

export interface DemoUpstreamOptions {
  readonly failures?: number;
  /** One line per try answered; default: none. */
  readonly onTry?: (line: string) => void;
}

/** The demo server, not yet listening. */
export function createDemoUpstream(options: DemoUpstreamOptions = {}): Server {
  const failures = options.failures ?? DEMO_FAILURES;
  const triesById = new Map<string, number>();
  return createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const id = headerValue(req.headers['x-request-id']);
    const tries = id === undefined ? 1 : (triesById.get(id) ?? 0) + 1;
    if (id !== undefined) {
      triesById.delete(id);
      if (tries <= failures) triesById.set(id, tries);
      if (triesById.size > REMEMBERED_IDS) triesById.delete(triesById.keys().next().value ?? '');
    }
    const healed = id !== undefined && tries > failures;
    const status = healed ? 200 : 503;
    const body = healed
      ? `healed: request ${id} answered on its try ${tries}, after ${failures} tries got 503\n`
      : `503 on purpose: try ${tries} of request ${id ?? '(no x-request-id)'}\n`;
    options.onTry?.(`demo-upstream: ${req.method} ${req.url} try ${tries} -> ${status}`);
    res.writeHead(status, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
}

/** Runs the demo until SIGINT or SIGTERM; resolves with the exit code. */
export async function runDemoUpstream(write: (line: string) => void): Promise<number> {
  const server = createDemoUpstream({ onTry: write });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(DEMO_LISTEN.port, DEMO_LISTEN.host, resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  write(
    `demo-upstream on http://${address}:${port}: each request id gets 503 on its first ` +
      `${DEMO_FAILURES} tries, then 200 (Ctrl-C stops it)`,
  );
  return new Promise((resolve) => {
    const stop = (): void => {
      server.close();
      server.closeAllConnections();
      resolve(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? undefined : text;
}
