/**
 * The only undici user. Sends one try (upstream-try.ts) and returns it: its `result` is the
 * response head (its body held until the caller relays or discards it), a named failure, or
 * `denied`. Keep-alive pools per origin live in one undici Agent per distinct connect timeout
 * and TLS settings: everything that changes how a connection is made.
 * Every connection is made by the dialer (dialer.ts, through connector.ts).
 */
import type { BlockList } from 'node:net';
import type { buildConnector, Dispatcher, Client as UndiciClient } from 'undici';
import type { UpstreamTls } from '../../config/types.ts';
import { socketAddress } from '../../routing/authority.ts';
import { REAL_TIMERS, type Timers } from '../../timers.ts';
import { dialerConnector } from './connector.ts';
import type { Dialer } from './dialer.ts';
import { Agent, Client, Pool } from './undici-agent.ts';
import { type DeniedTry, type TryLimits, type TryResult, UpstreamTry } from './upstream-try.ts';

export type { DeniedTry, TryResult };

/** One try: where it goes and what it sends, with the limits the try keeps (TryLimits). */
export interface TryRequest extends TryLimits {
  readonly origin: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: Buffer | AsyncIterable<Buffer> | null;
  readonly connectTimeoutMs: number;
  /** Speak TLS to the upstream with these settings (`origin` is then `https://host:port`). */
  readonly tls?: UpstreamTls | undefined;
}

/** A try on its way; `abort` cancels it wherever it is (the client went away). */
export interface PendingTry {
  readonly result: Promise<TryResult | DeniedTry>;
  /** `ip:port` of the connection the try was sent on; undefined until it was sent. */
  readonly upstreamAddress: string | undefined;
  abort(): void;
  /** A held body is given now and follows as it comes (no retry could replace it any more). */
  release(): void;
}

export interface UpstreamClientOptions {
  /** Makes every connection; when its deny list changes, new pools replace the old. */
  readonly dialer: Dialer;
  /** Arms each try's perTryTimeout and body stall timers. */
  readonly timers?: Timers;
}

/** Distinct TLS settings with pools at once; past it the oldest settings' pools close. */
const MAX_TLS_SETTINGS = 64;

export class UpstreamClient {
  readonly #dialer: Dialer;
  readonly #timers: Timers;
  #agentsDenied: BlockList | undefined;
  /** By TLS settings id ('' for plain TCP), then by connect timeout. */
  readonly #agents = new Map<string, Map<number, Agent>>();
  readonly #retiring = new Set<Promise<void>>();

  constructor(options: UpstreamClientOptions) {
    this.#dialer = options.dialer;
    this.#timers = options.timers ?? REAL_TIMERS;
  }

  send(request: TryRequest): PendingTry {
    const handler = new UpstreamTry(request, this.#timers);
    this.#agentFor(request.connectTimeoutMs, request.tls).dispatch(
      {
        origin: request.origin,
        path: request.path,
        method: request.method as Dispatcher.HttpMethod,
        headers: request.headers,
        body: request.body as Dispatcher.DispatchOptions['body'],
        // both timed by the try itself: undici's timers tick in steps of half a second
        headersTimeout: 0,
        bodyTimeout: 0,
        idempotent: false,
        blocking: false,
      },
      handler,
    );
    return handler;
  }

  async close(): Promise<void> {
    this.#retire();
    await Promise.all(this.#retiring);
  }

  #agentFor(connectTimeoutMs: number, tls: UpstreamTls | undefined): Agent {
    const denied = this.#dialer.deniedUpstreams;
    // pooled connections were checked against the list of their day: start afresh
    if (denied !== this.#agentsDenied) {
      this.#retire();
      this.#agentsDenied = denied;
    }
    const id = tls?.id ?? '';
    let byTimeout = this.#agents.get(id);
    if (byTimeout === undefined) {
      // a reload that changes TLS settings (a rotated certificate) makes a new id: the oldest
      // settings' pools close once too many were made, so their number stays bounded
      if (this.#agents.size >= MAX_TLS_SETTINGS) this.#retireOldest();
      byTimeout = new Map();
      this.#agents.set(id, byTimeout);
    }
    let agent = byTimeout.get(connectTimeoutMs);
    if (agent === undefined) {
      agent = new Agent({
        connect: dialerConnector(this.#dialer, connectTimeoutMs, tls),
        keepAliveTimeout: 4_000,
        factory: (origin, options) =>
          new Pool(origin, {
            ...options,
            factory: (o, clientOptions) => new AddressedClient(o, clientOptions),
          }),
      });
      byTimeout.set(connectTimeoutMs, agent);
    }
    return agent;
  }

  /** Closes the pools gracefully: tries in flight finish, idle connections close. */
  #retire(): void {
    for (const byTimeout of this.#agents.values()) this.#close(byTimeout);
    this.#agents.clear();
  }

  #retireOldest(): void {
    const [id, byTimeout] = this.#agents.entries().next().value ?? [];
    if (id === undefined || byTimeout === undefined) return;
    this.#close(byTimeout);
    this.#agents.delete(id);
  }

  #close(byTimeout: Map<number, Agent>): void {
    for (const agent of byTimeout.values()) {
      const closing = agent.close().catch(() => {});
      this.#retiring.add(closing);
      closing.then(() => this.#retiring.delete(closing));
    }
  }
}

/**
 * A pooled connection that knows the address it connected to. An undici Client has one socket
 * at a time, so the address it holds when a try starts is the one the try is sent on.
 */
class AddressedClient extends Client {
  readonly #peer: { address: string | undefined };

  constructor(origin: string | URL, options: UndiciClient.Options) {
    const peer: { address: string | undefined } = { address: undefined };
    const connect = options.connect as buildConnector.connector;
    super(origin, {
      ...options,
      connect: (connectOptions, callback) =>
        connect(connectOptions, (...args) => {
          const socket = args[1];
          peer.address =
            socket === null ? undefined : socketAddress(socket.remoteAddress, socket.remotePort);
          callback(...args);
        }),
    });
    this.#peer = peer;
  }

  override dispatch(
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    if (handler instanceof UpstreamTry) handler.peer = this.#peer;
    return super.dispatch(options, handler);
  }
}
