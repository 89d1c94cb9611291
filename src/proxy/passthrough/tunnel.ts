/**
 * CONNECT tunnels (SPEC §6): `CONNECT host:port` becomes a TCP connection spliced to the
 * client's socket. Only the connect is retried, per `connect.retry`: nothing has been sent,
 * so that is safe whatever the tunnel will carry. After `200 Connection Established` the
 * client's first bytes are peeked (tunnel-inside.ts): plain HTTP is served as proxied
 * requests, TLS to a host in `connect.intercept.hosts` is opened and served the same way;
 * anything else is passed through untouched and never retried.
 *
 * `reprise_tunnels_total{outcome}`: established (passed through), intercepted, plain-http,
 * connect-failure, circuit-open, overflow, forbidden (client, port, denied upstream, or an SNI
 * naming another host), loop, bad-request, client-gone.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { NONE } from '../../lists.ts';
import type { Upstream } from '../../resilience/upstream-registry.ts';
import { type Authority, parseAuthority, socketAddress } from '../../routing/authority.ts';
import { type RequestEnd, type RequestOrigin, summarize } from '../../summary.ts';
import type { InterceptCa } from '../../tls/intercept-ca.ts';
import type { ErrorName, FailureName } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { requestOrigin, takeConnectionBytes } from '../correlation.ts';
import { toRetryAfterSeconds } from '../respond.ts';
import { answerOnSocket, ClientHold, splice } from './detached-socket.ts';
import { connectWithRetries, type Opening } from './tunnel-connect.ts';
import {
  CLIENT_FIRST_WAIT_MS,
  decideHello,
  interceptTls,
  peekClient,
  servePlain,
} from './tunnel-inside.ts';

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

/** Handles one CONNECT whose client passed the access check. Never throws. */
export async function openTunnel(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
): Promise<void> {
  const origin = requestOrigin('CONNECT', req.headers, client, ctx.now());
  const hold = new ClientHold(client, head);
  // authority-form host:port (RFC 9112 §3.2.3): the port is required
  const target = parseAuthority(req.url ?? '');
  const refuse = (upstream: string, refusal: Refusal) =>
    refuseWith(ctx, req, client, origin, upstream, refusal);
  if (target === undefined) {
    return refuse('', { error: 'bad-request', message: 'expected CONNECT host:port' });
  }
  const authority = target.authority;
  if (!ctx.config.connect.allowedPorts.has(target.port)) {
    const message = `port ${target.port} is not in connect.allowedPorts`;
    return refuse(authority, { error: 'forbidden', message });
  }
  if (ctx.ownAuthorities.has(authority)) {
    return refuse(authority, { error: 'loop', message: 'the tunnel targets this proxy' });
  }
  const upstream = ctx.upstreams.get(authority, ctx.now());
  const opening: Opened = { ctx, client, origin, target, upstream };
  const ca = ctx.intercept;
  if (ca?.covers(target.host, target.port)) return openIntercepted(opening, ca, hold);
  const opened = await connectWithRetries(ctx, upstream, target, hold, origin.requestId);
  if (opened.kind === 'client-gone') {
    ctx.onTunnelDone?.(authority, 'client-gone', NONE);
    tunnelEnded(ctx, origin, client, { upstream: authority, status: 0 });
    return;
  }
  if (opened.kind === 'refused') return refuse(authority, opened);
  const socket = opened.socket;
  client.write(ESTABLISHED);
  const early = hold.release();
  // plain HTTP is served only where the upstream has not spoken first (an HTTP server never does)
  const peeked = await peekClient(client, early, ctx.config.connect.idleTimeoutMs, socket);
  if (peeked.start.kind === 'http' && peeked.upstreamFirst === undefined) {
    socket.destroy();
    return servePlainTunnel(opening, peeked.bytes, opened.retryReasons);
  }
  if (peeked.upstreamFirst !== undefined) client.write(peeked.upstreamFirst);
  passThrough(opening, opened, peeked.bytes);
}

/** A CONNECT that got its 200: what every path inside a tunnel needs. */
interface Opened {
  readonly ctx: ProxyContext;
  readonly client: Socket;
  readonly origin: RequestOrigin;
  readonly target: Authority;
  readonly upstream: Upstream;
}

/**
 * A tunnel to an intercepted host: 200 at once, then the client's first bytes decide. Nothing
 * is dialled for an intercepted or plain-HTTP tunnel (each request inside makes its own tries);
 * a tunnel passed through is dialled only then, and if that fails the client is disconnected.
 */
