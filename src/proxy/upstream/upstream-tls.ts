/**
 * TLS on a connection the dialer made (dialer.ts): verification always on (the configured
 * roots, else Node's public ones), SNI with the servername (none for an IP address, as RFC 6066
 * §3 requires), ALPN `http/1.1`, a client certificate where configured, and sessions kept per
 * TLS settings and servername, so a new connection resumes rather than repeats the full
 * handshake.
 */
import { isIP, type Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { UpstreamTls } from '../../config/types.ts';

/** TLS sessions kept for resumption; past this the oldest is forgotten. */
const MAX_SESSIONS = 1_000;

/**
 * What new connections reuse: the sessions they offer to resume, by TLS settings id and
 * servername, and one secure context per settings (its roots and client key parsed once, not
 * per connection).
 */
export class TlsSessions {
  readonly #sessions = new Map<string, Buffer>();
  // keyed by the compiled settings object: a reload's new settings make a new context
  readonly #contexts = new WeakMap<UpstreamTls, SecureContext>();

  contextFor(tls: UpstreamTls): SecureContext {
    let context = this.#contexts.get(tls);
    if (context === undefined) {
      const { ca, cert, key } = tls;
      context = process.getBuiltinModule('node:tls').createSecureContext({ ca, cert, key });
      this.#contexts.set(tls, context);
    }
    return context;
  }

  get(key: string): Buffer | undefined {
    return this.#sessions.get(key);
  }

  keep(key: string, session: Buffer): void {
    this.#sessions.delete(key);
    if (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest !== undefined) this.#sessions.delete(oldest);
    }
    this.#sessions.set(key, session);
  }
}

/**
 * Starts the handshake on the connected `socket` to `host` (a name or an IP address); the
 * caller listens for `secureConnect` and `error`, and times it.
 */
export function startTls(
  socket: Socket,
  host: string,
  tls: UpstreamTls,
  sessions: TlsSessions,
): TLSSocket {
  const name = tls.servername ?? host;
  const sessionKey = `${tls.id}\n${name}`;
  // loaded on the first TLS dial: a proxy that speaks plain HTTP never loads Node's TLS
  const secure = process.getBuiltinModule('node:tls').connect({
    socket,
    // the name the certificate must carry; SNI only for a name, never for an IP address
    host: name,
    servername: isIP(name) === 0 ? name : '',
    secureContext: sessions.contextFor(tls),
    rejectUnauthorized: true,
    ALPNProtocols: ['http/1.1'],
    session: sessions.get(sessionKey),
  });
  secure.on('session', (session: Buffer) => sessions.keep(sessionKey, session));
  return secure;
}
