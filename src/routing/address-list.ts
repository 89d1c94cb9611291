/**
 * Whether an IP address is in a CIDR list (`net.BlockList`): `access.allowedClients`,
 * `access.deniedUpstreams`, reprise's own addresses. `net.BlockList` compares an IPv4-mapped
 * IPv6 address (::ffff:a9fe:a9fe) as the IPv4 address it reaches, whichever way the rule was
 * written; an IPv6 zone (fe80::1%eth0) is dropped before the check.
 */
import { type BlockList, isIP } from 'node:net';
import { unbracket } from './authority.ts';

/**
 * Whether `address` (an IP address as a socket or resolver reports it, IPv6 with or without
 * brackets) is denied. No list: nothing is denied. Not an IP address: denied (fail closed).
 */
export function isDenied(list: BlockList | undefined, address: string): boolean {
  if (list === undefined) return false;
  return isIP(unbracket(address)) === 0 || isListed(list, address);
}

/** Whether the IP address `address` (IPv6 with or without brackets) is in `list`; false for a non-IP. */
export function isListed(list: BlockList, address: string): boolean {
  const ip = unbracket(address);
  const family = isIP(ip);
  return family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}
