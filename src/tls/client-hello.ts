/**
 * What a tunnel's client says first, from its first bytes and without consuming them: a TLS
 * ClientHello (with its SNI and ALPN offer), an HTTP/1.x request line, or something else.
 * Pure and bounded: it reads one TLS record of at most 16 KiB (RFC 8446 §5.1) and never asks
 * for more than MAX_PEEK_BYTES.
 */

export type TunnelStart =
  /** Not enough bytes to tell yet; ask again with more (never past MAX_PEEK_BYTES). */
  | { readonly kind: 'more' }
  | {
      readonly kind: 'tls';
      /** The SNI host name, lower-cased; undefined when the client sent none. */
      readonly serverName: string | undefined;
      /** The ALPN protocols offered, in order; empty when the client sent no ALPN. */
      readonly alpn: readonly string[];
    }
  | { readonly kind: 'http' }
  | { readonly kind: 'other' };

const RECORD_HEADER_BYTES = 5;
/** TLSPlaintext.length may not exceed 2^14 (RFC 8446 §5.1). */
const MAX_RECORD_BYTES = 16 * 1024;
/** The most a caller ever needs to hold to get an answer. */
export const MAX_PEEK_BYTES = RECORD_HEADER_BYTES + MAX_RECORD_BYTES;

const HANDSHAKE = 0x16;
const CLIENT_HELLO = 1;
const SERVER_NAME = 0;
const ALPN = 16;
/** The longest method name a request line may start with before it is not taken for HTTP. */
const MAX_METHOD_CHARS = 16;

const MORE: TunnelStart = { kind: 'more' };
const OTHER: TunnelStart = { kind: 'other' };
const HTTP: TunnelStart = { kind: 'http' };

export function classifyTunnelStart(bytes: Uint8Array): TunnelStart {
  if (bytes.length === 0) return MORE;
  if (bytes[0] === HANDSHAKE) return classifyTls(bytes);
  return classifyHttp(bytes);
}

/** `METHOD SP`: an upper-case token then a space (RFC 9112 §3). HTTP/2's `PRI *` preface is not. */
function classifyHttp(bytes: Uint8Array): TunnelStart {
  const end = Math.min(bytes.length, MAX_METHOD_CHARS + 1);
  for (let i = 0; i < end; i++) {
    const c = bytes[i] as number;
    if (c === 0x20) {
      if (i === 0) return OTHER;
      const method = String.fromCharCode(...bytes.subarray(0, i));
      return method === 'PRI' ? OTHER : HTTP;
    }
    if (c < 0x41 || c > 0x5a) return OTHER;
  }
  return bytes.length > MAX_METHOD_CHARS ? OTHER : MORE;
}

function classifyTls(bytes: Uint8Array): TunnelStart {
  if (bytes.length < RECORD_HEADER_BYTES)
    return bytes[1] === undefined || bytes[1] === 3 ? MORE : OTHER;
  if (bytes[1] !== 3) return OTHER;
  const recordBytes = ((bytes[3] as number) << 8) | (bytes[4] as number);
  if (recordBytes > MAX_RECORD_BYTES || recordBytes < 4) return OTHER;
  if (bytes.length < RECORD_HEADER_BYTES + recordBytes) return MORE;
  const record = bytes.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + recordBytes);
  return parseClientHello(record) ?? OTHER;
}

/** A ClientHello that fits in its first record (RFC 8446 §4.1.2); undefined if it is not one. */
function parseClientHello(record: Uint8Array): TunnelStart | undefined {
  const r = new Reader(record);
  if (r.u8() !== CLIENT_HELLO) return undefined;
  const helloBytes = r.u24();
  // a hello split over several records is not read: reprise looks at one record only
  if (helloBytes === undefined || helloBytes > r.left) return undefined;
  const hello = new Reader(r.take(helloBytes) as Uint8Array);
  hello.skip(2 + 32); // legacy_version, random
  hello.skip(hello.u8()); // legacy_session_id
  hello.skip(hello.u16()); // cipher_suites
  hello.skip(hello.u8()); // legacy_compression_methods
  let serverName: string | undefined;
  let alpn: string[] = [];
  if (hello.left === 0) return hello.ok ? { kind: 'tls', serverName, alpn } : undefined;
  const extensions = hello.sub(hello.u16());
  while (extensions?.ok && extensions.left > 0) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (data === undefined) return undefined;
    if (type === SERVER_NAME) serverName = readServerName(data);
    else if (type === ALPN) alpn = readAlpn(data);
  }
  if (extensions === undefined || !extensions.ok || !hello.ok) return undefined;
  return { kind: 'tls', serverName, alpn };
}

/** The first host_name entry (RFC 6066 §3). */
function readServerName(data: Reader): string | undefined {
  const list = data.sub(data.u16());
  while (list?.ok && list.left > 0) {
    const nameType = list.u8();
    const name = list.take(list.u16());
    if (name === undefined) return undefined;
    if (nameType === 0) return String.fromCharCode(...name).toLowerCase();
  }
  return undefined;
}

/** ProtocolNameList (RFC 7301 §3.1). */
function readAlpn(data: Reader): string[] {
  const list = data.sub(data.u16());
  const protocols: string[] = [];
  while (list?.ok && list.left > 0) {
    const name = list.take(list.u8());
    if (name === undefined) break;
    protocols.push(String.fromCharCode(...name));
  }
  return protocols;
}

/** Reads big-endian fields; a read past the end marks it not ok and yields 0 / undefined. */
class Reader {
  readonly #bytes: Uint8Array;
  #at = 0;
  ok = true;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  get left(): number {
    return this.#bytes.length - this.#at;
  }

  u8(): number {
    return this.#read(1);
  }

  u16(): number {
    return this.#read(2);
  }

  u24(): number | undefined {
    const value = this.#read(3);
    return this.ok ? value : undefined;
  }

  skip(count: number): void {
    if (count > this.left) this.ok = false;
    this.#at = Math.min(this.#bytes.length, this.#at + count);
  }

  take(count: number): Uint8Array | undefined {
    if (!this.ok || count > this.left) {
      this.ok = false;
      return undefined;
    }
    const slice = this.#bytes.subarray(this.#at, this.#at + count);
    this.#at += count;
    return slice;
  }

  sub(count: number): Reader | undefined {
    const slice = this.take(count);
    return slice === undefined ? undefined : new Reader(slice);
  }

  #read(size: number): number {
    if (size > this.left) {
      this.ok = false;
      this.#at = this.#bytes.length;
      return 0;
    }
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + (this.#bytes[this.#at + i] as number);
    this.#at += size;
    return value;
  }
}