async function openIntercepted(o: Opened, ca: InterceptCa, hold: ClientHold): Promise<void> {
  const { ctx, client, origin, target } = o;
  const authority = target.authority;
  client.write(ESTABLISHED);
  const peeked = await peekClient(client, hold.release(), CLIENT_FIRST_WAIT_MS);
  const start = peeked.start;
  if (client.destroyed) {
    ctx.onTunnelDone?.(authority, 'client-gone', NONE);
    tunnelEnded(ctx, origin, client, { upstream: authority, status: 200 });
    return;
  }
  if (start.kind === 'http') return servePlainTunnel(o, peeked.bytes, NONE);
  if (start.kind === 'tls') {
    const decision = decideHello(start, target.host);
    if (decision === 'sni-mismatch') {
      // no certificate is made for a name the operator did not list
      ca.refuse();
      ctx.onClientHandshake?.(authority, 'sni-mismatch', start.serverName);
      ctx.onTunnelDone?.(authority, 'forbidden', NONE);
      client.destroy();
      tunnelEnded(ctx, origin, client, { upstream: authority, status: 200, error: 'forbidden' });
      return;
    }
    if (decision === 'intercept') {
      ctx.onTunnelDone?.(authority, 'intercepted', NONE);
      client.once('close', () =>
        tunnelEnded(ctx, origin, client, { upstream: authority, status: 200 }),
      );
      const result = await interceptTls(ctx, ca, client, target, peeked.bytes);
      ctx.onClientHandshake?.(authority, result, start.serverName);
      return;
    }
    ctx.onClientHandshake?.(authority, 'h2-only', start.serverName);
  }
  const held = new ClientHold(client, peeked.bytes);
  const opened = await connectWithRetries(ctx, o.upstream, target, held, origin.requestId);
  if (opened.kind !== 'connected') {
    // the 200 is sent: all that is left to say is a disconnect
    const error = opened.kind === 'refused' ? opened.error : undefined;
    ctx.onTunnelDone?.(authority, error ?? 'client-gone', NONE);
    client.destroy();
    tunnelEnded(ctx, origin, client, { upstream: authority, status: 200, error });
    return;
  }
  passThrough(o, opened, held.release());
}

/** Plain HTTP inside a tunnel: its requests are served like the proxy port's (SPEC §6). */
function servePlainTunnel(o: Opened, bytes: Buffer, retryReasons: readonly FailureName[]): void {
  const { ctx, client, origin, target } = o;
  ctx.onTunnelDone?.(target.authority, 'plain-http', retryReasons);
  client.once('close', () =>
    tunnelEnded(ctx, origin, client, { upstream: target.authority, status: 200 }),
  );
  servePlain(ctx, client, target, bytes);
}

/** Splices the client to the upstream, `early` (the client's bytes read so far) sent first. */
function passThrough(
  o: Opened,
  opened: Extract<Opening, { kind: 'connected' }>,
  early: Buffer,
): void {
  const { ctx, client, origin, target } = o;
  const { socket } = opened;
  const authority = target.authority;
  // the access line waits for the tunnel to close, so its bytes and duration are whole
  const ended = {
    upstream: authority,
    status: 200,
    ...triesOf(opened.attempts, opened.retryReasons, authority),
    upstreamAddress: socketAddress(socket.remoteAddress, socket.remotePort),
  };
  ctx.onTunnelDone?.(authority, 'established', opened.retryReasons);
  if (client.destroyed) {
    socket.destroy();
    tunnelEnded(ctx, origin, client, ended);
    return;
  }
  if (early.length > 0) socket.write(early);
  splice(client, socket, ctx.config.connect.idleTimeoutMs, () =>
    tunnelEnded(ctx, origin, client, ended),
  );
}

/** The access line's tries of a tunnel: one connect per attempt, all failed but the last. */
function triesOf(
  attempts: number,
  retryReasons: readonly FailureName[],
  upstream: string,
): Pick<RequestEnd, 'attempts' | 'retryReasons' | 'retryUpstreams'> {
  return {
    attempts,
    retryReasons,
    retryUpstreams: retryReasons.length === 0 ? NONE : retryReasons.map(() => upstream),
  };
}

/** The access line of a CONNECT: the request summary's fields, method CONNECT, no route. */
function tunnelEnded(
  ctx: ProxyContext,
  origin: RequestOrigin,
  client: Socket,
  end: Omit<RequestEnd, 'route' | 'path' | 'bytesIn' | 'bytesOut'>,
): void {
  const bytes = takeConnectionBytes(client);
  ctx.onTunnelEnd?.(summarize(origin, { ...end, route: '', path: '', ...bytes }, ctx.now()));
}

/** Answers a CONNECT refused before openTunnel (access, request shape) and counts it. */
export function refuseTunnel(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  error: ErrorName,
  message: string,
): void {
  const origin = requestOrigin('CONNECT', req.headers, client, ctx.now());
  const upstream = parseAuthority(req.url ?? '')?.authority ?? '';
  refuseWith(ctx, req, client, origin, upstream, { error, message });
}

interface Refusal {
  readonly error: ErrorName;
  readonly message?: string;
  readonly attempts?: number;
  readonly retryReasons?: readonly FailureName[];
  readonly retryAfterMs?: number;
}

/** The answer, the tunnel count and the access line of a CONNECT that is not tunnelled. */
function refuseWith(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  origin: RequestOrigin,
  upstream: string,
  refusal: Refusal,
): void {
  const { error, message, attempts = 0, retryReasons = NONE } = refusal;
  const status = answerOnSocket(req, client, error, {
    attempts,
    upstream,
    message,
    viaToken: ctx.viaToken,
    retryAfterSeconds: toRetryAfterSeconds(refusal.retryAfterMs),
  });
  ctx.onTunnelDone?.(upstream, error, retryReasons);
  const tries = triesOf(attempts, retryReasons, upstream);
  tunnelEnded(ctx, origin, client, { upstream, status, ...tries, error, reason: message });
}
