/**
 * The value syntaxes of the config file: durations (`250ms`, `2s`, `1.5m`, `1h`), sizes
 * (`512B`, `16KiB`, `1MiB`, `2GiB`, or a plain count of bytes), `host:port` addresses,
 * `http(s)://host[:port]` origins and CIDRs. Pure; no I/O. The schema checks values with these
 * and compile converts with them, so both accept exactly the same texts.
 */
import { isIP } from 'node:net';
import { PORT_TOO_LARGE, parseAuthority, splitHostPort } from '../routing/authority.ts';
import type { Address } from './types.ts';

/** A number with one of the units ms, s, m, h. Decimals allowed (`1.5s`). */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$';

/** Whole bytes (`100`, `100B`), or a number of KiB, MiB or GiB (`1.5MiB`). */
export const SIZE_PATTERN = '^([0-9]+B?|[0-9]+(\\.[0-9]+)?(KiB|MiB|GiB))$';

const DURATION_RE = new RegExp(DURATION_PATTERN);
const SIZE_RE = new RegExp(SIZE_PATTERN);

const MS_PER_UNIT: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const BYTES_PER_UNIT: Readonly<Record<string, number>> = {
  '': 1,
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
};

/** Milliseconds (rounded to a whole number), or undefined when `text` is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  const unit = /[a-z]+$/.exec(text)?.[0] ?? '';
  return toSafeInteger(Number.parseFloat(text) * (MS_PER_UNIT[unit] ?? Number.NaN));
}

/** Bytes (rounded to a whole number), or undefined when `value` is not a size. */
export function parseSize(value: string | number): number | undefined {
  if (typeof value === 'number')
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (!SIZE_RE.test(value)) return undefined;
  const unit = /[A-Za-z]*$/.exec(value)?.[0] ?? '';
  return toSafeInteger(Number.parseFloat(value) * (BYTES_PER_UNIT[unit] ?? Number.NaN));
}

/** The reverse of parseDuration: 50 → `50ms`, 1500 → `1.5s`, 60000 → `1m`, 3600000 → `1h`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** The reverse of parseSize, in the largest unit that divides it: 16384 → `16KiB`, 1000 → `1000B`. */
export function formatSize(bytes: number): string {
  for (const unit of ['GiB', 'MiB', 'KiB'] as const) {
    const size = BYTES_PER_UNIT[unit] as number;
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return `${bytes}B`;
}

function toSafeInteger(value: number): number | undefined {
  const rounded = Math.round(value);
  return Number.isSafeInteger(rounded) ? rounded : undefined;
}

/** `127.0.0.1:3128`, `localhost:3128`, `[::1]:3128`; port 0 = any free port. Or a message. */
export function parseAddress(text: string): Address | string {
  const message = 'must be host:port, such as 127.0.0.1:3128 or [::1]:3128';
  const parts = splitHostPort(text);
  if (typeof parts === 'string') return parts === PORT_TOO_LARGE ? parts : message;
  const { host, port } = parts;
  if (port === undefined) return message;
  if (host.startsWith('[')) {
    const ip = host.slice(1, -1);
    return host.endsWith(']') && isIP(ip) === 6 ? { host: ip, port } : message;
  }
  return host === '' || /[:[\]\s/]/.test(host) ? message : { host, port };
}

export interface Origin {
  /** `http://host:port` or `https://host:port`, the host as written (lower-case). */
  readonly origin: string;
  /** `host:port`, canonical (routing/authority.ts): the upstream's key and label. */
  readonly authority: string;
  /** `host:port` as written (lower-case): the Host header. */
  readonly hostHeader: string;
  /** `https://`: spoken to with TLS. */
  readonly secure: boolean;
}

/** `http://host[:port]` (port 80 when left out) or `https://host[:port]` (443), no path. Or a message. */
export function parseOrigin(text: string): Origin | string {
  const message = 'must be http:// or https://host[:port] with no path';
  const scheme = /^(https?):\/\/[^/?#@\s]+\/?$/i.exec(text);
  if (scheme === null) return message;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return message;
  }
  if (url.port === '0') return 'port must be 1-65535';
  const secure = (scheme[1] as string).toLowerCase() === 'https';
  const parsed = parseAuthority(url.host, secure ? 443 : 80);
  if (parsed === undefined) return message;
  const { authority, hostHeader } = parsed;
  return { origin: `${secure ? 'https' : 'http'}://${hostHeader}`, authority, hostHeader, secure };
}

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** `10.0.0.0/8`, `::1/128`; a bare address is a /32 or /128. Or a message. */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return 'must be an IP address or CIDR, such as 10.0.0.0/8 or ::1/128';
  const maxPrefix = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(maxPrefix) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^[0-9]{1,3}$/.test(prefixText) || prefix > maxPrefix) {
    return `prefix length must be 0-${maxPrefix}`;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
