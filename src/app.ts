/**
 * Builds the running system from a config, applies reloads, drains and stops. Owns the
 * long-lived parts (upstream pools, budgets and breakers, the buffer pool, metrics); each
 * reload builds a new request context from them.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Metrics } from './admin/metrics.ts';
import { type AdminServer, startAdmin } from './admin/server.ts';
import type { Address, Config } from './config/types.ts';
import {
  createLogger,
  type Logger,
  logClientHandshake,
  logHandshakeFailed,
  logRequestDone,
  logRetry,
  logSuppressed,
} from './log.ts';
import { BufferPool } from './proxy/buffer-pool.ts';
import type { ProxyContext } from './proxy/context.ts';
import { createProxyServer } from './proxy/inbound/server.ts';
import { Dialer } from './proxy/upstream/dialer.ts';
import { probeConnects } from './proxy/upstream/probe-connect.ts';
import { UpstreamClient } from './proxy/upstream/upstream-client.ts';
import { QuietCollector } from './quiet-collector.ts';
import { UpstreamRegistry } from './resilience/upstream-registry.ts';
import { type OwnAuthorities, ownAuthorities } from './routing/target.ts';
import { viewRuleTls } from './routing/upstream-rule.ts';
import type { RequestSummary } from './summary.ts';
import { REAL_TIMERS, type Timers } from './timers.ts';
import type { InterceptCa } from './tls/intercept-ca.ts';
import type { CertificateResult } from './vocabulary.ts';

/** The quiet collector (quiet-collector.ts) looks every 5 s and collects after 15 s quiet. */
const QUIET_PERIOD_MS = 5_000;
const QUIET_PERIODS = 3;
const QUIET_MIN_GROWTH_BYTES = 8 * 1024 ** 2;
/*
 * No collection after start-up: it gave back start-up's garbage (idle RSS 4 MiB lower), but
 * every full collection forced before the load left the proxy ~8% slower for as long as the
 * load lasted (CPU per 1 KiB GET side by side with the bare reference, five runs: 1.32-1.37×
 * with it, 1.20-1.28× without; the V8 collections a load brings on itself do not do this).
 */

export interface AppOptions {
  readonly logger?: Logger;
  /** false: no metrics (the bench measures their cost). Default true. */
  readonly metrics?: boolean;
  readonly now?: () => number;
  /** The timers of the proxy's own waits (src/timers.ts); a test steps them with `now`. */
  readonly timers?: Timers;
  readonly random?: () => number;
  /**
   * The full collection the quiet collector makes. Default: V8's
   * last-resort collection where node runs with --expose-gc (dist/cli/main.js's first line has
   * it; none otherwise).
   */
  readonly collectGarbage?: () => void;
  /** When the collections run. Default: unref'd timers (COLLECTION_TIMERS). */
  readonly collectionTimers?: CollectionTimers;
}

/** What runs the quiet collector; returns what cancels it. */
export interface CollectionTimers {
  /** Calls the quiet collector's `tick` once a period. */
  everyQuietPeriod(tick: () => void): () => void;
}

export interface App {
  readonly proxyPort: number;
  readonly adminPort: number;
  /** Bound ports of `listeners`, in config order. */
  readonly listenerPorts: readonly number[];
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
  config(): Config;
  /**
   * Swaps in a new config for requests that start from now on; at once, unless it changes
   * `connect.intercept`, whose new CA is made (and its files written) first.
   */
  reload(config: Config): Promise<void>;
  /** Stops accepting, lets in-flight requests finish within drainTimeout, closes everything. */
  stop(): Promise<void>;
}

