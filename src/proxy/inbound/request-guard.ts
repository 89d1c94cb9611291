/**
 * Pure checks of a request's shape, run at the proxy's entry before anything is sent
 * upstream. Node's parser (llhttp, strict) already refuses most malformed bytes: bare CR or
 * LF, obs-fold, control bytes, Content-Length with Transfer-Encoding, repeated Content-Length,
 * unknown transfer codings, bad chunk sizes and extensions, methods outside its fixed list;
 * `parserErrorAnswer` picks the status for those. What it lets through is refused by
 * `guardRequest`: two Host headers, HTTP/0.9 and HTTP/2.0 request lines, Transfer-Encoding on
 * HTTP/1.0, codings stacked before `chunked`, targets over `limits.maxUrlBytes`. The framing
 * checks the parser makes are repeated, so a parser change (or `--insecure-http-parser`)
 * cannot quietly reopen them.
 *
 * Methods: any token the parser accepts is forwarded (its list is the IANA-registered
 * methods: GET… PATCH, WebDAV, QUERY…); anything else, and lower-case spellings, get 400.
 *
 * Every refusal closes the connection: after a request whose framing is in doubt, nothing
 * else read from that stream can be trusted (RFC 9112 §6.1, §6.3).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorName } from '../../vocabulary.ts';

/** The parts of a request the checks read; `IncomingMessage` has this shape. */
export interface RequestShape {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** Node's flat raw list: [name, value, name, value…]. */
  readonly rawHeaders: readonly string[];
}

export interface Refusal {
  readonly error: ErrorName;
  readonly message: string;
}

/** RFC 9110 §5.6.2 token: what a method may be made of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^\d+$/;

/** How often a header came, and its first value. */
interface Seen {
  count: number;
  first: string | undefined;
}

/** The headers the checks read, counted in one pass. */
class Counted {
  host = 0;
  readonly contentLength: Seen = { count: 0, first: undefined };
  readonly transferEncoding: Seen = { count: 0, first: undefined };
  readonly maxForwards: Seen = { count: 0, first: undefined };

  reset(): this {
    this.host = 0;
    forget(this.contentLength);
    forget(this.transferEncoding);
    forget(this.maxForwards);
    return this;
  }
}

function forget(seen: Seen): void {
  seen.count = 0;
  seen.first = undefined;
}

/**
 * Why this request must not be forwarded, or undefined when its shape is sound.
 * `maxUrlBytes`: longest request target accepted (latin1, so characters are bytes).
 */
export function guardRequest(req: RequestShape, maxUrlBytes: number): Refusal | undefined {
  const major = req.httpVersionMajor;
  const minor = req.httpVersionMinor;
  if (major !== 1 || (minor !== 0 && minor !== 1)) {
    return {
      error: 'version-not-supported',
      message: `HTTP/${major}.${minor} is not served: only HTTP/1.0 and HTTP/1.1`,
    };
  }
  const method = req.method ?? '';
  if (!TOKEN.test(method)) return badRequest('the method is not a token');
  const urlBytes = (req.url ?? '').length;
  if (urlBytes > maxUrlBytes) {
    return {
      error: 'uri-too-long',
      message: `the request target is ${urlBytes} bytes, over limits.maxUrlBytes (${maxUrlBytes})`,
    };
  }
  const seen = countHeaders(req.rawHeaders);
  if (seen.host > 1) return badRequest('more than one Host header');
  const framing = checkFraming(seen, minor);
  if (framing !== undefined) return framing;
  if (method === 'TRACE' || method === 'OPTIONS') return checkMaxForwards(seen, method);
  return undefined;
}

/**
 * Whether reprise itself is the final recipient: an OPTIONS whose Max-Forwards is 0 is
 * answered by the proxy with its own options (RFC 9110 §7.6.2), never forwarded.
 * Call after `guardRequest` passed (so Max-Forwards is well formed).
 */
export function isForThisProxy(req: RequestShape): boolean {
  if (req.method !== 'OPTIONS') return false;
  const value = countHeaders(req.rawHeaders).maxForwards.first;
  return value !== undefined && Number(value) === 0;
}

/** What Node's parser reports with a refused request (`clientError`). */
export type ParserError = NodeJS.ErrnoException & {
  /** llhttp's words, e.g. `Invalid HTTP version`. */
  reason?: string;
  /** The chunk being parsed. */
  rawPacket?: Buffer;
  /** How far into `rawPacket` the parser got. */
  bytesParsed?: number;
};

