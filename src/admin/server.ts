/**
 * The admin endpoint (SPEC §7): /metrics /healthz /readyz /config /state, GET and HEAD only.
 * It reads everything through `deps` at request time, so reloads and draining show at once.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Address } from '../config/types.ts';
import type { Metrics } from './metrics.ts';

export interface AdminDeps {
  readonly metrics: Pick<Metrics, 'text' | 'contentType'>;
  /** true once config is loaded and the proxy listens; false while draining. */
  isReady(): boolean;
  effectiveConfig(): unknown;
  state(): unknown;
}

export interface AdminServer {
  /** The port actually bound (the one asked for, or the one picked for port 0). */
  readonly port: number;
  /** Stops listening and closes every connection, idle keep-alive ones included. */
  close(): Promise<void>;
}

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly allow?: string;
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';

/** Rejects with the listen error (EADDRINUSE, EACCES) when the address cannot be bound. */
export async function startAdmin(address: Address, deps: AdminDeps): Promise<AdminServer> {
  const server = createServer((req, res) => {
    answer(req, deps).then(
      (a) => send(req, res, a),
      (err: unknown) => send(req, res, { status: 500, contentType: TEXT, body: `${err}\n` }),
    );
  });
  server.listen(address.port, address.host);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

async function answer(req: IncomingMessage, deps: AdminDeps): Promise<Answer> {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (!isEndpoint(path)) return { status: 404, contentType: TEXT, body: 'not found\n' };
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return { status: 405, contentType: TEXT, body: 'method not allowed\n', allow: 'GET, HEAD' };
  }
  switch (path) {
    case '/metrics':
      return {
        status: 200,
        contentType: deps.metrics.contentType,
        body: await deps.metrics.text(),
      };
    case '/healthz':
      return { status: 200, contentType: TEXT, body: 'ok\n' };
    case '/readyz':
      return deps.isReady()
        ? { status: 200, contentType: TEXT, body: 'ready\n' }
        : { status: 503, contentType: TEXT, body: 'not ready\n' };
    case '/config':
      return { status: 200, contentType: JSON_TYPE, body: toJson(deps.effectiveConfig()) };
    case '/state':
      return { status: 200, contentType: JSON_TYPE, body: toJson(deps.state()) };
  }
}

type Endpoint = '/metrics' | '/healthz' | '/readyz' | '/config' | '/state';
const ENDPOINTS: ReadonlySet<string> = new Set([
  '/metrics',
  '/healthz',
  '/readyz',
  '/config',
  '/state',
]);

function isEndpoint(path: string): path is Endpoint {
  return ENDPOINTS.has(path);
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value ?? null, null, 2)}\n`;
}

function send(req: IncomingMessage, res: ServerResponse, a: Answer): void {
  const headers: Record<string, string | number> = {
    'content-type': a.contentType,
    'content-length': Buffer.byteLength(a.body),
    'cache-control': 'no-store',
  };
  if (a.allow !== undefined) headers.allow = a.allow;
  res.writeHead(a.status, headers);
  res.end(req.method === 'HEAD' ? undefined : a.body);
}
