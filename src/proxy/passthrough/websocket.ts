/**
 * Upgrade requests (WebSocket, or any other protocol) pass through once and are never retried
 * (SPEC §6): absolute-form on the proxy port, origin-form on a listener port. Connection and
 * Upgrade go to the upstream and back to the client, since the switch itself needs them on
 * each hop (RFC 9110 §7.8); every other header follows headers.ts (hop-by-hop and x-reprise-*
 * dropped, Via appended both ways). The upstream's breaker admits and records the handshake
 * like any try; a 101 splices the two sockets as a CONNECT tunnel does (connect.idleTimeout).
 *
 * Why not http-proxy-3 (the design notes planned it here): its `ws()` pass destroys every
 * Upgrade that is not `GET` + `websocket` without an answer, forwards the parsed (lossy)
 * `req.headers` object less only `trailer`, writes the 101 head itself (no Via can be added
 * without racing its listener), resets both sockets' timeouts to 0 (no idle limit), and keeps
 * a module-wide socket counter. Bending it to this proxy meant mutating `req` and hooking its
 * events; node:http's own client 'upgrade' event does the whole job in fewer lines.
 */
import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { classifyError, statusOutcome } from '../../retry/failure.ts';
import { resolveRequestPolicy, tryTimeoutMs } from '../../retry/request-policy.ts';
import { socketAddress } from '../../routing/authority.ts';
import { matchRoute } from '../../routing/route-table.ts';
import type { Target } from '../../routing/target.ts';
import { summarize } from '../../summary.ts';
import type { ErrorName, FailureName, TryOutcome } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { type ArrivingRequest, requestOrigin, takeConnectionBytes } from '../correlation.ts';
import { buildClientHeaders, buildUpstreamHeaders } from '../headers.ts';
import { DENIED_UPSTREAM, toRetryAfterSeconds } from '../respond.ts';
import { answerOnSocket, ClientHold, socketResponse, splice } from './detached-socket.ts';

/**
 * Relays one Upgrade request whose client passed the access, target and loop checks: the
 * connection is made by the dialer first, then node:http speaks the handshake on it.
 */
