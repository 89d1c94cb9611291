/**
 * Log lines to stdout in batches. A write per line would cost a sixth of the proxy's
 * throughput; a line encoded into a kept buffer and one write per 16 KiB costs almost nothing.
 * Lines wait at most one flush interval (the caller's timer) and `drain` writes the rest on
 * exit.
 *
 * A reader that stops taking lines never blocks the proxy: what it does not take waits, up to
 * `maxPendingBytes`; past that, lines are dropped and counted, and a `log lines dropped` line
 * says how many once the reader takes lines again.
 */
import { writeSync } from 'node:fs';
import { type JsonLine, withRoom } from './json-line.ts';

export interface LogWriterOptions {
  /** Writes bytes, returns how many were taken; throws EAGAIN when the reader is full. */
  readonly writeBytes?: (bytes: Buffer) => number;
  /** Pending text that triggers a write (default 16 KiB). */
  readonly batchBytes?: number;
  /** Pending text past which lines are dropped (default 1 MiB). */
  readonly maxPendingBytes?: number;
  /** The line that says how many lines were dropped (default: the bare count). */
  readonly droppedLine?: (dropped: number) => string;
  readonly now?: () => number;
}

export class LogWriter {
  readonly #writeBytes: (bytes: Buffer) => number;
  readonly #batchBytes: number;
  readonly #maxPendingBytes: number;
  readonly #droppedLine: (dropped: number) => string;
  readonly #now: () => number;
  /**
   * Lines not yet taken by the reader, as bytes: `[0, #used)`. Each line is encoded as it
   * comes, into bytes kept from batch to batch: a batch kept as one string had to be flattened
   * and encoded into a new buffer at every write, which cost more than making the lines.
   */
  #pending: Buffer;
  #used = 0;
  /** The reader refused some of the last write: the next is left to the flush timer. */
  #stalled = false;
  #dropped = 0;
  /** Nothing can be written any more (stdout closed). */
  #closed = false;

  constructor(options: LogWriterOptions = {}) {
    this.#writeBytes = options.writeBytes ?? ((bytes) => writeSync(1, bytes));
    this.#batchBytes = options.batchBytes ?? 16 * 1024;
    this.#maxPendingBytes = options.maxPendingBytes ?? 1024 * 1024;
    this.#droppedLine = options.droppedLine ?? ((dropped) => `${dropped} log lines dropped\n`);
    this.#now = options.now ?? Date.now;
    this.#pending = Buffer.allocUnsafeSlow(this.#batchBytes * 2);
  }

  /** Lines dropped since the last `log lines dropped` line. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues one line (with its newline). */
  write(line: string): void {
    if (!this.#admits()) return;
    this.#append(line);
    this.#written();
  }

  /** Queues one line made as bytes (with its newline): copied, not encoded again. */
  writeLine(line: JsonLine): void {
    if (!this.#admits()) return;
    this.#room(line.length);
    this.#used += line.buffer.copy(this.#pending, this.#used, 0, line.length);
    this.#written();
  }

  /** Writes what waits, as far as the reader takes it; returns whether nothing is left. */
  flush(): boolean {
    if (this.#closed) return true;
    if (!this.#stalled && this.#dropped > 0) this.#append(this.#takeDropped());
    if (this.#used === 0) return true;
    let written: number;
    try {
      written = this.#writeBytes(this.#pending.subarray(0, this.#used));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        this.#stalled = true;
        return false;
      }
      // EPIPE, EBADF: nobody reads stdout any more
      this.#closed = true;
      this.#used = 0;
      this.#stalled = false;
      return true;
    }
    if (written < this.#used) {
      this.#pending.copyWithin(0, written, this.#used);
      this.#used -= written;
      this.#stalled = true;
      return false;
    }
    this.#used = 0;
    this.#stalled = false;
    // what a stalled reader made it hold is given back once it reads again
    if (this.#pending.length > this.#batchBytes * 2) {
      this.#pending = Buffer.allocUnsafeSlow(this.#batchBytes * 2);
    }
    return this.#dropped === 0 || this.flush();
  }

  /** Flushes, waiting up to `timeoutMs` for a reader that is full. Call before exiting. */
  drain(timeoutMs = 1_000): void {
    const deadline = this.#now() + timeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.flush() && this.#now() < deadline) Atomics.wait(pause, 0, 0, 5);
  }

  #admits(): boolean {
    if (this.#closed) return false;
    // everything waiting counts, the bytes the reader refused included: a reader that refuses
    // every flush must not let each one make room for more
    if (this.#used >= this.#maxPendingBytes) {
      this.#dropped++;
      return false;
    }
    return true;
  }

  #written(): void {
    if (this.#used >= this.#batchBytes && !this.#stalled) this.flush();
  }

  #append(text: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    this.#room(text.length * 3);
    this.#used += this.#pending.write(text, this.#used, 'utf8');
  }

  #room(bytes: number): void {
    this.#pending = withRoom(this.#pending, this.#used, bytes);
  }

  #takeDropped(): string {
    const dropped = this.#dropped;
    this.#dropped = 0;
    return this.#droppedLine(dropped);
  }
}
