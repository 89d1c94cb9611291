/**
 * The proxy port's HTTP server: checks who is asking and where to, then hands the request to
 * the attempt loop, a CONNECT to tunnel.ts, an Upgrade to websocket.ts. Malformed requests get
 * 400, strangers 403, loops 508 (SPEC §5); a fault in reprise itself 500 `internal`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import type { Listener } from '../../config/types.ts';
import { isListed } from '../../routing/address-list.ts';
import {
  listenerTarget,
  parseAbsoluteTarget,
  type Target,
  tunnelTarget,
} from '../../routing/target.ts';
import { summarize } from '../../summary.ts';
import type { ErrorName } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { requestOrigin, takeConnectionBytes } from '../correlation.ts';
import { forward } from '../exchange/forward.ts';
import { hasVia } from '../headers.ts';
import { socketResponse } from '../passthrough/detached-socket.ts';
import { openTunnel, refuseTunnel } from '../passthrough/tunnel.ts';
import { relayUpgrade } from '../passthrough/websocket.ts';
import { answer, rawAnswer } from '../respond.ts';
import { tunnelledOf } from '../tunnelled.ts';
import {
  declaresBody,
  guardRequest,
  isForThisProxy,
  isH2cUpgrade,
  type ParserError,
  parserErrorAnswer,
} from './request-guard.ts';

export interface ProxyServerOptions {
  /** The context for each new request (swapped on reload). */
  readonly context: () => ProxyContext;
  /** Set for a fixed-upstream listener port: origin-form requests go there. */
  readonly listener?: Listener;
  readonly onError: (err: unknown) => void;
}

/** The latest response on a connection while it is unfinished (rejectMalformed, onSocketIdle). */
const latestResponse = Symbol('latestResponse');
/** The allowedClients list this connection's address was found in. */
const allowedBy = Symbol('allowedBy');
type ProxySocket = Socket & {
  [latestResponse]?: ServerResponse | undefined;
  [allowedBy]?: BlockList;
};

/**
 * A finished response is forgotten: an idle keep-alive connection would otherwise hold its
 * last request and response (and the exchange behind them), some 3.5 KiB of heap each. Both readers
 * treat a finished response as none. One shared listener, not a closure per request.
 */
function forgetResponse(this: ServerResponse): void {
  const socket = this.req.socket as ProxySocket;
  if (socket[latestResponse] === this) socket[latestResponse] = undefined;
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
    // with thousands of uploads in flight, per-connection read-ahead is what RSS is made of
    highWaterMark: 16 * 1024,
  });
  // past the cap Node closes new connections at once (README, "Security and limits")
  server.maxConnections = initial.maxClientConnections;
  // a slow body or a stalled reader: no bytes either way for idleTimeout (see onIdle)
  server.timeout = initial.idleTimeoutMs;
  // every header reaches request-guard.ts; maxHeaderBytes bounds them instead of a count
  server.maxHeadersCount = 0;
  server.on('timeout', onSocketIdle);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    (req.socket as ProxySocket)[latestResponse] = res;
    res.on('finish', forgetResponse);
    let forwarding: Promise<void> | undefined;
    try {
      forwarding = handleRequest(options, req, res);
    } catch (err) {
      failInternally(options, res, err);
      return;
    }
    forwarding?.catch((err: unknown) => failInternally(options, res, err));
  });
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    handleConnect(options, req, socket, head),
  );
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
    handleUpgrade(options, req, socket, head),
  );
  server.on('clientError', (err: ParserError, socket: Socket) =>
    rejectMalformed(err, socket, (socket as ProxySocket)[latestResponse]),
  );
  return server;
}