export async function startApp(config: Config, options: AppOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger();
  const now = options.now ?? Date.now;
  const timers = options.timers ?? REAL_TIMERS;
  const viaId = `reprise-${randomBytes(4).toString('hex')}`;
  const pool = new BufferPool(config.limits.maxBufferedBytes);
  let context: ProxyContext;
  let metrics: Metrics | undefined;
  const dialer = new Dialer({
    timers,
    deniedUpstreams: () => context.config.access.deniedUpstreamList,
    onHandshake: (result, target, error) => {
      metrics?.tlsHandshake('upstream', result);
      if (error === undefined) return;
      logHandshakeFailed(logger, {
        upstream: `${target.host}:${target.port}`,
        servername: target.tls?.servername ?? target.host,
        failure: result,
        reason: error.reason,
        message: error.message,
      });
    },
  });
  const client = new UpstreamClient({ dialer, timers });
  const upstreams = new UpstreamRegistry(
    config.defaultUpstream,
    config.upstreams,
    {
      onTransition: (authority, to, from) => {
        metrics?.circuitTransition(authority, to);
        // an outage at high traffic probes (open ↔ half-open) many times a second: only leaving
        // closed and coming back are worth a warning
        if (from === 'closed' || to === 'closed')
          logger.warn({ upstream: authority, to }, 'circuit');
        else logger.debug({ upstream: authority, to }, 'circuit');
      },
      onLink: (authority, state) => {
        if (state === 'down') logger.warn({ upstream: authority, link: state }, 'link');
        else logger.info({ upstream: authority, link: state }, 'link');
      },
    },
    { probing: { connect: probeConnects(dialer), timers, now } },
  );
  if (options.metrics !== false) {
    metrics = new Metrics({
      upstreams: () => upstreams.snapshot(now()),
      bufferedBytes: () => pool.usedBytes,
      route: (name) => {
        const cfg = context.config;
        return (
          cfg.routes.find((r) => r.name === name) ??
          (name === cfg.defaultRoute.name ? cfg.defaultRoute : undefined)
        );
      },
    });
  }
  const onDone = (s: RequestSummary): void => {
    logRequestDone(logger, s);
    metrics?.requestDone(s);
  };
  const debug = logger.isLevelEnabled('debug');
  // known once the ports are bound (a listen port may be 0)
  let own: OwnAuthorities = ownAuthorities([config.listen]);
  const build = (cfg: Config): ProxyContext => ({
    config: cfg,
    ownAuthorities: own,
    upstreams,
    client,
    dialer,
    pool,
    viaId,
    viaToken: `1.1 ${viaId}`,
    now,
    timers,
    random: options.random ?? Math.random,
    onDone,
    onRetry: debug
      ? (requestId, route, upstream, attempt, reason, delayMs) =>
          logRetry(logger, { requestId, route, upstream, attempt, reason, delayMs })
      : undefined,
    onSuppressed: debug
      ? (requestId, route, upstream, attempt, cause) =>
          logSuppressed(logger, { requestId, route, upstream, attempt, cause })
      : undefined,
    onTunnelDone: (upstream, outcome, retryReasons) =>
      metrics?.tunnelDone(upstream, outcome, retryReasons),
    onTunnelEnd: (s) => logRequestDone(logger, s),
    intercept: ca,
    serveInside: (socket) => proxy.emit('connection', socket),
    onClientHandshake: (upstream, result, sni) => {
      metrics?.tlsHandshake('client', result);
      logClientHandshake(logger, { upstream, result, sni });
    },
  });
  // written before the admin port answers, so /readyz 200 means the app can trust the files
  let ca = await startInterceptCa(config, now, (result) => metrics?.certificate(result));
  context = build(config);
  let draining = false;
  let started = 0;
  let inFlight = 0;
  const onError = (err: unknown): void => logger.error({ err }, 'unexpected error');

  const servers: Server[] = [];
  // CONNECT and Upgrade sockets leave the HTTP server's books (closeAllConnections misses them)
  const detached = new Set<Socket>();
  const detach = (_req: unknown, socket: Socket): void => {
    started++;
    detached.add(socket);
    socket.once('close', () => detached.delete(socket));
  };
  // one shared listener, not a closure per request
  const requestClosed = (): void => {
    inFlight--;
  };
  const track = (server: Server): Server => {
    server.on('request', (_req, res) => {
      started++;
      inFlight++;
      res.on('close', requestClosed);
    });
    server.on('connect', detach);
    server.on('upgrade', detach);
    servers.push(server);
    return server;
  };
  const proxy = track(createProxyServer({ context: () => context, onError }));
  const listenerPorts: number[] = [];
  let proxyPort: number;
  let admin: AdminServer;
  try {
    proxyPort = await listen(proxy, config.listen);
    for (const listener of config.listeners) {
      const server = track(createProxyServer({ context: () => context, listener, onError }));
      listenerPorts.push(await listen(server, listener.listen));
    }
    own = ownAuthorities([
      { host: config.listen.host, port: proxyPort },
      ...config.listeners.map((l, i) => ({
        host: l.listen.host,
        port: listenerPorts[i] as number,
      })),
    ]);
    context = build(config);
    admin = await startAdmin(config.admin, {
      metrics: metrics ?? { text: async () => '', contentType: 'text/plain' },
      isReady: () => !draining,
      effectiveConfig: () => context.config.effective,
      state: () => ({
        upstreams: upstreams.snapshot(now()).map((snapshot) => {
          const tls = viewRuleTls(context.config.upstreams, snapshot.authority);
          return tls === undefined ? snapshot : { ...snapshot, tls };
        }),
        bufferedBytes: pool.usedBytes,
        inFlight,
      }),
    });
  } catch (err) {
    // one port could not be bound: release the ones that were, so a caller can retry
    for (const server of servers) if (server.listening) server.close();
    await client.close();
    throw err;
  }

  const collectGarbage = options.collectGarbage ?? v8Collection();
  const collectionTimers = options.collectionTimers ?? COLLECTION_TIMERS;
  let stopQuietTicks: (() => void) | undefined;
  if (collectGarbage !== undefined) {
    const collect = () => {
      const collectStart = performance.now();
      collectGarbage();
      const ms = Math.round(performance.now() - collectStart);
      logger.debug({ ms }, 'collected after traffic');
    };
    const quiet = new QuietCollector({
      heapBytes: () => {
        const usage = process.memoryUsage();
        return usage.heapTotal + usage.arrayBuffers;
      },
      collect,
      minGrowthBytes: QUIET_MIN_GROWTH_BYTES,
      quietPeriods: QUIET_PERIODS,
    });
    // an open tunnel or WebSocket is traffic too
    const busy = () => inFlight + detached.size;
    stopQuietTicks = collectionTimers.everyQuietPeriod(() => quiet.tick(started, busy()));
  }

  return {
    proxyPort,
    adminPort: admin.port,
    listenerPorts,
    logger,
    metrics,
    config: () => context.config,
    async reload(next: Config): Promise<void> {
      if (next.connect.intercept?.id !== ca?.settings.id) {
        // other hosts need another CA (its name constraints): made, and its files rewritten,
        // before the new config takes its first request
        ca = await startInterceptCa(next, now, (result) => metrics?.certificate(result));
        if (ca !== undefined) logger.warn(interceptCaRenewed(ca), 'interception CA renewed');
      }
      upstreams.reconfigure(next.defaultUpstream, next.upstreams);
      pool.capacityBytes = next.limits.maxBufferedBytes;
      context = build(next);
    },
    async stop(): Promise<void> {
      draining = true;
      stopQuietTicks?.();
      const closed = Promise.all(
        servers.map((server) => new Promise((resolve) => server.close(resolve))),
      );
      for (const server of servers) server.closeIdleConnections();
      const deadline = now() + context.config.limits.drainTimeoutMs;
      while (inFlight > 0 && now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        for (const server of servers) server.closeIdleConnections();
      }
      for (const server of servers) server.closeAllConnections();
      for (const socket of detached) socket.destroy();
      await closed;
      await Promise.all([admin.close(), client.close()]);
    },
  };
}