/** The answer for bytes Node's parser refused: the closest status (RFC 9112 §2.2). */
export function parserErrorAnswer(err: ParserError): ErrorName {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return isOverlongRequestLine(err.rawPacket, err.bytesParsed)
        ? 'uri-too-long'
        : 'headers-too-large';
    // a well-formed version that is not 1.0/1.1 (HTTP/1.2, HTTP/3.0); llhttp's other
    // HPE_INVALID_VERSION reasons (a bare LF after it, HTTP/1.x) are malformed lines: 400
    case 'HPE_INVALID_VERSION':
      return err.reason === 'Invalid HTTP version' ? 'version-not-supported' : 'bad-request';
    // PRI * HTTP/2.0: HTTP/2 with prior knowledge
    case 'HPE_PAUSED_H2_UPGRADE':
      return 'version-not-supported';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'request-timeout';
    default:
      return 'bad-request';
  }
}

/**
 * `Upgrade: h2c` (RFC 7540 §3.2, dropped by RFC 9113). reprise never passes it on: it would
 * give the client an HTTP/2 connection to the upstream past this proxy (h2c smuggling).
 */
export function isH2cUpgrade(headers: IncomingHttpHeaders): boolean {
  const upgrade = headers.upgrade ?? '';
  return upgrade.split(',').some((protocol) => protocol.trim().toLowerCase() === 'h2c');
}

/** Whether the head announces a body (a non-zero Content-Length, or Transfer-Encoding). */
export function declaresBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return (length !== undefined && length !== '0') || headers['transfer-encoding'] !== undefined;
}

/**
 * Whether a parser overflow (HPE_HEADER_OVERFLOW) hit inside the request line, so the answer
 * is 414 rather than 431. `packet` is the chunk being parsed and `bytesParsed` how far the
 * parser got in it; when the request line started in an earlier chunk this cannot tell, and
 * the answer stays 431.
 */
export function isOverlongRequestLine(
  packet: Buffer | undefined,
  bytesParsed: number | undefined,
): boolean {
  if (packet === undefined) return false;
  const parsed = packet.subarray(0, bytesParsed ?? packet.length);
  if (parsed.includes(0x0a)) return false;
  return /^[A-Z][A-Z_-]* (?:\/|[a-zA-Z][a-zA-Z0-9+.-]*:\/\/)/.test(
    parsed.subarray(0, 64).toString('latin1'),
  );
}

/**
 * One record, reused: the checks are synchronous and read it only before they return, so a
 * request costs no allocation here.
 */
const scratch = new Counted();

function countHeaders(raw: readonly string[]): Counted {
  const counted = scratch.reset();
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // only the lengths of the four names below are worth lower-casing
    const length = name.length;
    if (length !== 4 && length !== 12 && length !== 14 && length !== 17) continue;
    const lower = name.toLowerCase();
    if (lower === 'host') counted.host++;
    else if (lower === 'content-length') see(counted.contentLength, raw[i + 1] as string);
    else if (lower === 'transfer-encoding') see(counted.transferEncoding, raw[i + 1] as string);
    else if (lower === 'max-forwards') see(counted.maxForwards, raw[i + 1] as string);
  }
  return counted;
}

function see(seen: Seen, value: string): void {
  seen.count++;
  seen.first ??= value;
}

/** One unambiguous body length, or none (RFC 9112 §6). */
function checkFraming(seen: Counted, minor: number): Refusal | undefined {
  const length = seen.contentLength;
  if (length.count > 1) return badRequest('more than one Content-Length');
  if (length.first !== undefined && !DIGITS.test(trimOws(length.first))) {
    return badRequest('Content-Length is not a number');
  }
  const codings = seen.transferEncoding;
  if (codings.first === undefined) return undefined;
  // an HTTP/1.0 recipient may not know chunked: its framing is faulty (RFC 9112 §6.1)
  if (minor === 0) return badRequest('Transfer-Encoding in an HTTP/1.0 request');
  if (length.count > 0) return badRequest('both Content-Length and Transfer-Encoding');
  // anything stacked before chunked would reach the upstream undecoded, without its label
  if (codings.count > 1 || trimOws(codings.first).toLowerCase() !== 'chunked') {
    return badRequest('only Transfer-Encoding: chunked is accepted');
  }
  return undefined;
}

/**
 * Max-Forwards on TRACE and OPTIONS (RFC 9110 §7.6.2): it must be a number. TRACE at 0 would
 * make reprise reflect the request, credentials included, back to the client (cross-site
 * tracing); it is refused instead. OPTIONS at 0 is answered by `isForThisProxy`'s caller.
 */
function checkMaxForwards(seen: Counted, method: 'TRACE' | 'OPTIONS'): Refusal | undefined {
  const { count, first } = seen.maxForwards;
  if (first === undefined) return undefined;
  if (count > 1 || !DIGITS.test(trimOws(first))) {
    return badRequest('Max-Forwards must be one number');
  }
  if (method === 'TRACE' && Number(first) === 0) {
    return badRequest('TRACE with Max-Forwards: 0 is not reflected by reprise');
  }
  return undefined;
}

/** Strips optional whitespace (SP, HTAB) only: other bytes around a value are not blank. */
function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

function badRequest(message: string): Refusal {
  return { error: 'bad-request', message };
}
