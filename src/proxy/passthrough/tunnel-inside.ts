/**
 * What a tunnel carries, seen after `200 Connection Established` (SPEC §6): the client's first
 * bytes are peeked (kept, and given back to whichever path takes the socket), then
 *   - an HTTP/1.x request line: the socket is served like a client of the proxy port, each
 *     request sent to the CONNECT authority (plain-http);
 *   - a TLS ClientHello to an intercepted host that offers HTTP/1.1 and names that host (or no
 *     host): reprise completes the handshake with a leaf of its CA and serves the requests
 *     inside the same way, sent upstream over TLS (intercepted);
 *   - anything else: passed through untouched, as before.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Authority } from '../../routing/authority.ts';
import { classifyTunnelStart, MAX_PEEK_BYTES, type TunnelStart } from '../../tls/client-hello.ts';
import type { InterceptCa } from '../../tls/intercept-ca.ts';
import type { ClientHandshakeResult } from '../../vocabulary.ts';
import type { ProxyContext } from '../context.ts';
import { markTunnelled, type TunnelKind } from '../tunnelled.ts';

/**
 * How long a client of an intercepted host has to speak first. A TLS or HTTP client speaks
 * at once; past this the tunnel is passed through, so a protocol whose server speaks first
 * still works (after this wait).
 */
export const CLIENT_FIRST_WAIT_MS = 2_000;

export interface Peeked {
  /** `more` when the client stopped (or the wait ended) before its bytes said what they are. */
  readonly start: TunnelStart;
  /** Everything read from the client so far: give it back before anyone else reads. */
  readonly bytes: Buffer;
  /** What the upstream sent before the client said anything (a server-first protocol). */
  readonly upstreamFirst: Buffer | undefined;
}

const MORE: TunnelStart = { kind: 'more' };

/**
 * Reads the client's first bytes until they say what they are, at most MAX_PEEK_BYTES (plus
 * one read). Stops early when `upstream` speaks first, the client leaves, or `waitMs` passes.
 * Both sockets are left paused.
 */
export function peekClient(
  client: Socket,
  early: Buffer,
  waitMs: number,
  upstream?: Socket,
): Promise<Peeked> {
  let bytes = early;
  let start = bytes.length === 0 ? MORE : classifyTunnelStart(bytes);
  if (start.kind !== 'more') return Promise.resolve({ start, bytes, upstreamFirst: undefined });
  return new Promise((resolve) => {
    const finish = (upstreamFirst?: Buffer): void => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('end', onLeave);
      client.off('close', onLeave);
      upstream?.off('data', onUpstream);
      client.pause();
      upstream?.pause();
      resolve({ start, bytes, upstreamFirst });
    };
    const onData = (chunk: Buffer): void => {
      bytes = bytes.length === 0 ? chunk : Buffer.concat([bytes, chunk]);
      start = classifyTunnelStart(bytes);
      if (start.kind !== 'more' || bytes.length >= MAX_PEEK_BYTES) finish();
    };
    const onLeave = (): void => finish();
    const onUpstream = (chunk: Buffer): void => finish(chunk);
    const timer = setTimeout(onLeave, waitMs);
    client.on('data', onData);
    client.once('end', onLeave);
    client.once('close', onLeave);
    upstream?.once('data', onUpstream);
    client.resume();
  });
}

/** What to do with a ClientHello on a tunnel to an intercepted host. */
export type HelloDecision = 'intercept' | 'sni-mismatch' | 'h2-only';

/**
 * Intercept when the client can speak HTTP/1.1 (it offers it, or offers no ALPN at all) and its
 * SNI, if any, names the CONNECT host; a certificate is never made for any other name.
 */
export function decideHello(
  hello: Extract<TunnelStart, { kind: 'tls' }>,
  connectHost: string,
): HelloDecision {
  if (hello.serverName !== undefined && hello.serverName !== connectHost) return 'sni-mismatch';
  if (hello.alpn.length > 0 && !hello.alpn.includes('http/1.1')) return 'h2-only';
  return 'intercept';
}

/** Hands the client socket, its peeked bytes given back, to the proxy port's HTTP server. */
export function servePlain(ctx: ProxyContext, client: Socket, target: Authority, bytes: Buffer) {
  serveInside(ctx, client, 'plain-http', target, bytes);
}

/**
 * Completes the client's handshake with the CONNECT host's leaf, then serves the requests
 * inside. Resolves with how the handshake ended; on anything but `ok` the socket is destroyed.
 */
export async function interceptTls(
  ctx: ProxyContext,
  ca: InterceptCa,
  client: Socket,
  target: Authority,
  bytes: Buffer,
): Promise<ClientHandshakeResult> {
  const context = ca.contextFor(target.host, target.port);
  const secureContext = await context?.catch(() => undefined);
  if (secureContext === undefined || client.destroyed) {
    client.destroy();
    return 'aborted';
  }
  // loaded on the first interception: a proxy that intercepts nothing never loads node:tls
  const { TLSSocket } = await import('node:tls');
  if (client.destroyed) return 'aborted';
  // the ClientHello goes back in front of the stream, for the TLS layer to read first
  if (bytes.length > 0) client.unshift(bytes);
  const tls = new TLSSocket(client, {
    isServer: true,
    secureContext,
    ALPNProtocols: ['http/1.1'],
  });
  // the handshake is the head of what the client sends inside: limits.headersTimeout bounds it
  const result = await handshake(tls, ctx.config.limits.headersTimeoutMs);
  if (result !== 'ok') {
    tls.destroy();
    client.destroy();
    return result;
  }
  serveInside(ctx, tls, 'intercepted', target, Buffer.alloc(0));
  return 'ok';
}

function handshake(tls: TLSSocket, timeoutMs: number): Promise<ClientHandshakeResult> {
  return new Promise((resolve) => {
    const settle = (result: ClientHandshakeResult): void => {
      clearTimeout(timer);
      tls.off('secure', onSecure);
      tls.off('error', onError);
      tls.off('close', onClose);
      tls.off('end', onClose);
      // later errors belong to the HTTP server that takes the socket; until then, none escapes
      if (result !== 'ok') tls.on('error', () => {});
      resolve(result);
    };
    const onSecure = (): void => settle('ok');
    const onError = (err: NodeJS.ErrnoException): void => settle(handshakeFailure(err));
    const onClose = (): void => settle('aborted');
    const timer = setTimeout(() => settle('timeout'), timeoutMs);
    tls.once('secure', onSecure);
    tls.once('error', onError);
    tls.once('close', onClose);
    // a client that ends its side before the handshake is done will not finish it
    tls.once('end', onClose);
  });
}

/**
 * The alerts a client sends when it does not trust the certificate (RFC 8446 §6.2): the CA is
 * not in its trust store, or it pins another key. Anything else is a handshake that broke off.
 */
const REJECTED =
  /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|ACCESS_DENIED)/;

function handshakeFailure(err: NodeJS.ErrnoException): ClientHandshakeResult {
  return REJECTED.test(err.code ?? '') ? 'rejected' : 'aborted';
}

function serveInside(
  ctx: ProxyContext,
  socket: Socket,
  kind: TunnelKind,
  target: Authority,
  bytes: Buffer,
): void {
  markTunnelled(socket, { kind, hostHeader: target.hostHeader });
  ctx.serveInside?.(socket);
  if (bytes.length > 0) socket.unshift(bytes);
  socket.resume();
}
