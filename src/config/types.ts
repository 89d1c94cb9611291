/**
 * The compiled, frozen configuration: what every other module reads.
 * Durations are milliseconds, sizes are bytes, names are lower-cased where HTTP says they
 * are case-insensitive. Produced only by `config/compile.ts`.
 */
import type { BlockList } from 'node:net';
import type { HostPattern } from '../routing/host-pattern.ts';
import type { FailureName } from '../vocabulary.ts';

export type JitterKind = 'full' | 'equal' | 'decorrelated' | 'none';

export interface Backoff {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly jitter: JitterKind;
}

export interface RetryPolicy {
  /** Tries in all, the first included; 1 = never retry. */
  readonly attempts: number;
  readonly perTryTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly onFailures: ReadonlySet<FailureName>;
  /** Every status listed in `on`, ranges such as `5xx` expanded. */
  readonly onStatuses: ReadonlySet<number>;
  /** Upper-case method names. */
  readonly methods: ReadonlySet<string>;
  /** Lower-case header name; '' = off. */
  readonly idempotencyHeader: string;
  readonly backoff: Backoff;
  readonly retryAfterMaxMs: number;
  readonly bufferBytes: number;
  /** Response bytes held until the body is whole, so a cut body can be retried; 0 = off. */
  readonly responseBufferBytes: number;
  /** Longest pause between body bytes while the response is held; past it, `body-cut`. */
  readonly bodyTimeoutMs: number;
  /** Longest pause between body bytes once the response streams to the client; past it, cut. */
  readonly streamIdleTimeoutMs: number;
  readonly hedge: Hedge;
  readonly observeOnly: boolean;
}

/** Hedging (SPEC §3): a second try of a safe request while the first still waits. */
export interface Hedge {
  /** Ms before a hedge starts; `auto`: what this upstream usually takes; `off`: never. */
  readonly afterMs: number | 'auto' | 'off';
  /** Tries in flight at once, at most; 1 = no hedging. */
  readonly max: number;
}

export interface Fallback {
  /** `http://host:port` or `https://host:port`, no path: what is connected to. */
  readonly origin: string;
  /** The TLS it is spoken to with (routing/upstream-rule.ts); undefined: plain HTTP. */
  readonly tls: UpstreamTls | undefined;
  /** `host:port`, canonical (routing/authority.ts): the fallback's upstream key and label. */
  readonly authority: string;
  /** `host:port` as written (the port connected to): the fallback's Host header. */
  readonly hostHeader: string;
  /** The fallback's `retry` merged over the route's. */
  readonly retry: RetryPolicy;
}

export interface RoutePolicy {
  /** The `route` metric label; `default` for `defaults.route`. */
  readonly name: string;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly fallback: Fallback | undefined;
}

export interface RouteMatch {
  readonly host: HostPattern | undefined;
  readonly pathPrefix: string | undefined;
  readonly pathRegex: RegExp | undefined;
  /** Upper-case; undefined = any method. */
  readonly methods: ReadonlySet<string> | undefined;
}

export interface Route extends RoutePolicy {
  readonly match: RouteMatch;
}

export interface BudgetSettings {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowMs: number;
}

export interface BreakerSettings {
  /** false: the trip rule is never applied, so the circuit stays closed. */
  readonly enabled: boolean;
  readonly failureRatio: number;
  /** How many of the most recent tries the ratio is taken over (at least that many must have run). */
  readonly minRequests: number;
  /** 0 = off. */
  readonly consecutiveFailures: number;
  /** Tries older than this are forgotten. */
  readonly windowMs: number;
  /** How long the trip rule must hold, on every try recorded, before the circuit opens. */
  readonly failingForMs: number;
  readonly openForMs: number;
  /** Refused requests that end an open period early; 0 = off (time only). */
  readonly openForRequests: number;
  readonly maxOpenForMs: number;
  readonly halfOpenRequests: number;
}

/**
 * How reprise speaks TLS to one upstream (SPEC §6, TLS origination): compiled from
 * `upstreams[].tls`, or made for an `https://` listener, fallback or absolute-form request.
 * Verification is always on: against `ca` when given, else Node's public roots.
 */