export async function relayUpgrade(
  ctx: ProxyContext,
  req: IncomingMessage,
  client: Socket,
  head: Buffer,
  target: Target,
): Promise<void> {
  const startMs = ctx.now();
  const method = req.method ?? 'GET';
  const origin = requestOrigin(method, req.headers, client, startMs);
  const hold = new ClientHold(client, head);
  const route = matchRoute(ctx.config, target.host, target.port, target.pathname, method);
  // resolved as the forward path resolves it, so x-reprise-timeout-ms narrows this try too
  const policy = resolveRequestPolicy(route, method, req.headers, startMs);
  let upstreamAddress: string | undefined;
  const done = (
    status: number,
    outcome: TryOutcome | undefined,
    error: ErrorName | undefined,
    reason?: string,
  ): void => {
    const tried = outcome !== undefined;
    const end = {
      route: route.name,
      upstream: target.authority,
      path: target.pathname,
      status,
      attempts: tried ? 1 : 0,
      outcomes: tried ? [outcome] : undefined,
      tryUpstreams: tried ? [target.authority] : undefined,
      error,
      reason,
      upstreamAddress,
      ...takeConnectionBytes(client),
    };
    ctx.onDone(summarize(origin, end, ctx.now()));
  };
  const refuse = (
    error: ErrorName,
    attempts: number,
    message?: string,
    retryAfterMs?: number,
  ): void => {
    const details = {
      attempts,
      upstream: target.authority,
      viaToken: ctx.viaToken,
      message,
      retryAfterSeconds: toRetryAfterSeconds(retryAfterMs),
    };
    done(
      answerOnSocket(req, client, error, details),
      attempts === 0 ? undefined : (error as FailureName),
      error,
      message,
    );
  };

  const upstream = ctx.upstreams.get(target.authority, startMs);
  const permit = upstream.gate(startMs, 1);
  if (permit === 'circuit-open' || permit === 'overflow') {
    const retryAfterMs =
      permit === 'circuit-open' ? upstream.breaker.retryAfterMs(startMs) : undefined;
    refuse(permit, 0, undefined, retryAfterMs);
    return;
  }
  let settled = false;
  let outgoing: ClientRequest | undefined;
  /** Ends the try once: records it in the breaker (undefined: abandoned) and stops the clock. */
  const settle = (failed: boolean | undefined): boolean => {
    if (settled) return false;
    settled = true;
    ctx.timers.clear(timer);
    hold.onGone(undefined);
    upstream.record(ctx.now(), permit, failed);
    upstream.leave(ctx.now());
    return true;
  };
  const fail = (failure: FailureName): void => {
    if (!settle(true)) return;
    outgoing?.destroy();
    refuse(failure, 1);
  };
  const dialing = ctx.dialer.dial({
    host: target.dialHost,
    port: target.dialPort,
    connectTimeoutMs: policy.retry.connectTimeoutMs,
    allowHalfOpen: true,
    tls: target.tls,
  });
  // one clock for the whole try, as on the forward path: the connect, then the answer's head
  const timer = ctx.timers.set(
    () => {
      // a connect still under way when the try's time ran out: nothing was sent
      if (outgoing === undefined) dialing.cancel();
      else fail('timeout');
    },
    tryTimeoutMs(policy, startMs),
  );
  hold.onGone(() => {
    dialing.cancel();
    if (!settle(undefined)) return;
    outgoing?.destroy();
    done(0, undefined, undefined);
  });
  const dialed = await dialing.result;
  if (settled) {
    if (dialed.kind === 'connected') dialed.socket.destroy();
    return;
  }
  if (dialed.kind === 'failed') {
    const { failure } = dialed.error;
    if (failure !== 'denied') return fail(failure);
    // never dialled: nothing to learn about the upstream
    if (settle(undefined)) refuse('forbidden', 0, DENIED_UPSTREAM);
    return;
  }
  const socket = dialed.socket;
  upstreamAddress = socketAddress(socket.remoteAddress, socket.remotePort);
  const request = httpRequest({
    method,
    path: target.path,
    headers: upgradeHeaders(req, target.hostHeader, ctx.viaToken, origin),
    createConnection: () => socket,
  });
  outgoing = request;
  request.on('error', (err) => fail(classifyError(err)));
  request.on('upgrade', (res: IncomingMessage, upgraded: Socket, upstreamHead: Buffer) => {
    if (!settle(false)) return void upgraded.destroy();
    client.write(switchingHead(res, ctx.viaToken));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    const early = hold.release();
    if (early.length > 0) upgraded.write(early);
    // logged and counted once the connection ends, so its bytes and duration are whole
    splice(client, upgraded, ctx.config.connect.idleTimeoutMs, () => done(101, '1xx', undefined));
  });
  // the upstream declined the switch: relay its answer, then close (the client asked to leave HTTP)
  request.on('response', (res: IncomingMessage) => {
    const status = res.statusCode ?? 502;
    if (!settle(status >= 500)) return void res.destroy();
    // read and drop what the client still sends, so closing cannot reset the answer away
    hold.release();
    client.resume();
    const out = socketResponse(req, client);
    out.writeHead(status, buildClientHeaders(res, ctx.viaToken, 1));
    res.pipe(out);
    res.once('close', () => {
      if (!res.complete) client.destroy();
    });
    // the connection closes after this answer: its line then has the answer's bytes
    client.once('close', () => done(status, statusOutcome(status), undefined));
  });
  request.end();
}

function upgradeHeaders(
  req: IncomingMessage,
  hostHeader: string,
  viaToken: string,
  origin: ArrivingRequest,
): string[] {
  const madeId = origin.requestIdMade ? origin.requestId : undefined;
  const headers = buildUpstreamHeaders(req, hostHeader, viaToken, madeId);
  headers.push('connection', 'upgrade', 'upgrade', req.headers.upgrade ?? '');
  return headers;
}

/** The 101 head for the client: the upstream's, with Connection/Upgrade kept and Via added. */
function switchingHead(res: IncomingMessage, viaToken: string): string {
  const headers = buildClientHeaders(res, viaToken, 1);
  let text = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\nconnection: Upgrade\r\n`;
  if (res.headers.upgrade !== undefined) text += `upgrade: ${res.headers.upgrade}\r\n`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${text}\r\n`;
}
