/**
 * The upstream deny list (`access.deniedUpstreams`), shared by the HTTP client
 * (upstream-client.ts) and CONNECT tunnels (tunnel.ts). It is checked on addresses, never on
 * names: on what a name resolved to (before connecting) and on the address the socket actually
 * connected to (after). So a DNS name that resolves to a denied address, or an alternate
 * spelling of one (0x7f.1, 2130706433, [::ffff:169.254.169.254]), cannot reach it: by the time
 * an address is checked, the resolver or the URL parser has already turned it into an address.
 *
 * Addresses are compared in canonical form: an IPv4-mapped IPv6 address (::ffff:a9fe:a9fe)
 * is checked as the IPv4 address it reaches, and an IPv6 zone (fe80::1%eth0) is dropped.
 */
import { lookup as dnsLookup } from 'node:dns';
import { type BlockList, isIP, isIPv4, isIPv6, type TcpNetConnectOpts } from 'node:net';

/** What `net.connect` takes as `lookup`. */
type LookupFunction = NonNullable<TcpNetConnectOpts['lookup']>;

/** A name resolved only to denied addresses, or a socket connected to one. */
export class DeniedAddressError extends Error {
  readonly code = 'ERR_REPRISE_DENIED_UPSTREAM';
  /** The denied address, canonical (IPv4-mapped IPv6 as IPv4). */
  readonly address: string;

  constructor(address: string) {
    super(`${address} is in access.deniedUpstreams`);
    this.address = address;
  }
}

/**
 * Whether `address` (an IP address as a socket or resolver reports it, IPv6 with or without
 * brackets) is denied. No list: nothing is denied. Not an IP address: denied (fail closed).
 */
export function isDenied(list: BlockList | undefined, address: string): boolean {
  if (list === undefined) return false;
  return isIP(unbracket(address)) === 0 || isListed(list, address);
}

/** Whether the IP address `address` is in `list`, in either of its forms; false for a non-IP. */
export function isListed(list: BlockList, address: string): boolean {
  const ip = unbracket(address);
  if (isIPv4(ip)) return list.check(ip, 'ipv4');
  if (!isIPv6(ip)) return false;
  const mapped = mappedIPv4(ip);
  // both forms: a rule written either way must match
  return list.check(ip, 'ipv6') || (mapped !== undefined && list.check(mapped, 'ipv4'));
}

/** `::ffff:a.b.c.d` (in any spelling) → `a.b.c.d`; undefined for any other address. */
export function mappedIPv4(address: string): string | undefined {
  const ip = unbracket(address);
  if (!isIPv6(ip)) return undefined;
  const groups = ipv6Groups(ip);
  if (groups.slice(0, 5).some((g) => g !== 0) || groups[5] !== 0xffff) return undefined;
  const high = groups[6] as number;
  const low = groups[7] as number;
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/**
 * A `lookup` for `net.connect` (and undici's connector) that drops denied addresses from what a
 * name resolves to, so no connection to them is even attempted; when nothing is left it fails
 * with DeniedAddressError. Node calls it only for names, never for IP literals: check those
 * (and, as the final word, `socket.remoteAddress`) with `isDenied`.
 */
export function guardedLookup(list: BlockList): LookupFunction {
  return (hostname, options, callback) => {
    const all = options.all === true;
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err !== null) {
        callback(err, all ? [] : '');
        return;
      }
      const allowed = addresses.filter((a) => !isDenied(list, a.address));
      const first = allowed[0];
      if (first === undefined) {
        callback(new DeniedAddressError(addresses[0]?.address ?? hostname), all ? [] : '');
      } else if (all) {
        callback(null, allowed);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };
}

/** `[::1]` → `::1`; a zone (`%eth0`) dropped. */
export function unbracket(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const zone = bare.indexOf('%');
  return zone === -1 ? bare : bare.slice(0, zone);
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted tail split). */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = new Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...(rest === undefined ? [] : zeros), ...right].map((g) => parseInt(g, 16));
}
