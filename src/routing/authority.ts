/**
 * How reprise spells an authority (`host:port`). Registry keys, route and `upstreams[]`
 * matching, the loop check and the `upstream` metric label all use the canonical spelling
 * made here, so two spellings of one upstream are one upstream everywhere. Pure; no I/O.
 *
 * Canonical: lower-case; no trailing dot (`api.example.com.` is `api.example.com`); an IPv6
 * literal in brackets and compressed (`[0:0::1]` is `[::1]`); an IPv4 literal in dotted
 * decimal (`0x7f.1` is `127.0.0.1`, read the way resolvers read it); the port always written
 * (the scheme's default when the text leaves it out).
 *
 * What is connected to and sent as `Host` keeps the client's spelling (lower-cased): a
 * trailing dot tells a resolver not to try its search domains, and that is the client's call.
 */
import { BlockList, isIP, isIPv4, isIPv6 } from 'node:net';

export interface Authority {
  /** Canonical host, IPv6 in brackets: what routes and `upstreams[]` match. */
  readonly host: string;
  readonly port: number;
  /** Canonical `host:port`: the registry key, the loop check, the `upstream` label. */
  readonly authority: string;
  /** The host as the client spelled it, lower-case, without brackets: what is connected to. */
  readonly dialHost: string;
  /** `host:port` as the client spelled it, lower-case: the Host header sent upstream. */
  readonly hostHeader: string;
}

/** A host and the port written after it (undefined when none was). */
export interface HostPort {
  readonly host: string;
  readonly port: number | undefined;
}

export const PORT_TOO_LARGE = 'port must be at most 65535';

const NAME_CHARS = /^[a-z0-9.-]+$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;
const PORT_DIGITS = /^\d{1,5}$/;

/**
 * The one rule for where a port starts: after the last colon, unless the text ends in `]`
 * (an IPv6 literal without a port). The host is returned as written. Or a message, when what
 * follows the colon is not a port (0-65535).
 */
export function splitHostPort(text: string): HostPort | string {
  const colon = text.lastIndexOf(':');
  if (colon === -1 || text.endsWith(']')) return { host: text, port: undefined };
  const digits = text.slice(colon + 1);
  if (!PORT_DIGITS.test(digits)) return `"${digits}" is not a port`;
  const port = Number(digits);
  if (port > 65535) return PORT_TOO_LARGE;
  return { host: text.slice(0, colon), port };
}

/**
 * A request's authority (an `http://` URI's, a CONNECT target, a listener's upstream):
 * `host[:port]`, a name of letters, digits, dots and hyphens or a bracketed IPv6 address, no
 * user info, port 1-65535. `defaultPort` stands in for a port left out; without it a port is
 * required. Any case. undefined when it is not that shape.
 */
export function parseAuthority(text: string, defaultPort?: number): Authority | undefined {
  const parts = splitHostPort(text.toLowerCase());
  if (typeof parts === 'string') return undefined;
  const port = parts.port ?? defaultPort;
  if (port === undefined || port < 1) return undefined;
  const spelled = parts.host;
  if (!NAME_CHARS.test(spelled) && !isIPv6Literal(spelled)) return undefined;
  const host = canonicalHost(spelled);
  if (host === '' || host.startsWith('.')) return undefined;
  return {
    host,
    port,
    authority: `${host}:${port}`,
    dialHost: unbracket(spelled),
    hostHeader: `${spelled}:${port}`,
  };
}

/**
 * An authority as reprise keys it (a registry key, a Target's `authority`) back into its
 * canonical host and port; port -1 when it has none. Any spelling is accepted.
 */
export function splitAuthority(authority: string): { host: string; port: number } {
  const parts = splitHostPort(authority);
  if (typeof parts === 'string') return { host: canonicalHost(authority), port: -1 };
  return { host: canonicalHost(parts.host), port: parts.port ?? -1 };
}

/** A host (name or IP literal, IPv6 bracketed or not) in canonical spelling; see above. */
export function canonicalHost(text: string): string {
  const lower = text.toLowerCase();
  const bare = unbracket(lower);
  if (isIPv6(bare)) return `[${new URL(`http://[${bare}]/`).hostname.slice(1, -1)}]`;
  const host = lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (isIPv4(host) || !NUMERIC_LAST_LABEL.test(host)) return host;
  // the WHATWG URL parser reads IPv4 the way resolvers do (hex, octal, fewer parts)
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return host;
  }
}

/** `[::1]` → `::1`; a zone (`%eth0`) dropped; anything else as it is. */
export function unbracket(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = bare.indexOf('%');
  return zone === -1 ? bare : bare.slice(0, zone);
}

/** `localhost`, 127.0.0.0/8 or ::1, in any spelling reprise accepts for a listen host. */
export function isLoopbackHost(host: string): boolean {
  const ip = unbracket(host.toLowerCase());
  const family = isIP(ip);
  if (family === 0) return canonicalHost(ip) === 'localhost';
  return LOOPBACK.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

function isIPv6Literal(text: string): boolean {
  return IPV6_LITERAL.test(text) && isIPv6(text.slice(1, -1));
}

const NUMERIC_LAST_LABEL = /(^|\.)(0x[0-9a-f]*|\d+)$/;
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** `ip:port`, `[ip]:port` for IPv6; '' when the socket is already gone. */
export function socketAddress(address: string | undefined, port: number | undefined): string {
  if (address === undefined) return '';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
