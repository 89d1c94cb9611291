/**
 * Everything a request needs, fixed when it arrives. A reload builds a new context; requests
 * in flight keep the one they started with (SPEC §9).
 */
import type { Socket } from 'node:net';
import type { Config } from '../config/types.ts';
import type { UpstreamRegistry } from '../resilience/upstream-registry.ts';
import type { OwnAuthorities } from '../routing/target.ts';
import type { RequestSummary } from '../summary.ts';
import type { Timers } from '../timers.ts';
import type { InterceptCa } from '../tls/intercept-ca.ts';
import type { ClientHandshakeResult, SuppressedCause } from '../vocabulary.ts';
import type { BufferPool } from './buffer-pool.ts';
import type { Dialer } from './upstream/dialer.ts';
import type { UpstreamClient } from './upstream/upstream-client.ts';

export interface ProxyContext {
  readonly config: Config;
  readonly upstreams: UpstreamRegistry;
  readonly client: UpstreamClient;
  /** Every connection to an upstream: the client's pools, tunnels and Upgrades. */
  readonly dialer: Dialer;
  readonly pool: BufferPool;
  /** `reprise-<id>`: names this running instance in Via (loop detection). */
  readonly viaId: string;
  /** `1.1 reprise-<id>` */
  readonly viaToken: string;
  /** Every spelling of reprise's own bound addresses (loop detection). */
  readonly ownAuthorities: OwnAuthorities;
  readonly now: () => number;
  /** Every wait the proxy decides on is armed here (src/timers.ts). */
  readonly timers: Timers;
  readonly random: () => number;
  readonly onDone: (summary: RequestSummary) => void;
  /** A retry decided (debug); `requestId` tells overlapping requests apart. */
  readonly onRetry?: (
    requestId: string,
    route: string,
    upstream: string,
    attempt: number,
    reason: string,
    delayMs: number,
  ) => void;
  readonly onSuppressed?: (
    requestId: string,
    route: string,
    upstream: string,
    attempt: number,
    cause: SuppressedCause,
  ) => void;
  /**
   * A CONNECT ended its opening: `established`, or why not (tunnel.ts lists the outcomes); `retryReasons`:
   * one per connect retried.
   */
  readonly onTunnelDone?: (
    upstream: string,
    outcome: string,
    retryReasons: readonly string[],
  ) => void;
  /** A CONNECT is over (refused, or its tunnel closed): its access line. */
  readonly onTunnelEnd?: (summary: RequestSummary) => void;
  /** The CA of `connect.intercept`; undefined: no tunnel is intercepted. */
  readonly intercept?: InterceptCa | undefined;
  /** Serves a socket from inside a tunnel (marked by tunnelled.ts) as a proxy port client. */
  readonly serveInside?: (socket: Socket) => void;
  /** A client's TLS handshake with reprise in a tunnel to `upstream` ended (`sni`: what it named). */
  readonly onClientHandshake?: (
    upstream: string,
    result: ClientHandshakeResult,
    sni: string | undefined,
  ) => void;
}
