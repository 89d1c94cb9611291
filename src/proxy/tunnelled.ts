/**
 * A connection read inside a CONNECT tunnel (SPEC §6): which authority the tunnel was opened
 * to, and whether reprise terminated the client's TLS in it (`intercepted`) or reads plain
 * HTTP (`plain-http`). Set by passthrough/tunnel-inside.ts on the socket it hands to the inside
 * server; read by that server for the target and by the access line.
 */
import type { Socket } from 'node:net';

export type TunnelKind = 'intercepted' | 'plain-http';

export interface Tunnelled {
  readonly kind: TunnelKind;
  /** The CONNECT's `host:port` as the client spelled it: where every request inside goes. */
  readonly hostHeader: string;
}

const tunnelled = Symbol('tunnelled');
type MarkedSocket = Socket & { [tunnelled]?: Tunnelled };

export function markTunnelled(socket: Socket, inside: Tunnelled): void {
  (socket as MarkedSocket)[tunnelled] = inside;
}

/** undefined for a connection a client opened to reprise directly. */
export function tunnelledOf(socket: Socket): Tunnelled | undefined {
  return (socket as MarkedSocket)[tunnelled];
}
