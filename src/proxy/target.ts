/**
 * Where a request goes: parsed from an absolute-form URI on the proxy port, or fixed by a
 * listener for origin-form requests. Also the loop check against reprise's own addresses.
 */
import type { Address, Listener } from '../config/types.ts';
import type { Target } from './forward.ts';

const HOST_CHARS = /^[a-z0-9.-]+$/;
const IPV6_CHARS = /^\[[0-9a-f:.]+\]$/;

/** `http://host[:port]/path?query` → Target; undefined when it is not that shape. */
export function parseAbsoluteTarget(url: string): Target | undefined {
  if (url.length < 8 || url.slice(0, 7).toLowerCase() !== 'http://') return undefined;
  let end = 7;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const authority = parseAuthority(url.slice(7, end).toLowerCase());
  if (authority === undefined) return undefined;
  const rest = url.slice(end);
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  if (path.startsWith('#') || path.includes('#')) return undefined;
  return { ...authority, path, pathname: pathnameOf(path) };
}

/** An origin-form request on a fixed-upstream listener. */
export function listenerTarget(listener: Listener, url: string): Target | undefined {
  if (!url.startsWith('/')) return undefined;
  const authority = parseAuthority(listener.authority);
  if (authority === undefined) return undefined;
  return { ...authority, path: url, pathname: pathnameOf(url) };
}

function parseAuthority(
  text: string,
): { origin: string; authority: string; host: string; port: number } | undefined {
  if (text === '' || text.includes('@')) return undefined;
  let host = text;
  let port = 80;
  const colon = text.lastIndexOf(':');
  if (colon !== -1 && !text.endsWith(']')) {
    const digits = text.slice(colon + 1);
    if (!/^\d{1,5}$/.test(digits)) return undefined;
    port = Number(digits);
    host = text.slice(0, colon);
  }
  if (port < 1 || port > 65535) return undefined;
  if (!HOST_CHARS.test(host) && !IPV6_CHARS.test(host)) return undefined;
  const authority = `${host}:${port}`;
  return { origin: `http://${authority}`, authority, host, port };
}

function pathnameOf(path: string): string {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
}

const LOCAL_NAMES = ['127.0.0.1', 'localhost', '[::1]', '0.0.0.0', '[::]', '::1'];

/** Every spelling of the given listen addresses, as `host:port` (loop detection). */
export function ownAuthorities(addresses: readonly Address[]): Set<string> {
  const own = new Set<string>();
  for (const { host, port } of addresses) {
    const names = [host.toLowerCase()];
    if (isLocal(host)) names.push(...LOCAL_NAMES);
    for (const name of names) {
      const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
      own.add(`${bracketed}:${port}`);
    }
  }
  return own;
}

function isLocal(host: string): boolean {
  return LOCAL_NAMES.includes(host) || host.startsWith('127.') || host === '::';
}