export interface UpstreamTls {
  /** The port TLS is spoken on; undefined: the port the app called (80 becomes 443). */
  readonly port: number | undefined;
  /** SNI and the name the certificate must carry; undefined: the host called. */
  readonly servername: string | undefined;
  /** PEM roots trusted instead of the public ones; undefined: the public roots. */
  readonly ca: string | undefined;
  /** PEM client certificate and key for mutual TLS (both or neither). */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** The files the PEM came from, as written (explain, /state, reload). */
  readonly files: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  /** Equal settings, equal id: connection pools and TLS sessions are keyed by it. */
  readonly id: string;
}

export interface UpstreamSettings {
  readonly budget: BudgetSettings;
  readonly circuitBreaker: BreakerSettings;
  readonly maxConcurrent: number;
}

export interface UpstreamRule {
  readonly match: HostPattern;
  /** `defaults.upstream` deep-merged with this entry. */
  readonly settings: UpstreamSettings;
  /** TLS origination to the upstreams it matches; undefined: plain HTTP for http:// calls. */
  readonly tls: UpstreamTls | undefined;
}

export interface Address {
  readonly host: string;
  readonly port: number;
}

export interface Listener {
  readonly listen: Address;
  /** `http://host:port` or `https://host:port`: what is connected to. */
  readonly origin: string;
  /** The TLS it is spoken to with (routing/upstream-rule.ts); undefined: plain HTTP. */
  readonly tls: UpstreamTls | undefined;
  /** `host:port`, canonical (routing/authority.ts): the upstream's key and label. */
  readonly authority: string;
  /** `host:port` as written (the port connected to): the Host header. */
  readonly hostHeader: string;
}

export interface ConnectSettings {
  readonly allowedPorts: ReadonlySet<number>;
  readonly idleTimeoutMs: number;
  readonly retry: {
    readonly attempts: number;
    readonly connectTimeoutMs: number;
    readonly backoff: Backoff;
  };
  /** Tunnels opened and retried inside (SPEC §6); undefined: every tunnel passes through. */
  readonly intercept: InterceptSettings | undefined;
}

/** `connect.intercept`: which tunnels are opened, and the CA that signs their certificates. */
export interface InterceptSettings {
  readonly hosts: readonly HostPattern[];
  /** The CA from files (PEM texts); undefined: one is made at start and kept in memory only. */
  readonly ca: { readonly cert: string; readonly key: string } | undefined;
  /** Resolved paths the CA certificate, and the public roots with it, are written to. */
  readonly writeCa: string | undefined;
  readonly writeBundle: string | undefined;
  /** Equal hosts and CA files, equal id: a reload that changes it makes a new CA. */
  readonly id: string;
}

export interface Limits {
  readonly maxBufferedBytes: number;
  readonly drainTimeoutMs: number;
  /** Client connections open at once on each proxy port; past it new ones are closed. */
  readonly maxClientConnections: number;
  /** A client must send its whole request head within this. */
  readonly headersTimeoutMs: number;
  /** A client connection with no bytes either way for this long is closed. */
  readonly idleTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlBytes: number;
}

export interface Access {
  /** The CIDRs as written, for /config and messages. */
  readonly allowedClients: readonly string[];
  /** undefined = every client (only allowed on loopback listeners). */
  readonly allowedClientList: BlockList | undefined;
  readonly deniedUpstreams: readonly string[];
  /** Checked on the address actually connected to; undefined = none denied. */
  readonly deniedUpstreamList: BlockList | undefined;
}

export interface Config {
  /** The file it came from; undefined for the embedded defaults. */
  readonly source: string | undefined;
  readonly listen: Address;
  readonly admin: Address;
  readonly defaultRoute: RoutePolicy;
  readonly routes: readonly Route[];
  readonly defaultUpstream: UpstreamSettings;
  readonly upstreams: readonly UpstreamRule[];
  readonly listeners: readonly Listener[];
  readonly connect: ConnectSettings;
  readonly limits: Limits;
  readonly access: Access;
  /** The effective config as plain JSON (defaults merged, units as written): `/config`. */
  readonly effective: unknown;
}
