/**
 * Where a request goes: parsed from an absolute-form URI on the proxy port (`http://`, or
 * `https://` from clients told not to tunnel), or fixed by a listener for origin-form requests;
 * over TLS where an `upstreams[]` rule or the URL says so. Also the loop check against
 * reprise's own addresses.
 */
import { BlockList, isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import type { Address, Listener, UpstreamRule, UpstreamTls } from '../config/types.ts';
import { isListed } from './address-list.ts';
import {
  type Authority,
  canonicalHost,
  isLoopbackHost,
  parseAuthority,
  splitAuthority,
  unbracket,
} from './authority.ts';
import { tlsDestination, upstreamTls } from './upstream-rule.ts';

/** Where a request goes, parsed once from its absolute-form URI (or a listener's upstream). */
export interface Target extends Authority {
  /** `http://` or `https://` + the host and port connected to. */
  readonly origin: string;
  /** The TLS the request is sent with (routing/upstream-rule.ts); undefined: plain HTTP. */
  readonly tls: UpstreamTls | undefined;
  /** The port connected to: `port`, or where TLS is spoken when the two differ. */
  readonly dialPort: number;
  /** Path and query, as sent upstream. */
  readonly path: string;
  /** Path without the query: routing and logs. */
  readonly pathname: string;
}

/**
 * `http://host[:port]/path?query` or `https://…` → Target; undefined when it is not that
 * shape. `rules` (the config's `upstreams[]`) say which TLS applies (SPEC §6).
 */
export function parseAbsoluteTarget(
  url: string,
  rules: readonly UpstreamRule[],
): Target | undefined {
  const secure = url.length > 8 && url.slice(0, 8).toLowerCase() === 'https://';
  if (!secure && (url.length < 8 || url.slice(0, 7).toLowerCase() !== 'http://')) return undefined;
  const start = secure ? 8 : 7;
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const text = url.slice(start, end);
  const authority = secure ? httpsAuthorityOf(text) : authorityOf(text);
  if (authority === undefined) return undefined;
  const rest = url.slice(end);
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (path.includes('#')) return undefined;
  const tls = upstreamTls(rules, authority.host, authority.port, secure);
  if (tls === undefined) return targetAt(authority, path, undefined);
  const destination = tlsDestination(authority.hostHeader, authority.port, tls, secure);
  return targetAt({ ...authority, ...destination }, path, tls);
}

/**
 * A request read inside a CONNECT tunnel to `hostHeader` (SPEC §6): origin-form, or
 * absolute-form naming that same authority. Sent there as `https://` when reprise terminated
 * the client's TLS (`secure`), else as `http://`; `rules` may add TLS as for any request.
 */
export function tunnelTarget(
  hostHeader: string,
  secure: boolean,
  url: string,
  rules: readonly UpstreamRule[],
): Target | undefined {
  const scheme = secure ? 'https://' : 'http://';
  if (url.startsWith('/')) return parseAbsoluteTarget(`${scheme}${hostHeader}${url}`, rules);
  const absolute = parseAbsoluteTarget(url, rules);
  const tunnel = secure ? httpsAuthorityOf(hostHeader) : authorityOf(hostHeader);
  if (absolute === undefined || absolute.authority !== tunnel?.authority) return undefined;
  return absolute;
}

/** An origin-form request on a fixed-upstream listener. */
export function listenerTarget(listener: Listener, url: string): Target | undefined {
  if (!url.startsWith('/')) return undefined;
  let authority = listenerAuthorities.get(listener);
  if (authority === undefined) {
    authority = listenerAuthority(listener);
    if (authority !== undefined) listenerAuthorities.set(listener, authority);
  }
  return authority === undefined ? undefined : targetAt(authority, url, listener.tls);
}

/** The listener's upstream as the key and label name it, connected to as compiled. */
function listenerAuthority(listener: Listener): ParsedAuthority | undefined {
  const parsed = parseAuthority(listener.authority);
  const spelled = parseAuthority(listener.hostHeader);
  if (parsed === undefined || spelled === undefined) return undefined;
  const { origin, hostHeader } = listener;
  return { ...parsed, dialHost: spelled.dialHost, origin, hostHeader };
}

interface ParsedAuthority extends Authority {
  readonly origin: string;
}

function targetAt(a: ParsedAuthority, path: string, tls: UpstreamTls | undefined): Target {
  const { origin, authority, host, port, dialHost, hostHeader } = a;
  const pathname = pathnameOf(path);
  // TLS may be spoken on another port than the one called (an http:// call: 80 becomes 443)
  const dialPort = tls === undefined ? port : Number(origin.slice(origin.lastIndexOf(':') + 1));
  return { origin, tls, authority, host, port, dialHost, dialPort, hostHeader, path, pathname };
}

/** A sidecar talks to a handful of hosts: each valid spelling is parsed once. */
const authorities = new Map<string, ParsedAuthority>();
const httpsAuthorities = new Map<string, ParsedAuthority>();
/** Per compiled listener: a reload compiles new ones, with the origin and TLS of its day. */
const listenerAuthorities = new WeakMap<Listener, ParsedAuthority>();

function authorityOf(text: string): ParsedAuthority | undefined {
  return remembered(authorities, text, parseHttpAuthority);
}

function httpsAuthorityOf(text: string): ParsedAuthority | undefined {
  return remembered(httpsAuthorities, text, parseHttpsAuthority);
}

function parseHttpsAuthority(text: string): ParsedAuthority | undefined {
  const parsed = parseAuthority(text, 443);
  return parsed && { ...parsed, origin: `https://${parsed.hostHeader}` };
}

function parseHttpAuthority(text: string): ParsedAuthority | undefined {
  const parsed = parseAuthority(text, 80);
  return parsed && { ...parsed, origin: `http://${parsed.hostHeader}` };
}

/** Entries a per-spelling cache keeps before it starts afresh (spellings come from clients). */
const CACHE_SIZE = 1024;

/** `cache`'s answer for `key`, worked out by `compute` the first time; undefined is not kept. */
function remembered<V>(
  cache: Map<string, V>,
  key: string,
  compute: (key: string) => V | undefined,
): V | undefined {
  let value = cache.get(key);
  if (value === undefined) {
    value = compute(key);
    if (value === undefined) return undefined;
    if (cache.size >= CACHE_SIZE) cache.clear();
    cache.set(key, value);
  }
  return value;
}

function pathnameOf(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

/** Answers whether an authority (`host:port`, as in a Target) names this proxy itself. */
export interface OwnAuthorities {
  has(authority: string): boolean;
}

/** The addresses and names that reach one listening port. */
interface PortOwner {
  readonly addresses: BlockList;
  readonly names: Set<string>;
  /** `localhost` and `*.localhost` (RFC 6761 §6.3) reach it. */
  localhost: boolean;
}

/**
 * Every spelling of the given listen addresses (loop detection, SPEC §5). A loopback listen
 * is reached by all of 127.0.0.0/8, ::1, 0.0.0.0 and :: (a connect to the unspecified address
 * goes to loopback), `localhost` and `*.localhost`; a wildcard listen (0.0.0.0, ::) also by
 * every interface address and the host name. Numeric spellings are compared as the address
 * they parse to (0x7f.1, 2130706433, 017700000001, [::ffff:127.0.0.1], [0:0:0:0:0:0:0:1]).
 *
 * Pass the bound ports (a `listen` port of 0 is only known after binding); the app computes
 * this once per config and keeps it in the request context.
 */
export function ownAuthorities(addresses: readonly Address[]): OwnAuthorities {
  const owners = new Map<number, PortOwner>();
  for (const { host, port } of addresses) {
    let owner = owners.get(port);
    if (owner === undefined) {
      owner = { addresses: new BlockList(), names: new Set(), localhost: false };
      owners.set(port, owner);
    }
    addSpellings(owner, host);
  }
  // the answer for a spelling never changes for these addresses: each is worked out once
  const known = new Map<string, boolean>();
  const own = (authority: string) => isOwn(owners, authority);
  return { has: (authority) => remembered(known, authority, own) === true };
}

function addSpellings(owner: PortOwner, listenHost: string): void {
  const host = unbracket(canonicalHost(listenHost));
  const wildcard = host === '0.0.0.0' || host === '::';
  const family = isIP(host);
  if (family === 0) owner.names.add(host);
  else owner.addresses.addAddress(host, family === 4 ? 'ipv4' : 'ipv6');
  if (wildcard || isLoopbackHost(host)) {
    owner.addresses.addSubnet('127.0.0.0', 8, 'ipv4');
    for (const ip of ['0.0.0.0', '::', '::1'])
      owner.addresses.addAddress(ip, isIP(ip) === 4 ? 'ipv4' : 'ipv6');
    owner.localhost = true;
  }
  if (wildcard) {
    owner.names.add(canonicalHost(hostname()));
    for (const info of Object.values(networkInterfaces()).flat()) {
      if (info !== undefined)
        owner.addresses.addAddress(
          unbracket(info.address),
          info.family === 'IPv4' ? 'ipv4' : 'ipv6',
        );
    }
  }
}

function isOwn(owners: ReadonlyMap<number, PortOwner>, authority: string): boolean {
  const { host: canonical, port } = splitAuthority(authority);
  const owner = owners.get(port);
  if (owner === undefined) return false;
  const host = unbracket(canonical);
  if (isIP(host) !== 0) return isListed(owner.addresses, host);
  if (owner.localhost && (host === 'localhost' || host.endsWith('.localhost'))) return true;
  return owner.names.has(host);
}
