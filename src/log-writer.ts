/**
 * Log lines to stdout in batches. A write per line would cost a sixth of the proxy's
 * throughput; a string append per line and one write per 16 KiB costs almost nothing. Lines
 * wait at most one flush interval (the caller's timer) and `drain` writes the rest on exit.
 *
 * A reader that stops taking lines never blocks the proxy: what it does not take waits, up to
 * `maxPendingBytes`; past that, lines are dropped and counted, and a `log lines dropped` line
 * says how many once the reader takes lines again.
 */
import { writeSync } from 'node:fs';

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
  /** Lines not yet handed to the reader. */
  #pending = '';
  /** The part of the last write the reader did not take. */
  #stalled: Buffer | undefined;
  #dropped = 0;
  /** Nothing can be written any more (stdout closed). */
  #closed = false;

  constructor(options: LogWriterOptions = {}) {
    this.#writeBytes = options.writeBytes ?? ((bytes) => writeSync(1, bytes));
    this.#batchBytes = options.batchBytes ?? 16 * 1024;
    this.#maxPendingBytes = options.maxPendingBytes ?? 1024 * 1024;
    this.#droppedLine = options.droppedLine ?? ((dropped) => `${dropped} log lines dropped\n`);
    this.#now = options.now ?? Date.now;
  }

  /** Lines dropped since the last `log lines dropped` line. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues one line (with its newline). */
  write(line: string): void {
    if (this.#closed) return;
    if (this.#pending.length >= this.#maxPendingBytes) {
      this.#dropped++;
      return;
    }
    this.#pending += line;
    if (this.#pending.length >= this.#batchBytes && this.#stalled === undefined) this.flush();
  }

  /** Writes what waits, as far as the reader takes it; returns whether nothing is left. */
  flush(): boolean {
    while (!this.#closed) {
      if (this.#stalled === undefined) {
        if (this.#pending === '' && this.#dropped === 0) return true;
        this.#stalled = Buffer.from(this.#pending + this.#takeDropped());
        this.#pending = '';
      }
      const bytes = this.#stalled;
      let written: number;
      try {
        written = this.#writeBytes(bytes);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
        // EPIPE, EBADF: nobody reads stdout any more
        this.#closed = true;
        this.#stalled = undefined;
        this.#pending = '';
        return true;
      }
      this.#stalled = written < bytes.length ? bytes.subarray(written) : undefined;
      if (this.#stalled !== undefined) return false;
    }
    return true;
  }

  /** Flushes, waiting up to `timeoutMs` for a reader that is full. Call before exiting. */
  drain(timeoutMs = 1_000): void {
    const deadline = this.#now() + timeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.flush() && this.#now() < deadline) Atomics.wait(pause, 0, 0, 5);
  }

  #takeDropped(): string {
    const dropped = this.#dropped;
    if (dropped === 0) return '';
    this.#dropped = 0;
    return this.#droppedLine(dropped);
  }
}
