/**
 * A client request body that streams to the first try at once and keeps a copy so a retry can
 * replay it byte for byte. Past `bufferBytes` (or when the shared pool is full) the copy is
 * dropped: the current try still gets every byte, later tries are refused (SPEC §3).
 *
 * A retry may start before the client has finished sending: it replays the copy, then goes on
 * with the live stream. Several tries may read at once (hedges), each its own replay; a try
 * that ended is stopped with `stop`. Backpressure: the client is paused while more than
 * `HIGH_WATER_BYTES` have arrived that no try has taken yet.
 */
import type { IncomingMessage } from 'node:http';
import type { BodyState } from '../../retry/decide.ts';
import type { BufferPool } from '../buffer-pool.ts';

const HIGH_WATER_BYTES = 16 * 1024;

export class ReplayableBody {
  readonly #req: IncomingMessage;
  readonly #pool: BufferPool;
  readonly #bufferBytes: number;
  /** Chunks not yet dropped; `#chunks[i]` is chunk number `#dropped + i`. */
  readonly #chunks: Buffer[] = [];
  #dropped = 0;
  #reservedBytes = 0;
  #receivedBytes = 0;
  #takenBytes = 0;
  #keeping: boolean;
  #state: BodyState = 'replayable';
  #ended = false;
  #error: Error | undefined;
  /** Readers waiting for the next chunk. */
  readonly #waiting = new Set<() => void>();
  #consumed = false;
  #released = false;

  /** Returns undefined for a request without a body. `keepCopy` false: replay only while untouched. */
  static wrap(
    req: IncomingMessage,
    bufferBytes: number,
    pool: BufferPool,
    keepCopy: boolean,
  ): ReplayableBody | undefined {
    const length = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!chunked && (length === undefined || length === '0')) return undefined;
    return new ReplayableBody(req, bufferBytes, pool, keepCopy, length);
  }

  private constructor(
    req: IncomingMessage,
    bufferBytes: number,
    pool: BufferPool,
    keepCopy: boolean,
    contentLength: string | undefined,
  ) {
    this.#req = req;
    this.#pool = pool;
    this.#bufferBytes = bufferBytes;
    this.#keeping = keepCopy;
    if (keepCopy && contentLength !== undefined && Number(contentLength) > bufferBytes) {
      this.#stopKeeping('body-too-large');
    }
    req.on('data', (chunk: Buffer) => this.#onData(chunk));
    req.on('end', () => this.#onEnd());
    req.on('error', (err) => this.#onError(err));
    req.on('close', () => {
      if (!this.#ended) this.#onError(new Error('client went away before the body ended'));
    });
  }

  /** Whether a new try can be given the whole body from its first byte. */
  get state(): BodyState {
    if (!this.#consumed || this.#keeping) return 'replayable';
    return this.#state === 'replayable' ? 'body-too-large' : this.#state;
  }

  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  /**
   * The body for the next try: the whole copy as one Buffer when the client has finished,
   * else an iterable that replays the copy and then follows the live stream.
   */
  source(): Buffer | AsyncIterable<Buffer> {
    if (this.#ended && this.#dropped === 0 && this.#error === undefined) {
      // the chunks stay whole, so this try takes nothing a later one needs, unless the
      // copy is over its cap and must not be sent twice
      if (this.#state !== 'replayable') this.#consumed = true;
      return this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    }
    const reader = new Reader();
    reader.iterator = this.#iterate(reader);
    return reader;
  }

  /** The try reading `source` ended: it takes nothing more, so no later try is short of it. */
  stop(source: Buffer | AsyncIterable<Buffer> | null): void {
    if (!(source instanceof Reader) || source.stopped) return;
    source.stopped = true;
    this.#signal();
  }

  /** Frees the copy's share of the pool. Call once the request is over. */
  release(): void {
    this.#pool.release(this.#reservedBytes);
    this.#reservedBytes = 0;
    this.#chunks.length = 0;
    this.#keeping = false;
    this.#released = true;
    this.#signal();
    if (this.#req.isPaused()) this.#req.resume();
  }

  async *#iterate(reader: Reader): AsyncGenerator<Buffer> {
    let index = this.#dropped;
    let takenBytes = 0;
    while (!reader.stopped && !this.#released) {
      if (index < this.#dropped) throw new Error('replay copy dropped under a reader');
      if (index - this.#dropped < this.#chunks.length) {
        const chunk = this.#chunks[index - this.#dropped] as Buffer;
        index++;
        this.#consumed = true;
        takenBytes += chunk.length;
        // the furthest reader sets the pace: the others replay what is kept
        if (takenBytes > this.#takenBytes) this.#takenBytes = takenBytes;
        if (!this.#keeping) this.#dropTaken(index);
        if (this.#req.isPaused() && this.#unTakenBytes() < HIGH_WATER_BYTES) this.#req.resume();
        yield chunk;
        continue;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#waiting.add(resolve);
      });
    }
  }

  #onData(chunk: Buffer): void {
    this.#receivedBytes += chunk.length;
    this.#chunks.push(chunk);
    if (this.#keeping) {
      if (this.#receivedBytes > this.#bufferBytes) this.#stopKeeping('body-too-large');
      else if (!this.#pool.tryReserve(chunk.length)) this.#stopKeeping('buffer-full');
      else this.#reservedBytes += chunk.length;
    }
    if (this.#unTakenBytes() >= HIGH_WATER_BYTES) this.#req.pause();
    this.#signal();
  }

  #onEnd(): void {
    this.#ended = true;
    this.#signal();
  }

  #onError(err: Error): void {
    if (this.#ended) return;
    this.#error ??= err;
    this.#signal();
  }

  #signal(): void {
    if (this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const wake of waiting) wake();
  }

  #stopKeeping(state: BodyState): void {
    this.#keeping = false;
    this.#state = state;
    this.#pool.release(this.#reservedBytes);
    this.#reservedBytes = 0;
  }

  /** Without a copy, chunks the current try has taken are no longer needed. */
  #dropTaken(nextIndex: number): void {
    const count = nextIndex - this.#dropped;
    this.#chunks.splice(0, count);
    this.#dropped = nextIndex;
  }

  #unTakenBytes(): number {
    return this.#receivedBytes - this.#takenBytes;
  }
}

/** One try's replay of the body; `stopped` once that try has ended. */
class Reader implements AsyncIterable<Buffer> {
  stopped = false;
  iterator!: AsyncGenerator<Buffer>;

  [Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    return this.iterator;
  }
}