/** Answers at once, or returns the forwarding under way (no promise of its own around it). */
function handleRequest(
  options: ProxyServerOptions,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> | undefined {
  const ctx = options.context();
  const checked = check(ctx, options.listener, req);
  if ('error' in checked) {
    reject(ctx, req, res, checked.error, checked.message);
    return undefined;
  }
  if (isForThisProxy(req)) {
    answerOptions(ctx, req, res);
    return undefined;
  }
  return forward(ctx, req, res, checked.target);
}

/** A fault in reprise itself: logged, and the client gets 500 `internal`. */
function failInternally(options: ProxyServerOptions, res: ServerResponse, err: unknown): void {
  options.onError(err);
  // the rest of the request may still be arriving: the connection cannot be reused
  res.shouldKeepAlive = false;
  answer(res, 'internal', { attempts: 0, upstream: '' });
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
  } else if (options.listener !== undefined || tunnelledOf(socket) !== undefined) {
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
  } else if (isH2cUpgrade(req.headers) && declaresBody(req.headers)) {
    // Node's parser stops at an Upgrade's head: its body is not a stream reprise can forward
    const message = 'an Upgrade: h2c request cannot carry a body; send it without Upgrade';
    reject(ctx, req, socketResponse(req, socket), 'bad-request', message);
  } else if (isH2cUpgrade(req.headers)) {
    // h2c is not passed on (it would hand the client an HTTP/2 connection past this proxy):
    // the request is served as plain HTTP/1.1, its Upgrade dropped (RFC 9110 §7.8 allows it)
    const res = socketResponse(req, socket);
    socket.setTimeout(ctx.config.limits.idleTimeoutMs, () => onIdle(req, res));
    forward(ctx, req, res, checked.target).catch((err: unknown) => {
      options.onError(err);
      socket.destroy();
    });
  } else if (declaresBody(req.headers)) {
    const message = 'an Upgrade request cannot carry a body';
    reject(ctx, req, socketResponse(req, socket), 'bad-request', message);
  } else {
    relayUpgrade(ctx, req, socket, head, checked.target).catch((err: unknown) => {
      options.onError(err);
      socket.destroy();
    });
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
  const inside = tunnelledOf(req.socket);
  const rules = ctx.config.upstreams;
  const target =
    inside !== undefined
      ? tunnelTarget(inside.hostHeader, inside.kind === 'intercepted', url, rules)
      : listener === undefined
        ? parseAbsoluteTarget(url, rules)
        : listenerRequestTarget(ctx, listener, url);
  if (target === undefined) {
    const message =
      inside !== undefined
        ? `this tunnel goes to ${inside.hostHeader} only: send origin-form (/path)`
        : listener !== undefined
          ? `this port forwards to ${listener.authority} only: send origin-form (/path)`
          : 'expected an absolute-form URI (http://host/path): point HTTP_PROXY here';
    return { error: 'bad-request', message };
  }
  if (ctx.ownAuthorities.has(target.authority)) {
    return { error: 'loop', message: 'the request targets this proxy' };
  }
  return { target };
}

/**
 * Origin-form, or absolute-form naming the listener's own upstream (an origin must accept
 * absolute-form, RFC 9112 §3.2.2); any other host is not this port's to serve.
 */
function listenerRequestTarget(
  ctx: ProxyContext,
  listener: Listener,
  url: string,
): Target | undefined {
  if (url.startsWith('/')) return listenerTarget(listener, url);
  const absolute = parseAbsoluteTarget(url, ctx.config.upstreams);
  if (absolute === undefined || absolute.authority !== listener.authority) return undefined;
  return listenerTarget(listener, absolute.path);
}

function refuse(
  ctx: ProxyContext,
  req: IncomingMessage,
): { error: ErrorName; message: string } | undefined {
  const allowed = ctx.config.access.allowedClientList;
  if (allowed !== undefined && !isAllowed(req.socket as ProxySocket, allowed)) {
    return { error: 'forbidden', message: 'client not in access.allowedClients' };
  }
  const malformed = guardRequest(req, ctx.config.limits.maxUrlBytes);
  if (malformed !== undefined) return malformed;
  if (hasVia(req.rawHeaders, ctx.viaId))
    return { error: 'loop', message: 'the request already passed this proxy' };
  return undefined;
}

/**
 * Whether the client is in `allowed`, asked once per connection and list: keep-alive requests
 * come from the address their connection was accepted from. A reload brings a new list, asked
 * afresh.
 */
function isAllowed(socket: ProxySocket, allowed: BlockList): boolean {
  if (socket[allowedBy] === allowed) return true;
  const yes = isListed(allowed, socket.remoteAddress ?? '');
  if (yes) socket[allowedBy] = allowed;
  return yes;
}

function reject(
  ctx: ProxyContext,
  req: IncomingMessage,
  res: ServerResponse,
  error: ErrorName,
  message: string,
): void {
  // the body (if any) is not wanted; the connection closes after the answer, since after a
  // refused request its framing is in doubt (request-guard.ts)
  req.resume();
  res.shouldKeepAlive = false;
  const status = answer(res, error, { attempts: 0, upstream: '', message, viaToken: ctx.viaToken });
  done(ctx, req, status, error, message);
}

/** What reprise forwards; CONNECT opens tunnels. */
const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT';

/** OPTIONS with Max-Forwards: 0 names this proxy as the final recipient (RFC 9110 §9.3.7). */
function answerOptions(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.writeHead(200, ['allow', ALLOWED_METHODS, 'content-length', '0', 'via', ctx.viaToken]);
  res.end();
  done(ctx, req, 200, undefined);
}

function done(
  ctx: ProxyContext,
  req: IncomingMessage,
  status: number,
  error: ErrorName | undefined,
  reason?: string,
): void {
  const nowMs = ctx.now();
  const origin = requestOrigin(req.method ?? '', req.headers, req.socket, nowMs);
  const bytes = takeConnectionBytes(req.socket);
  const end = { route: '', upstream: '', path: '', status, error, reason, ...bytes };
  ctx.onDone(summarize(origin, end, nowMs));
}

/** How long a refused client may take to read the answer before its socket is destroyed. */
const LINGER_MS = 1_000;

/**
 * Node's parser refused the bytes: answer with the closest status and close (RFC 9112 §2.2).
 * The error can come mid-body, with a try already streaming upstream: the socket is destroyed
 * shortly after the answer, so that exchange ends as client-gone even if the client keeps its
 * side open. A response already under way cannot take an answer in its middle: just close.
 */
function rejectMalformed(
  err: ParserError,
  socket: Socket,
  current: ServerResponse | undefined,
): void {
  const responding = current?.headersSent === true && !current.writableFinished;
  if (!socket.writable || err.code === 'ECONNRESET' || responding) {
    socket.destroy();
    return;
  }
  socket.end(rawAnswer(parserErrorAnswer(err)));
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

/**
 * No bytes either way for limits.idleTimeout while the client still owes reprise something
 * (the rest of its body) or owes it reading (a response it stopped taking): close it, with
 * 408 if nothing was answered yet. While reprise waits on the upstream it is not the client's
 * silence: the route's timeout bounds that wait.
 */
function onSocketIdle(socket: ProxySocket): void {
  const res = socket[latestResponse];
  // between requests: what Node does when nobody listens
  if (res === undefined || res.writableFinished) socket.destroy();
  else onIdle(res.req, res);
}

function onIdle(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete && !res.headersSent) return;
  const socket = req.socket;
  if (res.headersSent || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.write(rawAnswer('request-timeout', 'the request body stalled for limits.idleTimeout'));
  socket.destroySoon();
}