/** Resolves with the bound port; rejects with the listen error (EADDRINUSE…). */
async function listen(server: Server, address: Address): Promise<number> {
  // config/units.ts keeps IPv6 hosts without brackets, as listen() wants them
  server.listen(address.port, address.host);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/**
 * V8's last-resort collection, when node runs with --expose-gc: a memory-reducing one, the
 * only kind after which V8 gives its pooled pages back (heap pages resident after a 30 s load:
 * 27 → 11 MiB; a regular one frees the same objects and keeps every page).
 */
function v8Collection(): (() => void) | undefined {
  const gc = globalThis.gc;
  return gc && (() => gc({ type: 'major', flavor: 'last-resort' }));
}

/** The interception CA of `cfg`, its files written; undefined when nothing is intercepted. */
async function startInterceptCa(
  cfg: Config,
  now: () => number,
  onCertificate: (result: CertificateResult) => void,
): Promise<InterceptCa | undefined> {
  const settings = cfg.connect.intercept;
  if (settings === undefined) return undefined;
  // the certificate library is loaded only where interception is configured
  const { InterceptCa } = await import('./tls/intercept-ca.ts');
  return InterceptCa.start(settings, { now, onCertificate });
}

/** What the app must do after a new CA: trust the rewritten files (README, "Interception"). */
function interceptCaRenewed(ca: InterceptCa): Record<string, unknown> {
  const { writeCa, writeBundle } = ca.settings;
  return { writeCa, writeBundle, action: 'restart the app so that it trusts the new CA' };
}

const COLLECTION_TIMERS: CollectionTimers = {
  everyQuietPeriod(tick) {
    const timer = setInterval(tick, QUIET_PERIOD_MS).unref();
    return () => clearInterval(timer);
  },
};
