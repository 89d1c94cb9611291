/**
 * Header rewriting in both directions, on Node's flat raw arrays ([name, value, name, value…])
 * so nothing is parsed into intermediate objects.
 *
 * Not forwarded (RFC 9110 §7.6.1): Connection and the names it lists, Keep-Alive,
 * Proxy-Connection, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade. Toward the
 * upstream also: Host (rebuilt from the request URI), Expect (answered here), every
 * `x-reprise-*` control header, and `Proxy` and every other `Proxy-*` header: they are meant
 * for this proxy, and a `Proxy` header reaching a CGI-style upstream becomes its HTTP_PROXY
 * (httpoxy). Max-Forwards is decremented on the way (RFC 9110 §7.6.2).
 */

/**
 * The hop-by-hop names, lower-case. Matched by length first: a header name made per message
 * is compared with at most two constants and never hashed, as a Set lookup would.
 */
function isHopByHop(lower: string): boolean {
  switch (lower.length) {
    case 2:
      return lower === 'te';
    case 7:
      return lower === 'trailer' || lower === 'upgrade';
    case 10:
      return lower === 'connection' || lower === 'keep-alive';
    case 16:
      return lower === 'proxy-connection';
    case 17:
      return lower === 'transfer-encoding';
    case 18:
      return lower === 'proxy-authenticate';
    case 19:
      return lower === 'proxy-authorization';
    default:
      return false;
  }
}

/** A message head as node:http and undici both give it: raw pairs, and parsed lower-case names. */
export interface MessageHead<Raw extends string | Buffer = string | Buffer> {
  readonly rawHeaders: readonly Raw[];
  readonly headers: { readonly connection?: string | string[] | undefined };
}

/**
 * Lower-case names listed in the Connection header, or undefined when there are none beyond
 * `keep-alive` and `close` (hop-by-hop already, or no name at all).
 */
function connectionListed(head: MessageHead): Set<string> | undefined {
  const value = head.headers.connection;
  // what nearly every message says, and lists no name
  if (value === undefined || value === 'keep-alive' || value === 'close') return undefined;
  let listed: Set<string> | undefined;
  for (const token of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const name = token.trim().toLowerCase();
    if (name === '' || isHopByHop(name) || name === 'close') continue;
    listed ??= new Set();
    listed.add(name);
  }
  return listed;
}

/** Header bytes are latin1 both ways: decoding so keeps every byte as it came. */
function latin1(value: string | Buffer): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

function isForProxy(lower: string): boolean {
  return lower === 'proxy' || lower.startsWith('proxy-');
}

/**
 * One hop less (RFC 9110 §7.6.2). A value that is not a positive number goes on unchanged:
 * request-guard.ts refuses malformed ones where they matter (TRACE, OPTIONS), and neither is
 * forwarded at 0 (reprise answers OPTIONS itself and refuses TRACE).
 */
function decremented(value: string): string {
  const hops = Number(value);
  return /^\d+$/.test(value) && Number.isSafeInteger(hops) && hops > 0 ? String(hops - 1) : value;
}

function isControl(lower: string): boolean {
  return lower.length > 10 && lower.startsWith('x-reprise-');
}

/**
 * The headers for every try of one request. The attempt number is the last value and is
 * set per try with `setAttempt` (undici serialises headers when the try is dispatched).
 * `madeRequestId`: the request id reprise made for a request that came without one.
 */
export function buildUpstreamHeaders(
  head: MessageHead<string>,
  authority: string,
  viaToken: string,
  madeRequestId?: string,
): string[] {
  const raw = head.rawHeaders;
  const listed = connectionListed(head);
  const out: string[] = ['host', authority];
  let via: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || lower === 'host' || lower === 'expect' || isControl(lower)) {
      continue;
    }
    if (listed?.has(lower) || isForProxy(lower)) continue;
    if (lower === 'via') {
      via = via === undefined ? (raw[i + 1] as string) : `${via}, ${raw[i + 1]}`;
      continue;
    }
    const value = raw[i + 1] as string;
    out.push(name, lower === 'max-forwards' ? decremented(value) : value);
  }
  if (madeRequestId !== undefined) out.push('x-request-id', madeRequestId);
  out.push('via', via === undefined ? viaToken : `${via}, ${viaToken}`, 'x-reprise-attempt', '1');
  return out;
}

export function setAttempt(headers: string[], attempt: number): void {
  headers[headers.length - 1] = String(attempt);
}

/** Replaces the Host header (the first pair) for a try on another origin (fallback). */
export function setHost(headers: string[], authority: string): void {
  headers[1] = authority;
}

/**
 * The response head for the client: upstream headers less hop-by-hop, plus Via and attempts.
 * Raw names and values come as strings or as latin1 bytes.
 */
export function buildClientHeaders(
  head: MessageHead,
  viaToken: string,
  attempts: number,
): string[] {
  const raw = head.rawHeaders;
  const listed = connectionListed(head);
  const out: string[] = [];
  let via: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = latin1(raw[i] as string | Buffer);
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || listed?.has(lower)) continue;
    const value = latin1(raw[i + 1] as string | Buffer);
    if (lower === 'via') {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    out.push(name, value);
  }
  out.push('via', via === undefined ? viaToken : `${via}, ${viaToken}`);
  out.push('x-reprise-attempts', String(attempts));
  return out;
}

/** Whether any Via entry names this instance (a request that came back: a loop). */
export function hasVia(raw: readonly string[], viaId: string): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (
      name.length === 3 &&
      name.toLowerCase() === 'via' &&
      (raw[i + 1] as string).includes(viaId)
    ) {
      return true;
    }
  }
  return false;
}
