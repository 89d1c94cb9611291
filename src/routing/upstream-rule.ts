/**
 * Which `upstreams[]` rule applies to an authority (the first whose `match` fits, in file
 * order; SPEC §2), and so which TLS a request to it is sent with. The registry's budget and
 * breaker settings, the request path, listeners, fallbacks, `explain` and `/state` all ask here.
 * Pure.
 */
import type { InterceptSettings, UpstreamRule, UpstreamTls } from '../config/types.ts';
import { splitAuthority, unbracket } from './authority.ts';
import { matchesHost } from './host-pattern.ts';

/** Verified against Node's public roots, SNI the host called: an `https://` URL with no rule. */
export const PUBLIC_ROOTS: UpstreamTls = Object.freeze({
  port: undefined,
  servername: undefined,
  ca: undefined,
  cert: undefined,
  key: undefined,
  files: Object.freeze({}),
  id: 'public-roots',
});

/** `host` canonical (routing/authority.ts), `port` a number; undefined when no rule fits. */
export function findUpstreamRule(
  rules: readonly UpstreamRule[],
  host: string,
  port: number,
): UpstreamRule | undefined {
  for (const rule of rules) {
    if (matchesHost(rule.match, host, port)) return rule;
  }
  return undefined;
}

/**
 * The TLS a request to `host:port` is sent with: its rule's `tls`; else, for an `https://`
 * URL (`secure`), the public roots with SNI the host; else undefined (plain HTTP).
 */
export function upstreamTls(
  rules: readonly UpstreamRule[],
  host: string,
  port: number,
  secure: boolean,
): UpstreamTls | undefined {
  const tls = rules.length === 0 ? undefined : findUpstreamRule(rules, host, port)?.tls;
  return tls ?? (secure ? PUBLIC_ROOTS : undefined);
}

/**
 * The port TLS is spoken on: an `https://` URL names its own; for an `http://` call it is the
 * rule's `port`, else the port called with 80 mapped to 443.
 */
export function tlsPort(tls: UpstreamTls, port: number, secure: boolean): number {
  if (secure) return port;
  return tls.port ?? (port === 80 ? 443 : port);
}

/**
 * The origin connected to and the Host header sent, for a request sent with `tls`:
 * `hostHeader` is `host:port` as the client spelled it.
 */
export function tlsDestination(
  hostHeader: string,
  port: number,
  tls: UpstreamTls,
  secure: boolean,
): { readonly origin: string; readonly hostHeader: string } {
  const host = hostHeader.slice(0, hostHeader.lastIndexOf(':'));
  const spelled = `${host}:${tlsPort(tls, port, secure)}`;
  return { origin: `https://${spelled}`, hostHeader: spelled };
}

/** The TLS that applies, as `explain` prints it and `/state` shows it: files, not PEM. */
export interface TlsView {
  /** The port TLS is spoken on. */
  readonly port: number;
  readonly servername: string;
  /** The CA file, or `public roots`. */
  readonly ca: string;
  /** The client certificate file, or `none`. */
  readonly cert: string;
}

/** `host` the host called, `port` the port TLS is spoken on (as in the origin). */
export function viewTls(tls: UpstreamTls, host: string, port: number): TlsView {
  return {
    port,
    servername: tls.servername ?? unbracket(host),
    ca: tls.files.ca ?? 'public roots',
    cert: tls.files.cert ?? 'none',
  };
}

/** The TLS an `http://` call to `authority` (`host:port`) is sent with; undefined: plain. */
export function viewRuleTls(
  rules: readonly UpstreamRule[],
  authority: string,
): TlsView | undefined {
  const { host, port } = splitAuthority(authority);
  const tls = findUpstreamRule(rules, host, port)?.tls;
  return tls && viewTls(tls, host, tlsPort(tls, port, false));
}

/** Whether a tunnel to `host:port` is opened and served inside (`connect.intercept.hosts`). */
export function isIntercepted(
  intercept: InterceptSettings | undefined,
  host: string,
  port: number,
): boolean {
  return intercept?.hosts.some((pattern) => matchesHost(pattern, host, port)) ?? false;
}
