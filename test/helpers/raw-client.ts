/**
 * A raw TCP client for tests that must send exact bytes (smuggling shapes, slow heads) and see
 * exactly what comes back. Every read has a timeout, so a proxy that hangs fails the test fast
 * instead of stalling the suite.
 *
 *   const c = await RawClient.connect(port);
 *   c.write('GET http://x/ HTTP/1.1\r\n\r\n');
 *   const r = await c.read();           // one response, or { kind: 'closed' }
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly kind: 'response';
  readonly status: number;
  /** Lower-case names; repeated names joined with ', '. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The head as received, for assertions on exact bytes. */
  readonly head: string;
}

export interface RawClosed {
  readonly kind: 'closed';
  /** Bytes received that did not make a whole response. */
  readonly partial: Buffer;
}

export type RawRead = RawResponse | RawClosed;

const DEFAULT_TIMEOUT_MS = 3_000;

export class RawClient {
  readonly #socket: Socket;
  #buffer: Buffer = Buffer.alloc(0);
  #all = '';
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      this.#all += chunk.toString('latin1');
      this.#signal();
    });
    // a reset counts as a close: the test asserts on the outcome, not on how the kernel said it
    socket.on('error', () => {});
    socket.on('close', () => {
      this.#closed = true;
      this.#signal();
    });
  }

  /**
   * `halfOpen`: keep this side open after the peer's FIN (a client that never closes), so
   * `closed` only turns true when the peer really drops the connection.
   */
  static connect(
    port: number,
    timeoutMs = DEFAULT_TIMEOUT_MS,
    halfOpen = false,
  ): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: halfOpen });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection to port ${port} within ${timeoutMs}ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new RawClient(socket));
      });
    });
  }

  /** Everything received so far, as latin1 text (consumed by `read` or not). */
  get received(): string {
    return this.#all;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(bytes: string | Buffer): void {
    if (!this.#socket.destroyed) this.#socket.write(bytes);
  }

  /** Writes `bytes` one byte every `gapMs` until done or the connection closes. */
  async trickle(bytes: string, gapMs: number): Promise<number> {
    let sent = 0;
    for (const byte of Buffer.from(bytes, 'latin1')) {
      if (this.#closed || !this.#socket.writable) break;
      this.#socket.write(Buffer.of(byte));
      sent++;
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    return sent;
  }

  /**
   * The next whole response (1xx ones included, as their own responses), or `closed` when
   * the connection ends first. Rejects when neither happens within `timeoutMs`.
   */
  async read(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawRead> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = takeResponse(this.#buffer, this.#closed);
      if (parsed !== undefined) {
        this.#buffer = this.#buffer.subarray(parsed.used);
        return parsed.response;
      }
      if (this.#closed) {
        const partial = this.#buffer;
        this.#buffer = Buffer.alloc(0);
        return { kind: 'closed', partial };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const got = this.#buffer.toString('latin1').slice(0, 200);
        throw new Error(
          `no response and no close within ${timeoutMs}ms (got ${JSON.stringify(got)})`,
        );
      }
      await this.#waitFor(left);
    }
  }

  /** Resolves true once the peer has closed, false if still open after `timeoutMs`. */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.#waitFor(left);
    }
    return true;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  #waitFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  #signal(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/** Connects, writes `bytes`, and returns the first response or the close. */
export async function exchange(
  port: number,
  bytes: string | Buffer,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<{ client: RawClient; first: RawRead }> {
  const client = await RawClient.connect(port, timeoutMs);
  client.write(bytes);
  const first = await client.read(timeoutMs);
  return { client, first };
}

/** One response parsed from the front of `data`, or undefined when it is not all there yet. */
function takeResponse(
  data: Buffer,
  closed: boolean,
): { response: RawResponse; used: number } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = data.subarray(0, end).toString('latin1');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const match = /^HTTP\/\d\.\d (\d{3})/.exec(statusLine);
  if (match === null) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
  const status = Number(match[1]);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const bodyStart = end + 4;
  const respond = (body: Buffer, used: number) => ({
    response: { kind: 'response' as const, status, headers, body, head },
    used,
  });
  if (status < 200 || status === 204 || status === 304) return respond(Buffer.alloc(0), bodyStart);
  const length = headers['content-length'];
  if (length !== undefined) {
    const stop = bodyStart + Number(length);
    return data.length < stop ? undefined : respond(data.subarray(bodyStart, stop), stop);
  }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    return takeChunked(data, bodyStart, respond);
  }
  // close-delimited
  return closed ? respond(data.subarray(bodyStart), data.length) : undefined;
}

function takeChunked<T>(
  data: Buffer,
  start: number,
  respond: (body: Buffer, used: number) => T,
): T | undefined {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) return undefined;
    const sizeLine = data.subarray(at, lineEnd).toString('latin1');
    if (!/^[0-9a-fA-F]+(;.*)?$/.test(sizeLine)) {
      throw new Error(`malformed chunk size line: ${JSON.stringify(sizeLine.slice(0, 80))}`);
    }
    const size = Number.parseInt(sizeLine, 16);
    if (size === 0) {
      const trailerEnd = data.indexOf('\r\n\r\n', lineEnd);
      return trailerEnd === -1 ? undefined : respond(Buffer.concat(parts), trailerEnd + 4);
    }
    const chunkStart = lineEnd + 2;
    if (data.length < chunkStart + size + 2) return undefined;
    parts.push(data.subarray(chunkStart, chunkStart + size));
    at = chunkStart + size + 2;
  }
}
