/**
 * The proxy port's HTTP server: checks who is asking and where to, then hands the request to
 * the attempt loop, a CONNECT to tunnel.ts, an Upgrade to websocket.ts. Malformed requests get
 * 400, strangers 403, loops 508 (SPEC §5).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Listener } from '../config/types.ts';
import type { ProxyContext } from './context.ts';
import { socketResponse } from './detached-socket.ts';
import { forward, type Target } from './forward.ts';
import { hasVia } from './headers.ts';
import { answer, type ErrorName, rawAnswer } from './respond.ts';
import { listenerTarget, ownAuthorities, parseAbsoluteTarget } from './target.ts';
import { openTunnel, refuseTunnel } from './tunnel.ts';
import { relayUpgrade } from './websocket.ts';

export interface ProxyServerOptions {
  /** The context for each new request (swapped on reload). */
  readonly context: () => ProxyContext;
  /** Set for a fixed-upstream listener port: origin-form requests go there. */
  readonly listener?: Listener;
  readonly onError: (err: unknown) => void;
}

export function createProxyServer(options: ProxyServerOptions): Server {
  const initial = options.context().config.limits;
  const server = createServer({
    maxHeaderSize: initial.maxHeaderBytes,
    headersTimeout: initial.headersTimeoutMs,
    requestTimeout: 0,
    keepAliveTimeout: initial.idleTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, initial.headersTimeoutMs),
    requireHostHeader: false,
  });
  server.maxConnections = initial.maxClientConnections;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(options, req, res).catch((err: unknown) => {
      options.onError(err);
      if (!res.headersSent)
        answer(res, 'bad-request', { attempts: 0, upstream: '', message: 'internal error' });
      else res.destroy();
    });
  });
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    handleConnect(options, req, socket, head),
  );
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    handleUpgrade(options, req, socket, head),
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
    rejectMalformed(err, socket),
  );
  return server;
}

async function handleRequest(
  options: ProxyServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const ctx = options.context();
  const checked = check(ctx, options.listener, req);
  if ('error' in checked) {
    reject(ctx, req, res, checked.error, checked.message);
    return;
  }
  await forward(ctx, req, res, checked.target);
}

/** CONNECT: tunnels are opened from the proxy port only. */
function handleConnect(
  options: ProxyServerOptions,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  const ctx = options.context();
  const refusal = refuse(ctx, req);
  if (refusal !== undefined) {
    refuseTunnel(ctx, req, socket, refusal.error, refusal.message);
  } else if (options.listener !== undefined) {
    refuseTunnel(ctx, req, socket, 'bad-request', 'CONNECT is served on the proxy port only');
  } else {
    openTunnel(ctx, req, socket, head).catch((err: unknown) => {
      options.onError(err);
      socket.destroy();
    });
  }
}

/** Upgrade (WebSocket…): the same checks as a plain request, then one pass-through try. */
function handleUpgrade(
  options: ProxyServerOptions,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  const ctx = options.context();
  const checked = check(ctx, options.listener, req);
  if ('error' in checked) {
    reject(ctx, req, socketResponse(req, socket), checked.error, checked.message);
  } else {
    relayUpgrade(ctx, req, socket, head, checked.target);
  }
}

/** Who is asking and where to: the target, or why not (access, shape, loop). */
function check(
  ctx: ProxyContext,
  listener: Listener | undefined,
  req: IncomingMessage,
): { target: Target } | { error: ErrorName; message: string } {
  const refusal = refuse(ctx, req);
  if (refusal !== undefined) return refusal;
  const url = req.url ?? '';
  const target =
    listener === undefined ? parseAbsoluteTarget(url) : listenerRequestTarget(listener, url);
  if (target === undefined) {
    const message =
      listener === undefined
        ? 'expected an absolute-form URI (http://host/path): point HTTP_PROXY here'
        : `this port forwards to ${listener.authority} only: send origin-form (/path)`;
    return { error: 'bad-request', message };
  }
  if (
    ownAuthorities([ctx.config.listen, ...ctx.config.listeners.map((l) => l.listen)]).has(
      target.authority,
    )
  ) {
    return { error: 'loop', message: 'the request targets this proxy' };
  }
  return { target };
}

/**
 * Origin-form, or absolute-form naming the listener's own upstream (an origin must accept
 * absolute-form, RFC 9112 §3.2.2); any other host is not this port's to serve.
 */
function listenerRequestTarget(listener: Listener, url: string): Target | undefined {
  if (url.startsWith('/')) return listenerTarget(listener, url);
  const absolute = parseAbsoluteTarget(url);
  if (absolute === undefined || absolute.authority !== listener.authority) return undefined;
  return listenerTarget(listener, absolute.path);
}

function refuse(
  ctx: ProxyContext,
  req: IncomingMessage,
): { error: ErrorName; message: string } | undefined {
  const allowed = ctx.config.access.allowedClientList;
  const address = req.socket.remoteAddress ?? '';
  if (allowed !== undefined && !isAllowed(allowed, address)) {
    return { error: 'forbidden', message: 'client not in access.allowedClients' };
  }
  if (hasVia(req.rawHeaders, ctx.viaId))
    return { error: 'loop', message: 'the request already passed this proxy' };
  return undefined;
}

function isAllowed(list: import('node:net').BlockList, address: string): boolean {
  if (address.startsWith('::ffff:') && address.includes('.'))
    return list.check(address.slice(7), 'ipv4');
  return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4');
}

function reject(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  error: ErrorName,
  message: string,
): void {
  // the body (if any) is not wanted: drop it so the connection can be reused
  req.resume();
  const status = answer(res, error, { attempts: 0, upstream: '', message, viaToken: ctx.viaToken });
  ctx.onDone({
    route: '',
    upstream: '',
    method: req.method ?? '',
    path: '',
    status,
    attempts: 0,
    outcomes: [],
    tryUpstreams: [],
    retryReasons: [],
    suppressed: undefined,
    fallback: undefined,
    error,
    durationMs: 0,
  });
}

/** Node's parser refused the bytes: answer with the closest status and close (RFC 9112 §2.2). */
function rejectMalformed(err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  socket.end(rawAnswer(parserErrorName(err.code)));
}

function parserErrorName(code: string | undefined): ErrorName {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'headers-too-large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'request-timeout';
    default:
      return 'bad-request';
  }
}
