/**
 * The deny list (`access.deniedUpstreams`) on names, for the dialer (dialer.ts): what a name
 * resolves to is filtered before any connection is attempted. The list is checked on
 * addresses, never on names, so a DNS name that resolves to a denied address, or an alternate
 * spelling of one (0x7f.1, 2130706433, [::ffff:169.254.169.254]), cannot reach it: by the time
 * an address is checked, the resolver or the URL parser has already turned it into one.
 */
import { lookup as dnsLookup } from 'node:dns';
import type { BlockList, TcpNetConnectOpts } from 'node:net';
import { isDenied } from '../../routing/address-list.ts';

/** What `net.connect` takes as `lookup`. */
type LookupFunction = NonNullable<TcpNetConnectOpts['lookup']>;

/** A name resolved only to denied addresses, or a socket connected to one. */
export class DeniedAddressError extends Error {
  readonly code = 'ERR_REPRISE_DENIED_UPSTREAM';
  /** The denied address, as the resolver gave it. */
  readonly address: string;

  constructor(address: string) {
    super(`${address} is in access.deniedUpstreams`);
    this.address = address;
  }
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
